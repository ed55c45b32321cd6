"""Takes and review decisions in the shared database, on SQLite and on a real PostgreSQL server: a decision
is bound to one deliverable's sha256, visible from another host's connection, and a refused decision writes
nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from shotline.db import Database, open_database
from shotline.db.engine import sqlite_url
from shotline.errors import InputError
from shotline.review import Decision, ReviewBook, ReviewState, decide, review_storyboard
from shotline.storyboard import Storyboard, load_storyboard
from shotline.takes import PublishedTake, TakeBook, current_deliverable, latest_by_take
from testkit.postgres_server import Postgres
from testkit.storyboard_factory import write_storyboard
from testkit.takes_kit import two_shots

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "home")
    postgres: Postgres = request.getfixturevalue("postgres")
    return postgres.url(postgres.create_database())


def another_host(url: str) -> Database:
    """A second, independent connection to the same database, as another run host has."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return Database(sa.create_engine(parsed))


def published(take: int, sha: str, minutes: int) -> PublishedTake:
    at = (T0 + timedelta(minutes=minutes)).isoformat()
    return PublishedTake(
        storyboard_id="takes",
        shot_id="s01",
        take=take,
        sha256=sha * 64,
        clip_key=f"key-{take}",
        raw_sha256="r" * 64,
        generator="fal",
        request_id=f"req-{take}",
        cost_usd=0.17,
        generated_at=at,
        spec_sha256="s" * 64,
        video_uri=f"file:///published/takes/s01/{sha * 12}.mp4",
        manifest_uri=f"file:///published/takes/s01/{sha * 12}.json",
        first_published_at=at,
        published_at=at,
    )


@pytest.fixture
def storyboard(tmp_path: Path) -> Storyboard:
    images = {"images/s01.png": (64, 64), "images/s02.png": (64, 64)}
    return load_storyboard(write_storyboard(tmp_path / "storyboards", two_shots(), images=images))


def test_a_decision_binds_to_one_deliverable_and_every_host_sees_it(database_url: str, storyboard: Storyboard) -> None:
    db = open_database(database_url)
    takes = TakeBook(db)
    takes.record(published(1, "a", 0))
    takes.record(published(2, "b", 1))
    approved = decide(db, storyboard, "s01", Decision.APPROVED, take=1, note="good", by="ana", via="cli")
    assert (approved.take, approved.sha256) == (1, "a" * 64)

    elsewhere = ReviewBook(another_host(database_url))
    assert elsewhere.verdict("takes", "s01", "a" * 64).state == ReviewState.APPROVED
    assert elsewhere.verdict("takes", "s01", "b" * 64).state == ReviewState.AWAITING  # another deliverable
    decide(db, storyboard, "s01", Decision.REJECTED, take=2, note="soft focus", by="ben", via="dagster")
    assert [(d.take, d.decision, d.via) for d in elsewhere.decisions("takes")] == [
        (1, Decision.APPROVED, "cli"),
        (2, Decision.REJECTED, "dagster"),
    ]
    assert [d.decided_by for d in elsewhere.since(approved.id)] == ["ben"]

    # take 2 is what latest.json points at; going back to take 1 republishes its deliverable: approved again
    [shot] = [r for r in review_storyboard(db, storyboard) if r.shot_id == "s01"]
    assert (shot.published_take, shot.verdict.state, shot.takes) == (2, ReviewState.REJECTED, [1, 2])
    takes.record(published(1, "a", 2))
    rows = takes.for_shot("takes", "s01")
    assert len(rows) == 2 and current_deliverable(rows).sha256 == "a" * 64
    assert rows[-1].first_published_at == published(1, "a", 0).published_at
    assert list(latest_by_take(rows)) == [1, 2]
    [shot] = [r for r in review_storyboard(db, storyboard) if r.shot_id == "s01"]
    assert (shot.published_take, shot.verdict.state) == (1, ReviewState.APPROVED)


@pytest.mark.parametrize(
    ("shot", "take", "decision", "note", "by", "says"),
    [
        ("s09", None, Decision.APPROVED, None, "ana", "shot 's09': no shot 's09'"),
        ("s01", 0, Decision.APPROVED, None, "ana", "shot 's01', field 'take': take 0 is not a take"),
        ("s01", -3, Decision.APPROVED, None, "ana", "field 'take': take -3 is not a take"),
        ("s01", "x", Decision.APPROVED, None, "ana", "field 'take': take 'x' is not a whole number"),
        ("s01", 5, Decision.APPROVED, None, "ana", "take 5 was never generated and published (published takes: 1)"),
        ("s02", None, Decision.APPROVED, None, "ana", "shot 's02', field 'take': take 1 was never generated"),
        ("s01", None, Decision.REJECTED, " ", "ana", "field 'note': a rejection needs a note"),
        ("s01", None, Decision.APPROVED, "x" * 2001, "ana", "field 'note': the note is 2001 characters"),
        ("s01", None, Decision.APPROVED, None, "", "field 'by'"),
    ],
)
def test_a_refused_decision_names_storyboard_shot_and_value_and_writes_nothing(
    tmp_path: Path,
    storyboard: Storyboard,
    shot: str,
    take: object,
    decision: Decision,
    note: str | None,
    by: str,
    says: str,
) -> None:
    db = open_database(sqlite_url(tmp_path / "home"))
    TakeBook(db).record(published(1, "a", 0))
    with pytest.raises(InputError) as refused:
        decide(db, storyboard, shot, decision, take=take, note=note, by=by, via="cli")
    assert str(refused.value).startswith("storyboard 'takes', shot ") and says in str(refused.value)
    assert ReviewBook(db).decisions("takes") == []
