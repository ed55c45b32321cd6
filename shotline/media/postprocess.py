"""Finishing a generated clip into a deliverable: trim, speed, reframe, caption, logo, fades, sound, encoding.

moviepy applies a shot's effects (`effects_render.py`) and grabs thumbnails; the rest of the pixel pipeline
runs in the ffmpeg binary moviepy ships, whose filters were 2-6x faster than moviepy's per-frame Python loop
for the same reframe/caption/fade work on 2 cores (`bench/postprocess.py`).

A render decodes the source once and encodes once: the audio passes (`soundtrack.py`) decode the
source's sound into a WAV and measure it; the render decodes the picture, reads that WAV, and encodes
both. When nothing in the picture changes, the video is copied instead (`streamcopy.py`), and so is the
sound when it is already right. What each ffmpeg run decoded, encoded and copied is recorded from
ffmpeg's own stream mapping (`FinishResult.passes`). Output is written atomically.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from shotline.errors import MediaError
from shotline.fsutil import atomic_path
from shotline.media.captions import CaptionLayout, render_caption
from shotline.media.effects_render import (
    EffectPlan,
    Engine,
    MoviepyEffects,
    frame_stream,
    moviepy_pass,
    open_moviepy,
    plan_effects,
    rawvideo_input,
    rgb_to_deliverable,
    run_ffmpeg_fed,
    write_effected_audio,
)
from shotline.media.encoding import AUDIO_RATE, BT709_TAGS, FPS, metadata_args
from shotline.media.ffmpeg import Arg, PathArg, run_ffmpeg, stream_report, summarize, task_tempdir
from shotline.media.finish_spec import FinishSpec
from shotline.media.frames import plan_fit
from shotline.media.loudness import METER, LoudnessTarget, Measurement, parse_ebur128
from shotline.media.musicbed import MusicSpec
from shotline.media.overlays import LogoLayout, LogoSpec, prepare_logo
from shotline.media.probe import VideoInfo, edit_lists, probe, top_level_boxes
from shotline.media.soundtrack import prepare_soundtrack
from shotline.media.streamcopy import (
    LOUDNESS_TOLERANCE_LU,
    audio_copy_blockers,
    colour_tag_args,
    video_copy_blockers,
)
from shotline.media.timing import Timing, plan_timing

__all__ = ["FinishResult", "FinishSpec", "LogoSpec", "MusicSpec", "make_thumbnail", "render_final"]

# A source stream may end a little before its container says; up to this many frames are held.
_PAD_FRAMES = FPS

FinishMode = Literal["render", "stream copy", "video copy"]


class FinishResult(BaseModel):
    width: int
    height: int
    fps: float
    duration_s: float
    has_caption: bool
    steps: list[dict[str, Any]]
    encoder: dict[str, Any]
    ffmpeg_commands: list[str]  # every ffmpeg run, with file paths replaced by labels
    mode: FinishMode = "render"
    passes: list[dict[str, Any]] = []  # per ffmpeg run: what it decoded, encoded and copied

    def decodes(self) -> dict[str, int]:
        """How many times each input stream was decoded, over all runs ("source#0 (h264)": 1, ...)."""
        return dict(Counter(d for p in self.passes for d in p["decoded"]))

    def encodes(self) -> dict[str, int]:
        return dict(Counter(e for p in self.passes for e in p["encoded"]))


def _source_step(info: VideoInfo) -> dict[str, Any]:
    fields = {"width", "height", "fps", "duration_s", "video_codec", "profile", "pix_fmt", "color_space",
              "has_audio", "audio_codec", "audio_rate", "audio_channels"}  # fmt: skip
    return {"step": "source", **info.model_dump(include=fields)}


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
    return f",colorspace=all=bt709:iall={standard}:format=yuv420p"


def _video_graph(
    info: VideoInfo,
    spec: FinishSpec,
    timing: Timing,
    overlays: list[tuple[int, str, str]],
    steps: list[dict[str, Any]],
    *,
    effects_vf: str = "",
    rgb_from: VideoInfo | None = None,
) -> str:
    """Filter graph for the picture, output pad [vout]. `overlays`: (input index, x, y, enable expr).

    `effects_vf`: effects as ffmpeg filters, run on rgb24 like moviepy's. `rgb_from`: input 0 is moviepy's
    rgb24 frame stream of this source (`info` then describes the stream)."""
    width, height = info.display_size
    fit = plan_fit(width, height, spec.frame, spec.fit, info.sar, spec.fill)
    n, a, m = timing.frames, timing.start_frame, timing.source_frames
    chain = f"[0:v:0]setpts=PTS-STARTPTS,fps={FPS},trim=start_frame={a}:end_frame={a + m},setpts=PTS-STARTPTS"
    if timing.speed != 1:
        chain += f",setpts=PTS/{timing.speed:.6g},fps={FPS}"
    chain += f",tpad=stop_mode=clone:stop={_PAD_FRAMES},trim=end_frame={n}"
    steps.append({"step": "conform_rate", "fps": FPS, "cfr": True, "source_fps": info.fps})
    if effects_vf or rgb_from is not None:
        decoded = rgb_from or info
        if effects_vf:
            chain += f",format=rgb24,{effects_vf}"
        chain += f",{rgb_to_deliverable(decoded)}"
        steps.append({"step": "colour", "source": decoded.color_space or "untagged (taken as bt709)",
                      "output": "bt709", "via": "rgb24 (effects)"})  # fmt: skip
    else:
        chain += _colour_filter(info, steps)
    statements = [f"{chain}[src]", fit.graph("src", "fit")]
    steps.append(fit.describe())
    last = "fit"
    # Overlays blend in 4:2:0 (the PNG is converted once); format=auto may work in RGB, a conversion per frame.
    for k, (index, position, enable) in enumerate(overlays):
        when = f":enable='{enable}'" if enable else ""
        statements.append(f"[{last}][{index}:v]overlay={position}:eof_action=repeat:format=yuv420{when}[ov{k}]")
        last = f"ov{k}"
    tail = f"[{last}]"
    if timing.fade_frames:
        nf = timing.fade_frames
        # Mirror images: the first frame and the last frame are black.
        tail += f"fade=t=in:s=0:n={nf},fade=t=out:s={n - nf - 1}:n={nf},"
        steps.append({"step": "fade", "to": "black", "video_in_s": timing.fade_s, "video_out_s": timing.fade_s,
                      "audio_in_s": timing.fade_s, "audio_out_s": timing.fade_s, "requested_s": spec.fade,
                      "frames": nf})  # fmt: skip
    statements.append(f"{tail}format=yuv420p,{BT709_TAGS}[vout]")
    return ";".join(statements)


def _caption_window(spec: FinishSpec, duration_s: float) -> tuple[float | None, float | None, str]:
    """(start, end, overlay enable expression) of the caption in output time."""
    start, end = spec.caption_start, spec.caption_end
    if start is not None and start >= duration_s:
        raise MediaError(f"caption_start {start:.3f} s is past the end of the clip ({duration_s:.3f} s)")
    if end is not None and end >= duration_s:
        end = None
    if start == 0:
        start = None
    terms = ([f"gte(t,{start})"] if start is not None else []) + ([f"lt(t,{end})"] if end is not None else [])
    return start, end, "*".join(terms)


def render_final(
    src: Path, spec: FinishSpec, out: Path, scratch: Path, *, effects_engine: Engine = "auto"
) -> FinishResult:
    """Finish `src` to the deliverable `spec` at `out` (atomically). `scratch` holds temp files, each call
    in a private folder of its own, removed afterwards. `effects_engine`: "moviepy" runs every effect through
    moviepy, even those with an ffmpeg filter of the same output (see effects_render.py)."""
    src, out = Path(src), Path(out)
    info = probe(src)
    steps: list[dict[str, Any]] = [_source_step(info)]
    blockers = video_copy_blockers(info, spec)
    with task_tempdir(scratch, "finish") as tmp:
        if not blockers:
            return _finish_by_copy(src, info, spec, out, tmp, steps)
        steps.append({"step": "re-encode", "reasons": blockers})
        plan = plan_effects(spec.effects, info, effects_engine)
        with ExitStack() as stack:
            return _finish_by_render(src, info, spec, out, tmp, steps, plan, stack)


def _finish_by_render(
    src: Path,
    info: VideoInfo,
    spec: FinishSpec,
    out: Path,
    tmp: Path,
    steps: list[dict[str, Any]],
    plan: EffectPlan,
    stack: ExitStack,
) -> FinishResult:
    timing = plan_timing(info.duration_s, spec.trim, spec.speed, spec.fade, steps)
    steps.extend(plan.steps)
    effects: MoviepyEffects | None = None
    video_info, sound_src, sound_info, sound_timing, sound_label = info, src, info, timing, "source"
    effects_wav: Path | None = None
    if plan.moviepy_picture or plan.moviepy_sound:
        effects = open_moviepy(src, plan, timing.start_s, timing.source_s)
        stack.callback(effects.stack.close)
        if plan.moviepy_picture:
            # the effected stream is the new source: trimmed already, maybe longer (freeze, time_symmetrize)
            timing = plan_timing(effects.frames / FPS, None, spec.speed, spec.fade, [])
            w, h = effects.size
            video_info = VideoInfo(container="rawvideo", width=w, height=h, duration_s=timing.source_s, fps=FPS,
                                   video_codec="rawvideo", pix_fmt="rgb24", sar=info.sar)  # fmt: skip
        wav = None
        if effects.audio is not None:
            wav = tmp / "effects.wav"
            write_effected_audio(effects, wav)
            sound_src, sound_label = wav, wav.name
            sound_info = info.model_copy(update={"audio_codec": "pcm_s32le", "audio_rate": AUDIO_RATE})
            sound_timing = timing.model_copy(update={"start_frame": 0, "source_frames": effects.frames})
        effects_wav = wav
    width, height = spec.frame
    target = LoudnessTarget(integrated_lufs=spec.loudness_lufs, true_peak_dbtp=spec.true_peak_dbtp)
    window = _caption_window(spec, timing.duration_s) if spec.has_caption else None  # bad times fail early
    sound = prepare_soundtrack(
        sound_src, sound_info, sound_timing, target, spec.music, tmp, effects_af=plan.af, label=sound_label
    )

    piped = effects is not None and plan.moviepy_picture
    inputs: list[Arg] = rawvideo_input(effects.size) if piped and effects else ["-i", PathArg(src, "source")]
    wav_input = None
    if sound.wav is not None:
        wav_input = 1
        inputs += ["-i", PathArg(sound.wav, sound.wav.name)]
    overlays: list[tuple[int, str, str]] = []
    layout: CaptionLayout | None = None
    logo: LogoLayout | None = None
    if spec.caption and window is not None:
        start, end, enable = window
        layout = render_caption(spec.caption, width, height, tmp / "caption.png", spec.caption_position)
        layout = layout.model_copy(update={"start_s": start, "end_s": end})
        overlays.append((inputs.count("-i"), f"x={layout.x}:y={layout.y}", enable))
        inputs += ["-i", PathArg(tmp / "caption.png", "caption.png")]
    if spec.logo is not None:
        logo = prepare_logo(spec.logo, (width, height), tmp / "logo.png")
        overlays.append((inputs.count("-i"), f"x={logo.x}:y={logo.y}", ""))
        inputs += ["-i", PathArg(tmp / "logo.png", "logo.png")]
    video = _video_graph(video_info, spec, timing, overlays, steps, effects_vf=plan.vf,
                         rgb_from=info if piped else None)  # fmt: skip
    if layout is not None:
        steps.append(layout.describe())
    if logo is not None:
        steps.append(logo.describe())
    steps.extend(sound.steps)
    encoding = spec.encoding
    tags = spec.metadata()
    with atomic_path(out) as part:
        # fmt: off
        args: list[Arg] = [
            "-y", "-nostats", *inputs,
            "-filter_complex", f"{video};{sound.render_graph(wav_input)}", "-map", "[vout]", "-map", "[aout]",
            *encoding.video_args(), *encoding.audio_args(),
            "-map_metadata", "-1", "-map_chapters", "-1", *metadata_args(tags),
            "-f", "mp4", PathArg(part, "output.mp4"),
        ]
        # fmt: on
        if piped and effects is not None:
            run = run_ffmpeg_fed(args, frame_stream(effects), what=f"render of {src.name} with effects")
        else:
            run = run_ffmpeg(args, what=f"render of {src.name}")
        result_info = probe(part)
        _check_output(result_info, part, width, height, timing.duration_s, out.name)
    steps.append({"step": "encode", **encoding.describe()})
    steps.append({"step": "metadata", "tags": tags})
    effect_passes = [moviepy_pass(info, effects, effects_wav)] if effects is not None else []
    return FinishResult(
        width=width,
        height=height,
        fps=float(FPS),
        duration_s=timing.duration_s,
        has_caption=layout is not None,
        steps=steps,
        encoder=encoding.describe(),
        ffmpeg_commands=[*sound.commands, summarize(args)],
        mode="render",
        passes=[*effect_passes, *sound.passes, {"pass": "render", **stream_report(args, run.stderr)}],
    )


def _finish_by_copy(
    src: Path, info: VideoInfo, spec: FinishSpec, out: Path, tmp: Path, steps: list[dict[str, Any]]
) -> FinishResult:
    """No pixel change: copy the video; copy the audio too when it is already right, else encode only it."""
    target = LoudnessTarget(integrated_lufs=spec.loudness_lufs, true_peak_dbtp=spec.true_peak_dbtp)
    tags = spec.metadata()
    tag_colour = colour_tag_args(info)
    commands: list[str] = []
    passes: list[dict[str, Any]] = []
    audio_reasons = audio_copy_blockers(info, spec)
    measured: Measurement | None = None
    with atomic_path(out) as part:
        if not audio_reasons:
            # One run: copy both streams into the output and measure the sound on the way.
            # fmt: off
            args: list[Arg] = [
                "-y", "-nostats", "-i", PathArg(src, "source"),
                "-map", "0:v:0", "-map", "0:a:0", "-c", "copy", *tag_colour,
                "-map_metadata", "-1", "-map_chapters", "-1", *metadata_args(tags),
                "-f", "mp4", PathArg(part, "output.mp4"),
                "-map", "0:a:0", "-af", METER, "-f", "null", "-",
            ]
            # fmt: on
            run = run_ffmpeg(args, what=f"stream copy of {src.name}")
            commands.append(summarize(args))
            passes.append({"pass": "copy + loudness", **stream_report(args, run.stderr)})
            measured = parse_ebur128(run.stderr, src.name)
            if measured.within(target, LOUDNESS_TOLERANCE_LU):
                _check_container(part, out.name)
                steps.append({"step": "stream_copy", "video": "copied", "audio": "copied",
                              "colour_tags": "set to bt709 by h264_metadata" if tag_colour else "kept",
                              "loudness": {**measured.describe(), "target_lufs": target.integrated_lufs,
                                           "tolerance_lu": LOUDNESS_TOLERANCE_LU}})  # fmt: skip
                steps.append({"step": "metadata", "tags": tags})
                return _copy_result(spec, info.duration_s, steps, commands, passes, "stream copy")
            audio_reasons = [
                f"loudness {measured.integrated_lufs:.1f} LUFS / {measured.true_peak_dbtp:.1f} dBTP is off target "
                f"({target.integrated_lufs} LUFS, <= {target.true_peak_dbtp} dBTP)"
            ]
        timing = plan_timing(info.duration_s, None, 1.0, 0.0, steps)
        sound = prepare_soundtrack(src, info, timing, target, spec.music, tmp)
        wav_input = 1 if sound.wav is not None else None
        inputs: list[Arg] = ["-i", PathArg(src, "source")]
        if sound.wav is not None:
            inputs += ["-i", PathArg(sound.wav, sound.wav.name)]
        encoding = spec.encoding
        # fmt: off
        args = [
            "-y", "-nostats", *inputs, "-filter_complex", sound.render_graph(wav_input),
            "-map", "0:v:0", "-c:v", "copy", *tag_colour, "-map", "[aout]", *encoding.audio_args(),
            "-map_metadata", "-1", "-map_chapters", "-1", *metadata_args(tags),
            "-f", "mp4", PathArg(part, "output.mp4"),
        ]
        # fmt: on
        run = run_ffmpeg(args, what=f"video copy of {src.name}")
        commands += [*sound.commands, summarize(args)]
        passes += [*sound.passes, {"pass": "video copy + audio encode", **stream_report(args, run.stderr)}]
        _check_container(part, out.name)
    steps.append({"step": "stream_copy", "video": "copied", "audio": "encoded", "audio_reasons": audio_reasons,
                  "colour_tags": "set to bt709 by h264_metadata" if tag_colour else "kept"})  # fmt: skip
    steps.extend(sound.steps)
    steps.append({"step": "encode", "video": "copied", "audio": encoding.describe()["audio"]})
    steps.append({"step": "metadata", "tags": tags})
    return _copy_result(spec, info.duration_s, steps, commands, passes, "video copy")


def _copy_result(
    spec: FinishSpec,
    duration_s: float,
    steps: list[dict[str, Any]],
    commands: list[str],
    passes: list[dict[str, Any]],
    mode: FinishMode,
) -> FinishResult:
    audio = "stream copy" if mode == "stream copy" else spec.encoding.describe()["audio"]
    return FinishResult(
        width=spec.frame[0],
        height=spec.frame[1],
        fps=float(FPS),
        duration_s=duration_s,
        has_caption=False,
        steps=steps,
        encoder={
            "container": "mp4",
            "movflags": "+faststart+negative_cts_offsets",
            "edit_lists": False,
            "video": "stream copy",
            "audio": audio,
        },
        ffmpeg_commands=commands,
        mode=mode,
        passes=passes,
    )


def _check_container(path: Path, name: str) -> None:
    kinds = [k for k, _ in top_level_boxes(path)]
    if "moov" not in kinds or "mdat" not in kinds or kinds.index("moov") > kinds.index("mdat"):
        raise MediaError(f"{name}: moov is not before mdat")
    if edit_lists(path):
        raise MediaError(f"{name}: the file has edit lists")


def _check_output(info: VideoInfo, path: Path, width: int, height: int, duration_s: float, name: str) -> None:
    problems = []
    if (info.width, info.height) != (width, height):
        problems.append(f"frame {info.width}x{info.height}, expected {width}x{height}")
    if abs(info.duration_s - duration_s) > 2 / FPS:
        problems.append(f"duration {info.duration_s:.3f} s, expected {duration_s:.3f} s")
    if not info.has_audio or info.audio_rate != AUDIO_RATE or info.audio_channels != 2:
        problems.append("audio is not 48 kHz stereo")
    if problems:
        raise MediaError(f"{name}: rendered file is off spec: {'; '.join(problems)}")
    _check_container(path, name)


def make_thumbnail(
    video: Path,
    out_jpg: Path,
    fade_s: float,
    *,
    quality: int = 90,
    window: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """A JPEG of a representative frame (the middle, away from fades), written atomically.

    `window`: the part of the video to take it from (a reel passes one shot's span, away from the
    dissolves). Returns what was done: the time of the frame and its size. The frame is grabbed with moviepy.
    """
    from moviepy import VideoFileClip  # moviepy's import reads a .env and costs ~0.2 s: only when needed
    from PIL import Image

    video = Path(video)
    with VideoFileClip(str(video), audio=False) as clip:
        duration = float(clip.duration)
        start, end = window if window is not None else (0.0, duration)
        end = min(end, duration)
        span = end - start
        lo, hi = start + min(fade_s, span / 2), start + max(span - fade_s, span / 2)
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
