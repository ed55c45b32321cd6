"""The working store: content-addressed files, small JSON records, scratch space.

`open_store` picks the backend from SHOTLINE_STORE_URI: a local folder (SHOTLINE_HOME by default), or
`s3://bucket/prefix` shared by every run host, each keeping only a bounded local cache
(shotline.store_s3). Both have one layout:

    objects/<sha[:2]>/<sha><suffix>   every intermediate file, named by its sha256 (never rewritten)
    records/<kind>/<key>.json         cache records and ledgers (written atomically)
    scratch/<name>-<random>/          per-task temp folders, removed when the task ends (always local)
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from shotline.errors import ConfigError, ShotlineError
from shotline.fsutil import atomic_path, atomic_write_bytes, atomic_write_text
from shotline.hashing import sha256_bytes, sha256_file

STORE_VARIABLE = "SHOTLINE_STORE_URI"
HOME_VARIABLE = "SHOTLINE_HOME"
CACHE_VARIABLE = "SHOTLINE_CACHE_MAX_BYTES"
# a cached file used this recently is never evicted: a caller may still be reading it
DEFAULT_MIN_CACHE_AGE_S = 600.0

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class StoreError(ShotlineError):
    """The working store could not read or write something (the message names the object and the error)."""


class StoreConfigError(ConfigError, StoreError):
    """The working store is misconfigured: the message and `field` name the environment variable to fix."""

    def __init__(self, message: str, *, variable: str = STORE_VARIABLE) -> None:
        super().__init__(message, field=variable)


@dataclass(frozen=True)
class StoredObject:
    """A stored file: `path` is always a local file (for a shared store, its copy in the local cache)."""

    sha256: str
    path: Path
    remote_uri: str | None = None  # s3://... when the object lives in a shared store

    @property
    def uri(self) -> str:
        return self.remote_uri or self.path.resolve().as_uri()


class WorkStore:
    """The local store: everything under one folder (`root`), which must not be wiped while in use."""

    def __init__(self, root: str | Path, *, setting: str = HOME_VARIABLE) -> None:
        self.root = Path(root).resolve()
        self.setting = setting  # the variable that chose this store, for error messages

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    @property
    def location(self) -> str:
        """Where the objects and records live, for messages: a folder or an s3:// prefix."""
        return str(self.root)

    def check(self) -> None:
        """Fail now, with the variable to fix, if the store cannot be written (call before spending money)."""
        check_writable(self.root, self.setting)

    def object_path(self, sha256: str, suffix: str) -> Path:
        return self.root / "objects" / sha256[:2] / f"{sha256}{suffix}"

    def object_uri(self, sha256: str, suffix: str) -> str:
        """The object's lasting address for metadata and lineage (not necessarily a local file)."""
        return self.object_path(sha256, suffix).as_uri()

    def exists(self, sha256: str, suffix: str) -> bool:
        """Whether the object is stored, without fetching it."""
        return self.object_path(sha256, suffix).is_file()

    def get(self, sha256: str, suffix: str) -> StoredObject | None:
        path = self.object_path(sha256, suffix)
        return StoredObject(sha256, path) if path.is_file() else None

    def put_file(self, src: str | Path, suffix: str | None = None, *, move: bool = True) -> StoredObject:
        """Add a file under its sha256. `move` consumes `src` (it should be a scratch file)."""
        src = Path(src)
        suffix = src.suffix if suffix is None else suffix
        sha = sha256_file(src)
        dest = self.object_path(sha, suffix)
        if dest.is_file():
            if move and src.resolve() != dest:
                src.unlink(missing_ok=True)
            return StoredObject(sha, dest)
        with atomic_path(dest) as tmp:
            if move:
                shutil.move(str(src), tmp)
            else:
                shutil.copyfile(src, tmp)
        return StoredObject(sha, dest)

    def put_bytes(self, data: bytes, suffix: str) -> StoredObject:
        sha = sha256_bytes(data)
        dest = self.object_path(sha, suffix)
        if not dest.is_file():
            atomic_write_bytes(dest, data)
        return StoredObject(sha, dest)

    def record_path(self, kind: str, key: str) -> Path:
        """A local file for the record. For a shared store it is host-local (locks, legacy ledgers): the
        record itself is at `record_uri`."""
        return self.root / "records" / kind / f"{key}.json"

    def record_uri(self, kind: str, key: str) -> str:
        """Where the record lives, for messages."""
        return self.record_path(kind, key).as_uri()

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        path = self.record_path(kind, key)
        if not path.is_file():
            return None
        return record_object(json.loads(path.read_text()), path.as_uri())

    def put_record(self, kind: str, key: str, data: dict[str, Any]) -> str:
        """Write the record atomically; returns `record_uri`."""
        atomic_write_text(self.record_path(kind, key), record_json(data))
        return self.record_uri(kind, key)

    @contextlib.contextmanager
    def scratch(self, name: str) -> Iterator[Path]:
        """A private temp folder for one task (one partition), removed afterwards whatever happens."""
        base = self.root / "scratch"
        base.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


def record_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)


def open_store(
    store_uri: str,
    home: str | Path,
    *,
    cache_max_bytes: int,
    min_cache_age_s: float = DEFAULT_MIN_CACHE_AGE_S,
) -> WorkStore:
    """The working store SHOTLINE_STORE_URI names: "" = the local folder `home`; a folder (or file:// URI)
    = a local store there; `s3://bucket/prefix` = the shared store, cached under `<home>/cache`.

    Only the configuration is checked here (offline); `check()` on the result reaches the store."""
    uri = store_uri.strip()
    if not uri:
        return WorkStore(home, setting=HOME_VARIABLE)
    if uri.startswith("s3://"):
        if cache_max_bytes < 1:
            raise StoreConfigError(
                f"{CACHE_VARIABLE} must be at least 1 byte, not {cache_max_bytes}", variable=CACHE_VARIABLE
            )
        from shotline.store_s3 import S3WorkStore  # boto3 is only imported when it is needed

        return S3WorkStore(uri, home, cache_max_bytes=cache_max_bytes, min_cache_age_s=min_cache_age_s)
    return WorkStore(_local_folder(uri), setting=STORE_VARIABLE)


def redact_uri(uri: str) -> str:
    """A URI fit for a message: user info (which could hold a key) dropped."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def _local_folder(uri: str) -> Path:
    if uri.startswith("file://"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise StoreConfigError(f"{STORE_VARIABLE}: a file:// URI must name a local folder, not {redact_uri(uri)!r}")
        return Path(unquote(parts.path))
    if _SCHEME.match(uri):
        raise StoreConfigError(
            f"{STORE_VARIABLE} must be an s3://bucket/prefix URI or a local folder, not {redact_uri(uri)!r}"
        )
    path = Path(uri).expanduser()
    if path.exists() and not path.is_dir():
        raise StoreConfigError(f"{STORE_VARIABLE}={uri!r} is a file, not a folder")
    return path


def check_writable(folder: Path, setting: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as e:
        raise StoreConfigError(
            f"{setting}: cannot write to {folder}: {e.strerror or type(e).__name__}", variable=setting
        ) from None


def record_object(data: object, where: str) -> dict[str, Any]:
    """A stage record as read back: a JSON object, or a StoreError naming where it came from."""
    if not isinstance(data, dict):
        raise StoreError(f"{where} holds {type(data).__name__}, not a JSON object")
    return data
