"""The production ledger of a storyboard: one row per clip (status, generator, request id, cost, cache hit,
where it is published, when it last changed, its current take and what all its takes cost) and the
storyboard's totals, as JSON and CSV. A shot's takes are counted from the request ledger: every take paid for
counts, discarded ones included, so the total is what the storyboard really cost.

The rows are built from facts the orchestrator knows (the latest materializations of a shot, its latest
run); deciding a status from them is here, so it is the same wherever it is shown. `publish_ledger` builds the
ledger from those facts and publishes it beside the clips (`<storyboard_id>/ledger.csv|json`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shotline.publish import PublishedObject, Publisher
from shotline.storyboard import Storyboard
from shotline.takes import ShotSpend, spend_by_shot

if TYPE_CHECKING:
    from shotline.fal.ledger import LedgerEntry

LEDGER_SCHEMA_VERSION = 1
CSV_NAME = "ledger.csv"
JSON_NAME = "ledger.json"
TOTAL_ROW = "(total)"

Status = Literal["published", "stale", "failed", "running", "pending"]
STATUS_HELP: dict[str, str] = {
    "published": "published, and the storyboard still asks for exactly this clip",
    "stale": "published, but the shot's spec has changed since: a rerun is due",
    "failed": "the latest run for the shot failed (an earlier clip may still be published)",
    "running": "a run for the shot is queued or in progress",
    "pending": "never published and nothing running",
}
# Dagster run statuses, as strings so this module needs no Dagster.
_IN_FLIGHT = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "MANAGED"}
_FAILED = {"FAILURE", "CANCELED", "CANCELING"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LedgerRow(_Model):
    storyboard_id: str
    shot_id: str
    shot_index: int
    status: Status
    generator: str | None = Field(description="fal or preview")
    model: str | None
    request_id: str | None = Field(description="fal request id")
    cost_usd: float | None = Field(description="what generating this clip cost (0 when preview)")
    cache_hit: bool | None = Field(description="the latest generation step reused an earlier clip")
    take: int = Field(1, description="the take the storyboard asks for now")
    takes_paid: int = Field(0, description="takes of the shot with a billed (or possibly billed) fal request")
    takes_cost_usd: float = Field(
        0.0, description="what every take of the shot cost on fal, discarded takes and billed failures included"
    )
    published_uri: str | None
    manifest_uri: str | None
    sha256: str | None = Field(description="of the published video")
    updated_at: str | None = Field(description="ISO time of the latest event for the shot")
    run_id: str | None = Field(description="the run behind the status")


class LedgerTotals(_Model):
    shots: int
    published: int
    stale: int
    failed: int
    running: int
    pending: int
    cache_hits: int
    cost_usd: float = Field(description="sum of the clips' generation costs")
    takes_paid: int = Field(0, description="takes paid for, every shot together")
    takes_cost_usd: float = Field(
        0.0, description="what the storyboard really cost on fal: every take of every shot, discarded ones included"
    )


class ProductionLedger(_Model):
    schema_version: int = LEDGER_SCHEMA_VERSION
    storyboard_id: str
    title: str
    rows: list[LedgerRow]
    totals: LedgerTotals


class RunFacts(_Model):
    run_id: str
    status: str  # a Dagster run status name
    at: float  # unix time of its last update


class EventFacts(_Model):
    run_id: str | None
    at: float  # unix time
    metadata: dict[str, Any]


class ShotFacts(_Model):
    """What the orchestrator knows of one shot: its latest published_clip and raw_clip materializations and
    its latest run."""

    published: EventFacts | None = None
    raw: EventFacts | None = None
    last_run: RunFacts | None = None


class PublishedLedger(BaseModel):
    """A ledger as published: the document, and ledger.json and ledger.csv where they now are."""

    model_config = ConfigDict(frozen=True)

    ledger: ProductionLedger
    json_document: PublishedObject
    csv_document: PublishedObject


def publish_ledger(
    storyboard: Storyboard,
    facts: Mapping[str, ShotFacts],
    requests: Iterable[LedgerEntry],
    publisher: Publisher,
) -> PublishedLedger:
    """The storyboard's ledger from `facts` (by shot id) and its fal `requests` (every take paid for), published
    as ledger.json and ledger.csv (each rewritten only when it changed)."""
    spend = spend_by_shot(requests)
    rows = []
    for shot in storyboard.shots:
        known = facts.get(shot.id) or ShotFacts()
        rows.append(
            ledger_row(
                storyboard.id,
                shot.id,
                shot.index,
                spec_sha256=storyboard.shot_spec_hash(shot),
                published=known.published,
                raw=known.raw,
                last_run=known.last_run,
                take=shot.take,
                spend=spend.get(shot.id),
            )
        )
    ledger = build_ledger(storyboard.id, storyboard.title, rows)
    as_json = publisher.put_document(storyboard.id, JSON_NAME, to_json(ledger))
    as_csv = publisher.put_document(storyboard.id, CSV_NAME, to_csv(ledger))
    return PublishedLedger(ledger=ledger, json_document=as_json, csv_document=as_csv)


def ledger_row(
    storyboard_id: str,
    shot_id: str,
    shot_index: int,
    *,
    spec_sha256: str,
    published: EventFacts | None,
    raw: EventFacts | None,
    last_run: RunFacts | None,
    take: int = 1,
    spend: ShotSpend | None = None,
) -> LedgerRow:
    """One shot's row. `published` and `raw` are its latest published_clip and raw_clip materializations,
    `last_run` its latest clip run; `spec_sha256` and `take` what the storyboard asks for now; `spend` what
    all its takes cost (shotline.takes.spend_by_shot)."""
    spend = spend or ShotSpend()
    status: Status
    behind = last_run.run_id if last_run else None
    if last_run and last_run.status in _IN_FLIGHT:
        status = "running"
    elif last_run and last_run.status in _FAILED and (published is None or last_run.at > published.at):
        status = "failed"
    elif published is None:
        status, behind = "pending", None
    else:
        recorded = published.metadata.get("spec_sha256")
        status = "published" if recorded is None or recorded == spec_sha256 else "stale"
        behind = published.run_id
    times = [e.at for e in (published, raw, last_run) if e is not None]
    pmd = published.metadata if published else {}
    rmd = raw.metadata if raw else {}
    cost = rmd.get("original_cost_usd", rmd.get("cost_usd"))
    return LedgerRow(
        storyboard_id=storyboard_id,
        shot_id=shot_id,
        shot_index=shot_index,
        status=status,
        generator=rmd.get("generator"),
        model=rmd.get("model"),
        request_id=rmd.get("fal_request_id"),
        cost_usd=None if cost is None else round(float(cost), 4),
        cache_hit=rmd.get("cache_hit"),
        take=take,
        takes_paid=spend.takes_paid,
        takes_cost_usd=spend.cost_usd,
        published_uri=pmd.get("uri"),
        manifest_uri=pmd.get("manifest_uri"),
        sha256=pmd.get("sha256"),
        updated_at=datetime.fromtimestamp(max(times), UTC).isoformat(timespec="seconds") if times else None,
        run_id=behind,
    )


def build_ledger(storyboard_id: str, title: str, rows: list[LedgerRow]) -> ProductionLedger:
    rows = sorted(rows, key=lambda r: r.shot_index)
    count = {s: sum(r.status == s for r in rows) for s in STATUS_HELP}
    return ProductionLedger(
        storyboard_id=storyboard_id,
        title=title,
        rows=rows,
        totals=LedgerTotals(
            shots=len(rows),
            published=count["published"],
            stale=count["stale"],
            failed=count["failed"],
            running=count["running"],
            pending=count["pending"],
            cache_hits=sum(bool(r.cache_hit) for r in rows),
            cost_usd=round(sum(r.cost_usd or 0.0 for r in rows), 2),
            takes_paid=sum(r.takes_paid for r in rows),
            takes_cost_usd=round(sum(r.takes_cost_usd for r in rows), 2),
        ),
    )


COLUMNS = [name for name in LedgerRow.model_fields if name != "shot_index"]


def to_json(ledger: ProductionLedger) -> bytes:
    return (json.dumps(ledger.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n").encode()


def to_csv(ledger: ProductionLedger) -> bytes:
    """One row per clip in shot order, then a last row whose shot_id is `(total)`: the storyboard's totals
    (status counts in `status`, cost summed). Scripts should read ledger.json, which has them apart."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in ledger.rows:
        writer.writerow({k: _cell(v) for k, v in row.model_dump(include=set(COLUMNS)).items()})
    t = ledger.totals
    counts = ", ".join(f"{n} {s}" for s in STATUS_HELP if (n := getattr(t, s)))
    writer.writerow(
        {
            "storyboard_id": ledger.storyboard_id,
            "shot_id": TOTAL_ROW,
            "status": f"{t.shots} shots: {counts}" if counts else f"{t.shots} shots",
            "cost_usd": f"{t.cost_usd:.2f}",
            "cache_hit": f"{t.cache_hits} cache hits",
            "takes_paid": str(t.takes_paid),
            "takes_cost_usd": f"{t.takes_cost_usd:.2f}",
        }
    )
    return out.getvalue().encode()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def table_rows(ledger: ProductionLedger) -> list[Mapping[str, str | int | float | bool | None]]:
    """The rows as flat records (for a table in a UI)."""
    return [row.model_dump(include=set(COLUMNS)) for row in ledger.rows]
