"""Running a shot's effects: which go through moviepy, which as ffmpeg filters, and the moviepy frame stream.

moviepy decodes the trimmed source once (its `VideoFileClip` reader), applies the effects frame by frame, and
the frames are written as raw rgb24 into the stdin of the one ffmpeg run that encodes the deliverable, so no
intermediate video file exists and memory stays flat in the clip's length. Time effects that read backwards
(time_mirror, time_symmetrize) get their frames through `reverse_frames.ChunkedReverseFrames`: one seek per
~1 s chunk, read forward and served backwards, so each frame is still decoded about once and one chunk is in
memory; the pass records the reader's restarts (its seeks). Sound effects (and the sound of time effects, which
moviepy applies to picture and sound together) are written by moviepy to a WAV in the task's scratch folder,
which the soundtrack passes then read in place of the source's sound.

An effect with an ffmpeg equivalent (`EffectDef.native`) runs as a filter in the render instead, when every
effect of its kind (picture or sound) has one and no time effect asks for moviepy's timeline.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shotline.errors import MediaError
from shotline.media.effects import EffectCall, touches
from shotline.media.encoding import AUDIO_RATE, FPS
from shotline.media.ffmpeg import Arg, FfmpegRun, PathArg, ffmpeg_exe, stderr_tail, to_argv
from shotline.media.probe import VideoInfo
from shotline.media.reverse_frames import reverse_friendly

Engine = Literal["auto", "moviepy"]  # auto: ffmpeg filters where every effect of a kind has one
PIPE_LABEL = "effects"


@dataclass
class EffectPlan:
    calls: tuple[EffectCall, ...]
    moviepy_picture: bool = False  # frames come from moviepy through the pipe
    moviepy_sound: bool = False  # the sound comes from moviepy's WAV
    vf: str = ""  # native picture filters, on rgb24
    af: str = ""  # native sound filters
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.calls)


def plan_effects(calls: Sequence[EffectCall], info: VideoInfo, engine: Engine = "auto") -> EffectPlan:
    plan = EffectPlan(tuple(calls))
    if not calls:
        return plan
    timed = touches(calls, "time")
    picture = [c for c in calls if "picture" in c.definition.touches]
    sound = [c for c in calls if c.definition.touches == {"sound"}]
    natives = {c.name: c.definition.native(c.typed_params()) if c.definition.native else None for c in calls}

    def all_native(group: list[EffectCall]) -> bool:
        return engine == "auto" and not timed and all(natives[c.name] is not None for c in group)

    plan.moviepy_picture = bool(picture) and not all_native(picture)
    if picture and not plan.moviepy_picture:
        plan.vf = ",".join(natives[c.name].vf for c in picture)  # type: ignore[union-attr]
    if info.has_audio:
        plan.moviepy_sound = timed or (bool(sound) and not all_native(sound))
        if sound and not plan.moviepy_sound:
            plan.af = ",".join(natives[c.name].af for c in sound)  # type: ignore[union-attr]
    for index, call in enumerate(calls):
        kinds = call.definition.touches
        if kinds == {"sound"}:
            engine_used = "none (no audio stream)" if not info.has_audio else (
                "moviepy" if plan.moviepy_sound else f"ffmpeg {natives[call.name].af}"  # type: ignore[union-attr]
            )  # fmt: skip
        else:
            engine_used = "moviepy" if plan.moviepy_picture else f"ffmpeg {natives[call.name].vf}"  # type: ignore[union-attr]
        plan.steps.append({
            "step": "effect",
            "index": index,
            "effect": call.name,
            "params": dict(call.params),
            "origin": call.definition.origin,
            "touches": sorted(kinds),
            "engine": engine_used,
            "action": call.definition.action,
        })  # fmt: skip
    return plan


@dataclass
class MoviepyEffects:
    """The effected clip, open until `close` (moviepy's readers are ffmpeg children)."""

    clip: Any  # a moviepy VideoClip, or None when only the sound goes through moviepy
    audio: Any
    frames: int  # at FPS
    size: tuple[int, int]
    stack: ExitStack
    readers: list[Any]
    reverse_chunk: int | None = None  # frames per backwards chunk when time effects read through one

    def restarts(self) -> int:
        return sum(getattr(r, "_shotline_restarts", 0) for r in self.readers)


def open_moviepy(src: Path, plan: EffectPlan, start_s: float, source_s: float) -> MoviepyEffects:
    """The source's [start_s, start_s + source_s) with the plan's moviepy effects applied, in order."""
    from moviepy import AudioFileClip, VideoFileClip  # moviepy's import reads a .env: only when needed

    stack = ExitStack()
    try:
        readers: list[Any] = []
        reverse_chunk: int | None = None
        clip = audio = None
        end = start_s + source_s
        if plan.moviepy_picture:
            root = stack.enter_context(
                VideoFileClip(str(src), audio=plan.moviepy_sound, audio_fps=AUDIO_RATE, audio_nbytes=4)
            )
            readers.append(_count_restarts(root.reader))
            if touches(plan.calls, "time"):  # time_mirror & co. read backwards: a chunk per seek, not a frame
                root = reverse_friendly(root)
                reverse_chunk = root._shotline_frames.chunk
            clip = root.subclipped(start_s, min(end, root.duration))
            for call in plan.calls:
                if call.definition.touches != {"sound"} or plan.moviepy_sound:
                    clip = call.definition.build(call.typed_params())(clip)
            audio = clip.audio if plan.moviepy_sound else None
        elif plan.moviepy_sound:
            root = stack.enter_context(AudioFileClip(str(src), fps=AUDIO_RATE, nbytes=4))
            audio = root.subclipped(start_s, min(end, root.duration))
            for call in plan.calls:
                if call.definition.touches == {"sound"}:
                    audio = call.definition.build(call.typed_params())(audio)
        frames = round((clip.duration if clip is not None else source_s) * FPS)
        size = (int(clip.w), int(clip.h)) if clip is not None else (0, 0)
        if audio is not None:
            audio = audio.with_duration(frames / FPS)  # echoes (audio_delay) would run past the picture
        return MoviepyEffects(clip, audio, frames, size, stack, readers, reverse_chunk)
    except BaseException:
        stack.close()
        raise


def _count_restarts(reader: Any) -> Any:
    """Count how often moviepy's reader restarts ffmpeg (a seek: reading backwards, as time_mirror does)."""
    initialize = reader.initialize
    reader._shotline_restarts = 0

    def counted(start_time: float = 0) -> None:
        reader._shotline_restarts += 1
        initialize(start_time)

    reader.initialize = counted
    return reader


def write_effected_audio(effects: MoviepyEffects, wav: Path) -> None:
    """moviepy writes the effected sound as 32-bit PCM at the deliverable's rate (it clips at +-0.99)."""
    effects.audio.write_audiofile(str(wav), fps=AUDIO_RATE, nbytes=4, codec="pcm_s32le", logger=None)


def frame_stream(effects: MoviepyEffects) -> Iterator[bytes]:
    """The effected frames, one rgb24 buffer each, at FPS: one frame in memory at a time."""
    import numpy as np

    clip, (w, h) = effects.clip, effects.size
    last_t = max(0.0, clip.duration - 1e-3)
    for i in range(effects.frames):
        frame = clip.get_frame(min(i / FPS, last_t))
        if frame.shape[:2] != (h, w):
            raise MediaError(
                f"an effect changed the frame size mid-clip ({w}x{h} -> {frame.shape[1]}x{frame.shape[0]})"
            )
        if frame.ndim == 2:
            frame = np.dstack(3 * [frame])
        yield np.ascontiguousarray(frame[:, :, :3], dtype=np.uint8).tobytes()


def rawvideo_input(size: tuple[int, int]) -> list[Arg]:
    w, h = size
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(FPS),
            "-i", PathArg(Path("pipe:0"), PIPE_LABEL)]  # fmt: skip


