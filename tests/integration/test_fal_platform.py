"""FalPlatform against the fake fal's platform API origin, over real HTTP on loopback."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from shotline.fal.errors import FalAuthError
from shotline.fal.platform import FalPlatform, FalPlatformError, canonical_json, input_sha256
from shotline.fal.storage import data_uri
from testkit.fakes.clock import FakeClock
from testkit.fakes.fal_server import MODEL, TEST_KEY, FakeFal

WRONG_KEY = "wrong-id:wrong-secret-decafbad"
FINISH_S = 0.1

PlatformFactory = Callable[..., FalPlatform]


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 36), (30, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


def model_input(prompt: str = "slow dolly-in") -> dict[str, Any]:
    return {"prompt": prompt, "image_url": data_uri(png_bytes(), "image/png"), "duration": 2, "resolution": "480p"}


def submit(fake: FakeFal, body: dict[str, Any]) -> str:
    response = httpx.post(f"{fake.url}/{MODEL}", json=body, headers={"Authorization": f"Key {TEST_KEY}"})
    response.raise_for_status()
    return str(response.json()["request_id"])


def let_them_finish() -> None:
    """Unpolled requests finish by wall clock after `unpolled_finish_s`; only finished ones are listed."""
    time.sleep(FINISH_S * 3)


@pytest.fixture
def fake(fake_fal: FakeFal) -> FakeFal:
    fake_fal.unpolled_finish_s = FINISH_S
    return fake_fal


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_platform(fake: FakeFal, clock: FakeClock) -> Iterator[PlatformFactory]:
    opened: list[FalPlatform] = []

    def make(key: str = TEST_KEY, **kwargs: Any) -> FalPlatform:
        platform = FalPlatform(fake.api_url, SecretStr(key), sleep=clock.sleep, timeout=10.0, **kwargs)
        opened.append(platform)
        return platform

    yield make
    for platform in opened:
        platform.close()


def test_listing_pages_through_every_page(fake: FakeFal, make_platform: PlatformFactory) -> None:
    start = datetime.now(UTC)
    ids = {submit(fake, model_input(f"shot {n}")) for n in range(7)}
    let_them_finish()

    items = make_platform().list_requests(MODEL, start=start, limit=3)

    assert {item.request_id for item in items} == ids
    assert len(items) == 7
    calls = fake.seen("listing")
    assert len(calls) == 3
    assert "cursor" not in calls[0].query
    assert all(call.query["expand"] == ["payloads"] for call in calls)
    assert calls[0].query["start"][0].endswith("Z")
    assert all(item.json_input is not None and item.sent_at is not None for item in items)
    assert all(item.sent_at.tzinfo is not None for item in items if item.sent_at)


def test_listing_without_payloads_and_with_filters(fake: FakeFal, make_platform: PlatformFactory) -> None:
    start = datetime.now(UTC)
    wanted = submit(fake, model_input("a"))
    submit(fake, model_input("b"))
    let_them_finish()

    [item] = make_platform().list_requests(
        MODEL, start=start, end=datetime.now(UTC), request_id=wanted, status="success", with_payloads=False
    )

    assert item.request_id == wanted
    assert item.json_input is None
    assert item.status_code == 200
    [call] = fake.seen("listing")
    assert "expand" not in call.query
    assert call.query["status"] == ["success"]


def test_too_many_pages_is_said_not_truncated(fake: FakeFal, make_platform: PlatformFactory) -> None:
    start = datetime.now(UTC)
    for n in range(3):
        submit(fake, model_input(f"shot {n}"))
    let_them_finish()

    with pytest.raises(FalPlatformError, match="more than 2 pages"):
        make_platform(max_pages=2).list_requests(MODEL, start=start, limit=1)


def test_find_by_input_recovers_a_submit_whose_answer_was_lost(fake: FakeFal, make_platform: PlatformFactory) -> None:
    body = model_input("the lost one")
    submit(fake, model_input("someone else's"))
    fake.unpolled_finish_s = 60.0  # still running: not listed yet
    sent_after = datetime.now(UTC)
    fake.fail_next("submit", action="accept_and_drop")
    with pytest.raises(httpx.TransportError):
        submit(fake, body)
    platform = make_platform()

    assert platform.find_by_input(MODEL, body, sent_after=sent_after) == []

    fake.unpolled_finish_s = FINISH_S
    let_them_finish()
    [found] = platform.find_by_input(MODEL, body, sent_after=sent_after)

    [lost] = [job for job in fake.jobs.values() if job.payload == body]
    assert found.request_id == lost.request_id
    assert found.json_input == body
    assert found.endpoint_id == MODEL


def test_find_by_input_returns_every_duplicate_oldest_first(fake: FakeFal, make_platform: PlatformFactory) -> None:
    body = model_input("twice")
    sent_after = datetime.now(UTC)
    first = submit(fake, body)
    second = submit(fake, dict(reversed(body.items())))  # same input, other key order
    submit(fake, model_input("other"))
    let_them_finish()

    found = make_platform().find_by_input(MODEL, body, sent_after=sent_after)

    assert [item.request_id for item in found] == [first, second]
    assert found[0].sent_at is not None and found[1].sent_at is not None
    assert found[0].sent_at <= found[1].sent_at


def test_find_by_input_ignores_requests_sent_before_the_window(fake: FakeFal, make_platform: PlatformFactory) -> None:
    body = model_input("again")
    submit(fake, body)
    time.sleep(0.05)
    sent_after = datetime.now(UTC)
    later = submit(fake, body)
    let_them_finish()

    found = make_platform().find_by_input(MODEL, body, sent_after=sent_after, skew_s=0)

    assert [item.request_id for item in found] == [later]


def test_a_listing_hiccup_is_retried(fake: FakeFal, make_platform: PlatformFactory, clock: FakeClock) -> None:
    start = datetime.now(UTC)
    wanted = submit(fake, model_input())
    let_them_finish()
    fake.fail_next("listing", status=503)
    fake.fail_next("listing", status=429, headers={"Retry-After": "2"})

    [item] = make_platform().list_requests(MODEL, start=start)

    assert item.request_id == wanted
    assert len(fake.seen("listing")) == 3
    assert clock.sleeps[-1] == 2.0


def test_a_wrong_key_says_which_key_the_platform_api_needs(fake: FakeFal, make_platform: PlatformFactory) -> None:
    platform = make_platform(key=WRONG_KEY)
    with pytest.raises(FalAuthError, match=r"Requires API key \(user or enterprise\)") as caught:
        platform.list_requests(MODEL, start=datetime.now(UTC) - timedelta(minutes=5))

    assert caught.value.status_code == 401
    assert not caught.value.retryable
    assert WRONG_KEY not in str(caught.value) and "decafbad" not in str(caught.value)
    assert WRONG_KEY not in repr(platform)
    assert len(fake.seen("listing")) == 1


def test_naive_datetimes_are_refused(make_platform: PlatformFactory) -> None:
    with pytest.raises(ValueError, match="no timezone"):
        make_platform().list_requests(MODEL, start=datetime.now())


def test_canonical_json_ignores_key_order_and_whitespace() -> None:
    a = {"prompt": "é", "nested": {"b": 1, "a": [1, 2]}, "duration": 6}
    b = {"duration": 6, "nested": {"a": [1, 2], "b": 1}, "prompt": "é"}
    assert canonical_json(a) == canonical_json(b) == '{"duration":6,"nested":{"a":[1,2],"b":1},"prompt":"é"}'
    assert input_sha256(a) == input_sha256(b)
    assert len(input_sha256(a)) == 64
    assert input_sha256(a) != input_sha256({**a, "duration": 7})
