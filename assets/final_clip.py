"""final_clip: post-process the raw clip into the shot's deliverable, with its thumbnail."""

from pathlib import Path

import dagster as dg

from assets.content_credentials import credentials_metadata
from assets.failures import dagster_failures
from assets.partitions import shots
from assets.presentation import card_metadata
from assets.resources import CredentialsResource, PublisherResource, WorkspaceResource
from assets.upstream import upstream_record, write_record
from shotline.credentials.manifest import SourceFile
from shotline.finishing import clip_provenance, finish_clip, finish_spec_for, with_shot_finishing
from shotline.previews import ClipCard, clip_link
from shotline.publish import lineage_uri
from shotline.stage_records import FinishedClipRecord, GeneratedClipRecord, PromptRecord, SourcedImageRecord

# 3: reads the raw clip's record; the materialization points at a FinishedClipRecord (record_key)
# 4: the deliverable's tags name its take
# 5: IDRs where the storyboard reel's crossfades begin and end (finish_spec_for's reel_transition_frames)
CODE_VERSION = "5"


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSION,
    group_name="clips",
    kinds={"ffmpeg", "moviepy"},
    deps=["raw_clip"],
    description="The shot's deliverable, the generated clip post-processed to the storyboard's frame, fit, trim, "
    "fades, caption, loudness and encoding.",
)
def final_clip(
    context: dg.AssetExecutionContext,
    workspace: WorkspaceResource,
    publisher: PublisherResource,
    credentials: CredentialsResource,
) -> dg.MaterializeResult:
    with dagster_failures():
        storyboard, shot = workspace.shot(context.partition_key)
        store = workspace.store()
        raw = upstream_record(context, store, GeneratedClipRecord)
        raw_file = raw.video_in(store)
        location = lineage_uri(publisher.publish_uri, storyboard.id, shot.id)
        spec = finish_spec_for(
            storyboard,
            shot,
            generator=raw.clip.result.generator,
            model=raw.clip.result.model,
            request_id=raw.clip.result.request_id,
            # the mp4 carries where its lineage is published, so the file alone leads back to its manifest
            lineage_uri=location,
            take=raw.clip.take,
        )
        spec = with_shot_finishing(spec, storyboard, shot)
        signer, provenance = credentials.signer(), None
        if signer is not None:  # the content credentials name the still and the generated clip as ingredients
            still = upstream_record(context, store, SourcedImageRecord).image_in(store)
            provenance = clip_provenance(
                storyboard,
                shot,
                raw.clip.result,
                take=raw.clip.take,
                still=SourceFile(path=still.path, sha256=still.sha256),
                raw=SourceFile(path=Path(raw_file.path), sha256=raw.clip.sha256),
                lineage_uri=location,
            )
        done = finish_clip(
            Path(raw_file.path),
            raw.clip.sha256,
            spec,
            store,
            context.partition_key,
            signer=signer,
            provenance=provenance,
        )
        record = write_record(store, FinishedClipRecord.of(done))
        link, expires_at = clip_link(store.object_uri(done.sha256, ".mp4"))
        card = ClipCard.for_shot(
            shot,
            prompt=upstream_record(context, store, PromptRecord).prompt.text,
            generated=raw.clip.result,
            take=raw.clip.take,
            duration_s=done.render.duration_s,
            width=done.render.width,
            height=done.render.height,
            link=link,
            link_expires_at=expires_at,
        )
    return dg.MaterializeResult(
        metadata={
            **card_metadata(card, image=done.thumbnail_path),
            "uri": store.object_uri(done.sha256, ".mp4"),
            "sha256": done.sha256,
            "thumbnail_uri": store.object_uri(done.thumbnail_sha256, ".jpg"),
            "width": done.render.width,
            "height": done.render.height,
            "duration_s": done.render.duration_s,
            "cache_hit": done.cache_hit,
            "finish_mode": done.render.mode,
            "take": raw.clip.take,
            "steps": dg.MetadataValue.json(done.render.steps),
            **credentials_metadata(done.credentials),
            **record,
        },
        data_version=dg.DataVersion(done.sha256),
    )
