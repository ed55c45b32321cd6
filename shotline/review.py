"""Review: who looked at a shot's deliverable and approved or rejected it, in the shared database.

A decision is bound to the sha256 of the deliverable that was reviewed, never to the shot: any change to
what the shot delivers (a new take, a new caption, another edit) is a new sha256, awaiting review again,
while going back to an earlier take finds that take's deliverable and its decision. Decisions are kept, one
row each; a deliverable's state is its latest decision.

`decide` is the one way a decision is recorded, whether it comes from `shotline approve`/`reject` or from
the Dagster review job; it checks everything before writing anything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict

from shotline.db.engine import Database
from shotline.db.tables import review_decisions
from shotline.errors import InputError
from shotline.fal.ledger import RequestLedger
from shotline.manifest import ClipApproval
from shotline.storyboard import Storyboard, check_take
from shotline.takes import (
    PublishedTake,
    ShotSpend,
    TakeBook,
    current_deliverable,
    latest_by_take,
    spend_by_shot,
    spent_by_clip_key,
)

MAX_NOTE_CHARS = 2000
MAX_NAME_CHARS = 200


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class ReviewState(StrEnum):
    NOT_PUBLISHED = "not published"
    AWAITING = "awaiting review"
    APPROVED = "approved"
    REJECTED = "rejected"


class ReviewDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    storyboard_id: str
    shot_id: str
    take: int
    sha256: str  # of the deliverable reviewed
    decision: Decision
    note: str | None = None
    decided_by: str
    decided_at: str
    via: str  # cli | dagster


class Verdict(BaseModel):
    """Where one deliverable stands in review."""

    model_config = ConfigDict(frozen=True)

    state: ReviewState
    decision: ReviewDecision | None = None

    @property
    def approved(self) -> bool:
        return self.state == ReviewState.APPROVED

    def describe(self) -> str:
        """ "approved by ana", "rejected by ben: too dark", "awaiting review"."""
        d = self.decision
        if d is None:
            return self.state.value
        return f"{self.state.value} by {d.decided_by}" + (f": {d.note}" if d.note else "")

    def label(self) -> str:
        """Short, for a contact sheet: "approved by ana", "rejected: too dark", "awaiting review"."""
        d = self.decision
        if d is None:
            return self.state.value
        if d.decision == Decision.REJECTED:
            return f"rejected: {d.note}" if d.note else "rejected"
        return f"approved by {d.decided_by}"

    def approval(self) -> ClipApproval:
        """As a reel manifest records it."""
        d = self.decision
        return ClipApproval(
            state=self.state.value,
            decided_by=d.decided_by if d else None,
            decided_at=d.decided_at if d else None,
            note=d.note if d else None,
        )


NOT_PUBLISHED = Verdict(state=ReviewState.NOT_PUBLISHED)
AWAITING = Verdict(state=ReviewState.AWAITING)


def verdict_of(decisions: list[ReviewDecision]) -> Verdict:
    """The state given a deliverable's decisions, oldest first."""
    if not decisions:
        return AWAITING
    last = decisions[-1]
    return Verdict(state=ReviewState(last.decision.value), decision=last)


