"""The issue's fault list, each against the real client over HTTP (FalGenerator -> FalQueueClient -> the fake
fal server on loopback): the clip arrives (decoded) or fails as it should, and fal saw exactly one submit."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from shotline.budget import Budget
from shotline.db import Database, open_database
from shotline.db.engine import sqlite_url
from shotline.fal.client import FalQueueClient
from shotline.fal.errors import FalAuthError, FalMediaError, FalRequestFailed
from shotline.fal.generator import FalGenerator
from shotline.fal.ledger import REJECTED_ERROR_TYPE, LedgerState, RequestLedger
from shotline.generators.base import GenerationResult
from shotline.store import WorkStore
from testkit.fakes.clock import FakeClock
from testkit.fakes.fal_server import DEFAULT_LOG_LINES, LOCKED_DETAIL, MODEL, FakeFal, nginx_error
from testkit.media_check import inspect_mp4
from tests.integration.test_fal_generator import SHOT, STORYBOARD, Log, make_request

FAL_503 = {
    "status": 503,
    "body": {"detail": "Service temporarily unavailable", "error_type": "internal_error"},
    "headers": {"x-fal-request-id": "gateway-7"},
}


@pytest.fixture
def store(tmp_path: Path) -> WorkStore:
    return WorkStore(tmp_path / "home")


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(sqlite_url(tmp_path / "home"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def generator_for(fake_fal: FakeFal, store: WorkStore, db: Database, clock: FakeClock) -> Callable[..., FalGenerator]:
    def make(budget: Budget | None = None, **client_options: Any) -> FalGenerator:
        client_options.setdefault("max_attempts", 6)

        def client() -> FalQueueClient:
            return FalQueueClient(
                fake_fal.url,
                SecretStr(fake_fal.key),
                model=MODEL,
                poll_interval=1.0,
                sleep=clock.sleep,
                clock=clock.monotonic,
                media_origins=(fake_fal.cdn_url,),  # generated media is on fal's CDN
                **client_options,
            )

        return FalGenerator(
            client, store, db, model=MODEL, budget=budget, deadline_s=600, clock=clock.monotonic, sleep=clock.sleep
        )

    return make


def assert_clip_arrived(result: GenerationResult, fake_fal: FakeFal, db: Database) -> None:
    info = inspect_mp4(result.video_path)  # every frame decodes
    assert (info.width, info.height, info.audio_codec) == (854, 480, "aac")
    assert (result.width, result.height) == (854, 480)
    assert len(fake_fal.submits) == 1
    [entry] = RequestLedger(db).attempts(f"clip-{SHOT}-480p-2")  # make_request's default key
    assert entry.state == LedgerState.COMPLETED and entry.request_id == result.request_id
    assert entry.billed is True and fake_fal.billed_request_ids == [result.request_id]


# -- faults the clip survives --------------------------------------------------------------------------------

ARRIVES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "5xx storm on status": [
        ("status", {"status": 500, "body": {"detail": "Internal Server Error"}, "times": 2}),
        ("status", nginx_error(502)),
        ("status", nginx_error(503)),
        ("status", nginx_error(504)),
    ],
    "503 on status with x-fal-request-id": [("status", {**FAL_503, "times": 3})],
    "503 on status without x-fal-request-id": [("status", {**nginx_error(503), "times": 3})],
    "nginx HTML 502 then 504 on status": [("status", nginx_error(502)), ("status", nginx_error(504))],
    "nginx HTML 502 and 504 on result": [("result", nginx_error(502)), ("result", nginx_error(504))],
    "result 5xx then 200": [("result", {"status": 500, "body": {"detail": "Internal Server Error"}})],
    "429 with Retry-After": [
        ("status", {"status": 429, "body": {"detail": "Too many requests"}, "headers": {"Retry-After": "7"}}),
        ("result", {"status": 429, "body": {"detail": "Too many requests"}, "headers": {"Retry-After": "7"}}),
    ],
    "429 without Retry-After": [
        ("status", {"status": 429, "body": {"detail": "Too many requests"}, "times": 2}),
        ("result", {"status": 429, "body": {"detail": "Too many requests"}}),
    ],
    "media URL failing once": [("media", nginx_error(503))],
    "media URL dropping the connection once": [("media", {"action": "drop"})],
    "media that is not a video, once": [
        ("media", {"status": 200, "body": "<html>captive portal</html>", "headers": {"Content-Type": "text/html"}})
    ],
    "a status call that hangs": [("status", {"action": "hang"})],
}


@pytest.mark.parametrize("faults", list(ARRIVES.values()), ids=list(ARRIVES))
def test_the_clip_arrives_through_the_fault_with_one_submit(
    fake_fal: FakeFal,
    store: WorkStore,
    db: Database,
    clock: FakeClock,
    generator_for: Callable[..., FalGenerator],
    tmp_path: Path,
    faults: list[tuple[str, dict[str, Any]]],
) -> None:
    for route, fault in faults:
        fake_fal.fail_next(route, **fault)  # type: ignore[arg-type]
    log = Log()
    hangs = any(f.get("action") == "hang" for _, f in faults)
    # a hung status call is given up after its own timeout (30 s in production, 1 s here), then polled again
    options = {"status_timeout": httpx.Timeout(1.0)} if hangs else {}
    result = generator_for(**options).generate(make_request(tmp_path), tmp_path / "work", log)
    assert_clip_arrived(result, fake_fal, db)
    spent = sum(f.get("times", 1) for _, f in faults)
    polls = fake_fal.queue_polls + fake_fal.progress_polls + 1
    seen = len(fake_fal.seen("status")) + len(fake_fal.seen("result")) + len(fake_fal.seen("media"))
    assert seen == polls + 1 + 1 + spent  # each fault answered once, then the protocol went on
    for line in DEFAULT_LOG_LINES:
        assert log.count(line) == 1, line
    retry_after = [f for _, f in faults if "Retry-After" in f.get("headers", {})]
    assert clock.sleeps.count(7.0) == len(retry_after)


def test_in_progress_falling_back_to_in_queue_is_followed_to_the_end(
    fake_fal: FakeFal, store: WorkStore, db: Database, generator_for: Callable[..., FalGenerator], tmp_path: Path
) -> None:
    fake_fal.requeue(after_progress_polls=1, queue_polls=2)
    log = Log()
    result = generator_for().generate(make_request(tmp_path), tmp_path / "work", log)
    assert_clip_arrived(result, fake_fal, db)
    assert len(fake_fal.seen("status")) == fake_fal.queue_polls + 1 + 2 + (fake_fal.progress_polls - 1) + 1
    assert log.count("back in queue (fal retries it on another runner), position 1") == 1
    assert log.count("back in queue (fal retries it on another runner), position 0") == 1
    assert log.count("in progress") == 2  # ran, was requeued, ran again
    for line in DEFAULT_LOG_LINES:
        assert log.count(line) == 1, line


# -- faults that fail the clip as they should -----------------------------------------------------------------


def test_media_that_stays_not_a_video_fails_retryable_and_a_rerun_resumes_the_same_request(
    fake_fal: FakeFal, store: WorkStore, db: Database, generator_for: Callable[..., FalGenerator], tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    page = {"status": 200, "body": "<html>Access denied</html>", "headers": {"Content-Type": "text/html"}}
    fake_fal.fail_next("media", **page, times=3)  # type: ignore[arg-type]
    with pytest.raises(FalMediaError) as caught:
        generator_for(max_attempts=3).generate(request, tmp_path / "work", Log())
    assert "not a video" in str(caught.value) and SHOT in str(caught.value)
    assert caught.value.retryable and caught.value.billed  # fal finished: the download is what failed
    assert RequestLedger(db).get(request.clip_key).state == LedgerState.SUBMITTED  # type: ignore[union-attr]

    result = generator_for().generate(request, tmp_path / "work", Log())  # the step's retry
    assert_clip_arrived(result, fake_fal, db)


def test_media_that_does_not_decode_is_a_paid_failure_kept_and_never_resubmitted(
    fake_fal: FakeFal, store: WorkStore, db: Database, generator_for: Callable[..., FalGenerator], tmp_path: Path
) -> None:
    budget = Budget(db, 5.0)
    request = make_request(tmp_path)
    garbage = b"\x00\x00\x00\x18ftypisom" + b"\x42" * 4000  # starts like an mp4, decodes as nothing
    fake_fal.fail_next(
        "media", status=200, body=garbage, headers={"Content-Type": "application/octet-stream"}, times=10
    )
    with pytest.raises(FalMediaError) as caught:
        generator_for(budget=budget).generate(request, tmp_path / "work", Log())
    message = str(caught.value)
    assert f"storyboard {STORYBOARD!r}, shot {SHOT!r}" in message and "not a playable video" in message
    assert "was billed ($0.17)" in message and f"shotline resubmit {STORYBOARD}/{SHOT}" in message
    assert not caught.value.retryable and caught.value.billed and caught.value.error_type == REJECTED_ERROR_TYPE
    entry = RequestLedger(db).get(request.clip_key)
    assert entry is not None and entry.state == LedgerState.FAILED and entry.error_type == REJECTED_ERROR_TYPE
    assert entry.billed and entry.cost_usd == 0.17 and budget.spend().committed == Decimal("0.17")
    kept = store.get(entry.video_sha256 or "", ".mp4")
    assert kept is not None and kept.path.read_bytes() == garbage  # the paid-for file is not lost

    with pytest.raises(FalRequestFailed, match=r"(?s)\(attempt 1\) failed .*It was billed.*shotline resubmit") as again:
        generator_for(budget=budget).generate(request, tmp_path / "work", Log())
    assert not again.value.retryable and again.value.billed
    assert len(fake_fal.submits) == 1 and len(fake_fal.seen("media")) == 1


def test_completed_with_a_content_policy_error_fails_with_one_submit(
    fake_fal: FakeFal, store: WorkStore, db: Database, generator_for: Callable[..., FalGenerator], tmp_path: Path
) -> None:
    fake_fal.content_policy()
    request = make_request(tmp_path)
    with pytest.raises(FalRequestFailed) as caught:
        generator_for().generate(request, tmp_path / "work", Log())
    assert "content_policy_violation" in str(caught.value) and SHOT in str(caught.value)
    assert "possibly billed" in str(caught.value)
    assert not caught.value.retryable and caught.value.billed  # a 422 may have been billed
    assert len(fake_fal.submits) == 1 and fake_fal.seen("media") == [] and len(fake_fal.seen("result")) == 1
    entry = RequestLedger(db).get(request.clip_key)
    assert entry is not None and entry.billed is None  # fal does not say: the ledger keeps the doubt


def test_401_stops_at_once_with_one_submit(
    fake_fal: FakeFal, store: WorkStore, db: Database, tmp_path: Path, clock: FakeClock
) -> None:
    def client() -> FalQueueClient:
        return FalQueueClient(fake_fal.url, SecretStr("nobody:nothing"), model=MODEL, sleep=clock.sleep)

    with pytest.raises(FalAuthError, match="check FAL_KEY"):
        FalGenerator(client, store, db, model=MODEL).generate(make_request(tmp_path), tmp_path / "w", Log())
    assert len(fake_fal.requests) == 1 and len(fake_fal.submits) == 1 and clock.sleeps == []


def test_403_mid_run_stops_at_once_and_the_rerun_after_unlocking_resumes_with_one_submit(
    fake_fal: FakeFal, store: WorkStore, db: Database, generator_for: Callable[..., FalGenerator], tmp_path: Path
) -> None:
    request = make_request(tmp_path)
    fake_fal.fail_next("status", status=403, body={"detail": LOCKED_DETAIL}, times=1)
    with pytest.raises(FalAuthError) as caught:
        generator_for().generate(request, tmp_path / "work", Log())
    assert "locked" in str(caught.value) and not caught.value.retryable
    assert len(fake_fal.seen("status")) == 1  # not retried
    entry = RequestLedger(db).get(request.clip_key)
    assert entry is not None and entry.state == LedgerState.SUBMITTED  # the paid request is kept

    result = generator_for().generate(request, tmp_path / "work", Log())  # someone unlocked the account
    assert result.request_id == entry.request_id
    assert_clip_arrived(result, fake_fal, db)


# -- a model that gets its output wrong ------------------------------------------------------------------------

WRONG_OUTPUT: dict[str, tuple[dict[str, Any], str]] = {
    "half a second too long": ({"frames_offset": 12}, "it lasts 2.542 s (61 frames at 24 fps), asked for 2 s"),
    "no audio track": ({"render_audio": False}, "it has no audio track"),
    "fal misreports the frame": (
        {"video_overrides": {"width": 1280, "height": 720}},
        "fal's output metadata says 1280x720, the file is 854x480",
    ),
    "fal misreports the frame count": ({"video_overrides": {"num_frames": 30}}, "says 30 frames, 49 decoded"),
    "fal misreports the duration": (
        {"video_overrides": {"duration": 6.041667}},
        "says 6.042 s, the file's video lasts 2.042 s",
    ),
    "fal misreports the fps": ({"video_overrides": {"fps": 30}}, "says 30 fps, the file has 24"),
    "fal says it is not a video": ({"video_overrides": {"content_type": "image/gif"}}, "content type 'image/gif'"),
}


@pytest.mark.parametrize(("knobs", "problem"), list(WRONG_OUTPUT.values()), ids=list(WRONG_OUTPUT))
def test_a_video_that_is_not_what_was_asked_is_a_paid_failure_with_one_submit(
    fake_fal: FakeFal,
    store: WorkStore,
    db: Database,
    generator_for: Callable[..., FalGenerator],
    tmp_path: Path,
    knobs: dict[str, Any],
    problem: str,
) -> None:
    for name, value in knobs.items():
        setattr(fake_fal, name, value)
    request = make_request(tmp_path)
    with pytest.raises(FalMediaError) as caught:
        generator_for().generate(request, tmp_path / "work", Log())
    message = str(caught.value)
    assert problem in message and f"shot {SHOT!r}" in message and "was billed" in message
    assert not caught.value.retryable and caught.value.billed
    entry = RequestLedger(db).get(request.clip_key)
    assert entry is not None and entry.state == LedgerState.FAILED and entry.error_type == REJECTED_ERROR_TYPE
    assert entry.cost_usd == 0.17 and store.get(entry.video_sha256 or "", ".mp4") is not None
    assert len(fake_fal.submits) == 1
