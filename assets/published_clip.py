"""published_clip: upload the deliverable, its thumbnail and its lineage manifest; latest.json last."""

import dagster as dg

from assets import clip_prompt, final_clip, raw_clip, source_image
from assets.failures import dagster_failures
from assets.partitions import shots
from assets.resources import PublisherResource, WorkspaceResource
from assets.upstream import upstream_metadata
from shotline.finishing import RENDER_VERSION
from shotline.lineage import clip_manifest
from shotline.publish import PublishedClip

CODE_VERSION = "2"
CHAIN = {"source_image": source_image, "clip_prompt": clip_prompt, "raw_clip": raw_clip, "final_clip": final_clip}


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSION,
    group_name="clips",
    kinds={"s3"},
    deps=["final_clip"],
    description="The published clip, thumbnail and lineage manifest, content-addressed, with latest.json.",
)
def published_clip(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, publisher: PublisherResource
) -> dg.MaterializeResult:
    with dagster_failures():
        storyboard, shot = workspace.shot(context.partition_key)
        upstream = {name: upstream_metadata(context, name) for name in CHAIN}
        final = upstream["final_clip"]
        store = workspace.store()
        video, thumb = store.get(final["sha256"], ".mp4"), store.get(final["lineage"]["thumbnail_sha256"], ".jpg")
        if video is None or thumb is None:
            raise dg.Failure(
                "the final clip is gone from the working store: rematerialize final_clip", allow_retries=False
            )
        code_versions = {name: module.CODE_VERSION for name, module in CHAIN.items()} | {
            "published_clip": CODE_VERSION,
            "render": RENDER_VERSION,
        }
        published = publisher.publisher().publish_clip(
            storyboard.id,
            shot.id,
            video.path,
            thumb.path,
            lambda media: clip_manifest(
                storyboard,
                shot,
                image=upstream["source_image"]["lineage"],
                prompt=upstream["clip_prompt"]["lineage"],
                generation=upstream["raw_clip"]["lineage"],
                finishing=final["lineage"],
                published=media.manifest_section(),
                run_id=context.run.run_id,
                code_versions=code_versions,
                # each upstream returns its content's sha256 as its data version
                upstream_data_versions={name: md["sha256"] for name, md in upstream.items()},
            ),
            generator=upstream["raw_clip"]["generator"],
        )
    metadata = publish_metadata(published)
    metadata["spec_sha256"] = storyboard.shot_spec_hash(shot)
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(published.sha256))


def publish_metadata(published: PublishedClip) -> dict[str, object]:
    """Materialization metadata of a published clip or reel: URIs, sizes and checksums of every object, and
    for S3 presigned links to the video and thumbnail with when they expire."""
    metadata: dict[str, object] = {k: v for k, v in published.metadata().items() if v is not None}
    if published.url:
        metadata["url"] = dg.MetadataValue.url(published.url)
    if published.thumbnail_url:
        metadata["thumbnail_url"] = dg.MetadataValue.url(published.thumbnail_url)
    if published.url_expires_at:
        metadata["url_expires_at"] = dg.MetadataValue.timestamp(published.url_expires_at)
        metadata["url_expiry"] = (
            f"presigned (SigV4) links, valid until {published.url_expires_at.isoformat(timespec='seconds')}; "
            "rematerialize for fresh ones"
        )
    return metadata
