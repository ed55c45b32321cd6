"""The local-folder backend of the published layout: each object written atomically, read back to verify."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from shotline.errors import PublishError
from shotline.fsutil import atomic_path
from shotline.hashing import sha256_bytes, sha256_file
from shotline.publish.layout import OnExists, PublishedObject, Publisher
from shotline.publish.verify import ObjectCheck, mismatch


class LocalPublisher(Publisher):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalPublisher({str(self.root)!r})"

    @property
    def root_uri(self) -> str:
        return self.root.as_uri()

    def uri_for(self, key: str) -> str:
        return (self.root / key).as_uri()

    def read_bytes(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.is_file() else None

    def _put_file(
        self, path: Path, key: str, *, content_type: str, on_exists: OnExists, metadata: dict[str, str | None]
    ) -> PublishedObject:
        sha = metadata.get("sha256") or sha256_file(path)
        size = path.stat().st_size

        def write(tmp: Path) -> None:
            shutil.copyfile(path, tmp)

        return self._put(key, sha, size, content_type, on_exists, write)

    def _put_bytes(
        self,
        data: bytes,
        key: str,
        *,
        content_type: str,
        on_exists: OnExists,
        metadata: dict[str, str | None],
    ) -> PublishedObject:
        def write(tmp: Path) -> None:
            tmp.write_bytes(data)

        return self._put(key, sha256_bytes(data), len(data), content_type, on_exists, write)

    def _put(
        self,
        key: str,
        sha: str,
        size: int,
        content_type: str,
        on_exists: OnExists,
        write: Callable[[Path], None],
    ) -> PublishedObject:
        dest = self.root / key
        if dest.is_file() and on_exists != "replace":
            have = sha256_file(dest)
            if on_exists == "keep" or have == sha:
                return PublishedObject(
                    uri=dest.as_uri(),
                    key=key,
                    sha256=have,
                    size=dest.stat().st_size,
                    content_type=content_type,
                    skipped=True,
                )
            if on_exists != "update":
                raise PublishError(f"{dest} exists with other content (sha256 {have}, not {sha}); not overwritten")
        try:
            with atomic_path(dest) as tmp:
                write(tmp)
        except OSError as e:
            raise PublishError(f"cannot write {dest}: {e}") from e
        return PublishedObject(uri=dest.as_uri(), key=key, sha256=sha, size=size, content_type=content_type)

    def verify_object(self, key: str, sha256: str, size: int) -> ObjectCheck:
        path = self.root / key
        uri = path.as_uri()
        if not path.is_file():
            return ObjectCheck(uri=uri, size=None, sha256=None, method="read back", problem=f"{uri} is missing")
        have_size, have_sha = path.stat().st_size, sha256_file(path)
        return ObjectCheck(
            uri=uri,
            size=have_size,
            sha256=have_sha,
            method="read back",
            problem=mismatch(uri, size, sha256, have_size, have_sha),
        )
