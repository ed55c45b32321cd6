"""The clip cache index in the shared database: clip key -> the generated clip's record.

The clip itself lives in the work store under its sha256; with a shared store (SHOTLINE_STORE_URI=s3://...)
any host, even one with an empty SHOTLINE_HOME, finds a clip generated anywhere and pays nothing for it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from shotline.db.engine import Database
from shotline.db.tables import clips


class ClipIndex:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, clip_key: str) -> dict[str, Any] | None:
        with self.db.begin() as conn:
            return conn.execute(sa.select(clips.c.record).where(clips.c.clip_key == clip_key)).scalar()

    def put(self, clip_key: str, sha256: str, record: dict[str, Any]) -> None:
        """Record (or replace) the clip generated for `clip_key`."""
        with self.db.begin() as conn:
            values = {"sha256": sha256, "record": record, "created_at": datetime.now(UTC).isoformat()}
            if not self.db.insert_ignoring_duplicates(conn, clips, {"clip_key": clip_key, **values}):
                conn.execute(sa.update(clips).where(clips.c.clip_key == clip_key).values(**values))
