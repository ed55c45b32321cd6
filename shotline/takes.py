"""Takes: every deliverable published for a shot, by take, in the shared database; and what a shot's takes
cost, from the request ledger.

A take is one generation of a shot (`take: N` in the storyboard, part of the clip key from take 2 on). Each
deliverable published for it (a take refinished with a new caption or edit is a new deliverable) is one row,
keyed by its sha256; publishing the same deliverable again (going back to an earlier take) only moves its
`published_at`, so the row published last is the one the shot's latest.json points at.

Cost comes from the request ledger, not from these rows: every fal attempt of every clip key the shot had,
billed or possibly billed, discarded takes and paid failures included.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict

from shotline.db.engine import Database
from shotline.db.tables import shot_takes
from shotline.fal.ledger import LedgerEntry
from shotline.generators.cache import GeneratedClipFacts
from shotline.publish import PublishedClip


class PublishedTake(BaseModel):
    """One deliverable of a take, as published."""

    model_config = ConfigDict(frozen=True)

    storyboard_id: str
    shot_id: str
    take: int
    sha256: str  # of the deliverable
    clip_key: str
    raw_sha256: str
    generator: str
    model: str | None = None
    request_id: str | None = None
    cost_usd: float  # what generating the take's clip cost when it was made
    generated_at: str
    spec_sha256: str
    duration_s: float | None = None  # of the deliverable
    video_uri: str
    thumbnail_uri: str | None = None
    thumbnail_sha256: str | None = None
    manifest_uri: str
    first_published_at: str
    published_at: str

    @classmethod
    def of(
        cls,
        clip: GeneratedClipFacts,
        published: PublishedClip,
        *,
        spec_sha256: str,
        duration_s: float | None = None,
    ) -> PublishedTake:
        """The row for a deliverable (`duration_s` long) just published from the generated clip `clip`."""
        at = published.published_at.isoformat()
        return cls(
            storyboard_id=published.storyboard_id,
            shot_id=published.shot_id,
            take=clip.take,
            sha256=published.sha256,
            clip_key=clip.clip_key,
            raw_sha256=clip.sha256,
            generator=clip.result.generator,
            model=clip.result.model,
            request_id=clip.result.request_id,
            cost_usd=clip.result.cost_usd,
            generated_at=clip.generated_at,
            spec_sha256=spec_sha256,
            duration_s=duration_s,
            video_uri=published.video.uri,
            thumbnail_uri=published.thumbnail_uri,
            thumbnail_sha256=published.thumbnail.sha256 if published.thumbnail else None,
            manifest_uri=published.manifest.uri,
            first_published_at=at,
            published_at=at,
        )


class TakeBook:
    """The shot_takes table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, take: PublishedTake) -> PublishedTake:
        """Record a publication: a new row, or for a deliverable published before, its new `published_at`."""
        key = (
            shot_takes.c.storyboard_id == take.storyboard_id,
            shot_takes.c.shot_id == take.shot_id,
            shot_takes.c.sha256 == take.sha256,
        )
        with self.db.begin() as conn:
            if not self.db.insert_ignoring_duplicates(conn, shot_takes, take.model_dump()):
                conn.execute(sa.update(shot_takes).where(*key).values(published_at=take.published_at))
            row = conn.execute(sa.select(shot_takes).where(*key)).mappings().one()
        return _take(row)

    def for_shot(self, storyboard_id: str, shot_id: str) -> list[PublishedTake]:
        """Every deliverable of the shot, in the order they were last published (latest.json's last)."""
        return self._select(shot_takes.c.storyboard_id == storyboard_id, shot_takes.c.shot_id == shot_id)

    def for_storyboard(self, storyboard_id: str) -> list[PublishedTake]:
        return self._select(shot_takes.c.storyboard_id == storyboard_id)

    def deliverable(self, storyboard_id: str, shot_id: str, sha256: str) -> PublishedTake | None:
        found = self._select(
            shot_takes.c.storyboard_id == storyboard_id,
            shot_takes.c.shot_id == shot_id,
            shot_takes.c.sha256 == sha256,
        )
        return found[0] if found else None

    def _select(self, *where: sa.ColumnElement[bool]) -> list[PublishedTake]:
        query = sa.select(shot_takes).where(*where).order_by(shot_takes.c.published_at, shot_takes.c.id)
        with self.db.begin() as conn:
            return [_take(row) for row in conn.execute(query).mappings()]


def _take(row: sa.RowMapping) -> PublishedTake:
    return PublishedTake.model_validate({k: v for k, v in row.items() if k != "id"})


def latest_by_take(rows: Iterable[PublishedTake]) -> dict[int, PublishedTake]:
    """Each take's deliverable published last, by take number (rows as `TakeBook` returns them, in order)."""
    latest: dict[int, PublishedTake] = {}
    for row in rows:
        latest[row.take] = row
    return dict(sorted(latest.items()))


def current_deliverable(rows: list[PublishedTake]) -> PublishedTake | None:
    """The deliverable published last: the one the shot's latest.json points at."""
    return rows[-1] if rows else None


class ShotSpend(BaseModel):
    """What a shot's generations cost, every take together."""

    model_config = ConfigDict(frozen=True)

    takes_paid: int = 0  # clip keys with a billed (or possibly billed) fal request
    cost_usd: float = 0.0
    requests: int = 0  # fal attempts, whatever their outcome


def spent(entries: Iterable[LedgerEntry]) -> float:
    """What attempts cost: billed or possibly billed ones (as RequestLedger.spent_usd counts them)."""
    return round(sum(e.cost_usd or 0.0 for e in entries if e.billed is not False), 2)


def spent_by_clip_key(entries: Iterable[LedgerEntry]) -> dict[str, float]:
    """What each clip key's attempts cost."""
    by_key: dict[str, list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        by_key[entry.clip_key].append(entry)
    return {key: spent(attempts) for key, attempts in by_key.items()}


def spend_by_shot(entries: Iterable[LedgerEntry]) -> dict[str, ShotSpend]:
    """Per shot id, from a storyboard's ledger entries (`RequestLedger.for_storyboard`)."""
    by_shot: dict[str, dict[str, list[LedgerEntry]]] = defaultdict(lambda: defaultdict(list))
    for entry in entries:
        by_shot[entry.shot_id][entry.clip_key].append(entry)
    out = {}
    for shot_id, by_key in by_shot.items():
        costs = [spent(attempts) for attempts in by_key.values()]
        out[shot_id] = ShotSpend(
            takes_paid=sum(cost > 0 for cost in costs),
            cost_usd=round(sum(costs), 2),
            requests=sum(len(attempts) for attempts in by_key.values()),
        )
    return out
