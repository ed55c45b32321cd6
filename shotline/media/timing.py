"""Frame-exact timing of a finish: which source frames are kept, how many frames come out, the fades."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shotline.errors import MediaError
from shotline.media.encoding import FPS

# A trim end this far past the source's end is clamped silently; further, the clamp is noted.
TRIM_TOLERANCE_S = 0.25


class Timing(BaseModel):
    start_frame: int  # first source frame kept (at FPS)
    source_frames: int  # source frames kept
    frames: int  # output frames (after the speed change)
    fade_frames: int
    speed: float = 1.0

    @property
    def start_s(self) -> float:
        return self.start_frame / FPS

    @property
    def source_s(self) -> float:
        return self.source_frames / FPS

    @property
    def duration_s(self) -> float:
        return self.frames / FPS

    @property
    def fade_s(self) -> float:
        return self.fade_frames / FPS


def output_frames(start_s: float, end_s: float, speed: float) -> int:
    """Frames a finish of source seconds [start_s, end_s) at `speed` comes out with."""
    return max(1, round((round(end_s * FPS) - round(start_s * FPS)) / speed))


def plan_timing(
    source_duration_s: float,
    trim: tuple[float, float] | None,
    speed: float,
    fade: float,
    steps: list[dict[str, Any]],
) -> Timing:
    start, end = trim if trim else (0.0, source_duration_s)
    if start >= source_duration_s:
        raise MediaError(f"trim start {start:.3f} s is past the end of the clip ({source_duration_s:.3f} s)")
    if end > source_duration_s:
        if trim and end > source_duration_s + TRIM_TOLERANCE_S:
            steps.append({"step": "note", "trim_end_clamped": {"asked_s": end, "clip_s": source_duration_s}})
        end = source_duration_s
    start_frame, end_frame = round(start * FPS), round(end * FPS)
    source_frames = end_frame - start_frame
    if source_frames < 1:
        raise MediaError(f"trim ({start:.3f}, {end:.3f}) keeps no frame at {FPS} fps")
    frames = output_frames(start, end, speed)
    fade_frames = min(round(fade * FPS), frames // 2)
    timing = Timing(
        start_frame=start_frame, source_frames=source_frames, frames=frames, fade_frames=fade_frames, speed=speed
    )
    if trim:
        steps.append({"step": "trim", "start_s": timing.start_s, "end_s": end_frame / FPS, "frames": source_frames})
    if speed != 1:
        steps.append({"step": "speed", "factor": speed, "source_s": timing.source_s, "output_s": timing.duration_s,
                      "audio": "atempo (pitch kept)"})  # fmt: skip
    return timing
