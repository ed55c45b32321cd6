"""The local working store under SHOTLINE_HOME: content-addressed files, small JSON records, scratch space.

Layout:
    objects/<sha[:2]>/<sha><suffix>   every intermediate file, named by its sha256 (never rewritten)
    records/<kind>/<key>.json         cache records and ledgers (written atomically)
    scratch/<name>-<random>/          per-task temp folders, removed when the task ends
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shotline.fsutil import atomic_path, atomic_write_bytes, atomic_write_text
from shotline.hashing import sha256_bytes, sha256_file


@dataclass(frozen=True)
class StoredObject:
    sha256: str
    path: Path

    @property
    def uri(self) -> str:
        return self.path.resolve().as_uri()


class WorkStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def object_path(self, sha256: str, suffix: str) -> Path:
        return self.root / "objects" / sha256[:2] / f"{sha256}{suffix}"

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
            if move:
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
        return self.root / "records" / kind / f"{key}.json"

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        path = self.record_path(kind, key)
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def put_record(self, kind: str, key: str, data: dict[str, Any]) -> Path:
        return atomic_write_text(self.record_path(kind, key), json.dumps(data, indent=2, sort_keys=True, default=str))

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
