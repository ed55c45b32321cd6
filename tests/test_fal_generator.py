"""FalGenerator end to end against the fake fal server: ledger, budget, resume, cancel, failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import SecretStr

from shotline.budget import Budget
from shotline.config import Settings
from shotline.errors import BudgetExceeded, GenerationError, InputError
from shotline.fal.client import FalQueueClient
from shotline.fal.errors import FalAuthError, FalDeadlineExceeded, FalRequestFailed, SubmitOutcomeUnknown
from shotline.generators.base import GenerationRequest, Generator
from shotline.generators.fal import FalGenerator, build_fal_generator
from shotline.hashing import sha256_file
from shotline.ledger import LedgerEntry, LedgerState, RequestLedger
from shotline.store import WorkStore
from tests.fakes.clock import FakeClock
from tests.fakes.fal_server import (
    CONTENT_POLICY_MSG,
    DEFAULT_LOG_LINES,
    LOCKED_DETAIL,
    MODEL,
    FakeFal,
    nginx_error,
)
from tests.media_check import inspect_mp4

STORYBOARD = "harbor-teaser"
SHOT = "s01-boats"
REPO = Path(__file__).resolve().parents[1]


class OrchestratorInterrupt(BaseException):
    """Stands in for Dagster's DagsterExecutionInterruptedError, which subclasses BaseException."""


@pytest.fixture
def store(tmp_path: Path) -> WorkStore:
    return WorkStore(tmp_path / "home")


def write_image(path: Path, size: tuple[int, int] = (320, 180), fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
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
) -> GenerationRequest:
    image = write_image(tmp_path / "images" / f"{shot}.{fmt.lower()}", size, fmt)
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


GeneratorFactory = Callable[..., FalGenerator]


@pytest.fixture
def make_generator(fake_fal: FakeFal, store: WorkStore) -> GeneratorFactory:
    def make(
        *,
        key: str | None = None,
        budget: Budget | None = None,
        deadline_s: float = 600.0,
        clock: FakeClock | None = None,
        queue_timeout_s: float | None = None,
        on_record: Callable[[LedgerEntry], None] | None = None,
        **client_options: Any,
    ) -> FalGenerator:
        clock = clock or FakeClock()

        def client_factory() -> FalQueueClient:
            return FalQueueClient(
                fake_fal.url,
                SecretStr(key or fake_fal.key),
                model=MODEL,
                poll_interval=1.0,
                sleep=clock.sleep,
                clock=clock.monotonic,
                **client_options,
            )

        return FalGenerator(
            client_factory,
            store,
            model=MODEL,
            budget=budget,
            deadline_s=deadline_s,
            clock=clock.monotonic,
            queue_timeout_s=queue_timeout_s,
            on_record=on_record,
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


def ledger_state(store: WorkStore, request: GenerationRequest) -> LedgerState | None:
    entry = RequestLedger(store).get(request.clip_key)
    return entry.state if entry else None


# -- the happy path -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resolution", "image_size", "frame"),
    [("480p", (320, 180), (854, 480)), ("720p", (180, 320), (720, 1280))],
)
def test_generate_end_to_end(
    fake_fal: FakeFal,
    make_generator: GeneratorFactory,
    store: WorkStore,
    tmp_path: Path,
    resolution: str,
    image_size: tuple[int, int],
    frame: tuple[int, int],
) -> None:
    budget = Budget(store, 10.0)
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
    assert result.timings["queue_s"] == pytest.approx(
        2.5
    )  # queued for polls 1 s then 1.5 s apart (fake clock)
    assert result.parameters == {
        "prompt": request.prompt,
        "duration": 2,
        "resolution": resolution,
        "image_sha256": request.image_sha256,
        "image_source": "data-uri",
    }
    [submit] = fake_fal.submits
    assert submit.json["image_url"].startswith("data:image/png;base64,")

    # logs forwarded once each, with the queue position
    for line in DEFAULT_LOG_LINES:
        assert log.count(line) == 1, line
    assert log.count("in queue, position 1") == 1 and log.count("in queue, position 0") == 1

    entry = RequestLedger(store).get(request.clip_key)
    assert entry is not None and entry.state == LedgerState.COMPLETED
    assert entry.request_id == result.request_id and entry.video_sha256 == sha256_file(result.video_path)
    assert store.get(entry.video_sha256, ".mp4") is not None
    ledger_text = RequestLedger(store).path(request.clip_key).read_text()
    assert "base64" not in ledger_text and request.image_sha256 in ledger_text
    spend = budget.spend()
    assert (spend.committed, spend.reserved) == (Decimal(str(expected_cost)), Decimal(0))


