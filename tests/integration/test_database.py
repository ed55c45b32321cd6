"""The shared database itself: migrations (idempotent, concurrent, beside Dagster's own tables), the
one-time import of earlier JSON ledgers, leases (exclusive, taken over only once expired, fenced), and the
budget under concurrent reservations, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from shotline.budget import Budget
from shotline.clip_index import ClipIndex
from shotline.db import open_database
from shotline.db.engine import MIGRATIONS, Database, migrate, sqlite_url
from shotline.db.json_import import import_json_records
from shotline.db.leases import ClipLeases, LeaseLost
from shotline.db.tables import VERSION_TABLE
from shotline.errors import BudgetExceeded
from shotline.fal.ledger import LedgerState, RequestLedger
from testkit.postgres_server import Postgres

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "home")
    postgres: Postgres = request.getfixturevalue("postgres")
    return postgres.url(postgres.create_database())


def test_many_processes_migrating_at_once_end_with_one_current_schema(database_url: str) -> None:
    code = f"from shotline.db import open_database; open_database({database_url!r}); print('ok')"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == b"ok", err.decode()[-2000:]
    db = open_database(database_url)
    with db.begin() as conn:
        versions = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    assert versions == ["0002"]  # the newest migration (0002: takes and review)
    migrate(db)  # again: nothing to do


def test_the_schema_lives_beside_dagsters_own_alembic_table(tmp_path: Path) -> None:
    engine = sa.create_engine(sqlite_url(tmp_path))
    with engine.begin() as conn:  # what Dagster's own storage leaves in a shared database
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('29b539ebc72a')"))
    db = open_database(sqlite_url(tmp_path))
    with db.begin() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "29b539ebc72a"
    assert "fal_requests" in sa.inspect(db.engine).get_table_names()


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def old_records(home: Path) -> None:
    """What an earlier version left under SHOTLINE_HOME/records (JSON files)."""
    records = home / "records"
    for kind in ("fal-requests", "budget", "clips"):
        (records / kind).mkdir(parents=True)
    first = {
        "clip_key": "k1",
        "state": "failed",
        "storyboard_id": "sb",
        "shot_id": "s01",
        "model": "m",
        "parameters": {"duration": 2, "resolution": "480p"},
        "created_at": "2026-11-20T10:00:00+00:00",
        "updated_at": "2026-11-20T10:01:00+00:00",
        "request_id": "r-old",
        "billed": False,
        "retryable": True,
        "error_type": "runner_disconnected",
        "estimated_cost_usd": 0.17,
    }
    last = {
        **first,
        "state": "completed",
        "request_id": "r-new",
        "billed": True,
        "cost_usd": 0.17,
        "video_sha256": "ab" * 32,
        "previous": [first],
    }
    (records / "fal-requests" / "k1.json").write_text(json.dumps(last))
    budget = {
        "day": "2026-11-20",
        "committed": {"res1": {"clip_key": "k1", "amount": "0.17", "at": "x"}},
        "reserved": {},
    }
    (records / "budget" / "2026-11-20.json").write_text(json.dumps(budget))
    (records / "clips" / "k1.json").write_text(json.dumps({"sha256": "ab" * 32, "clip_key": "k1"}))


def test_earlier_json_ledgers_are_imported_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    old_records(home)
    db = open_database(sqlite_url(home))
    assert import_json_records(db, home) == 4
    assert import_json_records(db, home) == 0  # the marker
    for marker in (home / "records").glob(".imported-*"):
        marker.unlink()
    assert import_json_records(db, home) == 0  # and the rows themselves: nothing twice
    attempts = RequestLedger(db).attempts("k1")
    assert [(a.attempt, a.state, a.request_id) for a in attempts] == [
        (1, LedgerState.FAILED, "r-old"),
        (2, LedgerState.COMPLETED, "r-new"),
    ]
    assert all(a.origin == "imported" for a in attempts)
    assert Budget(db, None).spend("2026-11-20").committed == Decimal("0.17")
    assert ClipIndex(db).get("k1") == {"sha256": "ab" * 32, "clip_key": "k1"}


def test_a_lease_is_exclusive_and_taken_over_only_once_expired(database_url: str) -> None:
    db = open_database(database_url)
    leases = ClipLeases(db, lease_s=1.0)
    order: list[str] = []
    with leases.hold("clip") as first:
        waiting = threading.Thread(target=lambda: _take(leases, order))
        waiting.start()
        time.sleep(1.5)  # longer than the lease: the holder renews it, so it is not taken over
        order.append("first done")
        with db.begin() as conn:
            first.holds(conn)
    waiting.join(timeout=30)
    assert order == ["first done", "second"]


def _take(leases: ClipLeases, order: list[str]) -> None:
    with leases.hold("clip"):
        order.append("second")


def test_a_dead_workers_lease_expires_and_the_old_holder_is_fenced_out(database_url: str) -> None:
    db = open_database(database_url)
    stalled = ClipLeases(db, lease_s=0.5, clock=lambda: 0.0)  # its renewals say it is 1970: long expired
    # a live worker takes the expired clip over
    with stalled.hold("clip") as old, ClipLeases(db, lease_s=30).hold("clip"):
        with pytest.raises(LeaseLost), db.begin() as conn:
            old.holds(conn)
        ledger = RequestLedger(db)
        with pytest.raises(LeaseLost):
            ledger.begin_submit(
                old,
                clip_key="clip",
                storyboard_id="sb",
                shot_id="s",
                model="m",
                parameters={},
                input_sha256="0",
                image_sha256="0",
                estimated_cost_usd=0.17,
            )
        assert ledger.attempts("clip") == []  # nothing recorded, nothing to pay


def _reserve_many(db: Database, n: int, results: list[bool]) -> None:
    budget = Budget(db, "1.00")
    for i in range(n):
        try:
            budget.reserve(Decimal("0.17"), f"clip-{threading.get_ident()}-{i}")
            results.append(True)
        except BudgetExceeded:
            results.append(False)


def test_concurrent_reservations_never_overshoot_the_cap(database_url: str) -> None:
    db = open_database(database_url)
    results: list[bool] = []
    threads = [threading.Thread(target=_reserve_many, args=(db, 5, results)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results.count(True) == 5  # 5 x $0.17 = $0.85 <= $1.00 < 6 x $0.17
    spend = Budget(db, "1.00").spend()
    assert spend.reserved == Decimal("0.85") and spend.left == Decimal("0.15")
