"""shotline.s3 against a real moto server: URIs, the client from boto3's environment, presign, checksums."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from boto3.s3.transfer import TransferConfig

from shotline import s3
from shotline.errors import PublishError
from testkit.fakes.s3_server import S3Env

MiB = 1 << 20
SMALL_PARTS = TransferConfig(
    multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, preferred_transfer_client="classic"
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/key.png", ("bucket", "key.png")),
        ("s3://my.bucket-1/a/b/c.jpg", ("my.bucket-1", "a/b/c.jpg")),
        ("s3://bkt/with space/ü.png", ("bkt", "with space/ü.png")),
    ],
)
def test_parse_s3_uri(uri: str, expected: tuple[str, str]) -> None:
    assert s3.parse_s3_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("https://bucket/key", "not an s3:// URI"),
        ("bucket/key", "not an s3:// URI"),
        ("s3://bucket", "no object key"),
        ("s3://bucket/", "no object key"),
        ("s3://Bucket/key", "invalid bucket name"),
        ("s3://b/key", "invalid bucket name"),
        ("s3:///key", "invalid bucket name"),
    ],
)
def test_parse_s3_uri_refuses(uri: str, message: str) -> None:
    with pytest.raises(s3.S3UriError, match=message):
        s3.parse_s3_uri(uri)


def test_parse_s3_uri_prefix_allowed_without_key() -> None:
    assert s3.parse_s3_uri("s3://bucket", require_key=False) == ("bucket", "")
    assert s3.parse_s3_uri("s3://bucket/pre/fix/", require_key=False) == ("bucket", "pre/fix/")


def test_join_key() -> None:
    assert s3.join_key("", "_inputs", "a.png") == "_inputs/a.png"
    assert s3.join_key("pre/fix/", "/sb", "shot/") == "pre/fix/sb/shot"


def test_client_comes_from_boto3_environment(s3_env: S3Env) -> None:
    client = s3.s3_client()
    assert client.meta.endpoint_url == s3_env.endpoint
    assert client.meta.region_name == "us-east-1"
    client.put_object(Bucket=s3_env.bucket, Key="hello.txt", Body=b"hi")
    assert s3_env.client.get_object(Bucket=s3_env.bucket, Key="hello.txt")["Body"].read() == b"hi"


def test_endpoint_url_s3_takes_precedence(s3_env: S3Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_env.endpoint)
    assert s3.s3_client().meta.endpoint_url == s3_env.endpoint


def test_presigned_get_is_sigv4_and_serves_the_bytes(s3_env: S3Env) -> None:
    body = os.urandom(4096)
    s3_env.client.put_object(Bucket=s3_env.bucket, Key="dir/blob.bin", Body=body)
    url = s3.presign_get(s3_env.bucket, "dir/blob.bin", 600)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["600"]
    r = httpx.get(url)
    assert r.status_code == 200
    assert r.content == body


@pytest.mark.parametrize("expires", [0, s3.MAX_PRESIGN_S + 1])
def test_presign_expiry_bounds(expires: int) -> None:
    with pytest.raises(ValueError, match="expires_s"):
        s3.presign_get("bucket", "key", expires)


def test_head_missing_is_none(s3_env: S3Env) -> None:
    assert s3.head(s3_env.client, s3_env.bucket, "nope") is None


def test_digest_file_composite_matches_a_multipart_upload(s3_env: S3Env, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(12 * MiB))  # three 5 MiB parts (the last short)
    part = s3.planned_part_size(SMALL_PARTS, path.stat().st_size)
    assert part == 5 * MiB
    digest = s3.digest_file(path, part)
    assert digest.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()

    info = s3.upload_file(
        s3_env.client,
        path,
        s3_env.bucket,
        "big.bin",
        digest=digest,
        content_type="application/octet-stream",
        cache_control="no-cache",
        metadata={"sha256": digest.sha256},
        transfer=SMALL_PARTS,
    )
    assert info.size == path.stat().st_size
    assert info.etag and info.etag.endswith('-3"')  # it really went up in parts
    assert info.checksum_sha256 == digest.composite_b64
    assert info.checksum_sha256 != digest.full_b64


def test_digest_accepts_both_checksum_forms() -> None:
    data = b"x" * 1000
    full = base64.b64encode(hashlib.sha256(data).digest()).decode()
    digest = s3.Digest(size=len(data), sha256=hashlib.sha256(data).hexdigest(), full_b64=full, composite_b64="abc=")
    assert digest.matches_checksum(full)
    assert digest.matches_checksum("abc=")
    assert digest.matches_checksum("abc=-7")  # real S3's composite form carries the part count
    assert not digest.matches_checksum("zzz=")
    assert not digest.matches_checksum(None)


def test_verify_refuses_a_different_body(s3_env: S3Env) -> None:
    s3_env.client.put_object(Bucket=s3_env.bucket, Key="k", Body=b"actual", ChecksumAlgorithm="SHA256")
    with pytest.raises(PublishError, match="checksum"):
        s3.verify(s3_env.client, s3_env.bucket, "k", s3.digest_bytes(b"expect"))
    with pytest.raises(PublishError, match="size"):
        s3.verify(s3_env.client, s3_env.bucket, "k", s3.digest_bytes(b"longer body"))
    with pytest.raises(PublishError, match="missing"):
        s3.verify(s3_env.client, s3_env.bucket, "gone", s3.digest_bytes(b"x"))


def test_put_bytes_stores_and_verifies_the_checksum(s3_env: S3Env) -> None:
    digest, info = s3.put_bytes(
        s3_env.client,
        b'{"a": 1}',
        s3_env.bucket,
        "a.json",
        content_type="application/json",
        cache_control="no-cache",
        metadata={"sha256": "f" * 64, "empty": None},
    )
    assert info.checksum_sha256 == digest.full_b64
    assert info.content_type == "application/json"
    assert info.cache_control == "no-cache"
    assert info.metadata == {"sha256": "f" * 64}


def test_credentials_stay_out_of_errors_and_logs(
    s3_env: S3Env, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    key_id = os.environ["AWS_ACCESS_KEY_ID"]
    caplog.set_level(logging.DEBUG, logger="shotline")
    path = tmp_path / "f.bin"
    path.write_bytes(b"data")
    client = s3.s3_client()
    with pytest.raises(PublishError) as excinfo:
        s3.upload_file(
            client,
            path,
            "no-such-bucket-here",
            "f.bin",
            digest=s3.digest_file(path),
            content_type="application/octet-stream",
            cache_control="no-cache",
            metadata={},
            transfer=SMALL_PARTS,
        )
    assert "no-such-bucket-here" in str(excinfo.value)
    with pytest.raises(PublishError) as head_error:
        s3.verify(client, "no-such-bucket-here", "f.bin", s3.digest_bytes(b""))
    for text in (str(excinfo.value), str(head_error.value), caplog.text):
        assert secret not in text
        assert key_id not in text


def test_presign_without_credentials_is_a_clean_error(s3_env: S3Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(PublishError, match="no AWS credentials"):
        s3.presign_get(s3_env.bucket, "k", 60)
