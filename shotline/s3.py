"""S3 access built on boto3's own environment: URIs, the client, presigned GETs and verified uploads.

Credentials come only from boto3's usual chain (AWS_* variables, profiles, instance roles). Nothing here
logs them or puts them in an error message; errors name the bucket, the key and the S3 error code.

Uploads are verified after the fact: S3 (and moto) report a SHA-256 checksum of what they stored, which is
compared with the one computed locally. A single PUT reports the full-object SHA-256; a multipart upload
reports the *composite* form, the SHA-256 of the concatenated part digests (real S3 appends `-<parts>`,
moto does not), so both are computed locally in one pass.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from s3transfer.utils import ChunksizeAdjuster

from shotline.errors import PublishError

log = logging.getLogger(__name__)

MAX_PRESIGN_S = 7 * 24 * 3600  # SigV4's limit; temporary credentials may end sooner
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_CHUNK = 1 << 20
_DENIED = ("403", "AccessDenied", "Forbidden")
MiB = 1 << 20


class S3UriError(ValueError):
    """A string that is not a usable s3://bucket/key URI."""


def parse_s3_uri(uri: str, *, require_key: bool = True) -> tuple[str, str]:
    """Split `s3://bucket/key` into (bucket, key). `require_key=False` also accepts a bucket or prefix."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise S3UriError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise S3UriError(f"invalid bucket name {bucket!r} in {uri!r} (3-63 lowercase letters, digits, '.' or '-')")
    if require_key and not key:
        raise S3UriError(f"no object key in {uri!r} (expected s3://bucket/key)")
    return bucket, key


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def join_key(*parts: str) -> str:
    """Join key parts with '/', dropping empty parts and stray slashes (an empty prefix adds nothing)."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def custom_endpoint() -> str | None:
    """The endpoint boto3 will use from the environment, if one is set (moto, MinIO, R2...)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def s3_client(*, max_pool_connections: int = 16) -> BaseClient:
    """An S3 client configured from boto3's own environment, SigV4 signing and standard retries.

    One client per process and configuration (building one costs about half a second: boto3 loads its
    service model), shared by the work store, publishing and image sourcing; boto3's clients are
    thread-safe. A change of the AWS_* environment gets a new one. Path-style addressing is used when a
    custom endpoint is configured: S3-compatible servers on a bare host or IP expect it.
    """
    aws_env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    return _client_for(aws_env, max_pool_connections)


@functools.lru_cache(maxsize=8)
def _client_for(aws_env: tuple[tuple[str, str], ...], max_pool_connections: int) -> BaseClient:
    config = Config(
        signature_version="s3v4",
        retries={"mode": "standard"},
        max_pool_connections=max_pool_connections,
    )
    if custom_endpoint():
        config = config.merge(Config(s3={"addressing_style": "path"}))
    return boto3.session.Session().client("s3", config=config)


def presign_get(bucket: str, key: str, expires_s: int = 3600, *, client: BaseClient | None = None) -> str:
    """A presigned GET URL for s3://bucket/key, valid for `expires_s` seconds (1 s to 7 days)."""
    if not 1 <= expires_s <= MAX_PRESIGN_S:
        raise ValueError(f"expires_s must be between 1 and {MAX_PRESIGN_S}, not {expires_s}")
    client = client or s3_client()
    try:
        url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s)
        return str(url)
    except NoCredentialsError as e:
        raise PublishError(f"cannot presign {s3_uri(bucket, key)}: no AWS credentials found") from e


def error_code(e: ClientError) -> str:
    err = e.response.get("Error", {})
    return str(err.get("Code") or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "unknown")


def describe_error(e: Exception) -> str:
    """A short, credential-free description of a boto error."""
    if isinstance(e, ClientError):
        msg = e.response.get("Error", {}).get("Message") or ""
        return f"{error_code(e)}{': ' + msg if msg else ''}"
    if isinstance(e, NoCredentialsError):
        return "no AWS credentials found (set AWS_* variables or a profile)"
    return type(e).__name__ + (f": {e}" if isinstance(e, BotoCoreError) else "")


