"""The offline preview generator: a slow camera move over the still, with a quiet audio bed. Free.

The still is fitted to the output frame once with Pillow, converted to BT.709 YUV once, repeated by
ffmpeg's `loop` filter, and moved with the `perspective` filter evaluated per frame: it samples the
source window at sub-pixel positions, so a slow move is smooth (zoompan rounds its window to whole input
pixels, which shows as jitter at these speeds). The move and the chord of the pad are chosen from the
clip key, so the same request always gives the same clip.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Literal

from PIL import Image, ImageOps
from pydantic import BaseModel

from shotline.errors import GenerationError, MediaError
from shotline.fsutil import atomic_path
from shotline.generators.base import GenerationRequest, GenerationResult, LogFn, output_frame
from shotline.media.encoding import AUDIO_RATE, BT709_TAGS, FPS, Encoding, X264Preset
from shotline.media.ffmpeg import Arg, PathArg, run_ffmpeg, task_tempdir
from shotline.media.probe import probe

MotionKind = Literal["push-in", "pull-out", "pan-left", "pan-right"]
_KINDS: tuple[MotionKind, ...] = ("push-in", "pull-out", "pan-left", "pan-right")
_ROOTS_HZ = (98.0, 110.0, 130.81, 146.83)  # G2, A2, C3, D3
# Gain that puts the pad (3 partials, plus a little pink noise) at about -30 LUFS integrated.
_PAD_AMPLITUDE = 0.039


class Motion(BaseModel):
    """A camera move as the source window over time: zoom (1 = whole frame) and window centre (0..1)."""

    kind: MotionKind
    zoom_start: float
    zoom_end: float
    center_start: tuple[float, float]
    center_end: tuple[float, float]
    easing: str = "smoothstep"


def choose_motion(clip_key: str) -> Motion:
    """A gentle move (6-12 % zoom), picked deterministically from the clip key."""
    h = hashlib.sha256(clip_key.encode()).digest()
    kind = _KINDS[h[0] % len(_KINDS)]
    zoom = round(1.06 + 0.06 * h[1] / 255, 3)
    # How far the centre may sit from the middle at this zoom without showing outside the picture.
    room = (1 - 1 / zoom) / 2 * 0.9
    drift = ((h[2] / 255 - 0.5) * room, (h[3] / 255 - 0.5) * room)
    if kind == "push-in":
        return Motion(
            kind=kind,
            zoom_start=1.0,
            zoom_end=zoom,
            center_start=(0.5, 0.5),
            center_end=(0.5 + drift[0], 0.5 + drift[1]),
        )
    if kind == "pull-out":
        return Motion(
            kind=kind,
            zoom_start=zoom,
            zoom_end=1.0,
            center_start=(0.5 + drift[0], 0.5 + drift[1]),
            center_end=(0.5, 0.5),
        )
    sign = -1 if kind == "pan-left" else 1
    y = 0.5 + drift[1]
    return Motion(
        kind=kind,
        zoom_start=zoom,
        zoom_end=zoom,
        center_start=(0.5 - sign * room, y),
        center_end=(0.5 + sign * room, y),
    )


def perspective_filter(motion: Motion, frames: int) -> str:
    """`perspective` corners as per-frame expressions of the frame number `in` (no commas inside)."""
    p = f"(in/{max(frames - 1, 1)})"
    e = f"({p}*{p}*(3-2*{p}))"  # smoothstep of the progress p

    def lerp(a: float, b: float) -> str:
        return f"({a:.6f}+{b - a:.6f}*{e})"

    half = f"(0.5/{lerp(motion.zoom_start, motion.zoom_end)})"
    cx = lerp(motion.center_start[0], motion.center_end[0])
    cy = lerp(motion.center_start[1], motion.center_end[1])
    left, right = f"W*({cx}-{half})", f"W*({cx}+{half})"
    top, bottom = f"H*({cy}-{half})", f"H*({cy}+{half})"
    corners = {
        "x0": left,
        "y0": top,
        "x1": right,
        "y1": top,
        "x2": left,
        "y2": bottom,
        "x3": right,
        "y3": bottom,
    }
    opts = ":".join(f"{k}='{v}'" for k, v in corners.items())
    return f"perspective={opts}:interpolation=linear:sense=source:eval=frame"


def audio_bed(clip_key: str, duration: float) -> tuple[str, dict[str, object]]:
    """A soft stereo pad (root, fifth, octave, slowly breathing, detuned left/right) over faint pink noise."""
    h = hashlib.sha256(b"audio:" + clip_key.encode()).digest()
    root = _ROOTS_HZ[h[0] % len(_ROOTS_HZ)]
    seed = int.from_bytes(h[1:4], "big")

    def channel(detune: float, phase: float) -> str:
        f = root + detune
        return (
            f"{_PAD_AMPLITUDE}*(sin(2*PI*{f}*t)+0.6*sin(2*PI*{f * 1.5:.3f}*t)+0.4*sin(2*PI*{f * 2:.3f}*t))"
            f"*(0.75+0.25*sin(2*PI*0.15*t+{phase}))"
        )

    fade = min(0.5, duration / 4)
    graph = (
        f"aevalsrc=exprs='{channel(-0.15, 0)}|{channel(0.15, 1.3)}':s={AUDIO_RATE}:d={duration}[pad];"
        f"anoisesrc=color=pink:seed={seed}:amplitude=0.014:r={AUDIO_RATE}:d={duration},lowpass=f=900,"
        f"aformat=channel_layouts=stereo[noise];"
        f"[pad][noise]amix=inputs=2:duration=first:normalize=0,"
        f"afade=t=in:d={fade},afade=t=out:st={duration - fade}:d={fade},"
        f"aformat=sample_fmts=fltp:sample_rates={AUDIO_RATE}:channel_layouts=stereo[aout]"
    )
    return graph, {
        "kind": "pad",
        "root_hz": root,
        "partials": [1, 1.5, 2],
        "noise": "pink, low-passed 900 Hz",
        "approx_lufs": -30,
    }


def _fit_still(image_path: Path, frame: tuple[int, int], out: Path) -> None:
    """The still, upright and cropped to fill the frame (centre), at exactly the frame size."""
    with Image.open(image_path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        ImageOps.fit(im, frame, method=Image.Resampling.LANCZOS).save(out, format="PNG", compress_level=1)


class PreviewGenerator:
    """Generator protocol: offline, zero cost, labelled preview."""

    name = "preview"
    model: str | None = None

    def __init__(self, *, x264_preset: X264Preset = "veryfast", crf: int = 20) -> None:
        self.encoding = Encoding(preset=x264_preset, crf=crf)

    def generate(self, request: GenerationRequest, workdir: Path, log: LogFn) -> GenerationResult:
        started = time.monotonic()
        width, height = output_frame(request.resolution, request.image_width, request.image_height)
        duration = float(request.duration)
        frames = round(duration * FPS)
        motion = choose_motion(request.clip_key)
        audio, bed = audio_bed(request.clip_key, duration)
        out = Path(workdir) / f"preview-{request.clip_key[:16]}.mp4"
        log(f"preview: {motion.kind} over the still, {width}x{height}, {duration:g} s")
        try:
            with task_tempdir(Path(workdir), "preview") as tmp:
                still = tmp / "still.png"
                _fit_still(request.image_path, (width, height), still)
                video = (
                    f"[0:v]scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
                    f"loop=loop={frames - 1}:size=1:start=0,setpts=N/{FPS}/TB,"
                    f"{perspective_filter(motion, frames)},format=yuv420p,{BT709_TAGS}[vout]"
                )
                with atomic_path(out) as part:
                    # fmt: off
                    args: list[Arg] = [
                        "-y", "-nostats", "-i", PathArg(still, "still.png"),
                        "-filter_complex", f"{video};{audio}",
                        "-map", "[vout]", "-map", "[aout]", "-frames:v", str(frames),
                        *self.encoding.video_args(), *self.encoding.audio_args(),
                        "-map_metadata", "-1", "-metadata", "comment=shotline preview (offline, not generated)",
                        "-movflags", "+faststart", "-f", "mp4", PathArg(part, "preview.mp4"),
                    ]
                    # fmt: on
                    run_ffmpeg(args, what=f"preview of {request.shot_id}")
                    info = probe(part)
        except (MediaError, OSError, ValueError) as exc:
            raise GenerationError(f"preview generation failed: {exc}", retryable=False) from exc
        total = time.monotonic() - started
        log(f"preview: wrote {out.name} in {total:.1f} s")
        return GenerationResult(
            video_path=out,
            width=info.width,
            height=info.height,
            fps=info.fps,
            duration_s=info.duration_s,
            generator=self.name,
            model=None,
            preview=True,
            request_id=None,
            cost_usd=0.0,
            timings={"total_s": round(total, 3)},
            parameters={
                "prompt": request.prompt,
                "duration": request.duration,
                "resolution": request.resolution,
                "motion": motion.model_dump(),
                "audio_bed": bed,
                "fps": FPS,
                "encoding": self.encoding.describe(),
            },
        )
