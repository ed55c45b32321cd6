"""FalGenerator end to end against the fake fal server: ledger, budget, resume, cancel, failures, uploads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image
from pydantic import SecretStr

from shotline.budget import Budget
from shotline.db import Database, open_database
from shotline.db.engine import sqlite_url
from shotline.db.tables import fal_requests, fal_uploads
from shotline.errors import BudgetExceeded, GenerationError, InputError
from shotline.fal.client import FalQueueClient
from shotline.fal.errors import FalAuthError, FalDeadlineExceeded, FalRequestFailed, SubmitOutcomeUnknown
from shotline.fal.generator import FalGenerator, build_fal_generator
from shotline.fal.ledger import LedgerEntry, LedgerState, RequestLedger
from shotline.fal.platform import FalPlatform
from shotline.fal.storage import DATA_URI_MAX_BYTES, FalStorage
from shotline.fal.uploads import StillUploads
from shotline.generators.base import GenerationRequest, Generator
from shotline.hashing import sha256_file
from shotline.store import WorkStore
from testkit.fakes.clock import FakeClock
from testkit.fakes.fal_server import (
    CONTENT_POLICY_MSG,
    DEFAULT_LOG_LINES,
    LOCKED_DETAIL,
    MODEL,
    FakeFal,
    nginx_error,
)
from testkit.media_check import inspect_mp4

STORYBOARD = "harbor-teaser"
SHOT = "s01-boats"
REPO = Path(__file__).resolve().parents[2]


class OrchestratorInterrupt(BaseException):
    """Stands in for Dagster's DagsterExecutionInterruptedError, which subclasses BaseException."""


@pytest.fixture
def store(tmp_path: Path) -> WorkStore:
    return WorkStore(tmp_path / "home")


@pytest.fixture
def db(tmp_path: Path) -> Database:
    """The database the pipeline uses by default: a SQLite file in SHOTLINE_HOME."""
    return open_database(sqlite_url(tmp_path / "home"))


