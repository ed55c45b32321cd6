"""What finishing one clip asks for: frame, fit, timing, overlays, sound, encoding and tags."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shotline.media.captions import CaptionPosition
from shotline.media.effects import EffectCall, effected_frames
from shotline.media.encoding import FPS, Encoding, X264Preset, reel_keyframes, validate_tag_key
from shotline.media.frames import Fill, Fit, Format, Resolution, frame_size
from shotline.media.musicbed import MusicSpec
from shotline.media.overlays import LogoSpec
from shotline.media.timing import output_frames


def finished_frames(trim: tuple[float, float], speed: float, effects: Sequence[EffectCall] = ()) -> int:
    """How many frames a finish of the source's `trim` lasts: the effects (freeze, time_symmetrize) may
    lengthen the kept part, then the speed change scales it."""
    start, end = trim
    if effects:
        kept = round(end * FPS) - round(start * FPS)
        start, end = 0.0, effected_frames(effects, kept) / FPS
    return output_frames(start, end, speed)


class FinishSpec(BaseModel):
    """How to finish one clip. Frame: `format` x `resolution` (see `frames.frame_size`), or an explicit
    `width` and `height` (both even). Times (`trim`) are in the source; caption times are in the output,
    after any speed change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Format = "landscape"
    resolution: Resolution = "720p"
    width: int | None = Field(None, ge=16, le=4096)
    height: int | None = Field(None, ge=16, le=4096)
    fit: Fit = "cover"
    fill: Fill = "black"  # contain only: the bars' colour, or "blur" (the picture blurred behind itself)
    trim: tuple[float, float] | None = None  # (start, end) seconds of the source to keep
    speed: float = Field(1.0, ge=0.25, le=4.0)  # 2 = twice as fast (half as long); audio keeps its pitch
    fade: float = Field(0.5, ge=0, le=10)  # seconds; video from/to black and audio, in and out
    caption: str | None = None
    caption_position: CaptionPosition = "bottom"
    caption_start: float | None = Field(None, ge=0)  # seconds into the output; None = from the start
    caption_end: float | None = Field(None, gt=0)  # None = to the end
    logo: LogoSpec | None = None
    music: MusicSpec | None = None
    loudness_lufs: float = Field(-14.0, ge=-40, le=-5)
    true_peak_dbtp: float = Field(-1.0, ge=-8, le=0)
    title: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    x264_preset: X264Preset = "medium"
    crf: int = Field(20, ge=0, le=51)
    threads: int | None = Field(None, ge=1, le=64)
    # When the picture needs no change (right frame and encoding, no trim, fade, caption, speed or logo),
    # copy the streams instead of re-encoding them.
    stream_copy: bool = True
    # The storyboard reel's crossfade in frames (None: a cut reel, or no reel): the encode then puts IDRs where
    # the reel's transitions into and out of this clip begin and end, so the reel copies the clip between them.
    reel_transition_frames: int | None = Field(None, ge=1, le=10 * FPS)
    # moviepy effects (shotline/media/effects.py), applied in order to the trimmed source before the rest
    effects: tuple[EffectCall, ...] = ()

    @field_validator("trim")
    @classmethod
    def _trim_ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not (0 <= v[0] < v[1]):
            raise ValueError("trim must be (start, end) with 0 <= start < end")
        return v

    @field_validator("tags")
    @classmethod
    def _tag_keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            validate_tag_key(key)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> FinishSpec:
        if (self.width is None) != (self.height is None):
            raise ValueError("width and height go together")
        if self.width is not None and (self.width % 2 or (self.height or 0) % 2):
            raise ValueError("width and height must be even")
        if self.caption_start is not None and self.caption_end is not None and self.caption_end <= self.caption_start:
            raise ValueError("caption_end must come after caption_start")
        return self

    @property
    def frame(self) -> tuple[int, int]:
        if self.width is not None and self.height is not None:
            return self.width, self.height
        return frame_size(self.format, self.resolution)

    @property
    def encoding(self) -> Encoding:
        keyframes: tuple[int, ...] = ()
        if self.reel_transition_frames and self.trim is not None:
            frames = finished_frames(self.trim, self.speed, self.effects)
            keyframes = reel_keyframes(frames, self.reel_transition_frames)
        return Encoding(preset=self.x264_preset, crf=self.crf, threads=self.threads, keyframes=keyframes)

    @property
    def has_caption(self) -> bool:
        return bool(self.caption and self.caption.strip())

    def metadata(self) -> dict[str, str]:
        tags = dict(self.tags)
        if self.title is not None:
            tags["title"] = self.title
        return tags

    def picture_changes(self) -> list[str]:
        """What this spec does to the picture whatever the source (empty: a stream copy may do)."""
        changes = []
        if not self.stream_copy:
            changes.append("stream copy turned off")
        if self.fade > 0:
            changes.append("fades")
        if self.has_caption:
            changes.append("caption")
        if self.speed != 1:
            changes.append("speed change")
        if self.logo is not None:
            changes.append("logo")
        if self.effects:
            changes.append("effects")
        return changes
