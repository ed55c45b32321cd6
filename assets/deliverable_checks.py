"""What the deliverable checks on final_clip and storyboard_reel share: their descriptions, and turning the
core's outcomes (shotline.media.deliverable) into Dagster check results."""

from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

import dagster as dg

from shotline.media.deliverable import Expected, check_deliverable
from shotline.store import WorkStore

DESCRIPTIONS = {
    "decodes": "Every video and audio frame decodes without an error.",
    "codec": "Video is H.264 High profile.",
    "pixel_format": "Pixels are yuv420p (4:2:0).",
    "colour": "Colour is tagged BT.709 (primaries, transfer, matrix), limited range.",
    "frame_size": "Frame is the storyboard's format at its resolution, square pixels, 24 fps.",
    "duration": "Duration is the requested duration minus the trim (over the speed), within one frame.",
    "audio": "Audio is AAC-LC, 48 kHz, stereo.",
    "loudness": "Integrated loudness is within 1 LU of the target (EBU R128).",
    "faststart": "The moov box comes before mdat, so playback starts before the download ends.",
    "edit_lists": "No edit lists (as YouTube's upload spec asks).",
    "chapters": "One mp4 chapter per shot, titled with the shot id, in shot order.",
}


def deliverable_file(store: WorkStore, sha256: str, uri: str | None = None) -> Path | None:
    """The materialized file: from the working store by its sha256, else the local file `uri` names."""
    stored = store.get(sha256, ".mp4")
    if stored is not None:
        return Path(stored.path)
    parsed = urlparse(uri or "")
    local = Path(unquote(parsed.path)) if parsed.scheme == "file" else None
    return local if local is not None and local.is_file() else None


def results(
    asset: str, names: Sequence[str], path_or_problem: Path | str, expected: Expected | None = None
) -> Iterator[dg.AssetCheckResult]:
    """One result per check name: all failing with the given problem, or the outcomes of decoding `path`."""
    if isinstance(path_or_problem, str):
        for name in names:
            yield dg.AssetCheckResult(asset_key=asset, check_name=name, passed=False, description=path_or_problem)
        return
    assert expected is not None
    for outcome in check_deliverable(path_or_problem, expected):
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name=outcome.name,
            passed=outcome.passed,
            description=outcome.description,
            metadata={k: v for k, v in outcome.metadata.items() if v is not None},
        )
