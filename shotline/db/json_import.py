"""Import the JSON ledgers earlier versions kept under SHOTLINE_HOME/records, once and idempotently.

    records/fal-requests/<clip_key>.json   a clip's last attempt, earlier ones in `previous`
    records/budget/<day>.json              {"committed": {id: {...}}, "reserved": {id: {...}}}
    records/clips/<clip_key>.json          the clip cache index

Rows are keyed as they were (clip key + attempt, reservation id, clip key), so importing again, or from
several hosts' homes into one database, adds nothing twice. A marker file then skips the scan.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shotline.db.engine import Database
from shotline.db.tables import budget_days, budget_entries, clips, fal_requests
from shotline.fsutil import atomic_write_text
from shotline.hashing import stable_hash

_LEDGER_COLUMNS = {c.name for c in fal_requests.columns} - {"id"}


def import_json_records(db: Database, home: Path) -> int:
    """Import what `home/records` holds into `db`; returns how many rows were added."""
    records = home / "records"
    if not records.is_dir():
        return 0
    marker = records / f".imported-{stable_hash(repr(db))[:12]}"
    if marker.is_file():
        return 0
    added = 0
    with db.begin() as conn:
        for path in sorted((records / "fal-requests").glob("*.json")):
            added += _import_ledger(db, conn, json.loads(path.read_text()))
        for path in sorted((records / "budget").glob("*.json")):
            added += _import_budget(db, conn, path.stem, json.loads(path.read_text()))
        for path in sorted((records / "clips").glob("*.json")):
            record = json.loads(path.read_text())
            row = {"clip_key": path.stem, "sha256": record.get("sha256", ""), "record": record, "created_at": _now()}
            added += db.insert_ignoring_duplicates(conn, clips, row)
    atomic_write_text(marker, f"imported {added} rows at {_now()}\n")
    return added


def _import_ledger(db: Database, conn: sa.Connection, last: dict[str, Any]) -> int:
    clip_key = str(last["clip_key"])
    exists = conn.execute(sa.select(sa.func.count()).where(fal_requests.c.clip_key == clip_key)).scalar()
    if exists:
        return 0
    attempts = [*last.get("previous", []), last]
    for number, old in enumerate(attempts, start=1):
        row = {k: v for k, v in old.items() if k in _LEDGER_COLUMNS}
        reservation = old.get("budget_reservation")
        state = str(old.get("state", "failed"))
        if state == "cancelled" and old.get("billed"):
            # earlier versions took an accepted cancel for the end; fal may have run it: follow it again
            state = "cancel_requested"
        row.update(
            attempt=number,
            state=state,
            origin="imported",
            parameters=old.get("parameters") or {},
            timings=old.get("timings") or {},
            estimated_cost_usd=float(old.get("estimated_cost_usd") or 0.0),
            budget_reservation=reservation.get("id") if isinstance(reservation, dict) else None,
            sent_at=old.get("created_at"),
            host=old.get("host") or "",
            pid=int(old.get("pid") or 0),
            created_at=old.get("created_at") or _now(),
            updated_at=old.get("updated_at") or _now(),
        )
        conn.execute(sa.insert(fal_requests).values(**row))
    return len(attempts)


def _import_budget(db: Database, conn: sa.Connection, day: str, ledger: dict[str, Any]) -> int:
    db.insert_ignoring_duplicates(conn, budget_days, {"day": day})
    added = 0
    for state in ("committed", "reserved"):
        for rid, item in (ledger.get(state) or {}).items():
            row = {
                "id": rid,
                "day": day,
                "clip_key": str(item.get("clip_key", "")),
                "amount_cents": int(Decimal(str(item.get("amount", "0"))) * 100),
                "state": state,
                "at": str(item.get("at") or _now()),
            }
            added += db.insert_ignoring_duplicates(conn, budget_entries, row)
    return added


def _now() -> str:
    return datetime.now(UTC).isoformat()
