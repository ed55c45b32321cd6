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
from assets.presentation import ledger_summary
from assets.resources import PublisherResource, WorkspaceResource
from assets.upstream import write_record
from shotline.ledger import RequestLedger
from shotline.production_ledger import (
    COLUMNS,
    CSV_NAME,
    JSON_NAME,
    STATUS_HELP,
    EventFacts,
    LedgerRow,
    RunFacts,
    build_ledger,
    ledger_row,
    table_rows,
    to_csv,
    to_json,
)
from shotline.stage_records import ProductionLedgerRecord
from shotline.storyboard import partition_key
from shotline.takes import spend_by_shot

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
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    record = records[0]
    metadata = {name: value.value for name, value in record.asset_materialization.metadata.items()}
    return EventFacts(run_id=record.run_id, at=record.timestamp, metadata=metadata)


def latest_run(instance: dg.DagsterInstance, key: str) -> RunFacts | None:
    """The latest run of any job for partition `key` (a shot's: storyboard partitions have no `__`)."""
    records = instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/partition": key}), limit=1)
    if not records:
        return None
    record = records[0]
    at = record.end_time or record.update_timestamp.timestamp()
    return RunFacts(run_id=record.dagster_run.run_id, status=record.dagster_run.status.value, at=at)


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
    instance = context.instance
    with dagster_failures():
        storyboard = workspace.storyboard(context.partition_key)
        spend = spend_by_shot(RequestLedger(workspace.database()).for_storyboard(storyboard.id))
        rows = []
        for shot in storyboard.shots:
            key = partition_key(storyboard.id, shot.id)
            rows.append(
                ledger_row(
                    storyboard.id,
                    shot.id,
                    shot.index,
                    spec_sha256=storyboard.shot_spec_hash(shot),
                    published=latest_event(instance, "published_clip", key),
                    raw=latest_event(instance, "raw_clip", key),
                    last_run=latest_run(instance, key),
                    take=shot.take,
                    spend=spend.get(shot.id),
                )
            )
        ledger = build_ledger(storyboard.id, storyboard.title, rows)
        body = to_json(ledger)
        pub = publisher.publisher()
        as_json = pub.put_document(storyboard.id, JSON_NAME, body)
        as_csv = pub.put_document(storyboard.id, CSV_NAME, to_csv(ledger))
        record = write_record(
            workspace.store(),
            ProductionLedgerRecord(
                ledger=ledger, json_document=as_json.without_link(), csv_document=as_csv.without_link()
            ),
        )
    t = ledger.totals
    metadata: dict[str, object] = {
        **ledger_summary(storyboard.title, t),
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
        **record,
    }
    if as_csv.url:
        metadata["csv_url"] = dg.MetadataValue.url(as_csv.url)
    if as_json.url:
        metadata["json_url"] = dg.MetadataValue.url(as_json.url)
    if as_json.url_expires_at:
        metadata["url_expires_at"] = dg.MetadataValue.timestamp(as_json.url_expires_at)
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(as_json.sha256))
