"""FalQueueClient against httpx.MockTransport, answered as real fal answers (a result is the model's stored
answer, with x-fal-request-id, X-Fal-Retryable and x-fal-billable-units; gateway pages carry no request id),
classified without any server. Each test runs in milliseconds: sleeps are recorded, never slept."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from pydantic import SecretStr

from shotline.fal.client import FalQueueClient
from shotline.fal.errors import (
    FalAuthError,
    FalProtocolError,
    FalUnavailable,
    FalValidationError,
    SubmitNotSent,
    SubmitOutcomeUnknown,
)
from shotline.fal.models import RequestHandle, SubmitPayload
from shotline.fal.outcomes import OutcomeKind

BASE = "https://queue.fal.run"
MODEL = "xai/grok-imagine-video/v1.5/image-to-video"
APP = "xai/grok-imagine-video"
KEY = "unit-test-key-0123"
RID = "764cabcf-b745-4b3e-ae38-1200304cf45b"
VIDEO = {
    "url": "https://v3b.fal.media/files/b/0a8b90e0/clip.mp4",
    "content_type": "video/mp4",
    "file_name": "clip.mp4",
    "width": 1280,
    "height": 720,
    "fps": 24,
    "duration": 6.041667,
    "num_frames": 145,
}
PAYLOAD = SubmitPayload(prompt="boats at dawn", image_url="https://example.com/still.png", duration=6)

Handler = Callable[[httpx.Request], httpx.Response]


class Fal:
    """A scripted fal: answers in order (the last one repeats), every request kept, every sleep recorded."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, **options: object) -> FalQueueClient:
        options = {"max_attempts": 3, "rng": random.Random(7), **options}
        return FalQueueClient(
            BASE, SecretStr(KEY), model=MODEL, transport=httpx.MockTransport(self), sleep=self.sleeps.append, **options
        )


def fal_answer(status: int, body: object = None, *, request_id: str | None = RID, **headers: str) -> httpx.Response:
    """An answer fal itself gave: JSON, with x-fal-request-id unless told otherwise."""
    sent = {k.replace("_", "-"): v for k, v in headers.items()}
    if request_id is not None:
        sent["x-fal-request-id"] = request_id
    content = b"" if body is None else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers={"content-type": "application/json", **sent})


def gateway_page(status: int) -> httpx.Response:
    """nginx in front of fal: an HTML page, no x-fal-request-id."""
    return httpx.Response(
        status, content=b"<html><body><h1>502 Bad Gateway</h1></body></html>", headers={"content-type": "text/html"}
    )


def handle() -> RequestHandle:
    base = f"{BASE}/{APP}/requests/{RID}"
    return RequestHandle(request_id=RID, status_url=f"{base}/status", response_url=base, cancel_url=f"{base}/cancel")


# -- submit ---------------------------------------------------------------------------------------------------


def test_submit_posts_the_input_once_with_key_start_timeout_and_no_fallback() -> None:
    envelope = {
        "request_id": RID,
        "response_url": f"{BASE}/{APP}/requests/{RID}",
        "status_url": f"{BASE}/{APP}/requests/{RID}/status",
        "cancel_url": f"{BASE}/{APP}/requests/{RID}/cancel",
        "queue_position": 0,
    }
    fal = Fal(fal_answer(200, envelope))
    with fal.client() as client:
        submitted = client.submit(PAYLOAD, start_timeout_s=1800)
        assert client.handle_for(submitted) == handle()
    assert submitted.request_id == RID and submitted.queue_position == 0
    (sent,) = fal.requests
    assert sent.method == "POST" and str(sent.url) == f"{BASE}/{MODEL}"
    assert sent.headers["authorization"] == f"Key {KEY}"
    assert sent.headers["x-fal-request-timeout"] == "1800"
    assert sent.headers["x-app-fal-disable-fallback"] == "true"
    assert json.loads(sent.content) == {
        "prompt": "boats at dawn",
        "image_url": "https://example.com/still.png",
        "duration": 6,
        "resolution": "720p",
    }


