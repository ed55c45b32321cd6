"""The blocking checks on storyboard_reel, run on every materialization: the reel is decoded and held to
the storyboard (the first shot's frame, every shot's duration joined by the reel's transition, the loudness
target, one chapter per shot). One decode serves every check; each failing check says what is wrong."""

import dagster as dg

from assets.deliverable_checks import DESCRIPTIONS, deliverable_file, results
from assets.partitions import storyboards
from assets.resources import WorkspaceResource
from assets.upstream import latest_record
from shotline.errors import ShotlineError
from shotline.finishing import expected_reel
from shotline.media.deliverable import CHECK_NAMES
from shotline.stage_records import FinishedClipRecord, ReelRecord

REEL_CHECKS = (*CHECK_NAMES, "chapters")
REEL_DESCRIPTIONS = {
    "duration": "Duration is every shot's kept duration joined by the reel's transitions, within one frame.",
    "frame_size": "Frame is the first shot's format at its resolution, square pixels, 24 fps.",
}


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            name,
            asset="storyboard_reel",
            partitions_def=storyboards,
            blocking=True,
            description=REEL_DESCRIPTIONS.get(name, DESCRIPTIONS[name]),
        )
        for name in REEL_CHECKS
    ],
    description="The reel, decoded, against the storyboard's deliverable spec.",
)
def storyboard_reel_deliverable(context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource):
    store = workspace.store()
    try:
        reel = latest_record(context.instance, store, ReelRecord, context.partition_key)
    except ShotlineError as exc:
        yield from results("storyboard_reel", REEL_CHECKS, str(exc))
        return
    video = deliverable_file(store, reel.reel.sha256, reel.published.video.uri) if reel else None
    if video is None:
        yield from results("storyboard_reel", REEL_CHECKS, "the reel's file is neither in the working store nor local")
        return
    try:
        storyboard = workspace.storyboard(context.partition_key)
        finals = [latest_record(context.instance, store, FinishedClipRecord, s.partition_key) for s in storyboard.shots]
        # A reel of clips that all had no sound is rightly silent.
        silent = all(f is not None and f.silent for f in finals)
        expected = expected_reel(storyboard, silent_ok=silent)
    except ShotlineError as exc:
        yield from results("storyboard_reel", REEL_CHECKS, f"cannot tell what the reel should be: {exc}")
        return
    yield from results("storyboard_reel", REEL_CHECKS, video, expected)
