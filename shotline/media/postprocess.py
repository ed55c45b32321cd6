"""Finishing a generated clip into a deliverable: trim, reframe, caption, fades, loudness, encoding, tags.

moviepy stays the composition engine where it fits (frame grabs for thumbnails), but the pixel pipeline
runs in the ffmpeg binary moviepy ships: on this 2-core box ffmpeg's own filters were 2-6x faster than
moviepy's per-frame Python loop for the same reframe/caption/fade work (see stack-baseline.md).

The render decodes the source once and encodes once (one ffmpeg invocation); loudness adds one
audio-only measurement pass before it. Output is written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shotline.errors import MediaError
from shotline.fsutil import atomic_path
from shotline.media import loudness
from shotline.media.captions import CaptionLayout, render_caption
from shotline.media.encoding import (
    AUDIO_RATE,
    BT709_TAGS,
    FPS,
    Encoding,
    X264Preset,
    metadata_args,
    validate_tag_key,
)
from shotline.media.ffmpeg import Arg, PathArg, run_ffmpeg, summarize, task_tempdir
from shotline.media.frames import Fit, Format, Resolution, frame_size, plan_fit
from shotline.media.probe import VideoInfo, probe

# A source stream may end a little before its container says; up to this many frames are held.
_PAD_FRAMES = FPS
_TRIM_TOLERANCE_S = 0.25


class FinishSpec(BaseModel):
    """How to finish one clip. Frame: `format` x `resolution` (see `frames.frame_size`), or an explicit
    `width` and `height` (both even)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Format = "landscape"
    resolution: Resolution = "720p"
    width: int | None = Field(None, ge=16, le=4096)
    height: int | None = Field(None, ge=16, le=4096)
    fit: Fit = "cover"
    trim: tuple[float, float] | None = None  # (start, end) seconds of the source to keep
    fade: float = Field(0.5, ge=0, le=10)  # seconds; video from/to black and audio, in and out
    caption: str | None = None
    loudness_lufs: float = Field(-14.0, ge=-40, le=-5)
    true_peak_dbtp: float = Field(-1.0, ge=-8, le=0)
    title: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    x264_preset: X264Preset = "medium"
    crf: int = Field(20, ge=0, le=51)

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
    def _explicit_size(self) -> FinishSpec:
        if (self.width is None) != (self.height is None):
            raise ValueError("width and height go together")
        if self.width is not None and (self.width % 2 or (self.height or 0) % 2):
            raise ValueError("width and height must be even")
        return self

    @property
    def frame(self) -> tuple[int, int]:
        if self.width is not None and self.height is not None:
            return self.width, self.height
        return frame_size(self.format, self.resolution)

    @property
    def encoding(self) -> Encoding:
        return Encoding(preset=self.x264_preset, crf=self.crf)

    def metadata(self) -> dict[str, str]:
        tags = dict(self.tags)
        if self.title is not None:
            tags["title"] = self.title
        return tags


class FinishResult(BaseModel):
    width: int
    height: int
    fps: float
    duration_s: float
    has_caption: bool
    steps: list[dict[str, Any]]
    encoder: dict[str, Any]
    ffmpeg_commands: list[str]  # loudness measurement and render, with file paths replaced by labels


class _Plan(BaseModel):
    """Frame-exact timing of a render."""

    start_frame: int
    frames: int
    fade_frames: int

    @property
    def start_s(self) -> float:
        return self.start_frame / FPS

    @property
    def duration_s(self) -> float:
        return self.frames / FPS

    @property
    def fade_s(self) -> float:
        return self.fade_frames / FPS