# --- checksums ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Digest:
    """What is known locally about a body: its size, SHA-256, and the checksums S3 may report for it."""

    size: int
    sha256: str  # hex
    full_b64: str
    composite_b64: str | None = None  # only when it goes up in parts

    def matches_checksum(self, remote: str | None) -> bool:
        if not remote:
            return False
        value = remote.split("-", 1)[0]  # real S3 suffixes the composite form with "-<part count>"
        return value == self.full_b64 or (self.composite_b64 is not None and value == self.composite_b64)

    def matches(self, info: ObjectInfo) -> bool:
        """Same size and same content, trusting the server's checksum, or our own metadata without one."""
        if info.size != self.size:
            return False
        if info.checksum_sha256:
            return self.matches_checksum(info.checksum_sha256)
        return info.metadata.get("sha256") == self.sha256


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def b64_of_hex(sha256_hex: str) -> str:
    """The base64 form S3 reports (ChecksumSHA256) of a hex SHA-256."""
    return _b64(bytes.fromhex(sha256_hex))


def digest_bytes(data: bytes) -> Digest:
    d = hashlib.sha256(data).digest()
    return Digest(size=len(data), sha256=d.hex(), full_b64=_b64(d))


def digest_file(path: str | Path, part_size: int | None = None) -> Digest:
    """Hash a file in one pass: the full SHA-256 and, if `part_size` is given, the composite checksum."""
    full = hashlib.sha256()
    parts: list[bytes] = []
    part = hashlib.sha256()
    in_part = 0
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            full.update(chunk)
            size += len(chunk)
            if part_size is None:
                continue
            view = memoryview(chunk)
            while view:
                take = min(len(view), part_size - in_part)
                part.update(view[:take])
                in_part += take
                view = view[take:]
                if in_part == part_size:
                    parts.append(part.digest())
                    part, in_part = hashlib.sha256(), 0
    if part_size is not None and in_part:
        parts.append(part.digest())
    d = full.digest()
    composite = _b64(hashlib.sha256(b"".join(parts)).digest()) if part_size is not None else None
    return Digest(size=size, sha256=d.hex(), full_b64=_b64(d), composite_b64=composite)


# --- objects --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    checksum_sha256: str | None
    content_type: str | None
    cache_control: str | None
    last_modified: datetime | None
    etag: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)


def head(client: BaseClient, bucket: str, key: str) -> ObjectInfo | None:
    """HEAD with checksums enabled; None when the object does not exist."""
    try:
        r = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as e:
        code = error_code(e)
        if code in ("404", "NoSuchKey", "NotFound"):
            return None
        # Without s3:ListBucket, S3 answers 403 rather than 404 for a missing key.
        hint = " (needs s3:GetObject, and s3:ListBucket to tell a missing key)" if code in _DENIED else ""
        raise PublishError(f"cannot HEAD {s3_uri(bucket, key)}: {describe_error(e)}{hint}") from e
    except BotoCoreError as e:
        raise PublishError(f"cannot HEAD {s3_uri(bucket, key)}: {describe_error(e)}") from e
    return ObjectInfo(
        size=int(r.get("ContentLength", 0)),
        checksum_sha256=r.get("ChecksumSHA256"),
        content_type=r.get("ContentType"),
        cache_control=r.get("CacheControl"),
        last_modified=r.get("LastModified"),
        etag=r.get("ETag"),
        metadata=dict(r.get("Metadata") or {}),
    )


def default_transfer_config() -> TransferConfig:
    # Measured against moto on a 2-core box: 8 MiB parts with 4 threads beat the default 10 threads.
    # "classic" keeps the part size ours, which the composite checksum check depends on.
    return TransferConfig(
        multipart_threshold=8 * MiB,
        multipart_chunksize=8 * MiB,
        max_concurrency=4,
        preferred_transfer_client="classic",
    )


def planned_part_size(transfer: TransferConfig, size: int) -> int | None:
    """The part size the transfer manager will use for a file of `size` bytes, or None for a single PUT."""
    if size < transfer.multipart_threshold:
        return None
    return int(ChunksizeAdjuster().adjust_chunksize(transfer.multipart_chunksize, size))


