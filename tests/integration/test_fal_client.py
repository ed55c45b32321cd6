"""FalQueueClient against the fake fal queue server over real HTTP on loopback."""

from __future__ import annotations

import base64
import io
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from shotline.fal.client import FalQueueClient, LogWindow
from shotline.fal.errors import (
    FalAuthError,
    FalDeadlineExceeded,
    FalMediaError,
    FalUnavailable,
    FalValidationError,
    SubmitNotSent,
    SubmitOutcomeUnknown,
)
from shotline.fal.models import LogEntry, RequestHandle, SubmitPayload, SubmitResponse
from shotline.fal.outcomes import OutcomeKind
from testkit.fakes.clock import FakeClock
from testkit.fakes.fal_server import DEFAULT_LOG_LINES, LOCKED_DETAIL, MODEL, FakeFal, nginx_error
from testkit.media_check import inspect_mp4

WRONG_KEY = "wrong-id:wrong-secret-c0ffee"


def png_data_uri(size: tuple[int, int] = (320, 180)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def payload(**overrides: Any) -> SubmitPayload:
    fields: dict[str, Any] = {
        "prompt": "slow dolly-in",
        "image_url": png_data_uri(),
        "duration": 2,
        "resolution": "480p",
    }
    return SubmitPayload(**{**fields, **overrides})


ClientFactory = Callable[..., FalQueueClient]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(fake_fal: FakeFal, clock: FakeClock) -> ClientFactory:
    clients: list[FalQueueClient] = []

    def make(**options: Any) -> FalQueueClient:
        key = options.pop("key", fake_fal.key)
        base_url = options.pop("base_url", fake_fal.url)
        options.setdefault("poll_interval", 1.0)
        # generated media comes from fal's CDN, a separate origin (the fake's cdn_url)
        options.setdefault("media_origins", (fake_fal.cdn_url,))
        client = FalQueueClient(
            base_url, SecretStr(key), model=MODEL, sleep=clock.sleep, clock=clock.monotonic, **options
        )
        clients.append(client)
        return client

    yield make  # type: ignore[misc]
    for client in clients:
        client.close()


def run_to_completion(client: FalQueueClient, **wait_options: Any) -> tuple[RequestHandle, list[str]]:
    handle = client.handle_for(client.submit(payload()))
    lines: list[str] = []
    final = client.wait(handle, on_log=lambda entry: lines.append(entry.message), **wait_options)
    assert final.status == "COMPLETED" and not final.failed
    return handle, lines


# -- the happy path -----------------------------------------------------------------------------------------


def test_submit_poll_result_download_end_to_end(fake_fal: FakeFal, make_client: ClientFactory, tmp_path: Path) -> None:
    client = make_client()
    submitted = client.submit(payload())
    assert submitted.status == "IN_QUEUE" and submitted.queue_position == fake_fal.queue_polls
    handle = client.handle_for(submitted)
    statuses: list[tuple[str, int | None]] = []
    final = client.wait(handle, on_status=lambda s: statuses.append((s.status, s.queue_position)))
    assert statuses[:2] == [("IN_QUEUE", 1), ("IN_QUEUE", 0)]
    assert statuses[-1][0] == "COMPLETED" and final.inference_time == pytest.approx(3.42)

    video = client.result(handle).video
    assert (video.width, video.height, video.fps, video.num_frames) == (854, 480, 24, 49)
    size, sha = client.download(video.url, tmp_path / "clip.mp4")
    data = (tmp_path / "clip.mp4").read_bytes()
    assert size == len(data) and len(sha) == 64
    assert not list(tmp_path.glob("*.part*"))  # the temp file was renamed, not left behind

    info = inspect_mp4(tmp_path / "clip.mp4")
    assert (info.width, info.height, info.fps) == (854, 480, 24)
    assert info.duration_s == pytest.approx(video.duration, abs=0.05)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")

    [submit] = fake_fal.submits
    assert submit.path == f"/{MODEL}" and submit.json["duration"] == 2
    assert "authorization" not in submit.headers and submit.headers["content-type"] == "application/json"


def test_logs_are_a_sliding_window_and_each_line_is_forwarded_once(make_client: ClientFactory) -> None:
    _, lines = run_to_completion(make_client())
    assert lines == list(DEFAULT_LOG_LINES)


def test_log_window_dedupes_by_timestamp_and_message() -> None:
    window = LogWindow()
    a, b = LogEntry(message="a", timestamp="t1"), LogEntry(message="b", timestamp="t2")
    again = LogEntry(message="a", timestamp="t3")  # same text, later: a new line
    assert window.new([a]) == [a]
    assert window.new([a, b]) == [b]
    assert window.new([b, again]) == [again]
    assert window.new(None) == []


@pytest.mark.parametrize(
    ("url_form", "response_suffix", "advertise_base", "omit_urls", "expected_prefix"),
    [
        ("app", False, None, False, "/xai/grok-imagine-video/requests/"),
        ("full", True, None, False, f"/{MODEL}/requests/"),
        ("full", False, "https://queue.fal.run", False, f"/{MODEL}/requests/"),  # host swapped for ours
        ("app", True, "https://queue.fal.run", False, "/xai/grok-imagine-video/requests/"),
        ("full", False, None, True, "/xai/grok-imagine-video/requests/"),  # no URLs: owner/app fallback
    ],
)
def test_both_url_forms_returned_urls_rebased_and_fallback(
    fake_fal: FakeFal,
    make_client: ClientFactory,
    url_form: Any,
    response_suffix: bool,
    advertise_base: str | None,
    omit_urls: bool,
    expected_prefix: str,
) -> None:
    fake_fal.url_form = url_form
    fake_fal.response_suffix = response_suffix
    fake_fal.advertise_base = advertise_base
    fake_fal.omit_urls = omit_urls
    client = make_client()
    handle, _ = run_to_completion(client)
    assert handle.status_url.startswith(fake_fal.url + expected_prefix)
    assert client.result(handle).video.width == 854
    assert all(r.path.startswith(expected_prefix) for r in fake_fal.seen("status") + fake_fal.seen("result"))
    assert client.cancel(handle) is False  # already completed: nothing to cancel


def test_base_url_with_a_path_prefix_is_kept_when_rebasing() -> None:
    with FalQueueClient("http://proxy.example/fal", SecretStr("k"), model=MODEL) as client:
        root = "https://queue.fal.run/xai/grok-imagine-video/requests/r1"
        handle = client.handle_for(
            SubmitResponse(request_id="r1", status_url=f"{root}/status?x=1", response_url=root, cancel_url=None)
        )
        assert handle.status_url == "http://proxy.example/fal/xai/grok-imagine-video/requests/r1/status?x=1"
        assert handle.response_url == "http://proxy.example/fal/xai/grok-imagine-video/requests/r1"
        assert handle.cancel_url == "http://proxy.example/fal/xai/grok-imagine-video/requests/r1/cancel"


def test_the_fake_accepts_logs_spellings_trailing_slashes_and_both_path_forms(fake_fal: FakeFal) -> None:
    client = FalQueueClient(fake_fal.url, SecretStr(fake_fal.key), model=MODEL)
    rid = client.submit(payload()).request_id
    client.close()
    auth = {"Authorization": f"Key {fake_fal.key}"}
    with httpx.Client(base_url=fake_fal.url, headers=auth) as http:
        first = http.get(f"/xai/grok-imagine-video/requests/{rid}/status/", params={"logs": "true"})
        assert first.status_code == 202 and first.json()["status"] == "IN_QUEUE"
        second = http.get(f"/{MODEL}/requests/{rid}/status", params={"logs": "false"})
        assert second.status_code == 202
        assert http.get(f"/{MODEL}/requests/{rid}/response").status_code == 400  # not finished yet
        progress = http.get(f"/xai/grok-imagine-video/requests/{rid}/status", params={"logs": "0"}).json()
        assert progress["status"] == "IN_PROGRESS" and progress["logs"] is None
        assert http.get(f"/xai/requests/{rid}/status").status_code == 404
        # a cancel only asks (reference §15.1): a running app that ignores it (the default) runs to the end
        assert http.put(f"/xai/grok-imagine-video/requests/{rid}/cancel").status_code == 202
        done = None
        for _ in range(fake_fal.progress_polls + 2):
            done = http.get(f"/xai/grok-imagine-video/requests/{rid}/status", params={"logs": "1"})
            if done.status_code == 200:
                break
        assert done is not None and done.status_code == 200
        assert done.json()["status"] == "COMPLETED" and "error_type" not in done.json()
        assert http.get(f"/xai/grok-imagine-video/requests/{rid}").status_code == 200
        assert fake_fal.bills[rid].billed
        assert http.put(f"/xai/grok-imagine-video/requests/{rid}/cancel").status_code == 400

    # an app that handles the cancel ends the running request with 499, unbilled
    fake_fal.cancel_mode = "handle"
    client = FalQueueClient(fake_fal.url, SecretStr(fake_fal.key), model=MODEL)
    rid = client.submit(payload()).request_id
    client.close()
    with httpx.Client(base_url=fake_fal.url, headers=auth) as http:
        for _ in range(fake_fal.queue_polls + 1):
            running = http.get(f"/{MODEL}/requests/{rid}/status", params={"logs": "0"}).json()
        assert running["status"] == "IN_PROGRESS"
        assert http.put(f"/xai/grok-imagine-video/requests/{rid}/cancel").status_code == 202
        done = http.get(f"/xai/grok-imagine-video/requests/{rid}/status", params={"logs": "1"})
        assert done.status_code == 200 and done.json()["error_type"] == "client_cancelled"
        assert http.get(f"/xai/grok-imagine-video/requests/{rid}").status_code == 499
        assert not fake_fal.bills[rid].billed
        assert http.put(f"/xai/grok-imagine-video/requests/{rid}/cancel").status_code == 400
        assert http.put("/xai/grok-imagine-video/requests/nope/cancel").json() == {"status": "NOT_FOUND"}


def test_status_stream_sends_events_until_completed(fake_fal: FakeFal) -> None:
    client = FalQueueClient(fake_fal.url, SecretStr(fake_fal.key), model=MODEL)
    handle = client.handle_for(client.submit(payload()))
    client.close()
    headers = {"Authorization": f"Key {fake_fal.key}"}
    with httpx.stream("GET", handle.status_url + "/stream", params={"logs": "1"}, headers=headers) as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert '"IN_QUEUE"' in events[0] and '"COMPLETED"' in events[-1]


# -- auth and input errors ----------------------------------------------------------------------------------


def assert_key_hidden(*texts: str) -> None:
    for text in texts:
        assert WRONG_KEY not in text and "wrong-secret" not in text
        assert "fake-key-secret" not in text


def test_401_says_check_fal_key_and_never_shows_the_key(
    fake_fal: FakeFal, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(key=WRONG_KEY)
    with pytest.raises(FalAuthError) as caught:
        client.submit(payload())
    assert "fal rejected the key: check FAL_KEY" in str(caught.value)
    assert "No user found for Key ID and Secret" in str(caught.value)
    assert caught.value.status_code == 401 and not caught.value.retryable
    with pytest.raises(FalAuthError):
        client.status(client.handle("some-id"))
    assert len(fake_fal.seen("status")) == 1  # never retried
    assert_key_hidden(str(caught.value), repr(caught.value), repr(client), caplog.text)
    assert "**********" in repr(client)


def test_403_locked_account_is_fatal_and_quotes_fal(fake_fal: FakeFal, make_client: ClientFactory) -> None:
    fake_fal.locked = LOCKED_DETAIL
    client = make_client()
    with pytest.raises(FalAuthError) as caught:
        client.submit(payload())
    message = str(caught.value)
    assert "locked" in message and "Exhausted balance" in message and "fal.ai/dashboard/billing" in message
    assert not caught.value.retryable and len(fake_fal.submits) == 1
    assert fake_fal.key not in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"prompt": "x", "image_url": "https://e/x.png", "duration": 20}, ["duration", "less_than_equal"]),
        ({"prompt": "x", "image_url": "https://e/x.png", "duration": 0}, ["duration", "greater_than_equal"]),
        ({"image_url": "https://e/x.png", "resolution": "4k"}, ["prompt: Field required (missing)", "enum"]),
    ],
)
def test_422_carries_fals_explanation(make_client: ClientFactory, body: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(FalValidationError) as caught:
        make_client().submit(body)
    for needle in expected:
        assert needle in str(caught.value)
    assert caught.value.problems and all("loc" in p for p in caught.value.problems)
    assert not caught.value.retryable and not caught.value.billed


# -- retries ------------------------------------------------------------------------------------------------


def test_nginx_502_and_503_storm_on_status_is_ridden_out_with_one_submit(
    fake_fal: FakeFal, make_client: ClientFactory, clock: FakeClock
) -> None:
    fake_fal.fail_next("status", **nginx_error(502), times=2)
    fake_fal.fail_next("status", **nginx_error(503), times=2)
    _, lines = run_to_completion(make_client(max_attempts=6))
    assert len(fake_fal.submits) == 1
    assert lines == list(DEFAULT_LOG_LINES)
    polls = fake_fal.queue_polls + fake_fal.progress_polls + 1
    assert len(fake_fal.seen("status")) == polls + 4
    assert len(clock.sleeps) == (polls - 1) + 4  # a sleep between polls, and one before each retry


def test_a_storm_longer_than_the_retries_is_a_retryable_unavailable(
    fake_fal: FakeFal, make_client: ClientFactory
) -> None:
    fake_fal.fail_next("status", **nginx_error(502), times=10)
    client = make_client(max_attempts=3)
    handle = client.handle_for(client.submit(payload()))
    with pytest.raises(FalUnavailable) as caught:
        client.status(handle)
    assert caught.value.retryable and "gateway error page" in str(caught.value)
    assert len(fake_fal.seen("status")) == 3 and len(fake_fal.submits) == 1


def test_429_waits_for_retry_after(fake_fal: FakeFal, make_client: ClientFactory, clock: FakeClock) -> None:
    fake_fal.fail_next(
        "status", status=429, body={"detail": "Too many requests"}, headers={"Retry-After": "7"}, times=2
    )
    run_to_completion(make_client())
    assert clock.sleeps.count(7.0) == 2
    assert len(fake_fal.submits) == 1


def test_result_5xx_once_then_200(fake_fal: FakeFal, make_client: ClientFactory) -> None:
    client = make_client()
    handle, _ = run_to_completion(client)
    fake_fal.fail_next("result", status=500, body={"detail": "Internal Server Error"})
    assert client.result(handle).video.height == 480
    assert len(fake_fal.seen("result")) == 2


def test_a_requests_own_5xx_failure_is_not_retried_and_is_retryable_unbilled(
    fake_fal: FakeFal, make_client: ClientFactory
) -> None:
    fake_fal.fail_requests(503, "runner_scheduling_failure", "Could not schedule a runner")
    client = make_client()
    handle = client.handle_for(client.submit(payload()))
    final = client.wait(handle)
    assert final.failed and final.error_type == "runner_scheduling_failure"
    answer = client.result(handle)
    outcome = answer.outcome
    assert answer.video is None and not outcome.succeeded
    assert outcome.kind == OutcomeKind.RUNNER_ERROR and outcome.status_code == 503
    assert outcome.error_type == "runner_scheduling_failure"
    assert "Could not schedule a runner" in outcome.detail and "Could not schedule a runner" in outcome.describe()
    assert outcome.retryable and outcome.billed is False
    assert len(fake_fal.seen("result")) == 1  # fal's stored answer: classified once, never GET again


def test_a_model_error_result_is_final_and_its_retryable_flag_is_fals(
    fake_fal: FakeFal, make_client: ClientFactory
) -> None:
    fake_fal.model_error(retryable=False, error_type="downstream_service_error", msg="Upstream said no")
    client = make_client()
    handle = client.handle_for(client.submit(payload()))
    client.wait(handle)
    outcome = client.result(handle).outcome
    assert outcome.kind == OutcomeKind.MODEL_ERROR and outcome.status_code == 500
    assert outcome.error_type == "downstream_service_error" and "Upstream said no" in outcome.detail
    assert outcome.retryable is False and outcome.billed is False and outcome.billable_units == 0
    assert len(fake_fal.seen("result")) == 1


def test_a_result_429_or_gateway_page_is_fetched_again(fake_fal: FakeFal, make_client: ClientFactory) -> None:
    client = make_client()
    handle, _ = run_to_completion(client)
    fake_fal.fail_next("result", status=429, body={"detail": "Too many requests"}, headers={"x-fal-request-id": "r"})
    fake_fal.fail_next("result", **nginx_error(502))
    answer = client.result(handle)
    assert answer.outcome.succeeded and answer.outcome.billed is True and answer.video is not None
    assert len(fake_fal.seen("result")) == 3


def test_content_policy_result_is_a_final_failure_with_fals_words(
    fake_fal: FakeFal, make_client: ClientFactory
) -> None:
    fake_fal.content_policy()
    client = make_client()
    handle = client.handle_for(client.submit(payload()))
    assert client.wait(handle).error_type == "content_policy_violation"
    outcome = client.result(handle).outcome
    assert "flagged by the partner's content checker" in outcome.detail
    assert outcome.kind == OutcomeKind.INPUT_ERROR and outcome.status_code == 422
    assert outcome.error_type == "content_policy_violation" and not outcome.retryable
    assert outcome.billed is None  # a 422 may have been billed (reference §15.4)
    assert len(fake_fal.seen("result")) == 1


def test_media_failing_once_is_downloaded_on_the_second_try(
    fake_fal: FakeFal, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client()
    handle, _ = run_to_completion(client)
    video = client.result(handle).video
    fake_fal.fail_next("media", **nginx_error(503))
    fake_fal.fail_next("media", action="drop")
    fake_fal.fail_next("media", status=200, body="<html>captive portal</html>", headers={"Content-Type": "text/html"})
    size, _ = client.download(video.url, tmp_path / "v.mp4")
    assert size == (tmp_path / "v.mp4").stat().st_size > 0
    assert len(fake_fal.seen("media")) == 4


def test_expired_media_is_a_final_media_error(fake_fal: FakeFal, make_client: ClientFactory, tmp_path: Path) -> None:
    client = make_client()
    with pytest.raises(FalMediaError) as caught:
        client.download(f"{fake_fal.url}/media/unknown/x.mp4", tmp_path / "v.mp4")
    assert caught.value.status_code == 404 and not caught.value.retryable
    assert not (tmp_path / "v.mp4").exists() and not list(tmp_path.iterdir())


def test_download_checks_the_size_fal_announced(fake_fal: FakeFal, make_client: ClientFactory, tmp_path: Path) -> None:
    fake_fal.include_file_size = True
    client = make_client()
    handle, _ = run_to_completion(client)
    video = client.result(handle).video
    assert video.file_size
    assert client.download(video.url, tmp_path / "a.mp4", expected_size=video.file_size)[0] == video.file_size
    with pytest.raises(FalMediaError, match="fal said"):
        client.download(video.url, tmp_path / "b.mp4", expected_size=video.file_size + 1)
    assert not (tmp_path / "b.mp4").exists()


# -- submit is never retried --------------------------------------------------------------------------------


def test_submit_connection_dropped_after_the_body_is_outcome_unknown(
    fake_fal: FakeFal, make_client: ClientFactory
) -> None:
    fake_fal.fail_next("submit", action="accept_and_drop")
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        make_client().submit(payload())
    message = str(caught.value)
    assert "may have accepted and billed it" in message and "not retried" in message
    assert not caught.value.retryable and caught.value.billed
    assert len(fake_fal.submits) == 1 and len(fake_fal.jobs) == 1  # fal did queue it


def test_submit_read_timeout_is_outcome_unknown(fake_fal: FakeFal, make_client: ClientFactory) -> None:
    fake_fal.fail_next("submit", action="hang")
    with pytest.raises(SubmitOutcomeUnknown):
        make_client(timeout=httpx.Timeout(0.3)).submit(payload())
    assert len(fake_fal.submits) == 1


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (nginx_error(502), SubmitOutcomeUnknown),  # the gateway may have forwarded it
        (nginx_error(504), SubmitOutcomeUnknown),  # it may have timed out waiting for a queue that took it
        (nginx_error(503), FalUnavailable),  # the gateway had nowhere to send it
        (
            {
                "status": 503,
                "body": {"detail": "Service unavailable", "error_type": "internal_error"},
                "headers": {"x-fal-request-id": "r"},
            },
            FalUnavailable,
        ),  # fal itself said no
        ({"status": 429, "body": {"detail": "Queue is full"}}, FalUnavailable),
        ({"status": 429, "body": {"detail": "Queue is full"}, "headers": {"Retry-After": "3"}}, FalUnavailable),
    ],
)
def test_submit_errors_are_never_retried(
    fake_fal: FakeFal, make_client: ClientFactory, fault: dict[str, Any], error: type[Exception]
) -> None:
    fake_fal.fail_next("submit", **fault)
    with pytest.raises(error):
        make_client().submit(payload())
    assert len(fake_fal.submits) == 1


