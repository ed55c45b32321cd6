"""How an asset finds its input: the upstream materialization of the same partition and its metadata."""

from __future__ import annotations

from typing import Any

import dagster as dg


def upstream_metadata(
    context: dg.AssetExecutionContext, asset: str, partition_key: str | None = None
) -> dict[str, Any]:
    """Metadata values of the latest materialization of `asset` for this run's (or the given) partition."""
    key = partition_key or context.partition_key
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1
    ).records
    if not records:
        raise dg.Failure(
            description=f"{asset} has no materialization for partition {key!r}: materialize it first",
            allow_retries=False,
        )
    materialization = records[0].asset_materialization
    assert materialization is not None
    return {name: value.value for name, value in materialization.metadata.items()}


def latest_metadata_or_none(instance: dg.DagsterInstance, asset: str, partition_key: str) -> dict[str, Any] | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition_key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return {name: value.value for name, value in records[0].asset_materialization.metadata.items()}