def write_image(path: Path, size: tuple[int, int] = (320, 180), fmt: str = "PNG", *, noisy: bool = False) -> Path:
    """A flat still (a few hundred bytes: small enough for a data URI), or a noisy one (far larger)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if noisy:
        Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(path, fmt)
    else:
        Image.new("RGB", size, (200, 120, 40)).save(path, fmt)
    return path


def make_request(
    tmp_path: Path,
    *,
    shot: str = SHOT,
    size: tuple[int, int] = (320, 180),
    fmt: str = "PNG",
    resolution: str = "480p",
    duration: int = 2,
    image_url: str | None = None,
    noisy: bool = False,
) -> GenerationRequest:
    image = write_image(tmp_path / "images" / f"{shot}.{fmt.lower()}", size, fmt, noisy=noisy)
    return GenerationRequest(
        storyboard_id=STORYBOARD,
        shot_id=shot,
        clip_key=f"clip-{shot}-{resolution}-{duration}",
        prompt="slow dolly-in on fishing boats at dawn",
        image_path=image,
        image_sha256=sha256_file(image),
        image_width=size[0],
        image_height=size[1],
        image_url=image_url,
        duration=duration,
        resolution=resolution,  # type: ignore[arg-type]
    )


def clock_now(clock: FakeClock) -> Callable[[], datetime]:
    """Wall-clock time that moves with the fake clock (the ledger's timestamps, the lost-submit window)."""
    start_wall, start = datetime.now(UTC), clock.monotonic()
    return lambda: start_wall + timedelta(seconds=clock.monotonic() - start)


GeneratorFactory = Callable[..., FalGenerator]


@pytest.fixture
def make_generator(fake_fal: FakeFal, store: WorkStore, db: Database) -> GeneratorFactory:
    """A FalGenerator wired as build_fal_generator wires it (fal storage for stills, the platform API for lost
    submits, the database's ledger), on a fake clock. `storage=False` / `platform=False` leave those out;
    `generator_options` go to FalGenerator, the other keyword arguments to FalQueueClient."""

    def make(
        *,
        key: str | None = None,
        budget: Budget | None = None,
        deadline_s: float = 600.0,
        clock: FakeClock | None = None,
        sleep: Callable[[float], None] | None = None,
        queue_timeout_s: float | None = None,
        on_record: Callable[[LedgerEntry], None] | None = None,
        storage: bool = True,
        platform: bool = True,
        generator_options: dict[str, Any] | None = None,
        **client_options: Any,
    ) -> FalGenerator:
        clock = clock or FakeClock()
        secret = SecretStr(key or fake_fal.key)

        def client_factory() -> FalQueueClient:
            return FalQueueClient(
                fake_fal.url,
                secret,
                model=MODEL,
                poll_interval=1.0,
                sleep=clock.sleep,
                clock=clock.monotonic,
                media_origins=(fake_fal.cdn_url,),
                **client_options,
            )

        uploads = None
        if storage:
            storage_on_fake = (fake_fal.rest_url, fake_fal.cdn_url, secret)
            uploads = StillUploads(db, lambda: FalStorage(*storage_on_fake, sleep=clock.sleep))
        platform_factory = (lambda: FalPlatform(fake_fal.api_url, secret, sleep=clock.sleep)) if platform else None
        return FalGenerator(
            client_factory,
            store,
            db,
            model=MODEL,
            budget=budget,
            uploads=uploads,
            platform_factory=platform_factory,
            deadline_s=deadline_s,
            clock=clock.monotonic,
            now=clock_now(clock),
            sleep=sleep or clock.sleep,
            queue_timeout_s=queue_timeout_s,
            on_record=on_record,
            **(generator_options or {}),
        )

    return make


class Log:
    def __init__(self, on: Callable[[str], None] | None = None) -> None:
        self.lines: list[str] = []
        self._on = on

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if self._on is not None:
            self._on(line)

    def count(self, needle: str) -> int:
        return sum(needle in line for line in self.lines)


def ledger_state(db: Database, request: GenerationRequest) -> LedgerState | None:
    entry = RequestLedger(db).get(request.clip_key)
    return entry.state if entry else None


def ledger_rows_text(db: Database) -> str:
    """Every ledger row as JSON: what a database dump would show."""
    with db.begin() as conn:
        rows = [dict(row) for row in conn.execute(sa.select(fal_requests)).mappings()]
    return json.dumps(rows, default=str)


def resubmit(monkeypatch: pytest.MonkeyPatch, home: Path, target: str) -> int:
    """`shotline resubmit <target> --yes` against the database in `home`."""
    from shotline.cli import main

    monkeypatch.setenv("SHOTLINE_HOME", str(home))
    monkeypatch.delenv("SHOTLINE_DATABASE_URL", raising=False)
    return main(["resubmit", target, "--yes"])


# -- the happy path -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resolution", "image_size", "frame"),
    [("480p", (320, 180), (854, 480)), ("720p", (180, 320), (720, 1280))],
)
def test_generate_end_to_end(
    fake_fal: FakeFal,
    make_generator: GeneratorFactory,
    store: WorkStore,
    db: Database,
    tmp_path: Path,
    resolution: str,
    image_size: tuple[int, int],
    frame: tuple[int, int],
) -> None:
    budget = Budget(db, 10.0)
    generator: Generator = make_generator(budget=budget)  # satisfies the protocol (checked statically)
    request = make_request(tmp_path, size=image_size, resolution=resolution)
    log = Log()
    result = generator.generate(request, tmp_path / "work", log)

    assert result.video_path.parent == tmp_path / "work" and result.video_path.is_file()
    info = inspect_mp4(result.video_path)
    assert (info.width, info.height) == frame == (result.width, result.height)
    assert info.fps == result.fps == 24 and info.audio_codec == "aac" and info.video_codec == "h264"
    assert info.duration_s == pytest.approx(2.04, abs=0.05) and result.duration_s == pytest.approx(2.041667)

    expected_cost = {"480p": 0.17, "720p": 0.29}[resolution]
    assert result.generator == "fal" and result.model == MODEL and not result.preview
    assert result.cost_usd == expected_cost
    assert set(result.timings) >= {"submitted_at", "queue_s", "inference_s", "download_s", "total_s"}
    assert result.timings["inference_s"] == pytest.approx(3.42)
    assert result.timings["queue_s"] == pytest.approx(2.5)  # queued for polls 1 s then 1.5 s apart (fake clock)
    assert result.parameters == {
        "prompt": request.prompt,
        "duration": 2,
        "resolution": resolution,
        "image_sha256": request.image_sha256,
        "image_source": "data-uri",
    }
    # a still this small goes inline, even with fal storage configured: nothing is uploaded
    assert request.image_path.stat().st_size <= DATA_URI_MAX_BYTES
    [submit] = fake_fal.submits
    assert submit.json["image_url"].startswith("data:image/png;base64,")
    assert fake_fal.uploads == [] and fake_fal.seen("token") == [] and fake_fal.seen("initiate") == []

    # logs forwarded once each, with the queue position
    for line in DEFAULT_LOG_LINES:
        assert log.count(line) == 1, line
    assert log.count("in queue, position 1") == 1 and log.count("in queue, position 0") == 1

    [entry] = RequestLedger(db).attempts(request.clip_key)
    assert entry.state == LedgerState.COMPLETED and entry.attempt == 1 and entry.origin == "submitted"
    assert entry.outcome == "succeeded" and entry.billed is True and entry.cost_usd == expected_cost
    assert entry.request_id == result.request_id and entry.video_sha256 == sha256_file(result.video_path)
    assert store.get(entry.video_sha256 or "", ".mp4") is not None
    ledger_text = ledger_rows_text(db)
    assert "base64" not in ledger_text and request.image_sha256 in ledger_text
    spend = budget.spend()
    assert (spend.committed, spend.reserved) == (Decimal(str(expected_cost)), Decimal(0))
    assert fake_fal.billed_request_ids == [result.request_id] and fake_fal.billed_total_usd == expected_cost


