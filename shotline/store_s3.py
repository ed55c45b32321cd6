"""The shared working store on S3, with a bounded local cache.

Objects live at `<prefix>/objects/<sha[:2]>/<sha><suffix>`, records at `<prefix>/records/<kind>/<key>.json`.
Every host keeps copies of the objects it used in `<home>/cache/objects/...` (same layout), at most
SHOTLINE_CACHE_MAX_BYTES of them: the least recently used go first, never one used in the last ten minutes.
The cache (or all of SHOTLINE_HOME) may be deleted at any time: whatever is missing comes back from S3,
checked against its sha256 on the way in.

Hits and evictions take a lock file in the cache (shared for a hit, exclusive for an eviction), so a file is
never evicted between the moment a hit refreshes it and the moment its path is handed out.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import mimetypes
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from shotline import s3
from shotline.errors import PublishError
from shotline.fsutil import atomic_path
from shotline.hashing import sha256_file
from shotline.store import (
    DEFAULT_MIN_CACHE_AGE_S,
    HOME_VARIABLE,
    STORE_VARIABLE,
    StoreConfigError,
    StoredObject,
    StoreError,
    WorkStore,
    check_writable,
    record_json,
    record_object,
    redact_uri,
)

log = logging.getLogger(__name__)

IMMUTABLE = "public, max-age=31536000, immutable"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SUFFIX = re.compile(r"^(\.[A-Za-z0-9_-]+)*$")
_MISSING = ("404", "NoSuchKey", "NotFound")
_DENIED = ("403", "AccessDenied", "Forbidden", "AllAccessDisabled")
# a temp file nobody has written to for this long belongs to a process that died
STALE_TEMP_S = 3600.0
PROBE_BODY = b'{"probe": "shotline working store"}\n'


# --- the local cache ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CachedFile:
    path: Path
    size: int
    used_at: float  # mtime: refreshed on every hit


class ObjectCache:
    """Local copies of stored objects, bounded to `max_bytes` (least recently used evicted first)."""

    def __init__(self, root: Path, *, max_bytes: int, min_age_s: float = DEFAULT_MIN_CACHE_AGE_S) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.min_age_s = min_age_s

    def path(self, sha256: str, suffix: str) -> Path:
        return self.root / "objects" / sha256[:2] / f"{sha256}{suffix}"

    def hit(self, path: Path) -> bool:
        """Mark a cached file as just used; False when it is not cached."""
        with self._lock(fcntl.LOCK_SH):
            try:
                os.utime(path)
            except FileNotFoundError:
                return False
        return path.is_file()

    def place(self, dest: Path, fill: Callable[[Path], object]) -> None:
        """Put a file at `dest` atomically: `fill` writes (or moves) it to the temp path it is given."""
        with atomic_path(dest) as tmp:
            fill(tmp)
            os.utime(tmp)  # a moved file keeps its old mtime: it must not look unused the moment it lands

    def size(self) -> int:
        return sum(f.size for f in self._files())

    def evict(self, *, keep: Path | None = None) -> int:
        """Bring the cache under `max_bytes`; returns the bytes freed. `keep` is never evicted."""
        if self.size() <= self.max_bytes:
            return 0
        freed = 0
        with self._lock(fcntl.LOCK_EX):
            files = list(self._files())
            total = sum(f.size for f in files)
            now = time.time()
            for f in sorted(files, key=lambda f: f.used_at):
                if total <= self.max_bytes:
                    break
                if f.path == keep or now - f.used_at < self._min_age(f.path):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    f.path.unlink()
                    total -= f.size
                    freed += f.size
        if freed:
            log.debug("cache %s: evicted %d bytes, %d left", self.root, freed, total)
        return freed

    def _min_age(self, path: Path) -> float:
        # temp files of downloads or puts in progress (possibly in another process) are left alone for longer
        return max(self.min_age_s, STALE_TEMP_S) if path.name.startswith(".") else self.min_age_s

    def _files(self) -> Iterator[_CachedFile]:
        objects = self.root / "objects"
        try:
            shards = list(os.scandir(objects))
        except FileNotFoundError:
            return
        for shard in shards:
            try:
                entries = list(os.scandir(shard.path))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if entry.is_file(follow_symlinks=False):
                    yield _CachedFile(Path(entry.path), st.st_size, st.st_mtime)

    @contextlib.contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        # recreated when the cache was deleted: a lock on a deleted file only excludes its old holders
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+") as handle:
            fcntl.flock(handle.fileno(), mode)
            yield


# --- the store ------------------------------------------------------------------------------------------


class S3WorkStore(WorkStore):
    """The working store in `s3://bucket/prefix`; `root` is the host's SHOTLINE_HOME (cache and scratch)."""

    def __init__(
        self,
        uri: str,
        home: str | Path,
        *,
        cache_max_bytes: int,
        min_cache_age_s: float = DEFAULT_MIN_CACHE_AGE_S,
        client: BaseClient | None = None,
        transfer: TransferConfig | None = None,
    ) -> None:
        super().__init__(home, setting=STORE_VARIABLE)
        self.bucket, self.prefix = _parse(uri)
        self.cache = ObjectCache(self.root / "cache", max_bytes=cache_max_bytes, min_age_s=min_cache_age_s)
        self.transfer = transfer or s3.default_transfer_config()
        self._client = client

    @property
    def client(self) -> BaseClient:
        if self._client is None:
            self._client = s3.s3_client()
        return self._client

    @property
    def location(self) -> str:
        return s3.s3_uri(self.bucket, self.prefix + "/" if self.prefix else "")

    # --- configuration check ---

    def check(self) -> None:
        """Reach the bucket and write, then read, a small probe object; check the local cache is writable.
        Raises StoreConfigError naming the variable to fix (never a credential)."""
        where = f"{STORE_VARIABLE}={self.location}"
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            code = s3.error_code(e)
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise StoreConfigError(f"{where}: bucket {self.bucket!r} does not exist") from None
            if code in _DENIED:
                raise StoreConfigError(
                    f"{where}: no permission to use bucket {self.bucket!r} "
                    "(the store needs s3:ListBucket, s3:GetObject and s3:PutObject)"
                ) from None
            raise StoreConfigError(f"{where}: cannot reach bucket {self.bucket!r}: {s3.describe_error(e)}") from None
        except (BotoCoreError, NoCredentialsError) as e:
            raise StoreConfigError(f"{where}: cannot reach S3: {s3.describe_error(e)}") from None
        self._probe(where)
        check_writable(self.cache.root, HOME_VARIABLE)

    def _probe(self, where: str) -> None:
        key = s3.join_key(self.prefix, "_probe", "check.json")
        step = "write"
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=PROBE_BODY, ChecksumAlgorithm="SHA256")
            step = "read"
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as e:
            denied = " (no permission)" if s3.error_code(e) in _DENIED else ""
            raise StoreConfigError(
                f"{where}: cannot {step} the probe object {s3.s3_uri(self.bucket, key)}{denied}: {s3.describe_error(e)}"
            ) from None
        except BotoCoreError as e:
            raise StoreConfigError(f"{where}: cannot {step} the probe object: {s3.describe_error(e)}") from None
        if body != PROBE_BODY:
            raise StoreConfigError(f"{where}: the probe object {s3.s3_uri(self.bucket, key)} read back altered")

    # --- objects ---

    def object_key(self, sha256: str, suffix: str) -> str:
        return s3.join_key(self.prefix, "objects", sha256[:2], f"{sha256}{suffix}")

    def object_path(self, sha256: str, suffix: str) -> Path:
        """The object's place in the local cache (it may not be there: use `get`)."""
        return self.cache.path(sha256, suffix)

    def object_uri(self, sha256: str, suffix: str) -> str:
        return s3.s3_uri(self.bucket, self.object_key(sha256, suffix))

    def exists(self, sha256: str, suffix: str) -> bool:
        if not _valid(sha256, suffix):
            return False
        if self.cache.path(sha256, suffix).is_file():
            return True
        with _store_errors():
            return s3.head(self.client, self.bucket, self.object_key(sha256, suffix)) is not None

    def get(self, sha256: str, suffix: str) -> StoredObject | None:
        """The object as a local file (downloaded into the cache and checked when not there), or None."""
        if not _valid(sha256, suffix):
            return None
        path = self.cache.path(sha256, suffix)
        if not self.cache.hit(path) and not self._download(sha256, suffix, path):
            return None
        self.cache.evict(keep=path)
        return self._stored(sha256, suffix, path)

    def put_file(self, src: str | Path, suffix: str | None = None, *, move: bool = True) -> StoredObject:
        """Upload a file under its sha256 (unless S3 has it already) and keep it in the cache. `move`
        consumes `src`; a failed upload leaves it in place."""
        src = Path(src)
        suffix = src.suffix if suffix is None else suffix
        _check_suffix(suffix)
        digest = s3.digest_file(src, s3.planned_part_size(self.transfer, src.stat().st_size))
        self._upload_if_missing(digest, suffix, lambda key: self._upload_file(src, key, digest, suffix))
        dest = self.cache.path(digest.sha256, suffix)
        if self.cache.hit(dest):
            if move and src.resolve() != dest.resolve():
                src.unlink(missing_ok=True)
        elif move:
            self.cache.place(dest, lambda tmp: shutil.move(str(src), tmp))
        else:
            self.cache.place(dest, lambda tmp: shutil.copyfile(src, tmp))
        self.cache.evict(keep=dest)
        return self._stored(digest.sha256, suffix, dest)

    def put_bytes(self, data: bytes, suffix: str) -> StoredObject:
        _check_suffix(suffix)
        digest = s3.digest_bytes(data)
        self._upload_if_missing(digest, suffix, lambda key: self._upload_bytes(data, key, digest, suffix))
        dest = self.cache.path(digest.sha256, suffix)
        if not self.cache.hit(dest):
            self.cache.place(dest, lambda tmp: tmp.write_bytes(data))
        self.cache.evict(keep=dest)
        return self._stored(digest.sha256, suffix, dest)

    def _stored(self, sha256: str, suffix: str, path: Path) -> StoredObject:
        return StoredObject(sha256, path, remote_uri=self.object_uri(sha256, suffix))

    def _upload_if_missing(self, digest: s3.Digest, suffix: str, upload: Callable[[str], None]) -> None:
        key = self.object_key(digest.sha256, suffix)
        with _store_errors():
            info = s3.head(self.client, self.bucket, key)
        if info is not None and _same_content(digest, info):
            return
        if info is not None:
            log.warning("%s does not hold what its name says: uploading it again", s3.s3_uri(self.bucket, key))
        with _store_errors():
            upload(key)

    def _upload_file(self, src: Path, key: str, digest: s3.Digest, suffix: str) -> None:
        s3.upload_file(
            self.client,
            src,
            self.bucket,
            key,
            digest=digest,
            content_type=_content_type(suffix),
            cache_control=IMMUTABLE,
            metadata={"sha256": digest.sha256},
            transfer=self.transfer,
        )

    def _upload_bytes(self, data: bytes, key: str, digest: s3.Digest, suffix: str) -> None:
        s3.put_bytes(
            self.client,
            data,
            self.bucket,
            key,
            content_type=_content_type(suffix),
            cache_control=IMMUTABLE,
            metadata={"sha256": digest.sha256},
        )

    def _download(self, sha256: str, suffix: str, dest: Path) -> bool:
        """Fetch the object into the cache, refusing it unless its content hashes to its name."""
        key = self.object_key(sha256, suffix)
        uri = s3.s3_uri(self.bucket, key)
        try:
            with atomic_path(dest) as tmp:
                self._download_to(key, uri, tmp)
                got = sha256_file(tmp)
                if got != sha256:
                    raise StoreError(
                        f"{uri} is corrupt: its content has sha256 {got[:12]}..., not the {sha256[:12]}... it is "
                        "named by. Not used; delete the object and rematerialize the asset that made it"
                    )
                os.utime(tmp)
        except _Missing:
            return False
        log.debug("fetched %s into the cache", uri)
        return True

    def _download_to(self, key: str, uri: str, tmp: Path) -> None:
        try:
            self.client.download_file(self.bucket, key, str(tmp), Config=self.transfer)
        except ClientError as e:
            code = s3.error_code(e)
            if code in _MISSING:
                raise _Missing from None
            hint = " (needs s3:GetObject, and s3:ListBucket to tell a missing key)" if code in _DENIED else ""
            raise StoreError(f"cannot fetch {uri}: {s3.describe_error(e)}{hint}") from None
        except BotoCoreError as e:
            raise StoreError(f"cannot fetch {uri}: {s3.describe_error(e)}") from None
        except Exception as e:  # s3transfer wraps some failures in its own exceptions
            raise StoreError(f"cannot fetch {uri}: {type(e).__name__}") from None

    # --- records ---

    def record_key(self, kind: str, key: str) -> str:
        return s3.join_key(self.prefix, "records", kind, f"{key}.json")

    def record_uri(self, kind: str, key: str) -> str:
        return s3.s3_uri(self.bucket, self.record_key(kind, key))

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        okey = self.record_key(kind, key)
        try:
            # ChecksumMode makes botocore check the body against the SHA-256 stored with it
            body = self.client.get_object(Bucket=self.bucket, Key=okey, ChecksumMode="ENABLED")["Body"].read()
        except ClientError as e:
            if s3.error_code(e) in _MISSING:
                return None
            raise StoreError(f"cannot read {s3.s3_uri(self.bucket, okey)}: {s3.describe_error(e)}") from None
        except BotoCoreError as e:
            raise StoreError(f"cannot read {s3.s3_uri(self.bucket, okey)}: {s3.describe_error(e)}") from None
        try:
            data = json.loads(body)
        except ValueError as e:
            raise StoreError(f"{s3.s3_uri(self.bucket, okey)} is not valid JSON: {e}") from None
        return record_object(data, s3.s3_uri(self.bucket, okey))

    def put_record(self, kind: str, key: str, data: dict[str, Any]) -> str:
        """One PUT (atomic on S3: readers see the old record or the new one), checked by its SHA-256."""
        with _store_errors():
            s3.put_bytes(
                self.client,
                record_json(data).encode(),
                self.bucket,
                self.record_key(kind, key),
                content_type="application/json",
                cache_control="no-cache",
                metadata={},
            )
        return self.record_uri(kind, key)


