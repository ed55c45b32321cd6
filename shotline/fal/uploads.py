"""The still a fal request points at: uploaded to fal storage once per distinct image, reused by sha256.

The access URL is kept in the shared database (`fal_uploads`), so every host reuses one upload; before a
kept URL is sent it is checked to still serve (fal's CDN files follow the account's expiry), and uploaded
again if not. Tiny images go inline as data URIs, which fal accepts and advises only for a few KB.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from shotline.db.engine import Database
from shotline.db.tables import fal_uploads
from shotline.fal.storage import DATA_URI_MAX_BYTES, FalStorage, data_uri

LogFn = Callable[[str], None]


class StillUploads:
    def __init__(self, db: Database, storage_factory: Callable[[], FalStorage]) -> None:
        self.db = db
        self._storage_factory = storage_factory

    def url_for(self, data: bytes, sha256: str, mime: str, log: LogFn) -> str:
        if len(data) <= DATA_URI_MAX_BYTES:
            return data_uri(data, mime)
        with self._storage_factory() as storage:
            kept = self._kept(sha256)
            if kept is not None and storage.is_serving(kept):
                return kept
            if kept is not None:
                log(f"fal storage: the upload of still {sha256[:12]} stopped serving; uploading it again")
            suffix = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(mime, "bin")
            url = storage.upload(data, mime, f"{sha256[:16]}.{suffix}")
        self._keep(sha256, url)
        log(f"fal storage: uploaded still {sha256[:12]} ({len(data):,} bytes)")
        return url

    def _kept(self, sha256: str) -> str | None:
        with self.db.begin() as conn:
            return conn.execute(
                sa.select(fal_uploads.c.access_url).where(fal_uploads.c.image_sha256 == sha256)
            ).scalar()

    def _keep(self, sha256: str, url: str) -> None:
        values = {"access_url": url, "via": "fal-storage", "uploaded_at": datetime.now(UTC).isoformat()}
        with self.db.begin() as conn:
            if not self.db.insert_ignoring_duplicates(conn, fal_uploads, {"image_sha256": sha256, **values}):
                conn.execute(sa.update(fal_uploads).where(fal_uploads.c.image_sha256 == sha256).values(**values))
