"""How stages hand each other what they made: each materialization carries the key of its stage record
(shotline.stage_records) in the working store, and the next stage reads that record, typed, by key.

Materializations from before stage records (no `record_key`) are refused with a message saying which asset
to re-materialize (for raw_clip that reuses the cached clip: no new paid request).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import dagster as dg

from shotline.stage_records import StageRecord, StageRecordError
from shotline.store import WorkStore

RECORD_KEY = "record_key"
RECORD_KIND = "record_kind"

R = TypeVar("R", bound=StageRecord)


def write_record(store: WorkStore, record: StageRecord) -> dict[str, str]:
    """Store the stage's record; returns the metadata entries that point at it."""
    return {RECORD_KIND: record.kind, RECORD_KEY: record.write(store)}


def upstream_record(context: dg.AssetExecutionContext, store: WorkStore, record_type: type[R]) -> R:
    """The record of the latest materialization of `record_type`'s stage for this run's partition."""
    key = context.partition_key
    record = latest_record(context.instance, store, record_type, key)
    if record is None:
        raise dg.Failure(
            description=f"{record_type.stage} has no materialization for partition {key!r}: materialize it first",
            allow_retries=False,
        )
    return record


def latest_record(instance: dg.DagsterInstance, store: WorkStore, record_type: type[R], partition_key: str) -> R | None:
    """The record of the latest materialization of `record_type`'s stage for the partition; None if it was
    never materialized. StageRecordError if that materialization has no readable record."""
    record = latest_materialization(instance, record_type.stage, partition_key)
    if record is None or record.asset_materialization is None:
        return None
    return record_type.read(store, _record_key(record.asset_materialization, record_type, partition_key))


def latest_metadata_or_none(instance: dg.DagsterInstance, asset: str, partition_key: str) -> dict[str, Any] | None:
    """The metadata values of the latest materialization, for what is shown rather than handed on (sensors,
    the demo's summary)."""
    record = latest_materialization(instance, asset, partition_key)
    if record is None or record.asset_materialization is None:
        return None
    return metadata_values(record.asset_materialization)


def latest_materialization(instance: dg.DagsterInstance, asset: str, partition_key: str) -> dg.EventLogRecord | None:
    """The event log record of the latest materialization of `asset` for the partition (its storage id, run,
    time and materialization); None if it was never materialized."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition_key]), limit=1
    ).records
    return records[0] if records else None


def metadata_values(materialization: dg.AssetMaterialization) -> dict[str, Any]:
    """A materialization's metadata as plain values."""
    return {name: value.value for name, value in materialization.metadata.items()}


def _record_key(materialization: dg.AssetMaterialization, record_type: type[StageRecord], partition_key: str) -> str:
    stage = record_type.stage
    entry, kind = materialization.metadata.get(RECORD_KEY), materialization.metadata.get(RECORD_KIND)
    if entry is None:
        raise StageRecordError(
            f"the latest {stage} materialization of partition {partition_key!r} has no {RECORD_KEY} (it predates "
            f"stage records): re-materialize {stage} for that partition"
        )
    if kind is not None and kind.value != record_type.kind:
        raise StageRecordError(
            f"the latest {stage} materialization of partition {partition_key!r} records a {kind.value!r}, "
            f"not a {record_type.kind!r}: re-materialize {stage}"
        )
    return str(entry.value)


def latest_metadata_by_partition(
    instance: dg.DagsterInstance, asset: str, partition_keys: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The metadata values of the latest materialization of each partition that has one, in two queries
    whatever the number of partitions (a sensor reads a whole storyboard's shots at once)."""
    if not partition_keys:
        return {}
    key = dg.AssetKey(asset)
    latest = instance.get_latest_storage_id_by_partition(
        key, dg.DagsterEventType.ASSET_MATERIALIZATION, set(partition_keys)
    )
    if not latest:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, storage_ids=list(latest.values())), limit=len(latest)
    ).records
    return {
        r.partition_key: metadata_values(r.asset_materialization)
        for r in records
        if r.partition_key is not None and r.asset_materialization is not None
    }
