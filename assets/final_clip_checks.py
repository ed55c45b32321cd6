"""The blocking checks on final_clip, run on every materialization: the deliverable is decoded and held to
the shot's spec as the storyboard states it (frame, duration minus trim, loudness target), not to what the
render reported. One decode serves every check; each failing check says what is wrong."""

import dagster as dg

from assets.deliverable_checks import DESCRIPTIONS, deliverable_file, results
from assets.partitions import shots
from assets.resources import WorkspaceResource
from assets.upstream import latest_record
from shotline.errors import ShotlineError
from shotline.finishing import expected_final
from shotline.media.deliverable import CHECK_NAMES
from shotline.media.probe import probe
from shotline.stage_records import FinishedClipRecord, GeneratedClipRecord
from shotline.store import WorkStore


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(name, asset="final_clip", partitions_def=shots, blocking=True, description=DESCRIPTIONS[name])
        for name in CHECK_NAMES
    ],
    description="The final clip, decoded, against the shot's deliverable spec.",
)
def final_clip_deliverable(context: dg.AssetCheckExecutionContext, workspace: WorkspaceResource):
    key = context.partition_key
    store = workspace.store()
    try:
        final = latest_record(context.instance, store, FinishedClipRecord, key)
        raw = latest_record(context.instance, store, GeneratedClipRecord, key)
    except ShotlineError as exc:
        yield from results("final_clip", CHECK_NAMES, str(exc))
        return
    video = deliverable_file(store, final.clip.sha256) if final else None
    if video is None:
        yield from results("final_clip", CHECK_NAMES, "the final clip's file is not in the working store")
        return
    try:
        _, shot = workspace.shot(key)
        expected = expected_final(shot, source_has_audio=_source_has_audio(raw, store))
    except ShotlineError as exc:
        yield from results("final_clip", CHECK_NAMES, f"cannot tell what the clip should be: {exc}")
        return
    yield from results("final_clip", CHECK_NAMES, video, expected)


def _source_has_audio(raw: GeneratedClipRecord | None, store: WorkStore) -> bool:
    """Whether the generated clip had sound: as decoded at generation, else decoded now (older records)."""
    if raw is None:
        return True
    if raw.clip.checked is not None:
        return raw.clip.checked.has_audio
    raw_file = store.get(raw.clip.sha256, ".mp4")
    return probe(raw_file.path).has_audio if raw_file else True
