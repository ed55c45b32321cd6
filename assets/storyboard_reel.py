"""storyboard_reel: the storyboard's final clips cut in shot order into one reel, published with its manifest."""

import dagster as dg

from assets.failures import dagster_failures
from assets.partitions import storyboards
from assets.published_clip import publish_metadata
from assets.resources import PublisherResource, WorkspaceResource
from assets.upstream import latest_record, write_record
from shotline.finishing import cut_reel
from shotline.lineage import reel_manifest
from shotline.manifest import ReelClip
from shotline.stage_records import FinishedClipRecord, GeneratedClipRecord, PublishedClipRecord, ReelRecord
from shotline.storyboard import partition_key

# 3: reads the shots' stage records; the materialization points at a ReelRecord (record_key)
CODE_VERSION = "3"


@dg.asset(
    partitions_def=storyboards,
    code_version=CODE_VERSION,
    group_name="reels",
    kinds={"ffmpeg", "s3"},
    deps=[dg.AssetDep("published_clip", partition_mapping=dg.AllPartitionMapping())],
    description="Every shot's final clip in shot order, cut or crossfaded into one deliverable with chapters.",
)
def storyboard_reel(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, publisher: PublisherResource
) -> dg.MaterializeResult:
    with dagster_failures():
        storyboard = workspace.storyboard(context.partition_key)
        store = workspace.store()
        clips, entries, missing = [], [], []
        for shot in storyboard.shots:
            key = partition_key(storyboard.id, shot.id)
            final = latest_record(context.instance, store, FinishedClipRecord, key)
            published = latest_record(context.instance, store, PublishedClipRecord, key)
            raw = latest_record(context.instance, store, GeneratedClipRecord, key)
            video = store.get(final.clip.sha256, ".mp4") if final else None
            if final is None or published is None or raw is None or video is None:
                missing.append(shot.id)
                continue
            clips.append((shot.id, video.path, final.clip.sha256))
            entries.append(
                ReelClip(
                    shot_id=shot.id,
                    sha256=final.clip.sha256,
                    manifest_uri=published.published.manifest.uri,
                    manifest_sha256=published.published.manifest.sha256,
                    duration_s=final.clip.render.duration_s,
                    generator=raw.clip.result.generator,
                    cost_usd=raw.clip.result.cost_usd,
                )
            )
        if missing:
            raise dg.Failure(
                f"storyboard {storyboard.id!r}: no published clip yet for {', '.join(missing)}; "
                "run clip_job for those shots first",
                allow_retries=False,
            )
        reel = cut_reel(storyboard, clips, store)
        published = publisher.publisher().publish_reel(
            storyboard.id,
            reel.path,
            lambda media: reel_manifest(
                storyboard,
                clips=entries,
                reel=reel,
                published=media.manifest_section(),
                run_id=context.run.run_id,
                code_version=CODE_VERSION,
            ),
            thumbnail=reel.thumbnail_path,
        )
        record = write_record(store, ReelRecord.of(reel, published, entries))
    metadata = publish_metadata(published) | record
    metadata |= {
        "duration_s": reel.render.duration_s,
        "clips": len(clips),
        "cache_hit": reel.cache_hit,
        "total_cost_usd": round(sum(e.cost_usd for e in entries), 2),
    }
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(reel.sha256))