def _plan_timing(info: VideoInfo, spec: FinishSpec, steps: list[dict[str, Any]]) -> _Plan:
    start, end = spec.trim if spec.trim else (0.0, info.duration_s)
    if start >= info.duration_s:
        raise MediaError(f"trim start {start:.3f} s is past the end of the clip ({info.duration_s:.3f} s)")
    if end > info.duration_s:
        if spec.trim and end > info.duration_s + _TRIM_TOLERANCE_S:
            steps.append({"step": "note", "trim_end_clamped": {"asked_s": end, "clip_s": info.duration_s}})
        end = info.duration_s
    start_frame, end_frame = round(start * FPS), round(end * FPS)
    frames = end_frame - start_frame
    if frames < 1:
        raise MediaError(f"trim ({start:.3f}, {end:.3f}) keeps no frame at {FPS} fps")
    fade_frames = min(round(spec.fade * FPS), frames // 2)
    plan = _Plan(start_frame=start_frame, frames=frames, fade_frames=fade_frames)
    if spec.trim:
        steps.append({"step": "trim", "start_s": plan.start_s, "end_s": end_frame / FPS, "frames": frames})
    return plan


# Input colour standards the `colorspace` filter converts from, by the matrix a source is tagged with.
# Primaries and transfer are often left unknown by encoders; the matrix implies the standard.
_CONVERTIBLE = {"smpte170m": "bt601-6-525", "bt470bg": "bt601-6-625", "bt2020nc": "bt2020", "bt2020c": "bt2020"}


def _colour_filter(info: VideoInfo, steps: list[dict[str, Any]]) -> str:
    """BT.709 out. Untagged sources are taken as BT.709 (what HD generators and browsers assume)."""
    space = info.color_space
    if space in (None, "bt709"):
        steps.append({"step": "colour", "source": space or "untagged (taken as bt709)", "output": "bt709"})
        return ""
    standard = _CONVERTIBLE.get(space)
    if standard is None:
        steps.append({"step": "colour", "source": space, "output": "bt709", "converted": False,
                      "note": "no conversion known for this matrix; pixels kept, tagged bt709"})  # fmt: skip
        return ""
    steps.append({"step": "colour", "source": space, "output": "bt709", "converted": True, "from": standard})
    return f"colorspace=all=bt709:iall={standard}:format=yuv420p,"


def _audio_chain(info: VideoInfo, plan: _Plan, steps: list[dict[str, Any]]) -> str:
    """Filter graph for the audio up to (not including) loudness normalisation, output pad [aud]."""
    d = plan.duration_s
    if not info.has_audio:
        steps.append(
            {
                "step": "silent_audio",
                "reason": "source has no audio stream",
                "sample_rate": AUDIO_RATE,
                "channels": 2,
            }
        )
        return f"anullsrc=r={AUDIO_RATE}:cl=stereo,atrim=end={d}[aud]"
    steps.append(
        {
            "step": "audio_conform",
            "source": {"codec": info.audio_codec, "rate": info.audio_rate, "channels": info.audio_channels},
            "sample_rate": AUDIO_RATE,
            "channels": 2,
        }
    )
    chain = (
        f"[0:a:0]asetpts=PTS-STARTPTS,aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
        f"atrim=start={plan.start_s}:end={plan.start_s + d},asetpts=PTS-STARTPTS,"
        f"apad=whole_dur={d},atrim=end={d}"
    )
    if plan.fade_frames:
        f = plan.fade_s
        chain += f",afade=t=in:st=0:d={f},afade=t=out:st={d - f}:d={f}"
    return chain + "[aud]"


def _video_chain(
    info: VideoInfo, spec: FinishSpec, plan: _Plan, caption: CaptionLayout | None, steps: list[dict[str, Any]]
) -> str:
    """Filter graph for the picture, output pad [vout]."""
    width, height = info.display_size
    fit = plan_fit(width, height, spec.frame, spec.fit, info.sar)
    n, a = plan.frames, plan.start_frame
    chain = (
        f"[0:v:0]setpts=PTS-STARTPTS,fps={FPS},trim=start_frame={a}:end_frame={a + n},setpts=PTS-STARTPTS,"
        f"tpad=stop_mode=clone:stop={_PAD_FRAMES},trim=end_frame={n},"
    )
    steps.append({"step": "conform_rate", "fps": FPS, "cfr": True, "source_fps": info.fps})
    chain += _colour_filter(info, steps) + fit.filters()
    steps.append(fit.describe())
    if caption is not None:  # the caption PNG is input 1, a single frame that overlay holds
        chain += f"[base];[base][1:v]overlay=x={caption.x}:y={caption.y}:eof_action=repeat:format=auto"
        steps.append(caption.describe())
    if plan.fade_frames:
        nf = plan.fade_frames
        # Mirror images: the first frame and the last frame are black.
        chain += f",fade=t=in:s=0:n={nf},fade=t=out:s={n - nf - 1}:n={nf}"
        steps.append(
            {
                "step": "fade",
                "to": "black",
                "video_in_s": plan.fade_s,
                "video_out_s": plan.fade_s,
                "audio_in_s": plan.fade_s,
                "audio_out_s": plan.fade_s,
                "requested_s": spec.fade,
                "frames": nf,
            }
        )
    return chain + f",format=yuv420p,{BT709_TAGS}[vout]"


def render_final(src: Path, spec: FinishSpec, out: Path, scratch: Path) -> FinishResult:
    """Render `src` to the deliverable `spec` at `out` (atomically). `scratch` holds temp files."""
    src, out = Path(src), Path(out)
    info = probe(src)
    steps: list[dict[str, Any]] = [
        {
            "step": "source",
            **info.model_dump(
                include={
                    "width",
                    "height",
                    "fps",
                    "duration_s",
                    "video_codec",
                    "pix_fmt",
                    "has_audio",
                    "audio_codec",
                    "audio_rate",
                    "audio_channels",
                }
            ),
        }
    ]
    plan = _plan_timing(info, spec, steps)
    width, height = spec.frame
    target = loudness.LoudnessTarget(integrated_lufs=spec.loudness_lufs, true_peak_dbtp=spec.true_peak_dbtp)
    commands: list[str] = []
    with task_tempdir(scratch, "finish") as tmp:
        inputs: list[Arg] = ["-i", PathArg(src, "source")]
        layout = None
        if spec.caption and spec.caption.strip():
            layout = render_caption(spec.caption, width, height, tmp / "caption.png")
            inputs += ["-i", PathArg(tmp / "caption.png", "caption.png")]
        video = _video_chain(info, spec, plan, layout, steps)
        audio = _audio_chain(info, plan, steps)

        norm = ""
        if info.has_audio:
            measured, cmd = loudness.measure_graph(
                ["-i", PathArg(src, "source")], audio, "aud", what=f"loudness measurement of {src.name}"
            )
            commands.append(cmd)
            norm, loud_step = loudness.normalize_filter(target, measured)
        else:
            loud_step = {
                "step": "loudness",
                "mode": "skipped (silent track)",
                "target_lufs": target.integrated_lufs,
            }
        audio_out = f"{audio};[aud]{norm}[aout]" if norm else f"{audio};[aud]anull[aout]"
        encoding = spec.encoding
        tags = spec.metadata()
        with atomic_path(out) as part:
            # fmt: off
            args: list[Arg] = [
                "-y", "-nostats", *inputs,
                "-filter_complex", f"{video};{audio_out}", "-map", "[vout]", "-map", "[aout]",
                *encoding.video_args(), *encoding.audio_args(),
                "-map_metadata", "-1", "-map_chapters", "-1", *metadata_args(tags),
                "-f", "mp4", PathArg(part, "output.mp4"),
            ]
            # fmt: on
            run = run_ffmpeg(args, what=f"render of {src.name}")
            commands.append(summarize(args))
            loudness.record_pass2(run.stderr, loud_step)
            result_info = probe(part)
    steps.append(loud_step)
    steps.append({"step": "encode", **encoding.describe()})
    steps.append({"step": "metadata", "tags": tags})
    _check_output(result_info, width, height, plan.duration_s, out.name)
    return FinishResult(
        width=width,
        height=height,
        fps=float(FPS),
        duration_s=plan.duration_s,
        has_caption=layout is not None,
        steps=steps,
        encoder=encoding.describe(),
        ffmpeg_commands=commands,
    )


def _check_output(info: VideoInfo, width: int, height: int, duration_s: float, name: str) -> None:
    problems = []
    if (info.width, info.height) != (width, height):
        problems.append(f"frame {info.width}x{info.height}, expected {width}x{height}")
    if abs(info.duration_s - duration_s) > 2 / FPS:
        problems.append(f"duration {info.duration_s:.3f} s, expected {duration_s:.3f} s")
    if not info.has_audio or info.audio_rate != AUDIO_RATE or info.audio_channels != 2:
        problems.append("audio is not 48 kHz stereo")
    if problems:
        raise MediaError(f"{name}: rendered file is off spec: {'; '.join(problems)}")


def make_thumbnail(video: Path, out_jpg: Path, fade_s: float, *, quality: int = 90) -> dict[str, Any]:
    """A JPEG of a representative frame (the middle, away from fades), written atomically.

    Returns what was done: the time of the frame and its size. The frame is grabbed with moviepy.
    """
    from moviepy import VideoFileClip  # moviepy's import reads a .env and costs ~0.2 s: only when needed
    from PIL import Image

    video = Path(video)
    with VideoFileClip(str(video), audio=False) as clip:
        duration = float(clip.duration)
        lo, hi = min(fade_s, duration / 2), max(duration - fade_s, duration / 2)
        candidates = [(lo + hi) / 2, lo + (hi - lo) / 3, lo + 2 * (hi - lo) / 3]
        frame, at = None, candidates[0]
        for t in candidates:
            grabbed = clip.get_frame(min(t, max(0.0, duration - 1 / FPS)))
            if frame is None or grabbed.mean() > frame.mean():
                frame, at = grabbed, t
            if grabbed.mean() >= 16:  # not a black frame
                break
    assert frame is not None
    image = Image.fromarray(frame).convert("RGB")
    with atomic_path(out_jpg) as part:
        image.save(part, format="JPEG", quality=quality, optimize=True)
    return {
        "step": "thumbnail",
        "at_s": round(at, 3),
        "width": image.width,
        "height": image.height,
        "quality": quality,
        "grabbed_with": "moviepy",
    }
