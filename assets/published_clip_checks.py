"""The blocking check on published_clip: every published object is there with the right size and sha256."""

import dagster as dg

from assets.partitions import shots
from assets.resources import PublisherResource, WorkspaceResource
from assets.upstream import latest_record
from shotline.errors import ShotlineError
from shotline.publish import PublishedClip, verify_published
from shotline.stage_records import PublishedClipRecord


@dg.asset_check(
    asset="published_clip",
    partitions_def=shots,
    blocking=True,
    description="What was published is still there, unaltered: video, thumbnail and manifest with the size and "
    "sha256 recorded at upload, and latest.json pointing at this video.",
)
def published_objects_intact(
    context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource, publisher: PublisherResource
) -> dg.AssetCheckResult:
    try:
        record = latest_record(context.instance, workspace.store(), PublishedClipRecord, context.partition_key)
    except ShotlineError as exc:
        return dg.AssetCheckResult(passed=False, description=str(exc))
    if record is None:
        return dg.AssetCheckResult(passed=False, description="published_clip has no materialization to check")
    published = record.published
    if published.thumbnail is None:
        return dg.AssetCheckResult(
            passed=False, description="the published clip records no thumbnail: rematerialize published_clip"
        )
    try:
        checks = verify_published(
            publisher.publisher(), _objects(published), latest=(published.latest.uri, published.sha256)
        )
    except ShotlineError as exc:
        return dg.AssetCheckResult(passed=False, description=str(exc))
    problems = [c.problem for c in checks if c.problem]
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) if problems else f"{len(checks)} objects verified",
        metadata={"objects": dg.MetadataValue.json([c.model_dump(mode="json") for c in checks])},
    )


def _objects(published: PublishedClip) -> dict[str, tuple[str, str, int]]:
    """Each published object's URI, sha256 and size, by label, as verify_published takes them."""
    found = {"video": published.video, "thumbnail": published.thumbnail, "manifest": published.manifest}
    return {label: (o.uri, o.sha256, o.size) for label, o in found.items() if o is not None}