def run_ffmpeg_fed(args: Sequence[Arg], frames: Iterator[bytes], *, what: str, timeout: float = 900.0) -> FfmpegRun:
    """`ffmpeg <args>` with `frames` written to its stdin; like `ffmpeg.run_ffmpeg`, the child is always reaped."""
    argv = [ffmpeg_exe(), "-hide_banner", *to_argv(args)]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as exc:
        raise MediaError(f"{what}: cannot start ffmpeg: {exc}") from exc
    assert proc.stdin is not None and proc.stderr is not None
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    broken = False
    try:
        for frame in frames:
            try:
                proc.stdin.write(frame)
            except BrokenPipeError:
                broken = True
                break
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        proc.wait(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        reader.join(timeout=10)
        with contextlib.suppress(OSError):
            proc.stdin.close()
        proc.stderr.close()
    stderr = b"".join(chunks).decode(errors="replace")
    if proc.returncode != 0 or broken:
        raise MediaError(f"{what}: ffmpeg failed (exit {proc.returncode})\n{stderr_tail(stderr)}")
    return FfmpegRun(proc.returncode, "", stderr)


def rgb_to_deliverable(info: VideoInfo) -> str:
    """rgb24 back to 4:2:0 with the matrix the decoder used: an untagged source was decoded as BT.601
    (swscale's default), so encoding with BT.601 gives back its own values, which are then taken as BT.709
    like the no-effects path does; a tagged source was decoded with its matrix, so it goes out as BT.709."""
    matrix = "bt601" if info.color_space is None else "bt709"
    return f"scale=out_color_matrix={matrix}:out_range=tv,format=yuv420p"


def moviepy_pass(info: VideoInfo, effects: MoviepyEffects, wav: Path | None) -> dict[str, Any]:
    """What moviepy's readers decoded and its writer encoded (ffmpeg's stream report does not see them)."""
    decoded = []
    if effects.clip is not None:
        decoded.append(f"source#video ({info.video_codec})")
    if effects.audio is not None:
        decoded.append(f"source#audio ({info.audio_codec})")
    report: dict[str, Any] = {"pass": "effects (moviepy)", "decoded": decoded,
                              "encoded": ["pcm_s32le"] if wav is not None else [], "copied": []}  # fmt: skip
    if effects.clip is not None:
        report["reader_restarts"] = effects.restarts()
        if effects.reverse_chunk is not None:
            report["reverse_chunk_frames"] = effects.reverse_chunk
    return report
