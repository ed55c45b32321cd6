"""Hold a generated clip to what was asked: decode every frame, then compare with the request and with what
the generator (and the provider's own output metadata) claimed about the file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shotline.errors import MediaError
from shotline.generators.base import GenerationRequest, output_frame
from shotline.media.clip_facts import ClipFacts
from shotline.media.frames import short_side
from shotline.media.probe import decode_check, probe

# A generated clip may run a frame or two past the requested duration (fal returns 145 frames, 6.04 s, for 6 s).
DURATION_TOLERANCE_FRAMES = 2


def inspect_clip(path: Path) -> ClipFacts:
    """Decode every frame of `path` (any decoder error raises MediaError) and say what it holds."""
    info = probe(path)
    stats = decode_check(path)
    if info.fps <= 0:
        raise MediaError(f"{path.name}: frame rate unknown")
    width, height = info.display_size
    return ClipFacts(
        width=width,
        height=height,
        fps=info.fps,
        frames=stats.video_frames,
        duration_s=round(stats.video_frames / info.fps, 6),
        container_duration_s=info.duration_s,
        has_audio=info.has_audio,
        video_codec=info.video_codec,
        audio_codec=info.audio_codec,
        size_bytes=path.stat().st_size,
    )


def check_clip(
    path: Path, request: GenerationRequest, *, claims: Mapping[str, Mapping[str, Any]] | None = None
) -> ClipFacts:
    """Decode the clip at `path`, hold it to what `request` asked, and cross-check what others claimed about
    the file. `claims` maps who claimed it ("fal's output metadata") to their fields, any of: width, height,
    fps, duration, num_frames, content_type, file_size (missing or None fields are not checked)."""
    where = f"storyboard {request.storyboard_id!r}, shot {request.shot_id!r}"
    try:
        facts = inspect_clip(path)
    except MediaError as exc:
        raise MediaError(f"{where}: the generated clip is not a playable video: {exc}") from exc
    problems = _against_request(facts, request)
    for who, fields in (claims or {}).items():
        problems += [f"{who} says {p}" for p in _against_claims(facts, fields)]
    if problems:
        raise MediaError(f"{where}: the generated clip is not what was asked: {'; '.join(problems)}")
    return facts


def _against_request(facts: ClipFacts, request: GenerationRequest) -> list[str]:
    problems = []
    slack = DURATION_TOLERANCE_FRAMES / facts.fps + 1e-3
    if abs(facts.duration_s - request.duration) > slack:
        problems.append(
            f"it lasts {facts.duration_s:.3f} s ({facts.frames} frames at {facts.fps:g} fps), "
            f"asked for {request.duration} s"
        )
    short = short_side(request.resolution)
    if min(facts.width, facts.height) != short:
        problems.append(f"it is {facts.width}x{facts.height}, not {request.resolution} (short side {short})")
    wanted = _orientation(*output_frame(request.resolution, request.image_width, request.image_height))
    got = _orientation(facts.width, facts.height)
    # only a clear contradiction counts: the model may frame a near-square still either way
    if wanted != "square" and got != "square" and wanted != got:
        problems.append(f"it is {got} ({facts.width}x{facts.height}) but the still is {wanted}")
    if not facts.has_audio:
        problems.append("it has no audio track")
    return problems


def _against_claims(facts: ClipFacts, claimed: Mapping[str, Any]) -> list[str]:
    def given(name: str) -> Any:
        value = claimed.get(name)
        return None if value in (None, "") else value

    problems = []
    width, height = given("width"), given("height")
    if width is not None and height is not None and (int(width), int(height)) != (facts.width, facts.height):
        problems.append(f"{width}x{height}, the file is {facts.width}x{facts.height}")
    elif width is not None and int(width) != facts.width:
        problems.append(f"width {width}, the file is {facts.width} wide")
    elif height is not None and int(height) != facts.height:
        problems.append(f"height {height}, the file is {facts.height} high")
    fps = given("fps")
    if fps is not None and abs(float(fps) - facts.fps) > 0.01 * facts.fps:
        problems.append(f"{float(fps):g} fps, the file has {facts.fps:g}")
    duration = given("duration")
    if duration is not None and abs(float(duration) - facts.duration_s) > DURATION_TOLERANCE_FRAMES / facts.fps + 1e-3:
        problems.append(f"{float(duration):.3f} s, the file's video lasts {facts.duration_s:.3f} s")
    frames = given("num_frames")
    if frames is not None and abs(int(frames) - facts.frames) > 1:
        problems.append(f"{frames} frames, {facts.frames} decoded")
    content_type = given("content_type")
    if content_type is not None and not str(content_type).lower().startswith("video/"):
        problems.append(f"content type {content_type!r}, not a video")
    size = given("file_size")
    if size is not None and int(size) != facts.size_bytes:
        problems.append(f"{size} bytes, the file has {facts.size_bytes}")
    return problems


def _orientation(width: int, height: int) -> str:
    return "landscape" if width > height else "portrait" if height > width else "square"