def _ascii_metadata(metadata: Mapping[str, str | None]) -> dict[str, str]:
    # S3 user metadata travels in HTTP headers: ASCII only.
    return {k: v.encode("ascii", "replace").decode("ascii") for k, v in metadata.items() if v is not None and v != ""}


def verify(client: BaseClient, bucket: str, key: str, digest: Digest) -> ObjectInfo:
    """HEAD the object and check that its size and checksum are the ones computed locally."""
    info = head(client, bucket, key)
    uri = s3_uri(bucket, key)
    if info is None:
        raise PublishError(f"{uri} is missing right after its upload")
    if info.size != digest.size:
        raise PublishError(f"{uri}: stored size {info.size} != local size {digest.size}")
    if not info.checksum_sha256:
        raise PublishError(f"{uri}: the server reports no SHA-256 checksum, so the upload cannot be verified")
    if not digest.matches_checksum(info.checksum_sha256):
        raise PublishError(
            f"{uri}: stored SHA-256 checksum {info.checksum_sha256} matches neither the local full-object "
            f"checksum {digest.full_b64} nor its multipart form {digest.composite_b64}"
        )
    return info


def upload_file(
    client: BaseClient,
    path: str | Path,
    bucket: str,
    key: str,
    *,
    digest: Digest,
    content_type: str,
    cache_control: str,
    metadata: Mapping[str, str | None],
    transfer: TransferConfig,
) -> ObjectInfo:
    """Upload with the transfer manager (multipart above the threshold), SHA-256 checksums, then verify.

    `digest` must come from `digest_file(path, planned_part_size(transfer, size))`.
    """
    extra: dict[str, Any] = {
        "ContentType": content_type,
        "CacheControl": cache_control,
        "ChecksumAlgorithm": "SHA256",
        "Metadata": _ascii_metadata(metadata),
    }
    log.debug("uploading %s (%d bytes) to %s", Path(path).name, digest.size, s3_uri(bucket, key))
    try:
        client.upload_file(str(path), bucket, key, ExtraArgs=extra, Config=transfer)
    except (ClientError, BotoCoreError) as e:
        raise PublishError(f"upload to {s3_uri(bucket, key)} failed: {describe_error(e)}") from e
    except Exception as e:  # s3transfer wraps failures in S3UploadFailedError (not a BotoCoreError)
        raise PublishError(f"upload to {s3_uri(bucket, key)} failed: {type(e).__name__}") from e
    return verify(client, bucket, key, digest)


def put_bytes(
    client: BaseClient,
    data: bytes,
    bucket: str,
    key: str,
    *,
    content_type: str,
    cache_control: str,
    metadata: Mapping[str, str | None],
) -> tuple[Digest, ObjectInfo]:
    """A single PUT of a small body, with its SHA-256 sent along (real S3 rejects a mismatch), then verify."""
    digest = digest_bytes(data)
    try:
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            CacheControl=cache_control,
            # Both: the algorithm makes S3 (and moto) store the checksum, the value makes S3 check it.
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=digest.full_b64,
            Metadata=_ascii_metadata(metadata),
        )
    except (ClientError, BotoCoreError) as e:
        raise PublishError(f"upload to {s3_uri(bucket, key)} failed: {describe_error(e)}") from e
    return digest, verify(client, bucket, key, digest)


def sha256_of_object(client: BaseClient, bucket: str, key: str) -> str:
    """Read an object back in chunks and hash it (hex)."""
    h = hashlib.sha256()
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(_CHUNK):
            h.update(chunk)
    except (ClientError, BotoCoreError) as e:
        raise PublishError(f"cannot read {s3_uri(bucket, key)}: {describe_error(e)}") from e
    return h.hexdigest()


def get_bytes(client: BaseClient, bucket: str, key: str) -> bytes:
    try:
        return cast(bytes, client.get_object(Bucket=bucket, Key=key)["Body"].read())
    except (ClientError, BotoCoreError) as e:
        raise PublishError(f"cannot read {s3_uri(bucket, key)}: {describe_error(e)}") from e
