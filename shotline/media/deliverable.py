"""Is a file the deliverable it should be? Checked by decoding it, each property a named outcome.

Used by the blocking asset checks on `final_clip` and `storyboard_reel`: codec, pixel format, colour, frame
size, duration, audio, loudness, moov before mdat, no edit lists (and chapters for a reel). A failing
outcome says what is wrong in its description.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shotline.errors import MediaError
from shotline.media.encoding import AUDIO_RATE, FPS
from shotline.media.probe import VideoInfo, decode_check, edit_lists, faststart_ok, measure_loudness, probe

# How far a deliverable's integrated loudness may be from its target and pass the check.
DELIVERABLE_LOUDNESS_TOLERANCE_LU = 1.0
CHECK_NAMES = (
    "decodes",
    "codec",
    "pixel_format",
    "colour",
    "frame_size",
    "duration",
    "audio",
    "loudness",
    "faststart",
    "edit_lists",
)


class Expected(BaseModel):
    width: int
    height: int
    duration_s: float
    loudness_lufs: float
    silent_ok: bool = False  # the source had no sound: a silent track is right
    chapters: list[str] | None = None  # reels: one chapter per shot, these titles in order


class Outcome(BaseModel):
    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = {}


def _outcome(name: str, problem: str | None, ok: str, **metadata: Any) -> Outcome:
    return Outcome(name=name, passed=problem is None, description=problem or ok, metadata=metadata)


def check_deliverable(path: str | Path, expected: Expected) -> list[Outcome]:
    """Every check, in CHECK_NAMES order (plus "chapters" when expected): none raises, each says what it saw."""
    path = Path(path)
    try:
        info = probe(path)
    except MediaError as exc:
        names = [*CHECK_NAMES, *(["chapters"] if expected.chapters is not None else [])]
        return [Outcome(name=n, passed=False, description=f"cannot read the file: {exc}") for n in names]
    out = [_decodes(path)]
    frames = out[0].metadata.get("video_frames")
    out += [_codec(info), _pixel_format(info), _colour(info), _frame(info, expected)]
    out += [_duration(info, frames, expected), _audio(info), _loudness(path, info, expected)]
    moov_first = faststart_ok(path)
    out.append(_outcome("faststart", None if moov_first else "moov is after mdat (no fast start)", "moov before mdat"))
    edits = edit_lists(path)
    out.append(_outcome("edit_lists", f"{len(edits)} edit list entries" if edits else None, "no edit lists"))
    if expected.chapters is not None:
        got = [c.title for c in info.chapters]
        wrong = None if got == expected.chapters else f"chapters {got}, expected {expected.chapters}"
        out.append(_outcome("chapters", wrong, f"{len(got)} chapters, one per shot", chapters=got))
    return out


def _decodes(path: Path) -> Outcome:
    try:
        stats = decode_check(path)
    except MediaError as exc:
        return Outcome(name="decodes", passed=False, description=str(exc))
    return _outcome("decodes", None, f"{stats.video_frames} frames decode cleanly", video_frames=stats.video_frames)


def _codec(info: VideoInfo) -> Outcome:
    ok = info.video_codec == "h264" and info.profile == "High"
    problem = None if ok else f"video codec is {info.video_codec} ({info.profile}), expected h264 (High)"
    return _outcome("codec", problem, "h264 High", codec=info.video_codec, profile=info.profile or "")


def _pixel_format(info: VideoInfo) -> Outcome:
    problem = None if info.pix_fmt == "yuv420p" else f"pixel format is {info.pix_fmt}, expected yuv420p"
    return _outcome("pixel_format", problem, "yuv420p", pix_fmt=info.pix_fmt or "")


def _colour(info: VideoInfo) -> Outcome:
    colour = (info.color_space, info.color_primaries, info.color_transfer, info.color_range)
    ok = colour == ("bt709", "bt709", "bt709", "tv")
    problem = None if ok else f"colour is tagged {'/'.join(str(c) for c in colour)}, expected bt709/bt709/bt709/tv"
    return _outcome("colour", problem, "BT.709 limited range")


def _frame(info: VideoInfo, e: Expected) -> Outcome:
    size = (info.width, info.height)
    problems = []
    if size != (e.width, e.height):
        problems.append(f"frame is {info.width}x{info.height}, expected {e.width}x{e.height}")
    if info.sar not in (None, "1:1"):
        problems.append(f"pixel aspect is {info.sar}, expected 1:1")
    if abs(info.fps - FPS) > 0.01:
        problems.append(f"{info.fps:g} fps, expected {FPS}")
    return _outcome("frame_size", "; ".join(problems) or None, f"{e.width}x{e.height} at {FPS} fps")


def _duration(info: VideoInfo, frames: int | None, e: Expected) -> Outcome:
    tolerance = 1 / FPS + 1e-3
    decoded = frames / FPS if frames else None
    problems = []
    if decoded is not None and abs(decoded - e.duration_s) > tolerance:
        problems.append(f"picture lasts {decoded:.3f} s ({frames} frames), expected {e.duration_s:.3f} s")
    if abs(info.duration_s - e.duration_s) > tolerance:
        problems.append(f"file lasts {info.duration_s:.3f} s, expected {e.duration_s:.3f} s")
    return _outcome("duration", "; ".join(problems) or None, f"{e.duration_s:.3f} s within one frame",
                    expected_s=e.duration_s, file_s=info.duration_s, picture_s=decoded)  # fmt: skip


def _audio(info: VideoInfo) -> Outcome:
    if not info.has_audio:
        return _outcome("audio", "no audio stream", "")
    ok = (info.audio_codec, info.audio_profile, info.audio_rate, info.audio_channels) == ("aac", "LC", AUDIO_RATE, 2)
    problem = (
        None
        if ok
        else f"audio is {info.audio_codec} ({info.audio_profile}) {info.audio_rate} Hz {info.audio_channels} "
        f"channels, expected aac (LC) {AUDIO_RATE} Hz 2 channels"
    )
    return _outcome("audio", problem, f"AAC-LC {AUDIO_RATE} Hz stereo")


def _loudness(path: Path, info: VideoInfo, e: Expected) -> Outcome:
    if not info.has_audio:
        return _outcome("loudness", "no audio stream to measure", "")
    try:
        integrated, peak = measure_loudness(path)
    except MediaError as exc:
        return _outcome("loudness", str(exc), "")
    meta = {"integrated_lufs": integrated if math.isfinite(integrated) else None,
            "true_peak_dbtp": peak if math.isfinite(peak) else None, "target_lufs": e.loudness_lufs}  # fmt: skip
    silent = not math.isfinite(integrated) or integrated <= -69
    if silent and e.silent_ok:
        return _outcome("loudness", None, "silent track (the source has no sound)", **meta)
    if silent or abs(integrated - e.loudness_lufs) > DELIVERABLE_LOUDNESS_TOLERANCE_LU:
        shown = "silence" if silent else f"{integrated:.1f} LUFS"
        return _outcome("loudness", f"integrated loudness is {shown}, expected {e.loudness_lufs:g} LUFS "
                        f"within {DELIVERABLE_LOUDNESS_TOLERANCE_LU:g} LU", "", **meta)  # fmt: skip
    return _outcome("loudness", None, f"{integrated:.1f} LUFS (target {e.loudness_lufs:g})", **meta)
