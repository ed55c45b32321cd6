"""storyboard_reel: the storyboard's final clips cut in shot order into one reel, published with its manifest.

Each shot's latest final clip must be the one it published (what was reviewed, with its lineage manifest).
With `reel: {require_approval: true}` every one of them must also be approved in review; otherwise the reel
fails before anything is encoded, listing the shots awaiting review or rejected. The manifest names each
clip's take and where it stood in review."""

from typing import TypeVar

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
from shotline.publish import REEL, lineage_uri
from shotline.reel_clips import reel_clips, reel_video_metadata
from shotline.review import ReviewBook
from shotline.stage_records import ReelRecord, StageRecord

# 3: reads the shots' stage records; the materialization points at a ReelRecord (record_key)
# 4: cuts only published finals (and with reel.require_approval only approved ones); clips name take and review
# 5: smart render: the clips' bodies are copied, only the transitions encoded (shotline/media/smart_reel.py)
CODE_VERSION = "5"

R = TypeVar("R", bound=StageRecord)


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

        def latest(record_type: type[R], key: str) -> R | None:
            return latest_record(context.instance, store, record_type, key)

        chosen = reel_clips(storyboard, store, ReviewBook(workspace.database()), latest)
        clips, entries = chosen.files, chosen.entries
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
        "cache_hit": reel.cache_hit,
        "require_approval": storyboard.reel.require_approval,
        **chosen.metadata(),
        **reel_video_metadata(reel.render.steps),
    }
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(reel.sha256))