def test_a_url_image_is_sent_as_is_and_recorded_without_its_query(
    fake_fal: FakeFal, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    url = fake_fal.serve_asset("boats.png", request.image_path.read_bytes(), "image/png")
    request = request.model_copy(update={"image_url": url + "?X-Amz-Signature=secret"})
    result = make_generator().generate(request, tmp_path / "work", Log())
    assert fake_fal.submits[0].json["image_url"] == url + "?X-Amz-Signature=secret"
    assert len(fake_fal.seen("asset")) == 1  # fal fetched it
    assert result.parameters["image_url"] == url and result.parameters["image_source"] == "url"
    assert "secret" not in json.dumps(result.parameters)


def test_a_jpeg_still_goes_as_a_jpeg_data_uri(
    fake_fal: FakeFal, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    make_generator().generate(make_request(tmp_path, fmt="JPEG"), tmp_path / "work", Log())
    assert fake_fal.submits[0].json["image_url"].startswith("data:image/jpeg;base64,")


def test_an_image_changed_since_hashing_is_refused_before_any_request(
    fake_fal: FakeFal, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    write_image(request.image_path, (64, 64))
    with pytest.raises(InputError) as caught:
        make_generator().generate(request, tmp_path / "work", Log())
    assert (
        caught.value.storyboard == STORYBOARD and caught.value.shot == SHOT and caught.value.field == "image"
    )
    assert fake_fal.requests == []


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
    fake_fal: FakeFal, store: WorkStore, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    # another process submits, then dies (os._exit: no cleanup, no cancel) while the request is queued
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from pydantic import SecretStr
        from shotline.fal.client import FalQueueClient
        from shotline.generators.base import GenerationRequest
        from shotline.generators.fal import FalGenerator
        from shotline.store import WorkStore

        request = GenerationRequest.model_validate_json(sys.argv[1])
        def client():
            return FalQueueClient({fake_fal.url!r}, SecretStr({fake_fal.key!r}), model={MODEL!r},
                                  sleep=lambda s: None)
        def log(line):
            if "in queue" in line:
                os._exit(17)
        FalGenerator(client, WorkStore({str(store.root)!r}), model={MODEL!r}).generate(
            request, Path({str(tmp_path / "dead")!r}), log)
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
    assert ledger_state(store, request) == LedgerState.SUBMITTED
    crashed_id = RequestLedger(store).get(request.clip_key).request_id  # type: ignore[union-attr]
    assert len(fake_fal.submits) == 1 and list(fake_fal.jobs) == [crashed_id]

    log = Log()
    result = make_generator().generate(request, tmp_path / "work", log)
    assert len(fake_fal.submits) == 1 and result.request_id == crashed_id
    assert log.count(f"resuming request {crashed_id}") == 1 and "resumed_at" in result.timings
    assert ledger_state(store, request) == LedgerState.COMPLETED
    assert inspect_mp4(result.video_path).audio_codec == "aac"


def test_submit_connection_drop_leaves_submitting_and_is_never_resubmitted(
    fake_fal: FakeFal, store: WorkStore, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    budget = Budget(store, 5.0)
    request = make_request(tmp_path)
    fake_fal.fail_next("submit", action="accept_and_drop")
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    assert STORYBOARD in str(caught.value) and "may have accepted and billed" in str(caught.value)
    assert ledger_state(store, request) == LedgerState.SUBMITTING
    assert budget.spend().reserved == Decimal("0.17")  # it may have been billed: keep counting it

    with pytest.raises(SubmitOutcomeUnknown) as again:
        make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    message = str(again.value)
    assert str(RequestLedger(store).path(request.clip_key)) in message and "delete" in message
    assert STORYBOARD in message and SHOT in message and not again.value.retryable
    assert len(fake_fal.submits) == 1

    RequestLedger(store).path(request.clip_key).unlink()  # the deliberate resubmit
    make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    assert len(fake_fal.submits) == 2


def test_two_workers_on_the_same_clip_submit_once(
    fake_fal: FakeFal, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    second_waiting = threading.Event()

    def first_log(line: str) -> None:
        if "in queue" in line:
            assert second_waiting.wait(20), "the second worker never queued behind the lock"

    def second_log(line: str) -> None:
        if "another process is generating" in line:
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
    fake_fal: FakeFal, store: WorkStore, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    budget = Budget(store, 5.0)
    fake_fal.content_policy()
    request = make_request(tmp_path)
    with pytest.raises(FalRequestFailed) as caught:
        make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    message = str(caught.value)
    assert f"storyboard {STORYBOARD!r}, shot {SHOT!r}" in message
    assert CONTENT_POLICY_MSG in message and "content_policy_violation" in message
    assert not caught.value.retryable and caught.value.request_id
    entry = RequestLedger(store).get(request.clip_key)
    assert entry is not None and entry.state == LedgerState.FAILED and entry.billed
    assert budget.spend().committed == Decimal("0.17")  # 422s may be billed: counted at the estimate

    with pytest.raises(FalRequestFailed) as again:
        make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    assert "failed earlier" in str(again.value) and CONTENT_POLICY_MSG in str(again.value)
    assert "delete the ledger record" in str(again.value)
    assert len(fake_fal.submits) == 1


def test_an_unbilled_infrastructure_failure_may_be_submitted_again(
    fake_fal: FakeFal, store: WorkStore, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    budget = Budget(store, 5.0)
    fake_fal.fail_requests(503, "runner_scheduling_failure", "Could not schedule a runner")
    request = make_request(tmp_path)
    with pytest.raises(FalRequestFailed) as caught:
        make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    assert caught.value.retryable and not caught.value.billed
    assert "Could not schedule a runner" in str(caught.value)
    assert budget.spend().total == 0

    fake_fal.failure = None
    result = make_generator(budget=budget).generate(request, tmp_path / "work", Log())
    assert len(fake_fal.submits) == 2 and result.cost_usd == 0.17
    entry = RequestLedger(store).get(request.clip_key)
    assert entry is not None and [p["state"] for p in entry.previous] == ["failed"]


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_are_clear_keyless_and_leave_the_clip_submittable(
    fake_fal: FakeFal, store: WorkStore, make_generator: GeneratorFactory, tmp_path: Path, status: int
) -> None:
    budget = Budget(store, 5.0)
    request = make_request(tmp_path)
    bad_key = "nobody:secret-that-must-not-leak"
    if status == 403:
        fake_fal.locked = LOCKED_DETAIL
    generator = make_generator(budget=budget, key=bad_key if status == 401 else None)
    with pytest.raises(FalAuthError) as caught:
        generator.generate(request, tmp_path / "work", Log())
    message = str(caught.value)
    assert STORYBOARD in message and SHOT in message
    assert (
        ("check FAL_KEY" in message)
        if status == 401
        else ("locked" in message and "Exhausted balance" in message)
    )
    assert bad_key not in message and fake_fal.key not in message and "must-not-leak" not in repr(generator)
    assert budget.spend().total == 0
    entry = RequestLedger(store).get(request.clip_key)
    assert entry is not None and entry.state == LedgerState.FAILED and entry.billed is False
    assert bad_key not in RequestLedger(store).path(request.clip_key).read_text()

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
    fake_fal: FakeFal, store: WorkStore, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    fake_fal.fail_next("result", **nginx_error(502), times=3)
    with pytest.raises(GenerationError) as caught:
        make_generator(max_attempts=3).generate(request, tmp_path / "work", Log())
    assert caught.value.retryable and SHOT in str(caught.value)
    assert ledger_state(store, request) == LedgerState.SUBMITTED
    result = make_generator().generate(request, tmp_path / "work", Log())  # e.g. Dagster's retry
    assert len(fake_fal.submits) == 1 and result.width == 854


# -- cancelling ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue_polls", "progress_polls", "billed"),
    [(1000, 0, False), (0, 1000, True)],
    ids=["while-queued", "while-running"],
)
def test_deadline_cancels_on_fal(
    fake_fal: FakeFal,
    store: WorkStore,
    make_generator: GeneratorFactory,
    tmp_path: Path,
    queue_polls: int,
    progress_polls: int,
    billed: bool,
) -> None:
    budget = Budget(store, 5.0)
    fake_fal.queue_polls, fake_fal.progress_polls = queue_polls, progress_polls
    request = make_request(tmp_path)
    with pytest.raises(FalDeadlineExceeded) as caught:
        make_generator(budget=budget, deadline_s=20).generate(request, tmp_path / "work", Log())
    assert SHOT in str(caught.value) and "cancelled it on fal" in str(caught.value)
    [cancel] = fake_fal.cancels
    assert cancel.method == "PUT" and cancel.path.endswith(f"/requests/{caught.value.request_id}/cancel")
    assert fake_fal.job(caught.value.request_id).cancelled  # type: ignore[arg-type]
    entry = RequestLedger(store).get(request.clip_key)
    assert entry is not None and entry.state == LedgerState.CANCELLED and entry.billed is billed
    # fal bills no queue time; a request cancelled while running may be billed, so it is not retried blindly
    assert caught.value.retryable is not billed and caught.value.billed is billed
    assert budget.spend().committed == (Decimal("0.17") if billed else Decimal(0))
    assert budget.spend().reserved == 0


def test_a_cancel_that_does_not_get_through_leaves_the_request_to_resume(
    fake_fal: FakeFal, store: WorkStore, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    fake_fal.queue_polls = 1000
    fake_fal.fail_next("cancel", **nginx_error(502), times=5)
    request = make_request(tmp_path)
    with pytest.raises(FalDeadlineExceeded) as caught:
        make_generator(deadline_s=20).generate(request, tmp_path / "work", Log())
    assert caught.value.retryable and "a rerun resumes it" in str(caught.value)
    assert len(fake_fal.cancels) == 2  # best effort, bounded
    assert ledger_state(store, request) == LedgerState.SUBMITTED

    fake_fal.job(caught.value.request_id).queue_polls = 0  # type: ignore[arg-type]  # fal gets to it
    result = make_generator().generate(request, tmp_path / "work", Log())
    assert result.request_id == caught.value.request_id and len(fake_fal.submits) == 1


def test_an_account_locked_mid_run_names_the_shot_and_keeps_the_request(
    fake_fal: FakeFal, store: WorkStore, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    fake_fal.fail_next("status", status=403, body={"detail": LOCKED_DETAIL})
    with pytest.raises(FalAuthError) as caught:
        make_generator().generate(request, tmp_path / "work", Log())
    assert SHOT in str(caught.value) and "Exhausted balance" in str(caught.value)
    assert ledger_state(store, request) == LedgerState.SUBMITTED and len(fake_fal.seen("status")) == 1


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, OrchestratorInterrupt])
def test_an_interrupt_cancels_on_fal_and_is_reraised(
    fake_fal: FakeFal,
    store: WorkStore,
    make_generator: GeneratorFactory,
    tmp_path: Path,
    interrupt: type[BaseException],
) -> None:
    budget = Budget(store, 5.0)
    request = make_request(tmp_path)

    def stop(line: str) -> None:
        if "in progress" in line:
            raise interrupt()

    with pytest.raises(interrupt):
        make_generator(budget=budget).generate(request, tmp_path / "work", Log(stop))
    assert len(fake_fal.cancels) == 1
    entry = RequestLedger(store).get(request.clip_key)
    assert entry is not None and entry.state == LedgerState.CANCELLED
    assert entry.billed is True and budget.spend().committed == Decimal("0.17")  # it was running

    make_generator(budget=budget).generate(request, tmp_path / "work", Log())  # a deliberate rerun
    assert len(fake_fal.submits) == 2


# -- budget -------------------------------------------------------------------------------------------------


def test_budget_refusal_happens_before_any_submit(
    fake_fal: FakeFal, store: WorkStore, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    budget = Budget(store, 0.40)
    make_generator(budget=budget).generate(make_request(tmp_path, shot="s01"), tmp_path / "a", Log())
    make_generator(budget=budget).generate(make_request(tmp_path, shot="s02"), tmp_path / "b", Log())
    third = make_request(tmp_path, shot="s03")
    with pytest.raises(BudgetExceeded) as caught:
        make_generator(budget=budget).generate(third, tmp_path / "c", Log())
    assert "SHOTLINE_BUDGET_USD=$0.40" in str(caught.value) and f"{STORYBOARD}/s03" in str(caught.value)
    assert len(fake_fal.submits) == 2 and ledger_state(store, third) is None


def test_budget_refusal_sends_nothing_at_all(
    fake_fal: FakeFal, store: WorkStore, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    with pytest.raises(BudgetExceeded):
        make_generator(budget=Budget(store, 0.10)).generate(make_request(tmp_path), tmp_path / "w", Log())
    assert fake_fal.requests == []


# -- construction -------------------------------------------------------------------------------------------


def test_built_from_settings_the_way_the_pipeline_does(
    fake_fal: FakeFal, store: WorkStore, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {"FAL_KEY": fake_fal.key, "SHOTLINE_FAL_QUEUE_URL": fake_fal.url, "SHOTLINE_BUDGET_USD": "1.5"}
    )
    generator = FalGenerator.from_settings(settings, store, poll_interval=0.001, max_poll_interval=0.002)
    assert generator.budget is not None and generator.budget.cap == Decimal("1.50")
    assert generator.model == MODEL and fake_fal.key not in repr(generator)
    result = generator.generate(make_request(tmp_path), tmp_path / "work", Log())
    assert result.width == 854

    same = build_fal_generator(
        store=store,
        key=SecretStr(fake_fal.key),
        base_url=fake_fal.url,
        model=MODEL,
        budget_usd=None,
        deadline_s=60,
    )
    assert same.budget is not None and same.budget.cap is None
    with pytest.raises(InputError, match="FAL_KEY"):
        FalGenerator.from_settings(Settings.from_env({}), store)


# -- the request as others see it: observer, X-Fal-Request-Timeout ------------------------------------------


def test_every_ledger_record_reaches_the_observer_as_written_and_without_secrets(
    fake_fal: FakeFal, store: WorkStore, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    url = fake_fal.serve_asset("boats.png", request.image_path.read_bytes(), "image/png")
    request = request.model_copy(update={"image_url": url + "?X-Amz-Signature=secret"})
    seen: list[LedgerEntry] = []

    def observe(entry: LedgerEntry) -> None:
        on_disk = RequestLedger(store).get(entry.clip_key)
        assert on_disk == entry  # durable before anyone is told
        seen.append(entry)

    result = make_generator(budget=Budget(store, 5.0), on_record=observe).generate(request, tmp_path / "work", Log())
    assert [e.state for e in seen] == [LedgerState.SUBMITTING, LedgerState.SUBMITTED, LedgerState.COMPLETED]
    submitted = seen[1].public_view()
    assert submitted["fal_request_id"] == result.request_id and submitted["fal_state"] == "submitted"
    assert submitted["status_url"] == f"{fake_fal.url}/xai/grok-imagine-video/requests/{result.request_id}/status"
    assert submitted["parameters"]["image_url"] == url and submitted["estimated_cost_usd"] == 0.17
    assert submitted["submitted_at"] and submitted["start_timeout_s"] == 600.0
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
    store: WorkStore,
    make_generator: GeneratorFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(entry: LedgerEntry) -> None:
        raise RuntimeError("event log unavailable")

    request = make_request(tmp_path)
    result = make_generator(on_record=broken).generate(request, tmp_path / "work", Log())
    assert ledger_state(store, request) == LedgerState.COMPLETED and result.width == 854
    assert caplog.text.count("ledger observer failed") == 3 and "event log unavailable" in caplog.text


@pytest.mark.parametrize(("queue_timeout_s", "header"), [(None, "600"), (45.5, "45.5")])
def test_the_submit_carries_x_fal_request_timeout(
    fake_fal: FakeFal,
    store: WorkStore,
    make_generator: GeneratorFactory,
    tmp_path: Path,
    queue_timeout_s: float | None,
    header: str,
) -> None:
    request = make_request(tmp_path)
    make_generator(queue_timeout_s=queue_timeout_s).generate(request, tmp_path / "work", Log())
    [submit] = fake_fal.submits
    assert submit.headers["x-fal-request-timeout"] == header  # default: the per-clip deadline
    entry = RequestLedger(store).get(request.clip_key)
    assert entry is not None and entry.start_timeout_s == float(header)


def test_a_request_fal_dropped_for_not_starting_in_time_is_unbilled_and_may_be_submitted_again(
    fake_fal: FakeFal, store: WorkStore, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    fake_fal.fail_requests(504, "request_timeout", "Request timed out before it could start")
    request = make_request(tmp_path)
    with pytest.raises(FalRequestFailed) as caught:
        make_generator(queue_timeout_s=30).generate(request, tmp_path / "work", Log())
    assert "request_timeout" in str(caught.value) and "before it could start" in str(caught.value)
    assert caught.value.retryable and not caught.value.billed
    entry = RequestLedger(store).get(request.clip_key)
    assert entry is not None and entry.billed is False and entry.cost_usd == 0.0
    fake_fal.failure = None
    make_generator().generate(request, tmp_path / "work", Log())
    assert len(fake_fal.submits) == 2


def test_a_cancelled_request_records_what_it_may_have_cost(
    fake_fal: FakeFal, store: WorkStore, make_generator: GeneratorFactory, tmp_path: Path
) -> None:
    fake_fal.queue_polls, fake_fal.progress_polls = 0, 1000
    request = make_request(tmp_path)
    with pytest.raises(FalDeadlineExceeded):
        make_generator(deadline_s=20).generate(request, tmp_path / "work", Log())
    entry = RequestLedger(store).get(request.clip_key)
    assert entry is not None and entry.state == LedgerState.CANCELLED
    assert entry.billed is True and entry.cost_usd == 0.17  # it was running: counted at the estimate
