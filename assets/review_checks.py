"""The non-blocking check `approved` on published_clip: a warning until the published deliverable is approved
in review, so the asset's partitions show at a glance which shots await review (or were rejected).

It runs with every materialization of published_clip. A decision made later (`shotline approve`/`reject`,
or review_job from the Launchpad) changes nothing Dagster knows by itself: `approval_evaluation` builds the
same result for the shot's latest materialization, which review_job and review_sensor report.
"""

from typing import Any

import dagster as dg

# not exported by dagster: the pointer that makes a reported evaluation the current one for its partition
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from assets.partitions import shots
from assets.resources import WorkspaceResource
from assets.upstream import latest_record
from shotline.errors import ShotlineError
from shotline.review import ReviewBook
from shotline.stage_records import PublishedClipRecord
from shotline.storyboard import split_partition_key

APPROVED_CHECK = "approved"
PUBLISHED_CLIP = dg.AssetKey("published_clip")
DESCRIPTION = (
    "Warns until the published deliverable (this exact file, by sha256) is approved in review: "
    "`shotline approve <storyboard>/<shot>` or review_job. A new take, caption or edit needs a new approval."
)


def approval_finding(
    instance: dg.DagsterInstance, workspace: WorkspaceResource, partition_key: str
) -> tuple[bool, str, dict[str, Any]]:
    """(approved?, what to show, metadata) for the shot's latest published deliverable."""
    try:
        record = latest_record(instance, workspace.store(), PublishedClipRecord, partition_key)
        if record is None:
            return False, "published_clip has no materialization to review", {}
        storyboard_id, shot_id = split_partition_key(partition_key)
        sha = record.published.sha256
        verdict = ReviewBook(workspace.database()).verdict(storyboard_id, shot_id, sha)
    except ShotlineError as exc:
        return False, str(exc), {}
    metadata: dict[str, Any] = {"take": record.take, "sha256": sha, "review": verdict.state.value}
    if verdict.decision is not None:
        metadata |= {"decided_by": verdict.decision.decided_by, "decided_at": verdict.decision.decided_at}
        if verdict.decision.note:
            metadata["note"] = verdict.decision.note
    return verdict.approved, f"take {record.take} ({sha[:12]}): {verdict.describe()}", metadata


@dg.asset_check(
    asset="published_clip",
    name=APPROVED_CHECK,
    partitions_def=shots,
    blocking=False,
    description=DESCRIPTION,
)
def approved(context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource) -> dg.AssetCheckResult:
    passed, description, metadata = approval_finding(context.instance, workspace, context.partition_key)
    return dg.AssetCheckResult(
        passed=passed, severity=dg.AssetCheckSeverity.WARN, description=description, metadata=metadata
    )


def approval_evaluation(
    instance: dg.DagsterInstance, workspace: WorkspaceResource, partition_key: str
) -> dg.AssetCheckEvaluation | None:
    """The check's result now, aimed at the partition's latest materialization; None if it has none."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=PUBLISHED_CLIP, asset_partitions=[partition_key]), limit=1
    ).records
    if not records:
        return None
    passed, description, metadata = approval_finding(instance, workspace, partition_key)
    latest = records[0]
    return dg.AssetCheckEvaluation(
        asset_key=PUBLISHED_CLIP,
        check_name=APPROVED_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
        blocking=False,
        partition=partition_key,
        target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
            storage_id=latest.storage_id, run_id=latest.run_id, timestamp=latest.timestamp
        ),
    )