class _Missing(Exception):
    """The object is not in the bucket."""


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    # shotline.s3 reports failures as PublishError; from the store they are store errors
    try:
        yield
    except PublishError as e:
        raise StoreError(str(e)) from None


def _parse(uri: str) -> tuple[str, str]:
    try:
        bucket, prefix = s3.parse_s3_uri(uri, require_key=False)
    except s3.S3UriError:
        raise StoreConfigError(
            f"{STORE_VARIABLE} must be s3://bucket/prefix with a valid bucket name (3-63 lowercase letters, "
            f"digits, '.' or '-'), not {redact_uri(uri)!r}"
        ) from None
    return bucket, prefix.strip("/")


def _same_content(digest: s3.Digest, info: s3.ObjectInfo) -> bool:
    # An upload from a host with another part size reports another composite checksum: our own sha256
    # metadata (written only after a verified upload) settles it.
    return digest.matches(info) or (info.size == digest.size and info.metadata.get("sha256") == digest.sha256)


def _valid(sha256: str, suffix: str) -> bool:
    return bool(_SHA256.match(sha256)) and bool(_SUFFIX.match(suffix))


def _check_suffix(suffix: str) -> None:
    if not _SUFFIX.match(suffix):
        raise ValueError(f"a stored object's suffix must look like '.mp4' or '.prompt.json', not {suffix!r}")


def _content_type(suffix: str) -> str:
    guessed, _ = mimetypes.guess_type(f"object{suffix}")
    return guessed or "application/octet-stream"
