"""The fake fal server itself, over real HTTP: it must do what fal's queue, storage and platform APIs are
documented to do (https://fal.ai/docs/model-endpoints/queue) and nothing fal would not. Wire details only:
status codes, headers, bodies, billing records."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from PIL import Image

from testkit.fakes.fal_server import CANCELLED_DETAIL, MODEL, FakeFal

APP = "xai/grok-imagine-video"


def png(size: tuple[int, int] = (320, 180)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


def model_input(**overrides: Any) -> dict[str, Any]:
    image = "data:image/png;base64," + base64.b64encode(png()).decode()
    return {"prompt": "slow dolly-in", "image_url": image, "duration": 2, "resolution": "480p", **overrides}


@pytest.fixture
def http(fake_fal: FakeFal) -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Key {fake_fal.key}"}, timeout=10) as client:
        yield client


def submit(http: httpx.Client, fake: FakeFal, *, headers: dict[str, str] | None = None, **fields: Any) -> dict:
    response = http.post(f"{fake.url}/{MODEL}", json=model_input(**fields), headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-fal-request-id"] == response.json()["request_id"]
    return response.json()


def status(http: httpx.Client, request: dict, logs: str = "1") -> httpx.Response:
    return http.get(request["status_url"], params={"logs": logs})


def run_to_end(http: httpx.Client, request: dict, max_polls: int = 50) -> dict:
    for _ in range(max_polls):
        response = status(http, request)
        if response.status_code == 200:
            return response.json()
        assert response.status_code == 202
    raise AssertionError("never completed")


def poll_until_running(http: httpx.Client, request: dict) -> None:
    for _ in range(50):
        if status(http, request).json()["status"] == "IN_PROGRESS":
            return
    raise AssertionError("never started")


def listing(http: httpx.Client, fake: FakeFal, **params: Any) -> httpx.Response:
    return http.get(f"{fake.api_url}/v1/models/requests/by-endpoint", params={"endpoint_id": MODEL, **params})


# -- cancel (§15.1, §5) ---------------------------------------------------------------------------------------


def test_cancel_of_a_queued_request_removes_it_unbilled(fake_fal: FakeFal, http: httpx.Client) -> None:
    fake_fal.unpolled_finish_s = 60
    request = submit(http, fake_fal)
    cancel = http.put(request["cancel_url"])
    assert (cancel.status_code, cancel.json()) == (202, {"status": "CANCELLATION_REQUESTED"})

    done = status(http, request)
    assert done.status_code == 200
    assert done.json()["status"] == "COMPLETED" and done.json()["error_type"] == "client_cancelled"
    assert done.json()["error"] == CANCELLED_DETAIL and done.json()["logs"] == []
    result = http.get(request["response_url"])
    assert (result.status_code, result.json()) == (499, {"detail": "Request cancelled by the client."})
    assert result.headers["x-fal-request-id"] == request["request_id"]

    bill = fake_fal.bills[request["request_id"]]
    assert (bill.billed, bill.units, bill.cost_usd, bill.outcome) == (False, 0.0, 0.0, "cancelled_in_queue")
    job = fake_fal.job(request["request_id"])
    assert job.cancel_requested and job.cancelled and job.started_at is None


def test_cancel_of_a_running_request_is_ignored_it_completes_and_is_billed(
    fake_fal: FakeFal, http: httpx.Client
) -> None:
    fake_fal.queue_polls, fake_fal.progress_polls = 0, 2
    request = submit(http, fake_fal)
    poll_until_running(http, request)
    cancel = http.put(request["cancel_url"])
    assert (cancel.status_code, cancel.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    assert status(http, request).json()["status"] == "IN_PROGRESS"  # the app ignores the signal

    done = run_to_end(http, request)
    assert "error" not in done and done["metrics"] == {"inference_time": pytest.approx(3.42)}
    result = http.get(request["response_url"])
    assert result.status_code == 200 and result.json()["video"]["num_frames"] == 49
    bill = fake_fal.bills[request["request_id"]]
    assert (bill.billed, bill.units, bill.cost_usd, bill.outcome) == (True, 2.0, 0.17, "success")
    job = fake_fal.job(request["request_id"])
    assert job.cancel_requested and not job.cancelled


@pytest.mark.parametrize("billed", [False, True])
def test_a_handled_cancel_of_a_running_request_ends_499(fake_fal: FakeFal, http: httpx.Client, billed: bool) -> None:
    fake_fal.cancel_mode = "handle"
    fake_fal.bill_handled_cancel = billed
    fake_fal.queue_polls, fake_fal.progress_polls = 0, 100
    request = submit(http, fake_fal)
    poll_until_running(http, request)
    assert http.put(request["cancel_url"]).status_code == 202

    done = status(http, request)
    assert done.status_code == 200 and done.json()["error_type"] == "client_cancelled"
    result = http.get(request["response_url"])
    assert (result.status_code, result.json()) == (499, {"detail": CANCELLED_DETAIL})
    bill = fake_fal.bills[request["request_id"]]
    assert (bill.billed, bill.cost_usd, bill.outcome) == (billed, 0.17 if billed else 0.0, "cancelled_running")


def test_cancel_of_a_completed_or_unknown_request(fake_fal: FakeFal, http: httpx.Client) -> None:
    request = submit(http, fake_fal)
    run_to_end(http, request)
    again = http.put(request["cancel_url"])
    assert (again.status_code, again.json()) == (400, {"status": "ALREADY_COMPLETED"})
    for prefix in (APP, MODEL):
        unknown = http.put(f"{fake_fal.url}/{prefix}/requests/no-such-id/cancel")
        assert (unknown.status_code, unknown.json()) == (404, {"status": "NOT_FOUND"})


# -- billing (§15.4) ------------------------------------------------------------------------------------------


def test_bills_use_the_model_price_and_are_decided_when_the_request_ends(fake_fal: FakeFal, http: httpx.Client) -> None:
    fake_fal.unpolled_finish_s = 60
    first = submit(http, fake_fal, duration=2, resolution="480p")
    second = submit(http, fake_fal, duration=5, resolution="720p")
    assert fake_fal.bills == {} and fake_fal.billed_request_ids == []
    run_to_end(http, second)  # ends first, but the record keeps submit order
    run_to_end(http, first)

    bills = fake_fal.bills  # no result was fetched: a bill is decided at the terminal state
    assert fake_fal.seen("result") == []
    assert (bills[first["request_id"]].units, bills[first["request_id"]].cost_usd) == (2.0, 0.17)
    assert (bills[second["request_id"]].units, bills[second["request_id"]].cost_usd) == (5.0, 0.71)
    assert fake_fal.billed_request_ids == [first["request_id"], second["request_id"]]
    assert fake_fal.billed_total_usd == 0.88


@pytest.mark.parametrize("header", [False, True])
def test_billable_units_header_is_a_knob(fake_fal: FakeFal, http: httpx.Client, header: bool) -> None:
    fake_fal.billable_units_header = header
    ok = submit(http, fake_fal, duration=3)
    run_to_end(http, ok)
    fake_fal.fail_requests(503, "runner_scheduling_failure", "Could not schedule a runner")
    failed = submit(http, fake_fal)
    run_to_end(http, failed)

    success = http.get(ok["response_url"])
    failure = http.get(failed["response_url"])
    assert (success.status_code, failure.status_code) == (200, 503)
    if header:
        assert success.headers["X-Fal-Billable-Units"] == "3"
        assert failure.headers["X-Fal-Billable-Units"] == "0"
    else:
        assert "x-fal-billable-units" not in success.headers and "x-fal-billable-units" not in failure.headers


@pytest.mark.parametrize("bill_422", [True, False])
def test_5xx_is_never_billed_and_a_422_at_result_time_follows_the_knob(
    fake_fal: FakeFal, http: httpx.Client, bill_422: bool
) -> None:
    fake_fal.bill_validation_errors = bill_422
    fake_fal.fail_requests(times=1)
    server_error = submit(http, fake_fal)
    fake_fal.validate = "result"
    invalid = submit(http, fake_fal, duration=20)
    for request in (server_error, invalid):
        run_to_end(http, request)

    assert http.get(server_error["response_url"]).status_code == 503
    unprocessable = http.get(invalid["response_url"])
    assert unprocessable.status_code == 422 and unprocessable.json()["detail"][0]["type"] == "less_than_equal"
    bills = fake_fal.bills
    assert (bills[server_error["request_id"]].billed, bills[server_error["request_id"]].outcome) == (
        False,
        "request_error",
    )
    bill = bills[invalid["request_id"]]
    assert (bill.billed, bill.outcome) == (bill_422, "unprocessable")
    assert bill.cost_usd == (1.61 if bill_422 else 0.0)  # 20 s at $0.08, one image


# -- stored errors (§15.2, §8) --------------------------------------------------------------------------------


def test_a_model_error_is_stored_and_answered_the_same_on_every_get(fake_fal: FakeFal, http: httpx.Client) -> None:
    fake_fal.model_error(times=1)
    failed = submit(http, fake_fal)
    ok = submit(http, fake_fal)  # times=1: back to success
    done = run_to_end(http, failed)
    assert done["status"] == "COMPLETED" and "error" not in done and "error_type" not in done

    answers = [http.get(failed["response_url"]) for _ in range(2)]
    for answer in answers:
        assert answer.status_code == 500
        assert answer.headers["x-fal-request-id"] == failed["request_id"]
        assert answer.headers["X-Fal-Retryable"] == "true"
        assert answer.headers["x-fal-billable-units"] == "0"
        assert answer.json() == {
            "detail": [
                {
                    "loc": ["body"],
                    "msg": "Internal server error",
                    "type": "internal_server_error",
                    "url": "https://docs.fal.ai/errors#internal_server_error",
                }
            ]
        }
    assert answers[0].content == answers[1].content
    run_to_end(http, ok)
    assert http.get(ok["response_url"]).status_code == 200
    bill = fake_fal.bills[failed["request_id"]]
    assert (bill.billed, bill.outcome) == (False, "model_error")


@pytest.mark.parametrize(
    ("retryable", "header"),
    [(None, None), (False, "false"), (True, "true")],
)
def test_model_error_options(fake_fal: FakeFal, http: httpx.Client, retryable: bool | None, header: str | None) -> None:
    fake_fal.model_error(
        retryable=retryable,
        error_type="downstream_service_unavailable",
        status=504,
        msg="Partner API unavailable",
        status_error_fields=True,
    )
    request = submit(http, fake_fal)
    done = run_to_end(http, request)
    assert (done["error"], done["error_type"]) == ("Partner API unavailable", "downstream_service_unavailable")
    result = http.get(request["response_url"])
    assert result.status_code == 504 and result.headers.get("X-Fal-Retryable") == header
    assert result.json()["detail"][0]["url"] == "https://docs.fal.ai/errors#downstream_service_unavailable"


def test_runner_errors_are_flat_and_limited_by_times(fake_fal: FakeFal, http: httpx.Client) -> None:
    fake_fal.fail_requests(times=2)
    requests = [submit(http, fake_fal) for _ in range(3)]
    for request in requests[:2]:
        done = run_to_end(http, request)
        assert (done["error"], done["error_type"]) == ("Runner unavailable", "runner_unavailable")
        result = http.get(request["response_url"])
        assert result.status_code == 503 and result.headers["X-Fal-Error-Type"] == "runner_unavailable"
        assert result.json() == {"detail": "Runner unavailable", "error_type": "runner_unavailable"}
    assert "error" not in run_to_end(http, requests[2])
    assert http.get(requests[2]["response_url"]).status_code == 200


# -- start timeout (§15.3) -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0.1", "0", "-3", "soon", "nan"])
def test_a_bad_start_timeout_header_is_a_400(fake_fal: FakeFal, http: httpx.Client, value: str) -> None:
    response = http.post(f"{fake_fal.url}/{MODEL}", json=model_input(), headers={"X-Fal-Request-Timeout": value})
    assert response.status_code == 400 and response.json()["error_type"] == "bad_request"
    assert "X-Fal-Request-Timeout" in response.json()["detail"] and fake_fal.jobs == {}


def test_a_request_without_a_free_runner_times_out_at_its_start_timeout(fake_fal: FakeFal, http: httpx.Client) -> None:
    fake_fal.no_free_runner = True
    request = submit(http, fake_fal, headers={"X-Fal-Request-Timeout": "0.3"})
    assert request["queue_position"] == 0 and fake_fal.job(request["request_id"]).start_timeout == 0.3
    for _ in range(5):
        waiting = status(http, request)
        assert waiting.status_code == 202 and waiting.json()["queue_position"] == 0
    time.sleep(0.35)

    done = status(http, request)
    assert done.status_code == 200 and done.json()["error_type"] == "request_timeout"
    result = http.get(request["response_url"])
    assert result.status_code == 504
    assert result.headers["x-fal-request-id"] == request["request_id"]
    assert result.headers["X-Fal-Request-Timeout-Type"] == "user"
    assert result.headers["X-Fal-Error-Type"] == "request_timeout"
    assert result.json() == {"detail": "Request timed out", "error_type": "request_timeout"}
    bill = fake_fal.bills[request["request_id"]]
    assert (bill.billed, bill.outcome) == (False, "start_timeout")


def test_without_a_start_timeout_a_held_request_waits_until_a_runner_is_free(
    fake_fal: FakeFal, http: httpx.Client
) -> None:
    fake_fal.no_free_runner = True
    request = submit(http, fake_fal)
    time.sleep(0.15)  # longer than any start timeout could be, and no unpolled finish while held
    for _ in range(10):
        assert status(http, request).json() == {
            "status": "IN_QUEUE",
            "request_id": request["request_id"],
            "response_url": request["response_url"],
            "queue_position": 0,
        }
    fake_fal.no_free_runner = False
    assert status(http, request).json()["status"] == "IN_PROGRESS"
    assert "error" not in run_to_end(http, request)
    assert fake_fal.bills[request["request_id"]].billed


# -- CDN and storage (§1.1, §15.5) ----------------------------------------------------------------------------


@pytest.mark.parametrize("media_origin", ["cdn", "queue"])
def test_the_video_is_served_from_the_media_origin_without_auth(
    fake_fal: FakeFal, http: httpx.Client, media_origin: Any
) -> None:
    fake_fal.media_origin = media_origin
    request = submit(http, fake_fal)
    run_to_end(http, request)
    url = http.get(request["response_url"]).json()["video"]["url"]
    cdn_route, queue_route = fake_fal.cdn_url + "/files/", fake_fal.url + "/media/"
    served, elsewhere = (cdn_route, queue_route) if media_origin == "cdn" else (queue_route, cdn_route)
    assert url.startswith(served + request["request_id"] + "/")

    video = httpx.get(url)  # no Authorization
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    assert httpx.get(url.replace(served, elsewhere)).status_code == 404
    origins = [r.origin for r in fake_fal.seen("media")]
    assert origins == (["cdn", "queue"] if media_origin == "cdn" else ["queue", "cdn"])


def test_upload_with_a_cdn_token(fake_fal: FakeFal, http: httpx.Client) -> None:
    token_url = f"{fake_fal.rest_url}/storage/auth/token"
    assert httpx.post(token_url, params={"storage_type": "fal-cdn-v3"}, json={}).status_code == 401
    token = http.post(token_url, params={"storage_type": "fal-cdn-v3"}, json={})
    assert token.status_code == 200
    grant = token.json()
    assert grant["token_type"] == "Bearer" and grant["base_url"] == fake_fal.cdn_url and grant["token"]
    expires = datetime.fromisoformat(grant["expires_at"])
    assert expires.utcoffset() is not None
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)

    data = png()
    upload_headers = {"Authorization": f"Bearer {grant['token']}", "Content-Type": "image/png"}
    uploaded = httpx.post(
        f"{fake_fal.cdn_url}/files/upload", content=data, headers={**upload_headers, "X-Fal-File-Name": "frame.png"}
    )
    assert uploaded.status_code == 200
    access_url = uploaded.json()["access_url"]
    assert access_url.startswith(fake_fal.cdn_url + "/files/") and access_url.endswith("/frame.png")
    served = httpx.get(access_url)
    assert (served.status_code, served.content, served.headers["content-type"]) == (200, data, "image/png")
    [record] = fake_fal.uploads
    assert (record.access_url, record.content_type, record.via) == (access_url, "image/png", "token")
    assert len(record.sha256) == 64

    nameless = httpx.post(f"{fake_fal.cdn_url}/files/upload", content=data, headers=upload_headers)
    assert nameless.json()["access_url"].endswith(".png")
    bad = httpx.post(f"{fake_fal.cdn_url}/files/upload", content=data, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


def test_an_expired_token_is_refused(fake_fal: FakeFal, http: httpx.Client) -> None:
    fake_fal.token_ttl_s = 0.0
    grant = http.post(f"{fake_fal.rest_url}/storage/auth/token", params={"storage_type": "fal-cdn-v3"}, json={})
    response = httpx.post(
        f"{fake_fal.cdn_url}/files/upload", content=b"x", headers={"Authorization": f"Bearer {grant.json()['token']}"}
    )
    assert response.status_code == 401 and fake_fal.uploads == []


@pytest.mark.parametrize("storage_type", ["gcs", "fal-cdn-v3"])
def test_token_failures_and_the_initiate_fallback(fake_fal: FakeFal, http: httpx.Client, storage_type: str) -> None:
    fake_fal.token_fails = 2
    token_url = f"{fake_fal.rest_url}/storage/auth/token"
    codes = [http.post(token_url, params={"storage_type": "fal-cdn-v3"}, json={}).status_code for _ in range(3)]
    assert codes == [500, 500, 200]

    initiate_url = f"{fake_fal.rest_url}/storage/upload/initiate"
    spec = {"file_name": "frame.png", "content_type": "image/png"}
    assert httpx.post(initiate_url, params={"storage_type": storage_type}, json=spec).status_code == 401
    initiated = http.post(initiate_url, params={"storage_type": storage_type}, json=spec)
    assert initiated.status_code == 200
    upload_url, file_url = initiated.json()["upload_url"], initiated.json()["file_url"]
    assert upload_url.startswith(fake_fal.cdn_url + "/upload/") and "X-Goog-Signature=" in upload_url
    assert file_url.startswith(fake_fal.cdn_url + "/files/") and file_url.endswith("/frame.png")
    assert httpx.get(file_url).status_code == 404  # nothing uploaded yet

    data = png()
    forged = upload_url.split("?")[0] + "?X-Goog-Signature=forged"
    assert httpx.put(forged, content=data, headers={"Content-Type": "image/png"}).status_code == 403
    assert httpx.put(upload_url, content=data, headers={"Content-Type": "image/png"}).status_code == 200
    served = httpx.get(file_url)
    assert (served.status_code, served.content, served.headers["content-type"]) == (200, data, "image/png")
    [record] = fake_fal.uploads
    assert (record.access_url, record.via) == (file_url, "initiate")


def test_fal_fetches_an_uploaded_image_and_an_expired_upload_is_a_file_download_error(
    fake_fal: FakeFal, http: httpx.Client
) -> None:
    grant = http.post(f"{fake_fal.rest_url}/storage/auth/token", params={"storage_type": "fal-cdn-v3"}, json={})
    access_url = httpx.post(
        f"{fake_fal.cdn_url}/files/upload",
        content=png((640, 360)),
        headers={"Authorization": f"Bearer {grant.json()['token']}", "Content-Type": "image/png"},
    ).json()["access_url"]

    ok = submit(http, fake_fal, image_url=access_url)
    assert len(fake_fal.seen("file")) == 1  # fal fetched it
    run_to_end(http, ok)
    assert http.get(ok["response_url"]).json()["video"]["width"] == 854

    fake_fal.expire_uploads()
    assert httpx.get(access_url).status_code == 404
    late = submit(http, fake_fal, image_url=access_url)
    assert run_to_end(http, late)["error_type"] == "file_download_error"
    result = http.get(late["response_url"])
    assert result.status_code == 422 and result.json()["detail"][0]["type"] == "file_download_error"


# -- platform request listing (§15.6) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "many"},
        {"status": "ok"},
        {"sort_by": "cost"},
        {"start": "yesterday"},
    ],
)
def test_the_listing_refuses_bad_parameters(fake_fal: FakeFal, http: httpx.Client, params: dict[str, str]) -> None:
    response = listing(http, fake_fal, **params)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][0] == "query"


def test_the_listing_needs_a_key_and_an_endpoint(fake_fal: FakeFal, http: httpx.Client) -> None:
    url = f"{fake_fal.api_url}/v1/models/requests/by-endpoint"
    assert httpx.get(url, params={"endpoint_id": MODEL}).status_code == 401
    missing = http.get(url)
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["query", "endpoint_id"]


def test_the_listing_shows_finished_requests_newest_first(fake_fal: FakeFal, http: httpx.Client) -> None:
    fake_fal.unpolled_finish_s = 60
    ok = submit(http, fake_fal, prompt="first")
    run_to_end(http, ok)
    fake_fal.model_error(times=1)
    failed = submit(http, fake_fal, prompt="second")
    run_to_end(http, failed)
    cancelled = submit(http, fake_fal, prompt="third")
    http.put(cancelled["cancel_url"])
    queued = submit(http, fake_fal, prompt="fourth")

    plain = listing(http, fake_fal)
    assert plain.status_code == 200 and plain.json()["has_more"] is False and plain.json()["next_cursor"] is None
    items = plain.json()["items"]
    ids = [cancelled["request_id"], failed["request_id"], ok["request_id"]]
    assert [i["request_id"] for i in items] == ids  # finished only, by ended_at descending
    assert [i["status_code"] for i in items] == [499, 500, 200]
    assert all("json_input" not in i and "json_output" not in i for i in items)
    first = items[2]
    assert first["endpoint_id"] == MODEL and first["sent_at"].endswith("Z") and first["ended_at"].endswith("Z")
    assert first["started_at"] <= first["ended_at"] and first["duration"] >= 0
    assert items[0]["started_at"] is None and items[0]["duration"] is None  # never ran

    expanded = listing(http, fake_fal, expand="payloads").json()["items"]
    assert expanded[2]["json_input"]["prompt"] == "first" and "video" in expanded[2]["json_output"]
    assert expanded[1]["json_output"]["detail"][0]["type"] == "internal_server_error"

    by_status = {
        s: [i["request_id"] for i in listing(http, fake_fal, status=s).json()["items"]]
        for s in ("success", "error", "user_error")
    }
    assert by_status == {
        "success": [ok["request_id"]],
        "error": [failed["request_id"]],
        "user_error": [cancelled["request_id"]],
    }

    fake_fal.list_unfinished = True
    with_unfinished = listing(http, fake_fal).json()["items"]
    assert with_unfinished[0]["request_id"] == queued["request_id"] and len(with_unfinished) == 4
    assert (with_unfinished[0]["ended_at"], with_unfinished[0]["status_code"]) == (None, None)


def test_the_listing_pages_with_an_opaque_cursor_and_filters(fake_fal: FakeFal, http: httpx.Client) -> None:
    requests = [submit(http, fake_fal) for _ in range(3)]
    for request in requests:
        run_to_end(http, request)

    first = listing(http, fake_fal, limit=2).json()
    assert len(first["items"]) == 2 and first["has_more"] is True and isinstance(first["next_cursor"], str)
    rest = listing(http, fake_fal, limit=2, cursor=first["next_cursor"]).json()
    assert len(rest["items"]) == 1 and rest["has_more"] is False and rest["next_cursor"] is None
    seen = [i["request_id"] for i in first["items"] + rest["items"]]
    assert sorted(seen) == sorted(r["request_id"] for r in requests)

    one = requests[1]["request_id"]
    assert [i["request_id"] for i in listing(http, fake_fal, request_id=one).json()["items"]] == [one]
    assert len(listing(http, fake_fal, endpoint_id=f"other/model,{MODEL}").json()["items"]) == 3
    assert listing(http, fake_fal, endpoint_id="other/model").json()["items"] == []
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert listing(http, fake_fal, start=future).json()["items"] == []
    assert listing(http, fake_fal, end=past).json()["items"] == []
    assert len(listing(http, fake_fal, start=past, sort_by="duration").json()["items"]) == 3


def test_an_unpolled_request_finishes_on_its_own_and_a_lost_submit_shows_up_in_the_listing(
    fake_fal: FakeFal, http: httpx.Client
) -> None:
    fake_fal.unpolled_finish_s = 0.2
    fake_fal.fail_next("submit", action="accept_and_drop")
    with pytest.raises(httpx.TransportError):
        http.post(f"{fake_fal.url}/{MODEL}", json=model_input(prompt="lost answer"))
    assert listing(http, fake_fal).json()["items"] == []  # still queued: not listed yet
    time.sleep(0.3)

    [item] = listing(http, fake_fal, expand="payloads").json()["items"]
    assert item["json_input"]["prompt"] == "lost answer" and item["status_code"] == 200
    [request_id] = fake_fal.jobs
    assert item["request_id"] == request_id and fake_fal.billed_request_ids == [request_id]
    done = http.get(f"{fake_fal.url}/{APP}/requests/{request_id}/status")
    assert done.status_code == 200 and done.json()["status"] == "COMPLETED"


def test_a_request_whose_status_is_asked_for_is_moved_by_polls_even_through_faults(
    fake_fal: FakeFal, http: httpx.Client
) -> None:
    fake_fal.unpolled_finish_s = 0.1
    fake_fal.fail_next("status", status=503, body={"detail": "Service unavailable"})
    request = submit(http, fake_fal)
    assert status(http, request).status_code == 503  # the client is watching, fal's answer got lost
    time.sleep(0.15)
    assert status(http, request).json()["status"] == "IN_QUEUE"  # still poll-counted, not finished on its own
    assert fake_fal.bills == {}


# -- the rest of the §13 checklist -----------------------------------------------------------------------------


def test_status_spellings_paths_logs_key_and_unknown_ids(fake_fal: FakeFal, http: httpx.Client) -> None:
    fake_fal.queue_polls, fake_fal.progress_polls = 1, 2
    request = submit(http, fake_fal)
    rid = request["request_id"]
    queued = http.get(f"{fake_fal.url}/{APP}/requests/{rid}/status/", params={"logs": "true"})
    assert queued.status_code == 202 and queued.json()["queue_position"] == 0
    assert queued.headers["x-fal-request-id"] == rid
    running = http.get(f"{fake_fal.url}/{MODEL}/requests/{rid}/status", params={"logs": "0"})
    assert running.json()["status"] == "IN_PROGRESS" and running.json()["logs"] is None
    running = http.get(f"{fake_fal.url}/{APP}/requests/{rid}/status", params={"logs": "1"})
    assert isinstance(running.json()["logs"], list) and running.json()["logs"]
    assert http.get(f"{fake_fal.url}/{MODEL}/requests/{rid}/response").status_code == 400  # not finished yet
    done = http.get(f"{fake_fal.url}/{APP}/requests/{rid}/status", params={"logs": "false"})
    assert done.status_code == 200 and "logs" in done.json() and done.json()["logs"] is None
    assert http.get(f"{fake_fal.url}/{MODEL}/requests/{rid}/response/").status_code == 200

    assert http.get(f"{fake_fal.url}/xai/requests/{rid}/status").status_code == 404
    unknown = http.get(f"{fake_fal.url}/{APP}/requests/nope/status")
    assert unknown.status_code == 404 and "detail" in unknown.json()
    fake_fal.not_found_body = "status"
    assert http.get(f"{fake_fal.url}/{APP}/requests/nope").json() == {"status": "NOT_FOUND"}


def test_fal_max_queue_length_rejects_with_429(fake_fal: FakeFal, http: httpx.Client) -> None:
    fake_fal.unpolled_finish_s = 60
    submit(http, fake_fal)
    submit(http, fake_fal)
    url = f"{fake_fal.url}/{MODEL}"
    assert http.post(url, params={"fal_max_queue_length": 1}, json=model_input()).status_code == 429
    assert http.post(url, params={"fal_max_queue_length": 2}, json=model_input()).status_code == 200
    assert len(fake_fal.jobs) == 3


def test_concurrent_clients_each_see_their_request_through(fake_fal: FakeFal) -> None:
    errors: list[BaseException] = []

    def one_client() -> None:
        try:
            with httpx.Client(headers={"Authorization": f"Key {fake_fal.key}"}, timeout=10) as client:
                request = submit(client, fake_fal)
                run_to_end(client, request)
                assert client.get(request["response_url"]).status_code == 200
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=one_client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(fake_fal.billed_request_ids) == 8 and fake_fal.billed_total_usd == 1.36