def test_submit_that_cannot_connect_is_safe_to_retry(make_client: ClientFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SubmitNotSent) as caught:
        make_client(base_url=f"http://127.0.0.1:{port}").submit(payload())
    assert caught.value.retryable and not caught.value.billed and "safe" in str(caught.value)


# -- cancel and deadlines -----------------------------------------------------------------------------------


def test_cancel_a_queued_request(fake_fal: FakeFal, make_client: ClientFactory) -> None:
    client = make_client()
    handle = client.handle_for(client.submit(payload()))
    assert client.cancel(handle) is True
    final = client.wait(handle)
    assert final.error_type == "client_cancelled"
    assert client.cancel(handle) is False
    assert client.cancel(client.handle("no-such-request")) is False
    assert [r.method for r in fake_fal.cancels] == ["PUT", "PUT", "PUT"]


def test_wait_gives_up_at_its_deadline_without_cancelling(
    fake_fal: FakeFal, make_client: ClientFactory, clock: FakeClock
) -> None:
    fake_fal.queue_polls = 1000
    client = make_client(poll_interval=1.0, max_poll_interval=4.0)
    handle = client.handle_for(client.submit(payload()))
    start = clock.monotonic()
    with pytest.raises(FalDeadlineExceeded) as caught:
        client.wait(handle, timeout_s=30)
    assert clock.monotonic() - start == pytest.approx(30)
    assert caught.value.retryable and caught.value.request_id == handle.request_id
    assert fake_fal.cancels == []
    assert max(clock.sleeps) == 4.0  # the poll interval grew to its cap
