"""FalStorage against the fake fal's REST and CDN origins, over real HTTP on loopback."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from shotline.fal.errors import FalAuthError
from shotline.fal.storage import DATA_URI_MAX_BYTES, FalStorage, FalStorageError, data_uri
from testkit.fakes.clock import FakeClock
from testkit.fakes.fal_server import TEST_KEY, FakeFal

WRONG_KEY = "wrong-id:wrong-secret-5ca1ab1e"

StorageFactory = Callable[..., FalStorage]


def png_bytes(size: tuple[int, int] = (64, 36)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 90, 30)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_storage(fake_fal: FakeFal, clock: FakeClock) -> Iterator[StorageFactory]:
    opened: list[FalStorage] = []

    def make(key: str = TEST_KEY, **kwargs: object) -> FalStorage:
        storage = FalStorage(
            fake_fal.rest_url, fake_fal.cdn_url, SecretStr(key), sleep=clock.sleep, timeout=10.0, **kwargs
        )
        opened.append(storage)
        return storage

    yield make
    for storage in opened:
        storage.close()


def test_upload_goes_through_the_cdn_token_and_serves_the_same_bytes(
    fake_fal: FakeFal, make_storage: StorageFactory
) -> None:
    data = png_bytes()
    url = make_storage().upload(data, "image/png", "frame 01.png")

    [upload] = fake_fal.uploads
    assert (upload.access_url, upload.via, upload.content_type) == (url, "token", "image/png")
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    [sent] = fake_fal.seen("upload")
    assert sent.headers["x-fal-file-name"] == "frame 01.png"
    assert "x-fal-object-lifecycle" not in sent.headers
    served = httpx.get(url)
    assert served.status_code == 200
    assert served.content == data


def test_the_token_is_fetched_once_for_several_uploads(fake_fal: FakeFal, make_storage: StorageFactory) -> None:
    storage = make_storage()
    first = storage.upload(b"one", "image/png", "a.png")
    second = storage.upload(b"two", "image/png", "b.png")

    assert first != second
    assert len(fake_fal.seen("token")) == 1
    assert [u.via for u in fake_fal.uploads] == ["token", "token"]


def test_a_token_about_to_expire_is_replaced(fake_fal: FakeFal, make_storage: StorageFactory) -> None:
    fake_fal.token_ttl_s = 3600
    moments = iter([datetime.now(UTC), datetime.now(UTC) + timedelta(seconds=3590)])
    storage = make_storage(now=lambda: next(moments))
    storage.upload(b"one", "image/png", "a.png")  # fetches a token: `now` is not asked
    storage.upload(b"two", "image/png", "b.png")  # cached token checked at +0 s: still good
    storage.upload(b"three", "image/png", "c.png")  # checked at +3590 s: inside the margin, replaced

    assert len(fake_fal.seen("token")) == 2
    assert len(fake_fal.uploads) == 3


def test_a_failing_token_call_falls_back_to_initiate_and_put(fake_fal: FakeFal, make_storage: StorageFactory) -> None:
    fake_fal.token_fails = 100
    data = png_bytes()
    url = make_storage(max_attempts=2).upload(data, "image/png", "frame.png", expires_in_s=86400)

    assert len(fake_fal.seen("token")) == 2  # retried once, then given up on
    [initiate] = fake_fal.seen("initiate")
    assert initiate.query["storage_type"] == ["fal-cdn-v3"]
    assert initiate.json == {"file_name": "frame.png", "content_type": "image/png"}
    assert json.loads(initiate.headers["x-fal-object-lifecycle"]) == {"expiration_duration_seconds": 86400}
    [put] = fake_fal.seen("upload_put")
    assert put.headers["content-type"] == "image/png"
    [upload] = fake_fal.uploads
    assert (upload.access_url, upload.via) == (url, "initiate")
    assert httpx.get(url).content == data


def test_one_token_failure_is_retried_without_falling_back(fake_fal: FakeFal, make_storage: StorageFactory) -> None:
    fake_fal.token_fails = 1
    make_storage().upload(b"x", "image/png", "x.png")

    assert len(fake_fal.seen("token")) == 2
    assert [u.via for u in fake_fal.uploads] == ["token"]


def test_a_cdn_hiccup_is_retried_and_lifecycle_headers_are_sent(
    fake_fal: FakeFal, make_storage: StorageFactory, clock: FakeClock
) -> None:
    fake_fal.fail_next("upload", status=503)
    make_storage().upload(b"x", "image/png", "x.png", expires_in_s=3600)

    sent = fake_fal.seen("upload")
    assert len(sent) == 2
    lifecycle = {"expiration_duration_seconds": 3600}
    for call in sent:
        assert json.loads(call.headers["x-fal-object-lifecycle"]) == lifecycle
        assert json.loads(call.headers["x-fal-object-lifecycle-preference"]) == lifecycle
    assert [u.via for u in fake_fal.uploads] == ["token"]
    assert len(clock.sleeps) == 1


def test_is_serving_until_the_uploads_expire(fake_fal: FakeFal, make_storage: StorageFactory) -> None:
    storage = make_storage()
    url = storage.upload(png_bytes(), "image/png", "frame.png")
    assert storage.is_serving(url)
    assert fake_fal.seen("file")[-1].headers["range"] == "bytes=0-0"

    fake_fal.expire_uploads()
    assert not storage.is_serving(url)


def test_is_serving_raises_when_the_cdn_cannot_be_reached(fake_fal: FakeFal, make_storage: StorageFactory) -> None:
    storage = make_storage(max_attempts=2)
    url = storage.upload(b"x", "image/png", "x.png")
    fake_fal.fail_next("file", action="drop", times=2)

    with pytest.raises(FalStorageError, match="after 2 attempts") as caught:
        storage.is_serving(url)
    assert caught.value.retryable


def test_a_wrong_key_is_a_clear_error_without_the_key(fake_fal: FakeFal, make_storage: StorageFactory) -> None:
    storage = make_storage(key=WRONG_KEY)
    with pytest.raises(FalAuthError) as caught:
        storage.upload(b"x", "image/png", "x.png")

    message = str(caught.value)
    assert "check FAL_KEY" in message
    assert caught.value.status_code == 401
    assert not caught.value.retryable
    assert WRONG_KEY not in message and "5ca1ab1e" not in message
    assert WRONG_KEY not in repr(storage)
    assert len(fake_fal.seen("token")) == 1  # 401 is not retried
    assert fake_fal.uploads == []


def test_a_locked_account_is_a_clear_auth_error(fake_fal: FakeFal, make_storage: StorageFactory) -> None:
    fake_fal.token_fails = 100
    fake_fal.locked = "User is locked. Reason: Exhausted balance."
    with pytest.raises(FalAuthError, match="Exhausted balance") as caught:
        make_storage(max_attempts=1).upload(b"x", "image/png", "x.png")
    assert caught.value.status_code == 403
    assert TEST_KEY not in str(caught.value)


def test_data_uri_encodes_tiny_images() -> None:
    data = png_bytes((4, 4))
    assert len(data) <= DATA_URI_MAX_BYTES
    uri = data_uri(data, "image/png")
    header, _, encoded = uri.partition(",")
    assert header == "data:image/png;base64"
    assert base64.b64decode(encoded) == data


def test_an_empty_key_is_refused_before_any_request(fake_fal: FakeFal) -> None:
    with pytest.raises(ValueError, match="FAL_KEY"):
        FalStorage(fake_fal.rest_url, fake_fal.cdn_url, SecretStr("  "))
