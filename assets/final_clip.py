"""final_clip: post-process the raw clip into the shot's deliverable, with its thumbnail."""

from pathlib import Path

import dagster as dg

from assets.failures import dagster_failures
from assets.partitions import shots
from assets.resources import PublisherResource, WorkspaceResource
from assets.upstream import upstream_record, write_record
from shotline.finishing import finish_clip, finish_spec_for, with_shot_finishing
from shotline.publish import lineage_uri
from shotline.stage_records import FinishedClipRecord, GeneratedClipRecord

# 3: reads the raw clip's record; the materialization points at a FinishedClipRecord (record_key)
CODE_VERSION = "3"


@dg.asset(
    partitions_def=shots,
    code_version=CODE_VERSION,
    group_name="clips",
    kinds={"ffmpeg", "moviepy"},
    deps=["raw_clip"],
    description="The deliverable: the storyboard's frame, fit, trim, fades, caption, loudness and encoding.",
)
def final_clip(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, publisher: PublisherResource
) -> dg.MaterializeResult:
    with dagster_failures():
        storyboard, shot = workspace.shot(context.partition_key)
        store = workspace.store()
        raw = upstream_record(context, store, GeneratedClipRecord)
        raw_file = raw.video_in(store)
        spec = finish_spec_for(
            storyboard,
            shot,
            generator=raw.clip.result.generator,
            model=raw.clip.result.model,
            request_id=raw.clip.result.request_id,
            # the mp4 carries where its lineage is published, so the file alone leads back to its manifest
            lineage_uri=lineage_uri(publisher.publish_uri, storyboard.id, shot.id),
        )
        spec = with_shot_finishing(spec, storyboard, shot)
        done = finish_clip(Path(raw_file.path), raw.clip.sha256, spec, store, context.partition_key)
        record = write_record(store, FinishedClipRecord.of(done))
    return dg.MaterializeResult(
        metadata={
            "uri": store.object_uri(done.sha256, ".mp4"),
            "sha256": done.sha256,
            "thumbnail_uri": store.object_uri(done.thumbnail_sha256, ".jpg"),
            "width": done.render.width,
            "height": done.render.height,
            "duration_s": done.render.duration_s,
            "cache_hit": done.cache_hit,
            "finish_mode": done.render.mode,
            "steps": dg.MetadataValue.json(done.render.steps),
            **record,
        },
        data_version=dg.DataVersion(done.sha256),
    )
