"""The blocking check on published_clip: every published object is there with the right size and sha256."""

import dagster as dg

from assets.partitions import shots
from assets.resources import PublisherResource
from assets.upstream import latest_metadata_or_none
from shotline.errors import ShotlineError
from shotline.publish import verify_published

# What each object's URI, sha256 and size are called in published_clip's metadata.
OBJECTS = {
    "video": ("uri", "sha256", "size"),
    "thumbnail": ("thumbnail_uri", "thumbnail_sha256", "thumbnail_size"),
    "manifest": ("manifest_uri", "manifest_sha256", "manifest_size"),
}


@dg.asset_check(
    asset="published_clip",
    partitions_def=shots,
    blocking=True,
    description="Video, thumbnail and manifest exist with the size and sha256 recorded at upload (S3: HEAD in "
    "checksum mode, read back when the stored checksum is a multipart one; local: read back and hashed), and "
    "latest.json points at this video.",
)
def published_objects_intact(
    context: dg.AssetCheckExecutionContext, publisher: PublisherResource
) -> dg.AssetCheckResult:
    md = latest_metadata_or_none(context.instance, "published_clip", context.partition_key)
    if md is None:
        return dg.AssetCheckResult(passed=False, description="published_clip has no materialization to check")
    missing = [field for fields in OBJECTS.values() for field in fields if md.get(field) is None]
    if missing:
        return dg.AssetCheckResult(
            passed=False,
            description=f"the materialization does not record {', '.join(missing)}: rematerialize published_clip",
        )
    try:
        checks = verify_published(
            publisher.publisher(),
            {label: (md[u], md[s], int(md[n])) for label, (u, s, n) in OBJECTS.items()},
            latest=(md["latest_uri"], md["sha256"]) if md.get("latest_uri") else None,
        )
    except ShotlineError as exc:
        return dg.AssetCheckResult(passed=False, description=str(exc))
    problems = [c.problem for c in checks if c.problem]
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) if problems else f"{len(checks)} objects verified",
        metadata={"objects": dg.MetadataValue.json([c.model_dump(mode="json") for c in checks])},
    )
