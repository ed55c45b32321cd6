"""production_ledger: per storyboard, one row per clip (status, generator, request id, cost, cache hit,
published URI, updated time, current take, takes paid for and their cost) with the storyboard's totals,
discarded takes included; a table in the UI, ledger.csv and ledger.json published beside the clips
(`<storyboard_id>/ledger.csv|json`).

Partitioned by storyboard, like the reel: its files live in the storyboard's folder, a run reads only that
storyboard's shots (a few queries per shot, whatever the size of the catalogue), and refreshing one
storyboard never rewrites another's ledger.
"""

import dagster as dg

from assets.failures import dagster_failures
from assets.partitions import storyboards
from assets.presentation import ledger_summary, link_metadata
from assets.resources import PublisherResource, WorkspaceResource
from assets.upstream import latest_materialization, metadata_values, write_record
from shotline.fal.ledger import RequestLedger
from shotline.production_ledger import (
    COLUMNS,
    STATUS_HELP,
    EventFacts,
    LedgerRow,
    PublishedLedger,
    RunFacts,
    ShotFacts,
    publish_ledger,
    table_rows,
)
from shotline.stage_records import ProductionLedgerRecord
from shotline.storyboard import partition_key

CODE_VERSION = "2"  # 2: current take, takes paid for and their cost (from the request ledger)
_TYPES = {
    "shot_index": "int",
    "cost_usd": "float",
    "cache_hit": "bool",
    "take": "int",
    "takes_paid": "int",
    "takes_cost_usd": "float",
}


def latest_event(instance: dg.DagsterInstance, asset: str, key: str) -> EventFacts | None:
    """The latest materialization of `asset` for partition `key`: when, by which run, and its metadata.

    The ledger reports what Dagster recorded (runs, times and the documented metadata keys), so it reads
    events, not stage records: it also shows shots materialized before stage records existed."""
    record = latest_materialization(instance, asset, key)
    if record is None or record.asset_materialization is None:
        return None
    return EventFacts(run_id=record.run_id, at=record.timestamp, metadata=metadata_values(record.asset_materialization))


def latest_run(instance: dg.DagsterInstance, key: str) -> RunFacts | None:
    """The latest run of any job for partition `key` (a shot's: storyboard partitions have no `__`)."""
    records = instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/partition": key}), limit=1)
    if not records:
        return None
    record = records[0]
    at = record.end_time or record.update_timestamp.timestamp()
    return RunFacts(run_id=record.dagster_run.run_id, status=record.dagster_run.status.value, at=at)


def shot_facts(instance: dg.DagsterInstance, key: str) -> ShotFacts:
    """What Dagster knows of the shot with partition `key`, for its ledger row."""
    return ShotFacts(
        published=latest_event(instance, "published_clip", key),
        raw=latest_event(instance, "raw_clip", key),
        last_run=latest_run(instance, key),
    )


def ledger_table(rows: list[dict]) -> dg.TableMetadataValue:
    columns = [
        dg.TableColumn(
            name,
            _TYPES.get(name, "string"),
            description=(LedgerRow.model_fields[name].description if name != "status" else _status_help()),
        )
        for name in COLUMNS
    ]
    return dg.MetadataValue.table(records=[dg.TableRecord(r) for r in rows], schema=dg.TableSchema(columns=columns))


def _status_help() -> str:
    return "; ".join(f"{s}: {h}" for s, h in STATUS_HELP.items())


def ledger_metadata(published: PublishedLedger) -> dict[str, object]:
    """The totals for people, then the documents' URIs, the table and every total under its machine key, then
    the presigned links to ledger.csv and ledger.json (S3)."""
    ledger, as_json, as_csv = published.ledger, published.json_document, published.csv_document
    t = ledger.totals
    return {
        **ledger_summary(ledger.title, t),
        "uri": as_json.uri,
        "sha256": as_json.sha256,
        "csv_uri": as_csv.uri,
        "ledger": ledger_table(table_rows(ledger)),
        "total_cost_usd": t.cost_usd,
        "shots": t.shots,
        "published": t.published,
        "stale": t.stale,
        "failed": t.failed,
        "running": t.running,
        "pending": t.pending,
        "cache_hits": t.cache_hits,
        "takes_paid": t.takes_paid,
        "takes_cost_usd": t.takes_cost_usd,
    }


@dg.asset(
    partitions_def=storyboards,
    code_version=CODE_VERSION,
    group_name="reels",
    kinds={"csv", "s3"},
    deps=[dg.AssetDep("published_clip", partition_mapping=dg.AllPartitionMapping())],
    description="What each clip of the storyboard is (status, take, generator, fal request, cost, where it is "
    "published) and what the storyboard cost, as a table here and as ledger.csv and ledger.json beside the clips.",
)
def production_ledger(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, publisher: PublisherResource
) -> dg.MaterializeResult:
    with dagster_failures():
        storyboard = workspace.storyboard(context.partition_key)
        facts = {
            shot.id: shot_facts(context.instance, partition_key(storyboard.id, shot.id)) for shot in storyboard.shots
        }
        requests = RequestLedger(workspace.database()).for_storyboard(storyboard.id)
        published = publish_ledger(storyboard, facts, requests, publisher.publisher())
        as_json, as_csv = published.json_document, published.csv_document
        record = write_record(
            workspace.store(),
            ProductionLedgerRecord(
                ledger=published.ledger, json_document=as_json.without_link(), csv_document=as_csv.without_link()
            ),
        )
    links = link_metadata(as_json.url_expires_at, csv_url=as_csv.url, json_url=as_json.url)
    metadata = ledger_metadata(published) | record | links
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(as_json.sha256))
