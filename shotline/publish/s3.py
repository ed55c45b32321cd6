"""The S3 backend of the published layout: checksummed uploads, presigned links, verification by HEAD."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient

from shotline import s3
from shotline.errors import PublishError
from shotline.hashing import sha256_bytes
from shotline.publish.layout import IMMUTABLE, NO_CACHE, OnExists, PublishedObject, Publisher
from shotline.publish.verify import ObjectCheck, mismatch

DEFAULT_URL_EXPIRES_S = 7 * 24 * 3600  # SigV4's maximum; these links are for people opening the Dagster UI


class S3Publisher(Publisher):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: BaseClient | None = None,
        *,
        transfer: TransferConfig | None = None,
        url_expires_s: int = DEFAULT_URL_EXPIRES_S,
    ) -> None:
        s3.parse_s3_uri(f"s3://{bucket}", require_key=False)  # validates the bucket name
        if not 1 <= url_expires_s <= s3.MAX_PRESIGN_S:
            raise ValueError(f"url_expires_s must be between 1 and {s3.MAX_PRESIGN_S}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client or s3.s3_client()
        self.transfer = transfer or s3.default_transfer_config()
        self.url_expires_s = url_expires_s

    def __repr__(self) -> str:
        return f"S3Publisher({self.root_uri!r})"

    @property
    def root_uri(self) -> str:
        return s3.s3_uri(self.bucket, self.prefix + "/" if self.prefix else "")

    def object_key(self, key: str) -> str:
        return s3.join_key(self.prefix, key)

    def uri_for(self, key: str) -> str:
        return s3.s3_uri(self.bucket, self.object_key(key))

    def read_bytes(self, key: str) -> bytes | None:
        if s3.head(self.client, self.bucket, self.object_key(key)) is None:
            return None
        return s3.get_bytes(self.client, self.bucket, self.object_key(key))

    def _existing(self, key: str, info: s3.ObjectInfo, content_type: str) -> PublishedObject:
        okey = self.object_key(key)
        # Our own uploads carry their sha256 in metadata; anything else is read back and hashed.
        sha = info.metadata.get("sha256") or sha256_bytes(s3.get_bytes(self.client, self.bucket, okey))
        return PublishedObject(
            uri=s3.s3_uri(self.bucket, okey),
            key=key,
            sha256=sha,
            size=info.size,
            content_type=info.content_type or content_type,
            skipped=True,
        )

    def _put_file(
        self, path: Path, key: str, *, content_type: str, on_exists: OnExists, metadata: dict[str, str | None]
    ) -> PublishedObject:
        okey = self.object_key(key)
        size = path.stat().st_size
        digest = s3.digest_file(path, s3.planned_part_size(self.transfer, size))
        info = s3.head(self.client, self.bucket, okey) if on_exists != "replace" else None
        if info is not None:
            if on_exists == "keep" or digest.matches(info):
                return self._existing(key, info, content_type)
            raise PublishError(
                f"{s3.s3_uri(self.bucket, okey)} exists with other content "
                f"(size {info.size}, checksum {info.checksum_sha256}); not overwritten"
            )
        s3.upload_file(
            self.client,
            path,
            self.bucket,
            okey,
            digest=digest,
            content_type=content_type,
            cache_control=IMMUTABLE,
            metadata={**metadata, "sha256": digest.sha256},
            transfer=self.transfer,
        )
        return PublishedObject(
            uri=s3.s3_uri(self.bucket, okey),
            key=key,
            sha256=digest.sha256,
            size=size,
            content_type=content_type,
        )

    def _put_bytes(
        self,
        data: bytes,
        key: str,
        *,
        content_type: str,
        on_exists: OnExists,
        metadata: dict[str, str | None],
    ) -> PublishedObject:
        okey = self.object_key(key)
        if on_exists != "replace":
            info = s3.head(self.client, self.bucket, okey)
            if info is not None:
                if on_exists == "keep" or s3.digest_bytes(data).matches(info):
                    return self._existing(key, info, content_type)
                if on_exists != "update":
                    raise PublishError(f"{s3.s3_uri(self.bucket, okey)} exists with other content; not overwritten")
        digest, _ = s3.put_bytes(
            self.client,
            data,
            self.bucket,
            okey,
            content_type=content_type,
            cache_control=NO_CACHE if on_exists in ("replace", "update") else IMMUTABLE,
            metadata={**metadata, "sha256": sha256_bytes(data)},
        )
        return PublishedObject(
            uri=s3.s3_uri(self.bucket, okey),
            key=key,
            sha256=digest.sha256,
            size=digest.size,
            content_type=content_type,
        )

    def _presign(self, obj: PublishedObject) -> PublishedObject:
        expires_at = datetime.now(UTC) + timedelta(seconds=self.url_expires_s)
        url = s3.presign_get(self.bucket, self.object_key(obj.key), self.url_expires_s, client=self.client)
        return obj.model_copy(update={"url": url, "url_expires_at": expires_at})

    def verify_object(self, key: str, sha256: str, size: int) -> ObjectCheck:
        okey = self.object_key(key)
        uri = s3.s3_uri(self.bucket, okey)
        info = s3.head(self.client, self.bucket, okey)
        if info is None:
            return ObjectCheck(uri=uri, size=None, sha256=None, method="checksum", problem=f"{uri} is missing")
        if info.size != size:
            return ObjectCheck(
                uri=uri,
                size=info.size,
                sha256=None,
                method="checksum",
                problem=f"{uri} is {info.size} bytes, expected {size}",
            )
        if info.checksum_sha256 and s3.Digest(size, sha256, s3.b64_of_hex(sha256)).matches_checksum(
            info.checksum_sha256
        ):
            return ObjectCheck(uri=uri, size=info.size, sha256=sha256, method="checksum")
        # A multipart upload reports a composite checksum (of the parts' digests), and an object written by
        # another tool may report none: hash what is stored instead.
        have = s3.sha256_of_object(self.client, self.bucket, okey)
        return ObjectCheck(
            uri=uri,
            size=info.size,
            sha256=have,
            method="read back",
            problem=mismatch(uri, size, sha256, info.size, have),
        )