class ReviewBook:
    """The review_decisions table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        deliverable: PublishedTake,
        decision: Decision,
        *,
        note: str | None,
        by: str,
        via: str,
    ) -> ReviewDecision:
        values = {
            "storyboard_id": deliverable.storyboard_id,
            "shot_id": deliverable.shot_id,
            "take": deliverable.take,
            "sha256": deliverable.sha256,
            "decision": decision.value,
            "note": note,
            "decided_by": by,
            "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "via": via,
        }
        with self.db.begin() as conn:
            inserted = conn.execute(sa.insert(review_decisions).values(**values)).inserted_primary_key
            assert inserted is not None  # an INSERT of one row always has its key
            new_id = inserted[0]
        return ReviewDecision(id=new_id, **values)

    def decisions(self, storyboard_id: str, shot_id: str | None = None) -> list[ReviewDecision]:
        """Every decision on the storyboard's (or the shot's) deliverables, oldest first."""
        where = [review_decisions.c.storyboard_id == storyboard_id]
        if shot_id is not None:
            where.append(review_decisions.c.shot_id == shot_id)
        return self._select(*where)

    def since(self, decision_id: int, *, limit: int = 500) -> list[ReviewDecision]:
        """Decisions recorded after `decision_id`, oldest first (for whoever follows them)."""
        return self._select(review_decisions.c.id > decision_id, limit=limit)

    def verdict(self, storyboard_id: str, shot_id: str, sha256: str) -> Verdict:
        found = self._select(
            review_decisions.c.storyboard_id == storyboard_id,
            review_decisions.c.shot_id == shot_id,
            review_decisions.c.sha256 == sha256,
        )
        return verdict_of(found)

    def verdicts(self, storyboard_id: str) -> dict[tuple[str, str], Verdict]:
        """(shot id, deliverable sha256) -> its verdict, for every deliverable of the storyboard with one."""
        grouped: dict[tuple[str, str], list[ReviewDecision]] = {}
        for d in self.decisions(storyboard_id):
            grouped.setdefault((d.shot_id, d.sha256), []).append(d)
        return {key: verdict_of(found) for key, found in grouped.items()}

    def _select(self, *where: sa.ColumnElement[bool], limit: int | None = None) -> list[ReviewDecision]:
        query = sa.select(review_decisions).where(*where).order_by(review_decisions.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.db.begin() as conn:
            return [ReviewDecision.model_validate(dict(row)) for row in conn.execute(query).mappings()]


def decide(
    db: Database,
    storyboard: Storyboard,
    shot_id: str,
    decision: Decision,
    *,
    take: int | str | None = None,
    note: str | None = None,
    by: str,
    via: str,
) -> ReviewDecision:
    """Record `decision` on the deliverable of `take` (default: the take the storyboard asks for now) that
    was published last. InputError naming the storyboard, shot and value, with nothing written, for a shot
    or take that does not exist or was never generated, a rejection without a note, or an empty name."""
    shot = storyboard.shot(shot_id)  # InputError if the storyboard has no such shot

    def refused(message: str, field: str) -> InputError:
        return InputError(message, storyboard=storyboard.id, shot=shot.id, field=field)

    try:
        wanted = shot.take if take is None else check_take(take)
    except ValueError as exc:
        raise refused(str(exc), "take") from None
    note = (note or "").strip() or None
    if decision == Decision.REJECTED and note is None:
        raise refused("a rejection needs a note saying what is wrong (--note)", "note")
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise refused(f"the note is {len(note)} characters; at most {MAX_NOTE_CHARS}", "note")
    by = by.strip()
    if not by or len(by) > MAX_NAME_CHARS:
        raise refused(f"who decides must be a name of 1 to {MAX_NAME_CHARS} characters, not {by!r}", "by")
    published = latest_by_take(TakeBook(db).for_shot(storyboard.id, shot.id))
    deliverable = published.get(wanted)
    if deliverable is None:
        have = ", ".join(str(t) for t in published) or "none yet"
        raise refused(
            f"take {wanted} was never generated and published (published takes: {have}); run the shot's clip_job first",
            "take",
        )
    return ReviewBook(db).record(deliverable, decision, note=note, by=by, via=via)


class ShotReview(BaseModel):
    """One shot of a storyboard in review."""

    model_config = ConfigDict(frozen=True)

    shot_id: str
    index: int
    take: int  # the take the storyboard asks for now
    published: PublishedTake | None  # the deliverable published last (latest.json)
    verdict: Verdict
    stale: bool  # what is published is not what the storyboard asks for now: run the shot
    takes: list[int]  # takes with a published deliverable
    spend: ShotSpend

    @property
    def published_take(self) -> int | None:
        return self.published.take if self.published else None


def review_storyboard(db: Database, storyboard: Storyboard) -> list[ShotReview]:
    """Each shot's deliverable published last, its verdict, and what its takes cost (a few queries in all)."""
    rows = TakeBook(db).for_storyboard(storyboard.id)
    verdicts = ReviewBook(db).verdicts(storyboard.id)
    spend = spend_by_shot(RequestLedger(db).for_storyboard(storyboard.id))
    out = []
    for shot in storyboard.shots:
        mine = [r for r in rows if r.shot_id == shot.id]
        current = current_deliverable(mine)
        verdict = NOT_PUBLISHED if current is None else verdicts.get((shot.id, current.sha256), AWAITING)
        stale = current is not None and (
            current.take != shot.take or current.spec_sha256 != storyboard.shot_spec_hash(shot)
        )
        out.append(
            ShotReview(
                shot_id=shot.id,
                index=shot.index,
                take=shot.take,
                published=current,
                verdict=verdict,
                stale=stale,
                takes=sorted({r.take for r in mine}),
                spend=spend.get(shot.id, ShotSpend()),
            )
        )
    return out


class TakeEntry(BaseModel):
    """One take of a shot, as `shotline takes` lists it: its deliverable published last."""

    model_config = ConfigDict(frozen=True)

    take: int
    generator: str
    model: str | None
    request_id: str | None
    cost_usd: float  # every fal attempt of the take's clip (or, off fal, what its clip cost)
    generated_at: str
    sha256: str
    video_uri: str
    thumbnail_uri: str | None
    manifest_uri: str
    published_at: str
    deliverables: int  # published for this take (a new caption or edit is another)
    review: Verdict
    current: bool  # what latest.json points at


class ShotTakes(BaseModel):
    model_config = ConfigDict(frozen=True)

    storyboard_id: str
    shot_id: str
    take: int  # what the storyboard asks for now
    takes: list[TakeEntry]
    spend: ShotSpend  # every take of the shot together, from the request ledger


def takes_of_shot(db: Database, storyboard: Storyboard, shot_id: str) -> ShotTakes:
    """Every published take of the shot with its review state and cost. InputError for an unknown shot."""
    shot = storyboard.shot(shot_id)
    rows = TakeBook(db).for_shot(storyboard.id, shot.id)
    attempts = RequestLedger(db).for_storyboard(storyboard.id, shot.id)
    paid = spent_by_clip_key(attempts)
    current = current_deliverable(rows)
    book = ReviewBook(db)
    entries = []
    for take, row in latest_by_take(rows).items():
        entries.append(
            TakeEntry(
                take=take,
                generator=row.generator,
                model=row.model,
                request_id=row.request_id,
                cost_usd=paid.get(row.clip_key, row.cost_usd),
                generated_at=row.generated_at,
                sha256=row.sha256,
                video_uri=row.video_uri,
                thumbnail_uri=row.thumbnail_uri,
                manifest_uri=row.manifest_uri,
                published_at=row.published_at,
                deliverables=sum(r.take == take for r in rows),
                review=book.verdict(storyboard.id, shot.id, row.sha256),
                current=current is not None and current.sha256 == row.sha256,
            )
        )
    spend = spend_by_shot(attempts).get(shot.id, ShotSpend())
    return ShotTakes(storyboard_id=storyboard.id, shot_id=shot.id, take=shot.take, takes=entries, spend=spend)