def test_a_url_image_is_sent_as_is_and_recorded_without_its_query(
    fake_fal: FakeFal, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    url = fake_fal.serve_asset("boats.png", request.image_path.read_bytes(), "image/png")
    request = request.model_copy(update={"image_url": url + "?X-Amz-Signature=secret"})
    result = make_generator().generate(request, tmp_path / "work", Log())
    assert fake_fal.submits[0].json["image_url"] == url + "?X-Amz-Signature=secret"
    assert len(fake_fal.seen("asset")) == 1  # fal fetched it
    assert fake_fal.uploads == []  # a URL fal can fetch is never uploaded
    assert result.parameters["image_url"] == url and result.parameters["image_source"] == "url"
    assert "secret" not in json.dumps(result.parameters)


def test_a_jpeg_still_goes_as_a_jpeg_data_uri(
    fake_fal: FakeFal, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    make_generator().generate(make_request(tmp_path, fmt="JPEG"), tmp_path / "work", Log())
    assert fake_fal.submits[0].json["image_url"].startswith("data:image/jpeg;base64,")


def test_a_larger_still_is_uploaded_to_fal_storage_once_and_reused_while_it_serves(
    fake_fal: FakeFal, make_generator: GeneratorFactory, db: Database, tmp_path: Path
) -> None:
    first = make_request(tmp_path, noisy=True)
    assert first.image_path.stat().st_size > DATA_URI_MAX_BYTES
    log = Log()
    result = make_generator().generate(first, tmp_path / "a", log)

    [upload] = fake_fal.uploads
    assert upload.sha256 == first.image_sha256 and upload.content_type == "image/png"
    assert upload.access_url.startswith(fake_fal.cdn_url + "/files/")
    [submit] = fake_fal.submits
    assert submit.json["image_url"] == upload.access_url  # fal fetches the still from its own storage
    assert result.parameters["image_source"] == "fal-storage" and result.parameters["image_url"] == upload.access_url
    assert log.count(f"uploaded still {first.image_sha256[:12]}") == 1
    with db.begin() as conn:
        kept = conn.execute(sa.select(fal_uploads)).mappings().all()
    assert [(k["image_sha256"], k["access_url"]) for k in kept] == [(first.image_sha256, upload.access_url)]

    # another clip of the same still (another duration): the upload is reused, not repeated
    second = first.model_copy(update={"clip_key": "clip-same-still-3s", "duration": 3})
    make_generator().generate(second, tmp_path / "b", Log())
    assert len(fake_fal.uploads) == 1 and fake_fal.submits[1].json["image_url"] == upload.access_url

    # the upload expired on fal's CDN: uploaded again, and the new URL is kept
    fake_fal.expire_uploads()
    third = first.model_copy(update={"clip_key": "clip-same-still-4s", "duration": 4})
    log = Log()
    make_generator().generate(third, tmp_path / "c", log)
    assert len(fake_fal.uploads) == 2 and log.count("stopped serving; uploading it again") == 1
    again = fake_fal.uploads[1].access_url
    assert again != upload.access_url and fake_fal.submits[2].json["image_url"] == again
    with db.begin() as conn:
        assert conn.execute(sa.select(fal_uploads.c.access_url)).scalars().all() == [again]


def test_without_fal_storage_a_larger_still_goes_as_a_data_uri(
    fake_fal: FakeFal, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path, noisy=True)
    assert request.image_path.stat().st_size > DATA_URI_MAX_BYTES
    result = make_generator(storage=False).generate(request, tmp_path / "work", Log())
    assert fake_fal.submits[0].json["image_url"].startswith("data:image/png;base64,")
    assert result.parameters["image_source"] == "data-uri" and fake_fal.uploads == []


def test_an_image_changed_since_hashing_is_refused_before_any_request(
    fake_fal: FakeFal, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path, noisy=True)
    write_image(request.image_path, (64, 64))
    with pytest.raises(InputError) as caught:
        make_generator().generate(request, tmp_path / "work", Log())
    assert caught.value.storyboard == STORYBOARD and caught.value.shot == SHOT and caught.value.field == "image"
    assert fake_fal.requests == []  # not submitted, and not uploaded either


# -- the ledger ---------------------------------------------------------------------------------------------


def test_a_completed_clip_still_in_the_store_costs_no_http_call(
    fake_fal: FakeFal, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    first = make_generator().generate(request, tmp_path / "a", Log())
    seen = len(fake_fal.requests)
    log = Log()
    again = make_generator().generate(request, tmp_path / "b", log)
    assert len(fake_fal.requests) == seen
    assert again.request_id == first.request_id and again.cost_usd == first.cost_usd
    assert sha256_file(again.video_path) == sha256_file(first.video_path)
    assert again.video_path.parent == tmp_path / "b" and log.count("reusing request") == 1


def test_a_crash_between_submit_and_completion_resumes_the_same_request(
    fake_fal: FakeFal, store: WorkStore, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    url = sqlite_url(tmp_path / "home")
    # another process submits, then dies (os._exit: no cleanup, no cancel, its lease never released) while
    # the request is queued
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from pydantic import SecretStr
        from shotline.db import open_database
        from shotline.fal.client import FalQueueClient
        from shotline.generators.base import GenerationRequest
        from shotline.fal.generator import FalGenerator
        from shotline.store import WorkStore

        request = GenerationRequest.model_validate_json(sys.argv[1])
        def client():
            return FalQueueClient({fake_fal.url!r}, SecretStr({fake_fal.key!r}), model={MODEL!r},
                                  sleep=lambda s: None)
        def log(line):
            if "in queue" in line:
                os._exit(17)
        generator = FalGenerator(client, WorkStore({str(store.root)!r}), open_database({url!r}), model={MODEL!r},
                                 lease_s=1.0)
        generator.generate(request, Path({str(tmp_path / "dead")!r}), log)
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", script, request.model_dump_json()],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 17, child.stderr
    assert ledger_state(db, request) == LedgerState.SUBMITTED
    crashed_id = RequestLedger(db).get(request.clip_key).request_id  # type: ignore[union-attr]
    assert len(fake_fal.submits) == 1 and list(fake_fal.jobs) == [crashed_id]

    log = Log()
    result = make_generator().generate(request, tmp_path / "work", log)
    assert log.count("is generating clip") == 1  # the dead worker's lease ran out, then this one took over
    assert len(fake_fal.submits) == 1 and result.request_id == crashed_id
    assert log.count(f"resuming request {crashed_id}") == 1 and "resumed_at" in result.timings
    assert ledger_state(db, request) == LedgerState.COMPLETED
    assert len(RequestLedger(db).attempts(request.clip_key)) == 1
    assert inspect_mp4(result.video_path).audio_codec == "aac"


def test_a_submit_whose_answer_was_lost_is_found_in_fals_listing_and_adopted(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    budget = Budget(db, 5.0)
    request = make_request(tmp_path)
    fake_fal.fail_next("submit", action="accept_and_drop")  # fal queued it; its answer never arrived
    clock = FakeClock()

    def sleep(seconds: float) -> None:  # between listings: let a little real time pass, for fal to finish it
        clock.sleep(seconds)
        time.sleep(0.2)

    log = Log()
    generator = make_generator(budget=budget, clock=clock, sleep=sleep, generator_options={"lookup_interval_s": 5})
    result = generator.generate(request, tmp_path / "work", log)

    assert len(fake_fal.submits) == 1 and list(fake_fal.jobs) == [result.request_id]
    assert log.count("the submit's answer was lost") == 1
    assert log.count(f"adopting request {result.request_id}") == 1
    assert fake_fal.seen("listing")  # looked up by the canonical input, in fal's platform listing
    [entry] = RequestLedger(db).attempts(request.clip_key)
    assert entry.state == LedgerState.COMPLETED and entry.origin == "adopted" and entry.billed is True
    assert entry.request_id == result.request_id and entry.cost_usd == 0.17
    spend = budget.spend()
    assert (spend.committed, spend.reserved) == (Decimal("0.17"), Decimal(0))
    assert fake_fal.billed_request_ids == [result.request_id]


def test_duplicates_of_a_lost_submit_are_all_followed_and_recorded(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    fake_fal.unpolled_finish_s = 0.0  # both requests have finished (and are listed) by the first look
    request = make_request(tmp_path)
    generator = make_generator()
    # the same input reached fal once already (say, an earlier submit retried under the hood)
    body = generator.build_payload(request, Log()).model_dump()
    with FalQueueClient(fake_fal.url, SecretStr(fake_fal.key), model=MODEL) as direct:
        earlier = direct.submit(body).request_id
    fake_fal.fail_next("submit", action="accept_and_drop")
    log = Log()
    result = generator.generate(request, tmp_path / "work", log)

    assert len(fake_fal.jobs) == 2 and result.request_id == earlier  # the first one fal shows is used
    assert log.count("a duplicate fal bills too") == 1
    attempts = RequestLedger(db).attempts(request.clip_key)
    assert [(a.origin, a.state) for a in attempts] == [
        ("adopted", LedgerState.COMPLETED),
        ("duplicate", LedgerState.COMPLETED),
    ]
    assert {a.request_id for a in attempts} == set(fake_fal.jobs)
    assert all(a.billed for a in attempts)  # fal bills both: the ledger says so
    assert RequestLedger(db).spent_usd(request.clip_key) == fake_fal.billed_total_usd == 0.34


def test_a_lost_submit_that_never_reached_fal_is_given_up_after_its_window_and_submitted_again(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    budget = Budget(db, 5.0)
    request = make_request(tmp_path)
    fake_fal.fail_next("submit", action="drop")  # the connection broke after the body went out: never queued
    options = {"max_run_s": 10.0, "lookup_interval_s": 5.0}
    # within the window (start timeout 5 s + longest run 10 s) and past this run's deadline: not resubmitted
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        make_generator(budget=budget, queue_timeout_s=5, deadline_s=3, generator_options=options).generate(
            request, tmp_path / "work", Log()
        )
    message = str(caught.value)
    assert f"storyboard {STORYBOARD!r}, shot {SHOT!r}" in message and "the next run looks again" in message
    assert not caught.value.retryable
    assert ledger_state(db, request) == LedgerState.SUBMITTING
    assert budget.spend().reserved == Decimal("0.17")  # it may have been billed: keep counting it
    assert len(fake_fal.submits) == 1 and fake_fal.jobs == {}

    # the next run looks again until the window has passed, then records it never queued and submits again
    log = Log()
    result = make_generator(budget=budget, generator_options=options).generate(request, tmp_path / "work", log)
    assert log.count("not in fal's listing yet") >= 1 and log.count("never reached fal; a new one is safe") == 1
    assert len(fake_fal.submits) == 2 and list(fake_fal.jobs) == [result.request_id]
    first, second = RequestLedger(db).attempts(request.clip_key)
    assert (first.state, first.outcome, first.billed, first.cost_usd) == (LedgerState.FAILED, "never_queued", False, 0)
    assert (second.attempt, second.state, second.request_id) == (2, LedgerState.COMPLETED, result.request_id)
    spend = budget.spend()
    assert (spend.committed, spend.reserved) == (Decimal("0.17"), Decimal(0))  # the first reservation released


def test_without_the_platform_api_a_lost_submit_is_never_resubmitted(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    fake_fal.fail_next("submit", action="accept_and_drop")
    for _ in range(2):
        with pytest.raises(SubmitOutcomeUnknown) as caught:
            make_generator(platform=False).generate(request, tmp_path / "work", Log())
        message = str(caught.value)
        assert STORYBOARD in message and SHOT in message and "may have been queued and billed" in message
        assert f"shotline resubmit {STORYBOARD}/{SHOT}" in message and not caught.value.retryable
    assert ledger_state(db, request) == LedgerState.SUBMITTING
    assert len(fake_fal.submits) == 1


def test_two_workers_on_the_same_clip_submit_once(
    fake_fal: FakeFal, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    second_waiting = threading.Event()

    def first_log(line: str) -> None:
        if "in queue" in line:
            assert second_waiting.wait(20), "the second worker never queued behind the lease"

    def second_log(line: str) -> None:
        if "is generating clip" in line:
            second_waiting.set()

    results: dict[str, Any] = {}

    def run(name: str, log: Log) -> None:
        results[name] = make_generator().generate(request, tmp_path / name, log)

    second = Log(second_log)
    threads = [threading.Thread(target=run, args=("a", Log(first_log)))]
    threads[0].start()
    while not fake_fal.submits:
        threads[0].join(0.01)
    threads.append(threading.Thread(target=run, args=("b", second)))
    threads[1].start()
    for t in threads:
        t.join(30)
    assert len(fake_fal.submits) == 1
    assert results["a"].request_id == results["b"].request_id and second.count("reusing request") == 1


# -- failures -----------------------------------------------------------------------------------------------


def test_content_policy_failure_names_the_shot_and_quotes_fal(
    fake_fal: FakeFal,
    db: Database,
    make_generator: GeneratorFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    budget = Budget(db, 5.0)
    fake_fal.content_policy(times=1)
    request = make_request(tmp_path)
    with pytest.raises(FalRequestFailed) as caught:
        make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    message = str(caught.value)
    assert f"storyboard {STORYBOARD!r}, shot {SHOT!r}" in message
    assert CONTENT_POLICY_MSG in message and "content_policy_violation" in message
    assert not caught.value.retryable and caught.value.request_id and caught.value.request_id in message
    entry = RequestLedger(db).get(request.clip_key)
    assert entry is not None and entry.state == LedgerState.FAILED and entry.outcome == "input_error"
    assert entry.billed is None  # a 422 may have been billed: fal does not say
    assert budget.spend().committed == Decimal("0.17")  # so it is counted at the estimate
    assert len(fake_fal.seen("result")) == 1  # fal's stored answer, read once

    with pytest.raises(FalRequestFailed) as again:
        make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    assert "(attempt 1) failed" in str(again.value) and CONTENT_POLICY_MSG in str(again.value)
    assert f"shotline resubmit {STORYBOARD}/{SHOT}" in str(again.value)
    assert len(fake_fal.submits) == 1

    assert resubmit(monkeypatch, tmp_path / "home", f"{STORYBOARD}/{SHOT}") == 0  # the deliberate resubmit
    make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    assert len(fake_fal.submits) == 2
    states = [a.state for a in RequestLedger(db).attempts(request.clip_key)]
    assert states == [LedgerState.FAILED, LedgerState.RESUBMIT_REQUESTED, LedgerState.COMPLETED]


def test_unbilled_runner_failures_are_submitted_again_in_the_same_run(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    budget = Budget(db, 5.0)
    fake_fal.fail_requests(503, "runner_scheduling_failure", "Could not schedule a runner", times=2)
    request = make_request(tmp_path)
    log = Log()
    result = make_generator(budget=budget).generate(request, tmp_path / "work", log)
    assert len(fake_fal.submits) == 3 and result.cost_usd == 0.17
    assert log.count("submitting a new request (attempt 2 of at most 3)") == 1
    assert log.count("submitting a new request (attempt 3 of at most 3)") == 1
    attempts = RequestLedger(db).attempts(request.clip_key)
    assert [(a.attempt, a.state, a.billed) for a in attempts] == [
        (1, LedgerState.FAILED, False),
        (2, LedgerState.FAILED, False),
        (3, LedgerState.COMPLETED, True),
    ]
    assert attempts[0].outcome == "runner_error" and attempts[0].error_type == "runner_scheduling_failure"
    assert len(fake_fal.seen("result")) == 3  # each request's answer read once
    spend = budget.spend()
    assert (spend.committed, spend.reserved) == (Decimal("0.17"), Decimal(0))  # 5xx: released, never billed
    assert fake_fal.billed_request_ids == [result.request_id]


def test_unbilled_failures_stop_at_the_attempt_limit_until_a_resubmit(
    fake_fal: FakeFal,
    db: Database,
    make_generator: GeneratorFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    budget = Budget(db, 5.0)
    fake_fal.fail_requests(503, "runner_scheduling_failure", "Could not schedule a runner")
    request = make_request(tmp_path)
    with pytest.raises(FalRequestFailed) as caught:
        make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    message = str(caught.value)
    assert "Could not schedule a runner" in message and "SHOTLINE_FAL_MAX_ATTEMPTS=3" in message
    assert f"storyboard {STORYBOARD!r}, shot {SHOT!r}" in message and caught.value.request_id in message
    assert not caught.value.retryable and not caught.value.billed
    assert len(fake_fal.submits) == 3 and budget.spend().total == 0

    fake_fal.failure = None
    with pytest.raises(FalRequestFailed):  # the limit is per clip: a later run does not pay again by itself
        make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    assert len(fake_fal.submits) == 3

    assert resubmit(monkeypatch, tmp_path / "home", f"{STORYBOARD}/{SHOT}") == 0
    result = make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    assert len(fake_fal.submits) == 4 and result.cost_usd == 0.17


def test_a_retryable_model_error_is_submitted_again(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    budget = Budget(db, 5.0)
    fake_fal.model_error(retryable=True, times=1)
    request = make_request(tmp_path)
    log = Log()
    result = make_generator(budget=budget).generate(request, tmp_path / "work", log)
    assert len(fake_fal.submits) == 2 and log.count("failed unbilled (internal_server_error)") == 1
    first, second = RequestLedger(db).attempts(request.clip_key)
    assert (first.state, first.outcome, first.billed, first.retryable) == (
        LedgerState.FAILED,
        "model_error",
        False,
        True,
    )
    assert first.billable_units == 0 and "Internal server error" in (first.error or "")
    assert second.state == LedgerState.COMPLETED and second.request_id == result.request_id
    assert len(fake_fal.seen("result")) == 2
    assert budget.spend().committed == Decimal("0.17") and fake_fal.billed_request_ids == [result.request_id]


def test_a_model_error_fal_calls_permanent_raises_with_its_explanation(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    budget = Budget(db, 5.0)
    fake_fal.model_error(retryable=False, error_type="downstream_service_error", msg="The upstream model refused")
    request = make_request(tmp_path)
    with pytest.raises(FalRequestFailed) as caught:
        make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    message = str(caught.value)
    assert "The upstream model refused" in message and "downstream_service_error" in message
    assert f"storyboard {STORYBOARD!r}, shot {SHOT!r}" in message and caught.value.request_id in message
    assert not caught.value.retryable and not caught.value.billed
    assert len(fake_fal.submits) == 1 and len(fake_fal.seen("result")) == 1
    assert budget.spend().total == 0  # a 5xx is never billed: the reservation was released

    fake_fal.failure = None
    with pytest.raises(FalRequestFailed, match="shotline resubmit"):
        make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    assert len(fake_fal.submits) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_are_clear_keyless_and_leave_the_clip_submittable(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path, status: int
) -> None:
    budget = Budget(db, 5.0)
    request = make_request(tmp_path)
    bad_key = "nobody:secret-that-must-not-leak"
    if status == 403:
        fake_fal.locked = LOCKED_DETAIL
    generator = make_generator(budget=budget, key=bad_key if status == 401 else None)
    with pytest.raises(FalAuthError) as caught:
        generator.generate(request, tmp_path / "work", Log())
    message = str(caught.value)
    assert STORYBOARD in message and SHOT in message
    assert ("check FAL_KEY" in message) if status == 401 else ("locked" in message and "Exhausted balance" in message)
    assert bad_key not in message and fake_fal.key not in message and "must-not-leak" not in repr(generator)
    assert budget.spend().total == 0
    entry = RequestLedger(db).get(request.clip_key)
    assert entry is not None and entry.state == LedgerState.FAILED and entry.billed is False
    assert bad_key not in ledger_rows_text(db)

    fake_fal.locked = None
    make_generator(budget=budget).generate(request, tmp_path / "work", Log())  # fixed: submits again
    assert len(fake_fal.submits) == 2


def test_gateway_storm_and_flaky_result_and_media_still_make_one_submit(
    fake_fal: FakeFal, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    fake_fal.fail_next("status", **nginx_error(502), times=3)
    fake_fal.fail_next("status", **nginx_error(503), times=2)
    fake_fal.fail_next("result", **nginx_error(504))
    fake_fal.fail_next("media", status=500, body="oops")
    result = make_generator(max_attempts=6).generate(make_request(tmp_path), tmp_path / "work", Log())
    assert len(fake_fal.submits) == 1 and inspect_mp4(result.video_path).width == 854


def test_a_result_that_keeps_failing_in_transit_leaves_the_request_to_resume(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    fake_fal.fail_next("result", **nginx_error(502), times=3)
    with pytest.raises(GenerationError) as caught:
        make_generator(max_attempts=3).generate(request, tmp_path / "work", Log())
    assert caught.value.retryable and SHOT in str(caught.value)
    assert ledger_state(db, request) == LedgerState.SUBMITTED
    result = make_generator().generate(request, tmp_path / "work", Log())  # e.g. Dagster's retry
    assert len(fake_fal.submits) == 1 and result.width == 854


# -- cancelling ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue_polls", "progress_polls", "cancel_mode", "cancelled_at_once", "follow_up"),
    [
        (1000, 0, "ignore", True, "cancelled"),  # removed from the queue: never ran, not billed
        (0, 1000, "ignore", False, "completed"),  # the app ignores the cancel: it runs to the end, billed
        (0, 1000, "handle", True, "cancelled"),  # the app handles the cancel: 499, not billed
    ],
    ids=["while-queued", "while-running-ignored", "while-running-handled"],
)
def test_deadline_asks_fal_to_cancel_and_the_next_run_follows_the_request_to_its_end(
    fake_fal: FakeFal,
    db: Database,
    make_generator: GeneratorFactory,
    tmp_path: Path,
    queue_polls: int,
    progress_polls: int,
    cancel_mode: Any,
    cancelled_at_once: bool,
    follow_up: str,
) -> None:
    budget = Budget(db, 5.0)
    fake_fal.cancel_mode = cancel_mode
    fake_fal.queue_polls, fake_fal.progress_polls = queue_polls, progress_polls
    request = make_request(tmp_path)
    with pytest.raises(FalDeadlineExceeded) as caught:
        make_generator(budget=budget, deadline_s=20).generate(request, tmp_path / "work", Log())
    rid = caught.value.request_id
    assert rid and SHOT in str(caught.value) and "asked fal to cancel it" in str(caught.value)
    assert not caught.value.retryable  # a retry now would only wait for the same request again
    [cancel] = fake_fal.cancels
    assert cancel.method == "PUT" and cancel.path.endswith(f"/requests/{rid}/cancel")
    assert fake_fal.job(rid).cancelled is cancelled_at_once
    entry = RequestLedger(db).get(request.clip_key)
    # 202 only means "cancel requested": fal may still run (and bill) it, so its estimate keeps counting
    assert entry is not None and entry.state == LedgerState.CANCEL_REQUESTED and entry.cancel_requested_at
    assert entry.billed is None and entry.public_view()["fal_state"] == "cancel_requested"
    assert (budget.spend().committed, budget.spend().reserved) == (Decimal(0), Decimal("0.17"))

    if not cancelled_at_once:
        # still running on fal: a run with too little time waits for it, and neither cancels nor submits again
        with pytest.raises(FalDeadlineExceeded, match="while waiting for cancelled request"):
            make_generator(budget=budget, deadline_s=20).generate(request, tmp_path / "work", Log())
        assert len(fake_fal.submits) == 1 and len(fake_fal.cancels) == 1
        fake_fal.job(rid).progress_polls = 0  # then it finishes

    fake_fal.queue_polls, fake_fal.progress_polls = 2, 3  # what a new request would take
    log = Log()
    result = make_generator(budget=budget).generate(request, tmp_path / "work", log)
    assert log.count(f"fal {rid}: a cancel was requested earlier") == 1
    attempts = RequestLedger(db).attempts(request.clip_key)
    if follow_up == "completed":
        # fal ran it despite the cancel: billed, so its video is used and nothing else is submitted
        assert result.request_id == rid and len(fake_fal.submits) == 1
        assert [(a.state, a.billed) for a in attempts] == [(LedgerState.COMPLETED, True)]
        assert "cancel_ignored" in result.timings
    else:
        # fal proved the cancel (499): not billed, so a new request was submitted
        assert result.request_id != rid and len(fake_fal.submits) == 2
        assert [(a.state, a.billed) for a in attempts] == [
            (LedgerState.CANCELLED, False),
            (LedgerState.COMPLETED, True),
        ]
        assert attempts[0].outcome == "cancelled" and attempts[0].cost_usd == 0.0
    assert fake_fal.billed_request_ids == [result.request_id]
    spend = budget.spend()
    assert (spend.committed, spend.reserved) == (Decimal("0.17"), Decimal(0))
    assert RequestLedger(db).spent_usd(request.clip_key) == fake_fal.billed_total_usd == 0.17


def test_a_cancel_that_does_not_get_through_leaves_the_request_to_resume(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    fake_fal.queue_polls = 1000
    fake_fal.fail_next("cancel", **nginx_error(502), times=5)
    request = make_request(tmp_path)
    with pytest.raises(FalDeadlineExceeded) as caught:
        make_generator(deadline_s=20).generate(request, tmp_path / "work", Log())
    assert "not cancelled, the next run resumes it" in str(caught.value) and SHOT in str(caught.value)
    assert len(fake_fal.cancels) == 2  # best effort, bounded
    assert ledger_state(db, request) == LedgerState.SUBMITTED

    fake_fal.job(caught.value.request_id).queue_polls = 0  # type: ignore[arg-type]  # fal gets to it
    result = make_generator().generate(request, tmp_path / "work", Log())
    assert result.request_id == caught.value.request_id and len(fake_fal.submits) == 1


def test_an_account_locked_mid_run_names_the_shot_and_keeps_the_request(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    fake_fal.fail_next("status", status=403, body={"detail": LOCKED_DETAIL})
    with pytest.raises(FalAuthError) as caught:
        make_generator().generate(request, tmp_path / "work", Log())
    assert SHOT in str(caught.value) and "Exhausted balance" in str(caught.value)
    assert ledger_state(db, request) == LedgerState.SUBMITTED and len(fake_fal.seen("status")) == 1


@pytest.mark.parametrize("cancel_mode", ["ignore", "handle"])
@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, OrchestratorInterrupt])
def test_an_interrupt_asks_fal_to_cancel_and_is_reraised(
    fake_fal: FakeFal,
    db: Database,
    make_generator: GeneratorFactory,
    tmp_path: Path,
    interrupt: type[BaseException],
    cancel_mode: Any,
) -> None:
    budget = Budget(db, 5.0)
    fake_fal.cancel_mode = cancel_mode
    request = make_request(tmp_path)

    def stop(line: str) -> None:
        if "in progress" in line:
            raise interrupt()

    with pytest.raises(interrupt):
        make_generator(budget=budget).generate(request, tmp_path / "work", Log(stop))
    assert len(fake_fal.cancels) == 1
    entry = RequestLedger(db).get(request.clip_key)
    assert entry is not None and entry.state == LedgerState.CANCEL_REQUESTED
    assert budget.spend().reserved == Decimal("0.17")  # it was running: fal may still bill it

    result = make_generator(budget=budget).generate(request, tmp_path / "work", Log())  # a rerun
    attempts = RequestLedger(db).attempts(request.clip_key)
    if cancel_mode == "ignore":  # fal ran it to the end: billed, its video used, no second request
        assert len(fake_fal.submits) == 1 and result.request_id == entry.request_id
        assert [a.state for a in attempts] == [LedgerState.COMPLETED]
    else:  # fal proved the cancel: unbilled, so the rerun paid for a new request
        assert len(fake_fal.submits) == 2 and result.request_id != entry.request_id
        assert [a.state for a in attempts] == [LedgerState.CANCELLED, LedgerState.COMPLETED]
        assert attempts[0].billed is False
    assert budget.spend().committed == Decimal("0.17") and budget.spend().reserved == 0
    assert fake_fal.billed_request_ids == [result.request_id]


# -- budget -------------------------------------------------------------------------------------------------


def test_budget_refusal_happens_before_any_submit(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    budget = Budget(db, 0.40)
    make_generator(budget=budget).generate(make_request(tmp_path, shot="s01"), tmp_path / "a", Log())
    make_generator(budget=budget).generate(make_request(tmp_path, shot="s02"), tmp_path / "b", Log())
    third = make_request(tmp_path, shot="s03")
    with pytest.raises(BudgetExceeded) as caught:
        make_generator(budget=budget).generate(third, tmp_path / "c", Log())
    assert "SHOTLINE_BUDGET_USD=$0.40" in str(caught.value) and f"{STORYBOARD}/s03" in str(caught.value)
    assert len(fake_fal.submits) == 2 and ledger_state(db, third) is None


def test_budget_refusal_sends_nothing_at_all(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    with pytest.raises(BudgetExceeded):
        make_generator(budget=Budget(db, 0.10)).generate(make_request(tmp_path), tmp_path / "w", Log())
    assert fake_fal.requests == []


# -- construction -------------------------------------------------------------------------------------------


def test_built_from_settings_the_way_the_pipeline_does(
    fake_fal: FakeFal, store: WorkStore, db: Database, tmp_path: Path
) -> None:
    from assets.resources import GeneratorResource

    resource = GeneratorResource(  # the resource raw_clip builds its generator from
        kind="fal",
        fal_key=fake_fal.key,
        fal_queue_url=fake_fal.url,
        fal_rest_url=fake_fal.rest_url,
        fal_cdn_url=fake_fal.cdn_url,
        fal_api_url=fake_fal.api_url,
        budget_usd=1.5,
        poll_interval_s=0.001,
        max_poll_interval_s=0.002,
    )
    generator = resource.build(store, db)
    assert isinstance(generator, FalGenerator)
    assert generator.budget is not None and generator.budget.cap == Decimal("1.50")
    assert generator.uploads is not None and generator.max_attempts == 3
    assert generator.model == MODEL and fake_fal.key not in repr(generator)
    request = make_request(tmp_path, noisy=True)  # uploaded to the configured fal storage
    result = generator.generate(request, tmp_path / "work", Log())
    assert result.width == 854 and result.parameters["image_source"] == "fal-storage"
    assert [u.sha256 for u in fake_fal.uploads] == [request.image_sha256]

    same = build_fal_generator(
        store=store,
        db=db,
        key=SecretStr(fake_fal.key),
        base_url=fake_fal.url,
        model=MODEL,
        budget_usd=None,
        deadline_s=60,
    )
    assert same.budget is not None and same.budget.cap is None and same.uploads is None
    with pytest.raises(InputError, match="FAL_KEY"):
        GeneratorResource(kind="fal").build(store, db)


# -- the request as others see it: observer, X-Fal-Request-Timeout ------------------------------------------


def test_every_ledger_record_reaches_the_observer_as_written_and_without_secrets(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    url = fake_fal.serve_asset("boats.png", request.image_path.read_bytes(), "image/png")
    request = request.model_copy(update={"image_url": url + "?X-Amz-Signature=secret"})
    seen: list[LedgerEntry] = []

    def observe(entry: LedgerEntry) -> None:
        in_db = RequestLedger(db).get(entry.clip_key)
        assert in_db == entry  # durable before anyone is told
        seen.append(entry)

    result = make_generator(budget=Budget(db, 5.0), on_record=observe).generate(request, tmp_path / "work", Log())
    assert [e.state for e in seen] == [LedgerState.SUBMITTING, LedgerState.SUBMITTED, LedgerState.COMPLETED]
    submitted = seen[1].public_view()
    assert submitted["fal_request_id"] == result.request_id and submitted["fal_state"] == "submitted"
    assert submitted["status_url"] == f"{fake_fal.url}/xai/grok-imagine-video/requests/{result.request_id}/status"
    assert submitted["parameters"]["image_url"] == url and submitted["estimated_cost_usd"] == 0.17
    assert submitted["submitted_at"] and submitted["start_timeout_s"] == 600.0 and submitted["attempt"] == 1
    completed = seen[2].public_view()
    assert completed["billed"] is True and completed["cost_usd"] == 0.17
    for entry in seen:
        text = json.dumps(entry.public_view())
        assert "secret" not in text and "base64" not in text and fake_fal.key not in text
        assert "budget_reservation" not in text and "previous" not in text


def test_public_view_drops_query_and_user_info_from_urls() -> None:
    entry = LedgerEntry(
        clip_key="k",
        state=LedgerState.SUBMITTED,
        storyboard_id="sb",
        shot_id="s",
        model=MODEL,
        created_at="t",
        updated_at="t",
        request_id="r1",
        status_url="https://user:pw@queue.fal.run/xai/grok-imagine-video/requests/r1/status?token=abc",
        response_url="https://queue.fal.run/xai/grok-imagine-video/requests/r1",
        cancel_url="https://queue.fal.run/xai/grok-imagine-video/requests/r1/cancel#frag",
    )
    view = entry.public_view()
    assert view["status_url"] == "https://queue.fal.run/xai/grok-imagine-video/requests/r1/status"
    assert view["cancel_url"] == "https://queue.fal.run/xai/grok-imagine-video/requests/r1/cancel"
    assert "billed" not in view and "cost_usd" not in view  # not known yet: left out, not null


def test_an_observer_that_fails_never_breaks_the_bookkeeping(
    fake_fal: FakeFal,
    db: Database,
    make_generator: GeneratorFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(entry: LedgerEntry) -> None:
        raise RuntimeError("event log unavailable")

    request = make_request(tmp_path)
    result = make_generator(on_record=broken).generate(request, tmp_path / "work", Log())
    assert ledger_state(db, request) == LedgerState.COMPLETED and result.width == 854
    assert caplog.text.count("ledger observer failed") == 3 and "event log unavailable" in caplog.text


@pytest.mark.parametrize(("queue_timeout_s", "header"), [(None, "600"), (45.5, "45.5")])
def test_the_submit_carries_x_fal_request_timeout(
    fake_fal: FakeFal,
    db: Database,
    make_generator: GeneratorFactory,
    tmp_path: Path,
    queue_timeout_s: float | None,
    header: str,
) -> None:
    request = make_request(tmp_path)
    make_generator(queue_timeout_s=queue_timeout_s).generate(request, tmp_path / "work", Log())
    [submit] = fake_fal.submits
    assert submit.headers["x-fal-request-timeout"] == header  # default: the per-clip deadline
    assert submit.headers["x-app-fal-disable-fallback"] == "true"  # this model, not a fallback endpoint
    entry = RequestLedger(db).get(request.clip_key)
    assert entry is not None and entry.start_timeout_s == float(header)


class TrickleClock(FakeClock):
    """A fake clock whose sleeps also let a little real time pass (for fal's own, real-time start timeout)."""

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        time.sleep(0.02)


def test_a_request_fal_dropped_for_not_starting_in_time_is_unbilled_and_submitted_again(
    fake_fal: FakeFal, db: Database, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    budget = Budget(db, 5.0)
    fake_fal.no_free_runner = True  # nothing starts: fal ends the request at its start timeout (504, user)

    def on_line(line: str) -> None:
        if "failed unbilled" in line:
            fake_fal.no_free_runner = False  # a runner frees up before the next attempt

    request = make_request(tmp_path)
    log = Log(on_line)
    result = make_generator(budget=budget, queue_timeout_s=0.5, clock=TrickleClock()).generate(
        request, tmp_path / "work", log
    )
    assert len(fake_fal.submits) == 2 and all(s.headers["x-fal-request-timeout"] == "0.5" for s in fake_fal.submits)
    first, second = RequestLedger(db).attempts(request.clip_key)
    assert (first.state, first.outcome, first.error_type) == (LedgerState.FAILED, "start_timeout", "request_timeout")
    assert first.billed is False and first.cost_usd == 0.0 and first.retryable
    assert log.count("no free runner before the start timeout") == 1
    assert second.state == LedgerState.COMPLETED and second.request_id == result.request_id
    assert fake_fal.billed_request_ids == [result.request_id] and not fake_fal.bills[first.request_id].billed
    assert budget.spend().committed == Decimal("0.17") and budget.spend().reserved == 0
