"""storyboard_reel: the storyboard's final clips cut in shot order into one reel, published with its manifest."""

import dagster as dg

from assets.failures import dagster_failures
from assets.partitions import storyboards
from assets.published_clip import publish_metadata
from assets.resources import PublisherResource, WorkspaceResource
from assets.upstream import latest_metadata_or_none
from shotline.finishing import cut_reel
from shotline.lineage import reel_manifest
from shotline.manifest import ReelClip
from shotline.storyboard import partition_key

CODE_VERSION = "2"


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
            final = latest_metadata_or_none(context.instance, "final_clip", key)
            published = latest_metadata_or_none(context.instance, "published_clip", key)
            raw = latest_metadata_or_none(context.instance, "raw_clip", key)
            video = store.get(final["sha256"], ".mp4") if final else None
            if final is None or published is None or raw is None or video is None:
                missing.append(shot.id)
                continue
            clips.append((shot.id, video.path, final["sha256"]))
            entries.append(
                ReelClip(
                    shot_id=shot.id,
                    sha256=final["sha256"],
                    manifest_uri=published.get("manifest_uri"),
                    manifest_sha256=published.get("manifest_sha256"),
                    duration_s=final["duration_s"],
                    generator=raw["generator"],
                    cost_usd=raw["original_cost_usd"],
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
                reel=reel.model_dump(mode="json"),
                published=media.manifest_section(),
                run_id=context.run.run_id,
                code_version=CODE_VERSION,
            ),
            thumbnail=reel.thumbnail_path,
        )
    metadata = publish_metadata(published)
    metadata |= {
        "duration_s": reel.render.duration_s,
        "clips": len(clips),
        "cache_hit": reel.cache_hit,
        "total_cost_usd": round(sum(e.cost_usd for e in entries), 2),
    }
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(reel.sha256))
