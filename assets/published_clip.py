"""published_clip: upload the deliverable, its thumbnail and its lineage manifest; latest.json last. Every take
stays published; the deliverable is recorded with its take in the database, for review (shotline.takes)."""

import dagster as dg

from assets import clip_prompt, final_clip, raw_clip, source_image
from assets.failures import dagster_failures
from assets.partitions import shots
from assets.presentation import card_metadata, link_metadata
from assets.resources import PublisherResource, WorkspaceResource
from assets.upstream import upstream_record, write_record
from shotline.finishing import RENDER_VERSION
from shotline.lineage import clip_manifest
from shotline.previews import ClipCard
from shotline.publish import PublishedClip
from shotline.stage_records import (
    FinishedClipRecord,
    GeneratedClipRecord,
    PromptRecord,
    PublishedClipRecord,
    SourcedImageRecord,
)
from shotline.takes import PublishedTake, TakeBook

# 3: reads its inputs from stage records; the materialization points at a PublishedClipRecord (record_key)
# 4: the record names the generated clip and its take; the deliverable is recorded for review
CODE_VERSION = "4"
CHAIN = {"source_image": source_image, "clip_prompt": clip_prompt, "raw_clip": raw_clip, "final_clip": final_clip}


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSION,
    group_name="clips",
    kinds={"s3"},
    deps=["final_clip"],
    description="The deliverable where the team and its tools get it: video, thumbnail and lineage manifest "
    "published content-addressed, with latest.json pointing at it.",
)
def published_clip(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, publisher: PublisherResource
) -> dg.MaterializeResult:
    with dagster_failures():
        storyboard, shot = workspace.shot(context.partition_key)
        store = workspace.store()
        image = upstream_record(context, store, SourcedImageRecord)
        prompt = upstream_record(context, store, PromptRecord)
        raw = upstream_record(context, store, GeneratedClipRecord)
        final = upstream_record(context, store, FinishedClipRecord)
        video, thumb = final.video_in(store), final.thumbnail_in(store)
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
                image=image.image,
                prompt=prompt.prompt,
                generation=raw.clip,
                finishing=final.clip,
                published=media.manifest_section(),
                run_id=context.run.run_id,
                code_versions=code_versions,
                upstream_data_versions={r.stage: r.data_version for r in (image, prompt, raw, final)},
            ),
            generator=raw.clip.result.generator,
            take=raw.clip.take,
        )
        spec_sha256 = storyboard.shot_spec_hash(shot)
        taken = PublishedTake.of(raw.clip, published, spec_sha256=spec_sha256, duration_s=final.clip.render.duration_s)
        TakeBook(workspace.database()).record(taken)
        record = write_record(store, PublishedClipRecord.of(published, spec_sha256=spec_sha256, generation=raw.clip))
        card = ClipCard.for_shot(
            shot,
            prompt=prompt.prompt.text,
            generated=raw.clip.result,
            take=raw.clip.take,
            duration_s=final.clip.render.duration_s,
            width=final.clip.render.width,
            height=final.clip.render.height,
            link=published.url or published.video.uri,
            link_expires_at=published.url_expires_at,
        )
    metadata = publish_metadata(published) | {"spec_sha256": spec_sha256, "take": raw.clip.take, **record}
    metadata = card_metadata(card, image=thumb.path) | metadata  # what people read first, first
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(published.sha256))


def publish_metadata(published: PublishedClip) -> dict[str, object]:
    """Materialization metadata of a published clip or reel: URIs, sizes and checksums of every object, and
    for S3 presigned links to the video and thumbnail with when they expire."""
    metadata: dict[str, object] = {k: v for k, v in published.metadata().items() if v is not None}
    metadata |= link_metadata(published.url_expires_at, url=published.url, thumbnail_url=published.thumbnail_url)
    if published.url_expires_at:
        metadata["url_expiry"] = (
            f"presigned (SigV4) links, valid until {published.url_expires_at.isoformat(timespec='seconds')}; "
            "rematerialize for fresh ones"
        )
    return metadata
