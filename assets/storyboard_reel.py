"""storyboard_reel: the storyboard's final clips cut in shot order into one reel, published with its manifest.

Each shot's latest final clip must be the one it published (what was reviewed, with its lineage manifest).
With `reel: {require_approval: true}` every one of them must also be approved in review; otherwise the reel
fails before anything is encoded, listing the shots awaiting review or rejected. The manifest names each
clip's take and where it stood in review."""

import dagster as dg

from assets.contact_sheet import draw_contact_sheet
from assets.content_credentials import credentials_metadata
from assets.failures import dagster_failures
from assets.partitions import storyboards
from assets.presentation import sheet_metadata
from assets.published_clip import publish_metadata
from assets.resources import CredentialsResource, PublisherResource, WorkspaceResource
from assets.upstream import latest_record, write_record
from shotline.finishing import cut_reel, reel_provenance
from shotline.lineage import reel_manifest
from shotline.manifest import ReelClip
from shotline.publish import REEL, lineage_uri
from shotline.review import ReviewBook, ReviewState, Verdict
from shotline.stage_records import FinishedClipRecord, GeneratedClipRecord, PublishedClipRecord, ReelRecord
from shotline.storyboard import partition_key

# 3: reads the shots' stage records; the materialization points at a ReelRecord (record_key)
# 4: cuts only published finals (and with reel.require_approval only approved ones); clips name take and review
# 5: smart render: the clips' bodies are copied, only the transitions encoded (shotline/media/smart_reel.py)
CODE_VERSION = "5"


@dg.asset(
    partitions_def=storyboards,
    code_version=CODE_VERSION,
    group_name="reels",
    kinds={"ffmpeg", "s3"},
    deps=[dg.AssetDep("published_clip", partition_mapping=dg.AllPartitionMapping())],
    description="The storyboard's clips in shot order, cut or crossfaded into one reel with a chapter per shot, "
    "published with its manifest.",
)
def storyboard_reel(
    context: dg.AssetExecutionContext,
    workspace: WorkspaceResource,
    publisher: PublisherResource,
    credentials: CredentialsResource,
) -> dg.MaterializeResult:
    with dagster_failures():
        storyboard = workspace.storyboard(context.partition_key)
        store = workspace.store()
        reviews = ReviewBook(workspace.database())
        clips, entries, missing, unpublished = [], [], [], []
        verdicts: dict[str, Verdict] = {}
        for shot in storyboard.shots:
            key = partition_key(storyboard.id, shot.id)
            final = latest_record(context.instance, store, FinishedClipRecord, key)
            published = latest_record(context.instance, store, PublishedClipRecord, key)
            generated = published.generation if published else None
            if published is not None and generated is None:  # published before records named their clip
                raw = latest_record(context.instance, store, GeneratedClipRecord, key)
                generated = raw.clip if raw else None
            video = store.get(final.clip.sha256, ".mp4") if final else None
            if final is None or published is None or generated is None or video is None:
                missing.append(shot.id)
                continue
            if published.published.sha256 != final.clip.sha256:
                unpublished.append(
                    f"{shot.id} (final clip {final.clip.sha256[:12]}, published {published.published.sha256[:12]})"
                )
                continue
            verdicts[shot.id] = verdict = reviews.verdict(storyboard.id, shot.id, final.clip.sha256)
            clips.append((shot.id, video.path, final.clip.sha256))
            entries.append(
                ReelClip(
                    shot_id=shot.id,
                    take=published.take,
                    approval=verdict.approval(),
                    sha256=final.clip.sha256,
                    manifest_uri=published.published.manifest.uri,
                    manifest_sha256=published.published.manifest.sha256,
                    duration_s=final.clip.render.duration_s,
                    generator=generated.result.generator,
                    cost_usd=generated.result.cost_usd,
                )
            )
        problems = []
        if missing:
            problems.append(f"no published clip yet for {', '.join(missing)}: run clip_job for those shots first")
        if unpublished:
            problems.append(
                f"the latest final clip is not the published one for {', '.join(unpublished)}: materialize "
                "published_clip for those shots (a reel cuts only what was published and reviewed)"
            )
        if problems:
            raise dg.Failure(f"storyboard {storyboard.id!r}: {'; '.join(problems)}", allow_retries=False)
        if storyboard.reel.require_approval:
            refuse_unapproved(storyboard.id, verdicts, {e.shot_id: e for e in entries})
        signer, provenance = credentials.signer(), None
        if signer is not None:  # each clip's signed deliverable is an ingredient of the reel's credentials
            where = lineage_uri(publisher.publish_uri, storyboard.id, REEL)
            provenance = reel_provenance(storyboard, clips, entries, lineage_uri=where)
        reel = cut_reel(storyboard, clips, store, signer=signer, provenance=provenance)
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
        with store.scratch(f"reel-sheet-{storyboard.id}") as work:  # the sheet of what was cut, for the UI only
            sheet, _, _ = draw_contact_sheet(context.instance, workspace, storyboard, publisher.publisher(), work)
            people = sheet_metadata(sheet, f"{storyboard.id} contact sheet")
    metadata = people | publish_metadata(published) | credentials_metadata(reel.credentials) | record
    metadata |= {
        "duration_s": reel.render.duration_s,
        "clips": len(clips),
        "cache_hit": reel.cache_hit,
        "total_cost_usd": round(sum(e.cost_usd for e in entries), 2),
        "require_approval": storyboard.reel.require_approval,
        "approved": sum(v.approved for v in verdicts.values()),
        "takes": ", ".join(f"{e.shot_id}={e.take}" for e in entries),
        **reel_video_metadata(reel.render.steps),
    }
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(reel.sha256))


def reel_video_metadata(steps: list[dict]) -> dict[str, object]:
    """How the reel's picture was made: smart (frames copied from the finals, transitions encoded) or full."""
    video = next((s for s in steps if s.get("step") == "video"), None)
    if video is None:  # cut before the smart render existed
        return {}
    meta: dict[str, object] = {"video_path": video["path"]}
    if video["path"] == "smart":
        meta |= {"copied_frames": video["copied_frames"], "encoded_frames": video["encoded_frames"]}
    elif video.get("smart_refused"):
        meta["smart_refused"] = "; ".join(video["smart_refused"])
    return meta


def refuse_unapproved(storyboard_id: str, verdicts: dict[str, Verdict], clips: dict[str, ReelClip]) -> None:
    """Fail, before anything is encoded, unless every clip is approved: naming the shots awaiting review and
    the rejected ones with their notes."""

    def listed(state: ReviewState) -> list[str]:
        return [
            f"{shot_id} (take {clips[shot_id].take}, {clips[shot_id].sha256[:12]}"
            + (f", {v.describe().removeprefix(state.value + ' ')}" if v.decision else "")
            + ")"
            for shot_id, v in verdicts.items()
            if v.state == state
        ]

    awaiting, rejected = listed(ReviewState.AWAITING), listed(ReviewState.REJECTED)
    if not awaiting and not rejected:
        return
    parts = [f"awaiting review: {', '.join(awaiting)}"] if awaiting else []
    parts += [f"rejected: {', '.join(rejected)}"] if rejected else []
    raise dg.Failure(
        f"storyboard {storyboard_id!r} cuts only approved clips (reel.require_approval); not approved: "
        f"{'; '.join(parts)}. Review them (`shotline review "
        f"{storyboard_id}`), approve with `shotline approve {storyboard_id}/<shot>` or review_job, then run "
        "reel_job again",
        metadata={"awaiting_review": ", ".join(awaiting) or "none", "rejected": ", ".join(rejected) or "none"},
        allow_retries=False,
    )