def test_submit_422_is_a_validation_error_with_fals_problems() -> None:
    detail = [{"loc": ["body", "duration"], "msg": "must be at most 15", "type": "less_than_equal"}]
    fal = Fal(fal_answer(422, {"detail": detail}))
    with fal.client() as client, pytest.raises(FalValidationError) as caught:
        client.submit(PAYLOAD)
    assert caught.value.problems == detail and not caught.value.retryable
    assert "duration: must be at most 15 (less_than_equal)" in str(caught.value)
    assert len(fal.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_submit_refused_key_or_locked_account_is_an_auth_error(status: int) -> None:
    fal = Fal(fal_answer(status, {"detail": "no"}, request_id=None))
    with fal.client() as client, pytest.raises(FalAuthError) as caught:
        client.submit(PAYLOAD)
    assert caught.value.status_code == status and not caught.value.retryable
    assert KEY not in str(caught.value)


def test_submit_gateway_error_without_request_id_may_have_been_queued_and_is_never_retried() -> None:
    fal = Fal(gateway_page(502))
    with fal.client() as client, pytest.raises(SubmitOutcomeUnknown) as caught:
        client.submit(PAYLOAD)
    assert caught.value.billed and not caught.value.retryable
    assert len(fal.requests) == 1 and fal.sleeps == []


def test_submit_refused_by_fal_for_now_is_unavailable_and_not_retried() -> None:
    fal = Fal(fal_answer(503, {"detail": "busy", "error_type": "runner_unavailable"}))
    with fal.client() as client, pytest.raises(FalUnavailable) as caught:
        client.submit(PAYLOAD)
    assert caught.value.retryable and not caught.value.billed and caught.value.error_type == "runner_unavailable"
    assert len(fal.requests) == 1


def test_submit_accepted_without_a_request_id_is_an_unknown_outcome() -> None:
    fal = Fal(httpx.Response(200, content=b"<html>ok</html>", headers={"content-type": "text/html"}))
    with fal.client() as client, pytest.raises(SubmitOutcomeUnknown):
        client.submit(PAYLOAD)


def test_submit_that_never_connected_was_not_sent() -> None:
    fal = Fal(httpx.ConnectError("connection refused"))
    with fal.client() as client, pytest.raises(SubmitNotSent) as caught:
        client.submit(PAYLOAD)
    assert caught.value.retryable and not caught.value.billed


def test_submit_whose_answer_was_lost_is_an_unknown_outcome() -> None:
    fal = Fal(httpx.ReadTimeout("no answer"))
    with fal.client() as client, pytest.raises(SubmitOutcomeUnknown) as caught:
        client.submit(PAYLOAD)
    assert caught.value.billed and len(fal.requests) == 1


# -- status ---------------------------------------------------------------------------------------------------


def test_status_in_queue_202_with_position() -> None:
    fal = Fal(fal_answer(202, {"status": "IN_QUEUE", "request_id": RID, "queue_position": 2}))
    with fal.client() as client:
        status = client.status(handle())
    assert status.status == "IN_QUEUE" and status.queue_position == 2 and not status.completed
    (sent,) = fal.requests
    assert sent.method == "GET" and sent.url.params["logs"] == "1"
    assert sent.headers["authorization"] == f"Key {KEY}"


def test_status_completed_with_metrics_and_logs() -> None:
    body = {
        "status": "COMPLETED",
        "request_id": RID,
        "logs": [{"message": "Done.", "timestamp": "2026-02-17T10:30:05.789Z"}],
        "metrics": {"inference_time": 3.42},
    }
    fal = Fal(fal_answer(200, body))
    with fal.client() as client:
        status = client.status(handle(), logs=False)
    assert status.completed and not status.failed and status.inference_time == 3.42
    assert [entry.message for entry in status.logs or []] == ["Done."]
    assert fal.requests[0].url.params["logs"] == "0"


def test_status_completed_with_an_error_is_a_failed_request() -> None:
    body = {"status": "COMPLETED", "logs": [], "metrics": {}, "error": "Runner disconnected"}
    body["error_type"] = "runner_disconnected"
    fal = Fal(fal_answer(200, body))
    with fal.client() as client:
        status = client.status(handle())
    assert status.failed and status.error_type == "runner_disconnected"


def test_status_garbled_is_a_retryable_protocol_error() -> None:
    fal = Fal(httpx.Response(200, content=b'{"status": "IN_QU', headers={"x-fal-request-id": RID}))
    with fal.client() as client, pytest.raises(FalProtocolError) as caught:
        client.status(handle())
    assert caught.value.retryable and caught.value.request_id == RID


def test_status_gateway_pages_are_retried_then_unavailable() -> None:
    fal = Fal(gateway_page(502))
    with fal.client(max_attempts=3) as client, pytest.raises(FalUnavailable) as caught:
        client.status(handle())
    assert len(fal.requests) == 3 and len(fal.sleeps) == 2
    assert "after 3 attempts" in str(caught.value) and "gateway error page" in str(caught.value)


def test_status_transport_errors_are_retried() -> None:
    ok = fal_answer(202, {"status": "IN_PROGRESS", "logs": None})
    fal = Fal(httpx.ReadTimeout("hung"), ok)
    with fal.client() as client:
        assert client.status(handle()).status == "IN_PROGRESS"
    assert len(fal.requests) == 2 and len(fal.sleeps) == 1


def test_status_transport_errors_to_the_end_are_unavailable() -> None:
    fal = Fal(httpx.ConnectError("refused"))
    with fal.client(max_attempts=2) as client, pytest.raises(FalUnavailable) as caught:
        client.status(handle())
    assert "ConnectError" in str(caught.value) and len(fal.requests) == 2


def test_status_refused_key_is_not_retried() -> None:
    fal = Fal(fal_answer(401, {"detail": "Invalid key"}))
    with fal.client() as client, pytest.raises(FalAuthError):
        client.status(handle())
    assert len(fal.requests) == 1


# -- result: classified once ----------------------------------------------------------------------------------


def test_result_200_is_a_billed_success_with_the_video() -> None:
    fal = Fal(fal_answer(200, {"video": VIDEO}, x_fal_billable_units="6"))
    with fal.client() as client:
        answer = client.result(handle())
    assert answer.outcome.kind == OutcomeKind.SUCCEEDED and answer.outcome.billed is True
    assert answer.outcome.billable_units == 6.0
    assert answer.video is not None and answer.video.num_frames == 145 and answer.video.url == VIDEO["url"]
    assert str(fal.requests[0].url) == handle().response_url


@pytest.mark.parametrize(("flag", "retryable"), [("true", True), ("false", False)])
def test_result_model_error_is_final_unbilled_and_says_if_a_new_submit_may_help(flag: str, retryable: bool) -> None:
    detail = [{"loc": ["body"], "msg": "Internal server error", "type": "internal_server_error"}]
    fal = Fal(fal_answer(500, {"detail": detail}, x_fal_retryable=flag, x_fal_billable_units="0"))
    with fal.client() as client:
        answer = client.result(handle())
    outcome = answer.outcome
    assert outcome.kind == OutcomeKind.MODEL_ERROR and outcome.billed is False and outcome.retryable is retryable
    assert outcome.error_type == "internal_server_error" and outcome.detail.startswith("Internal server error")
    assert answer.video is None
    assert len(fal.requests) == 1 and fal.sleeps == []  # the stored answer: re-GETting it never helps


def test_result_runner_error_without_the_retryable_header_goes_by_its_type() -> None:
    fal = Fal(fal_answer(503, {"detail": "Runner disconnected", "error_type": "runner_disconnected"}))
    with fal.client() as client:
        outcome = client.result(handle()).outcome
    assert outcome.kind == OutcomeKind.RUNNER_ERROR and outcome.retryable and outcome.billed is False
    assert len(fal.requests) == 1


def test_result_504_user_timeout_never_started() -> None:
    fal = Fal(fal_answer(504, {"detail": "Request timed out"}, x_fal_request_timeout_type="user"))
    with fal.client() as client:
        outcome = client.result(handle()).outcome
    assert outcome.kind == OutcomeKind.START_TIMEOUT and outcome.billed is False and outcome.retryable
    assert outcome.error_type == "request_timeout"


def test_result_499_is_a_handled_cancel() -> None:
    fal = Fal(fal_answer(499, {"detail": "Request cancelled by the client."}))
    with fal.client() as client:
        outcome = client.result(handle()).outcome
    assert outcome.kind == OutcomeKind.CANCELLED and outcome.billed is False


def test_result_422_may_have_been_billed_unless_the_units_say_otherwise() -> None:
    detail = [{"loc": ["body", "prompt"], "msg": "content policy", "type": "content_policy_violation"}]
    fal = Fal(fal_answer(422, {"detail": detail}), fal_answer(422, {"detail": detail}, x_fal_billable_units="0"))
    with fal.client() as client:
        maybe, unbilled = client.result(handle()).outcome, client.result(handle()).outcome
    assert maybe.kind == OutcomeKind.INPUT_ERROR and maybe.billed is None and not maybe.retryable
    assert maybe.error_type == "content_policy_violation"
    assert unbilled.billed is False


def test_result_garbled_body_is_retryable_and_not_taken_as_billed() -> None:
    fal = Fal(httpx.Response(200, content=b'{"video": {"url": "https://v3b.fal', headers={"x-fal-request-id": RID}))
    with fal.client() as client, pytest.raises(FalProtocolError) as caught:
        client.result(handle())
    assert caught.value.retryable and not caught.value.billed and "not JSON" in str(caught.value)


@pytest.mark.parametrize("body", [{"images": []}, ["video"], {"video": {"content_type": "video/mp4"}}])
def test_result_200_without_a_usable_video_is_a_billed_protocol_error(body: object) -> None:
    fal = Fal(fal_answer(200, body))
    with fal.client() as client, pytest.raises(FalProtocolError) as caught:
        client.result(handle())
    assert caught.value.billed and not caught.value.retryable


def test_result_gateway_pages_and_429_are_worth_another_get() -> None:
    fal = Fal(gateway_page(502), fal_answer(429, {"detail": "slow down"}), fal_answer(200, {"video": VIDEO}))
    with fal.client() as client:
        assert client.result(handle()).outcome.succeeded
    assert len(fal.requests) == 3 and len(fal.sleeps) == 2


def test_result_gateway_pages_to_the_end_are_unavailable() -> None:
    fal = Fal(gateway_page(503))
    with fal.client(max_attempts=2) as client, pytest.raises(FalUnavailable) as caught:
        client.result(handle())
    assert caught.value.retryable and caught.value.status_code == 503 and len(fal.requests) == 2


# -- cancel ---------------------------------------------------------------------------------------------------


def test_cancel_202_is_accepted_not_proven() -> None:
    fal = Fal(fal_answer(202, {"status": "CANCELLATION_REQUESTED"}))
    with fal.client() as client:
        assert client.cancel(handle()) is True
    (sent,) = fal.requests
    assert sent.method == "PUT" and str(sent.url) == handle().cancel_url and sent.content == b""


@pytest.mark.parametrize(("status", "body"), [(400, {"status": "ALREADY_COMPLETED"}), (404, {"status": "NOT_FOUND"})])
def test_cancel_with_nothing_to_cancel_is_false(status: int, body: dict[str, str]) -> None:
    fal = Fal(fal_answer(status, body))
    with fal.client() as client:
        assert client.cancel(handle()) is False


def test_cancel_attempts_bound_the_retries_on_the_way_out() -> None:
    fal = Fal(gateway_page(502))
    with fal.client(max_attempts=5) as client, pytest.raises(FalUnavailable):
        client.cancel(handle(), attempts=2)
    assert len(fal.requests) == 2 and len(fal.sleeps) == 1


# -- waits between attempts -----------------------------------------------------------------------------------


def test_retry_after_seconds_is_honoured() -> None:
    fal = Fal(fal_answer(429, {"detail": "rate limited"}, retry_after="3"), fal_answer(200, {"video": VIDEO}))
    with fal.client() as client:
        client.result(handle())
    assert fal.sleeps == [3.0]


def test_retry_after_is_capped() -> None:
    fal = Fal(fal_answer(429, {}, retry_after="3600"), fal_answer(200, {"video": VIDEO}))
    with fal.client(max_retry_after=10.0) as client:
        client.result(handle())
    assert fal.sleeps == [10.0]


def test_retry_after_as_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    fal = Fal(gateway_page(503), fal_answer(200, {"video": VIDEO}))
    fal.answers[0].headers["retry-after"] = when
    with fal.client() as client:
        client.result(handle())
    (slept,) = fal.sleeps
    assert 25.0 <= slept <= 30.0


def test_without_retry_after_the_wait_is_jittered_exponential_backoff() -> None:
    fal = Fal(gateway_page(502))
    with fal.client(max_attempts=4, backoff_base=1.0, backoff_cap=3.0) as client, pytest.raises(FalUnavailable):
        client.status(handle())
    first, second, third = fal.sleeps
    assert 0.5 <= first <= 1.5 and 1.0 <= second <= 3.0 and 2.0 <= third <= 3.0


def test_an_unreadable_retry_after_falls_back_to_backoff() -> None:
    fal = Fal(fal_answer(429, {}, retry_after="soon"), fal_answer(200, {"video": VIDEO}))
    with fal.client(backoff_base=0.5) as client:
        client.result(handle())
    (slept,) = fal.sleeps
    assert 0.25 <= slept <= 0.75


# -- construction ---------------------------------------------------------------------------------------------


def test_the_key_never_shows_and_must_not_be_empty() -> None:
    client = Fal(fal_answer(200, {})).client()
    assert KEY not in repr(client) and client.app_id == APP
    client.close()
    with pytest.raises(ValueError, match="FAL_KEY"):
        FalQueueClient(BASE, SecretStr("  "), model=MODEL)
    with pytest.raises(ValueError, match="owner/app"):
        FalQueueClient(BASE, SecretStr(KEY), model="grok")
