"""Cutting a storyboard's finished clips into one reel: crossfades or cuts, loudness, chapters, encoding.

An audio pass decodes every clip's sound once, joins it (`acrossfade` or `concat`) into a WAV in the
task's scratch folder and measures it; one render then decodes every clip's picture once, conforms each to
the first clip's frame (letterboxed if its shape differs, so nothing is cropped away), joins them with
`xfade` (crossfade) or `concat` (cut), applies the one gain that brings the whole reel to its loudness, and
encodes it to the deliverable spec with one mp4 chapter per shot.

Crossfade timing: each transition overlaps the end of a clip with the start of the next, so the reel
lasts sum(durations) - (n-1) * t. t is rounded to whole frames and clamped to half the shortest clip,
so a clip is never inside two transitions at once. A chapter starts at the middle of the dissolve into
its shot (the edit point of a centred dissolve).

Smart render (the default): when clips are shotline finals of the reel's frame and encoding, their picture
between transitions is copied and only the transition windows are encoded (`smart_reel.py`); the sound is
still joined, measured and encoded whole as above. Clips that cannot be copied are encoded inside the windows
around them, and when the pieces would not make one conformant stream the whole reel is rendered as above.
`steps` ("video") and `passes` record which frames were copied and which encoded.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from shotline.errors import MediaError
from shotline.fsutil import atomic_path
from shotline.media import loudness
from shotline.media.encoding import (
    AAC_PRIMING_COMPENSATION,
    AUDIO_RATE,
    BT709_TAGS,
    FPS,
    Encoding,
    X264Preset,
    metadata_args,
)
from shotline.media.ffmpeg import Arg, PathArg, run_ffmpeg, stream_report, summarize, task_tempdir
from shotline.media.frames import plan_fit
from shotline.media.probe import VideoInfo, edit_lists, faststart_ok, probe
from shotline.media.smart_reel import SmartVideo, build_smart_video, verify_joined

Transition = Literal["crossfade", "cut"]
VideoPath = Literal["smart", "full"]
# Part of a reel's cache key: bump when the smart render changes what comes out for the same clips.
REEL_VIDEO_VERSION = "smart-1"


class Chapter(BaseModel):
    title: str
    start_s: float
    end_s: float


class ReelResult(BaseModel):
    width: int
    height: int
    fps: float
    duration_s: float
    transition: Transition
    transition_seconds: float  # as applied (after rounding and clamping); 0 for cuts
    chapters: list[Chapter]
    steps: list[dict[str, Any]]
    encoder: dict[str, Any]
    ffmpeg_commands: list[str]
    passes: list[dict[str, Any]] = []  # per ffmpeg run: what it decoded, encoded and copied
    video_path: VideoPath = "full"  # smart: clip bodies copied, transitions encoded (see steps "video")


def clip_frames(duration_s: float) -> int:
    return max(1, round(duration_s * FPS))


def _frames(info: VideoInfo) -> int:
    return clip_frames(info.duration_s)


def transition_frames(transition: Transition, seconds: float, frames: list[int]) -> int:
    """The transition as applied, in frames: whole frames, at most half the shortest clip; 0 for cuts."""
    if transition == "cut" or len(frames) < 2:
        return 0
    return min(max(0, round(seconds * FPS)), min(frames) // 2)


def planned_duration(durations: list[float], transition: Transition, seconds: float) -> float:
    """How long a reel of clips lasting `durations` comes out (each transition overlaps two clips)."""
    frames = [clip_frames(d) for d in durations]
    return (sum(frames) - (len(frames) - 1) * transition_frames(transition, seconds, frames)) / FPS


def _escape_ffmetadata(text: str) -> str:
    for ch in ("\\", "=", ";", "#", "\n"):
        text = text.replace(ch, "\\" + ch)
    return text


def write_ffmetadata(chapters: list[Chapter], path: Path) -> None:
    lines = [";FFMETADATA1"]
    for ch in chapters:
        lines += [
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={round(ch.start_s * 1000)}",
            f"END={round(ch.end_s * 1000)}",
            f"title={_escape_ffmetadata(ch.title)}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _clamp_transition(transition: Transition, seconds: float, frames: list[int], steps: list[dict[str, Any]]) -> int:
    """The transition length in frames."""
    applied = transition_frames(transition, seconds, frames)
    if transition != "cut" and len(frames) > 1 and applied != max(0, round(seconds * FPS)):
        steps.append(
            {
                "step": "note",
                "transition_clamped": {
                    "asked_s": seconds,
                    "applied_s": applied / FPS,
                    "reason": "at most half the shortest clip",
                },
            }
        )
    return applied


def _conform(i: int, info: VideoInfo, frame: tuple[int, int], frames: int) -> tuple[str, str, dict[str, Any]]:
    """Per-clip graphs [i:v] -> [v{i}] and audio -> [a{i}], both exactly `frames` long."""
    width, height = info.display_size
    fit = plan_fit(width, height, frame, "contain", info.sar)
    d = frames / FPS
    video = (
        f"[{i}:v:0]setpts=PTS-STARTPTS,fps={FPS},tpad=stop_mode=clone:stop={FPS},trim=end_frame={frames},"
        f"{fit.filters()},format=yuv420p,setpts=PTS-STARTPTS[v{i}]"
    )
    if info.has_audio:
        audio = (
            f"[{i}:a:0]asetpts=PTS-STARTPTS,aresample={AUDIO_RATE},"
            f"aformat=sample_fmts=fltp:channel_layouts=stereo,apad=whole_dur={d},atrim=end={d}[a{i}]"
        )
    else:
        audio = f"anullsrc=r={AUDIO_RATE}:cl=stereo,atrim=end={d}[a{i}]"
    step: dict[str, Any] = {"clip": i + 1, "frames": frames, "duration_s": d, "has_audio": info.has_audio}
    if (width, height) != frame:
        step["conformed"] = fit.describe()
    return video, audio, step


def _join(frames: list[int], t_frames: int) -> tuple[str, str, list[float]]:
    """Join graphs -> [vjoin] and [ajoin]; and the time each clip starts at in the reel."""
    n = len(frames)
    if n == 1:
        return "[v0]null[vjoin]", "[a0]anull[ajoin]", [0.0]
    if t_frames == 0:
        starts = [sum(frames[:i]) / FPS for i in range(n)]
        video = "".join(f"[v{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0[vjoin]"
        audio = "".join(f"[a{i}]" for i in range(n)) + f"concat=n={n}:v=0:a=1[ajoin]"
        return video, audio, starts
    t = t_frames / FPS
    video_parts, audio_parts, starts = [], [], [0.0]
    prev, end = "0", frames[0]
    for i in range(1, n):
        offset = end - t_frames  # in frames: where clip i starts in the reel
        out = "join" if i == n - 1 else f"x{i}"
        video_parts.append(f"[v{prev}][v{i}]xfade=transition=fade:duration={t}:offset={offset / FPS}[v{out}]")
        audio_parts.append(f"[a{prev}][a{i}]acrossfade=d={t}:c1=tri:c2=tri[a{out}]")
        starts.append(offset / FPS)
        prev, end = out, offset + frames[i]
    return ";".join(video_parts), ";".join(audio_parts), starts


def render_reel(
    clips: list[Path],
    out: Path,
    scratch: Path,
    *,
    transition: Transition = "crossfade",
    transition_seconds: float = 0.5,
    loudness_lufs: float = -14.0,
    true_peak_dbtp: float = -1.0,
    chapters: list[str] | None = None,
    title: str | None = None,
    tags: dict[str, str] | None = None,
    x264_preset: X264Preset = "medium",
    crf: int = 20,
    threads: int | None = None,
    durations: list[float] | None = None,
    smart: bool = True,
) -> ReelResult:
    """Cut `clips` (in order) into one reel at `out` (atomically). `chapters`: one title per clip.

    `durations`: how long each clip is meant to last (a clip a frame longer, as a copied generator output
    may be, is cut to it); by default each clip's own length. `smart`: copy what can be copied (the module
    docstring); False always renders the whole picture."""
    if not clips:
        raise MediaError("a reel needs at least one clip")
    titles = chapters if chapters is not None else [f"Shot {i + 1}" for i in range(len(clips))]
    if len(titles) != len(clips):
        raise MediaError(f"{len(titles)} chapter titles for {len(clips)} clips")
    infos = [probe(c) for c in clips]
    first_w, first_h = infos[0].display_size
    frame = (first_w - first_w % 2, first_h - first_h % 2)
    if durations is not None and len(durations) != len(clips):
        raise MediaError(f"{len(durations)} durations for {len(clips)} clips")
    frames = [clip_frames(d) for d in durations] if durations is not None else [_frames(i) for i in infos]
    steps: list[dict[str, Any]] = []
    t_frames = _clamp_transition(transition, transition_seconds, frames, steps)
    total_frames = sum(frames) - (len(clips) - 1) * t_frames
    duration = total_frames / FPS

    video_parts, audio_parts, conform_steps = [], [], []
    for i, info in enumerate(infos):
        video, audio, step = _conform(i, info, frame, frames[i])
        video_parts.append(video)
        audio_parts.append(audio)
        conform_steps.append(step)
    steps.append({"step": "conform", "frame": list(frame), "fps": FPS, "fit": "contain", "clips": conform_steps})
    video_join, audio_join, starts = _join(frames, t_frames)
    steps.append(
        {
            "step": "join",
            "transition": transition if len(clips) > 1 else "none",
            "transition_seconds": t_frames / FPS,
            "video": "xfade=fade" if t_frames else "concat",
            "audio": "acrossfade (tri)" if t_frames else "concat",
        }
    )
    half = t_frames / FPS / 2
    bounds = [0.0] + [s + half for s in starts[1:]] + [duration]
    chapter_list = [
        Chapter(title=titles[i], start_s=round(bounds[i], 3), end_s=round(bounds[i + 1], 3)) for i in range(len(clips))
    ]
    steps.append({"step": "chapters", "chapters": [c.model_dump() for c in chapter_list]})

    audio_graph = ";".join([*audio_parts, audio_join])
    video_graph = ";".join([*video_parts, video_join])
    inputs: list[Arg] = []
    for i, clip in enumerate(clips):
        inputs += ["-i", PathArg(Path(clip), f"clip{i + 1}")]
    target = loudness.LoudnessTarget(integrated_lufs=loudness_lufs, true_peak_dbtp=true_peak_dbtp)
    encoding = Encoding(preset=x264_preset, crf=crf, threads=threads)
    meta = dict(tags or {})
    if title is not None:
        meta["title"] = title
    commands: list[str] = []
    passes: list[dict[str, Any]] = []
    video_step: dict[str, Any] = {"step": "video", "path": "full"}
    with task_tempdir(scratch, "reel") as tmp:
        wav = PathArg(tmp / "reel-audio.wav", "reel-audio.wav")
        with ThreadPoolExecutor(max_workers=1) as pool:  # the sound is joined while the pieces are made
            audio_job = pool.submit(loudness.measure_to_wav, inputs, audio_graph, "ajoin", wav, what="reel audio pass")
            smart_video: SmartVideo | None = None
            if smart:
                smart_video, reasons = build_smart_video(clips, infos, frames, t_frames, frame, encoding, tmp)
                if smart_video is None:
                    video_step["smart_refused"] = reasons
            measured, run, args = audio_job.result()
        commands.append(summarize(args))
        passes.append({"pass": "audio", **stream_report(args, run.stderr)})
        norm, loud_step = loudness.gain_filter(target, measured)
        meta_file = tmp / "chapters.txt"
        write_ffmetadata(chapter_list, meta_file)
        gain = f"{norm}," if norm else ""
        with atomic_path(out) as part:

            def render(video_inputs: list[Arg], video_graph_part: str, video_args: list[Arg], label: str) -> None:
                wav_input = sum(1 for a in video_inputs if a == "-i")
                meta_input = wav_input + 1
                graph = f"{video_graph_part}[{wav_input}:a]{gain}{AAC_PRIMING_COMPENSATION}[aout]"
                # fmt: off
                args: list[Arg] = [
                    "-y", "-nostats", *video_inputs, "-i", wav, "-i", PathArg(meta_file, "chapters.ffmetadata"),
                    "-filter_complex", graph, *video_args, "-map", "[aout]", *encoding.audio_args(),
                    # The ffmetadata input carries the chapters and must also be the metadata source, or the
                    # mp4 muxer drops the chapter titles; the global tags come from -metadata.
                    "-map_metadata", str(meta_input), "-map_chapters", str(meta_input), *metadata_args(meta),
                    "-f", "mp4", PathArg(part, "reel.mp4"),
                ]
                # fmt: on
                run = run_ffmpeg(args, what=label)
                commands.append(summarize(args))
                passes.append({"pass": "render" if smart_video is None else "join", **stream_report(args, run.stderr)})

            if smart_video is not None:
                render(smart_video.input_args(), "", ["-map", "0:v:0", "-c:v", "copy"], "reel join")
                problems = verify_joined(part, smart_video, total_frames)
                if problems:
                    video_step["smart_refused"] = problems
                    smart_video = None
                else:
                    commands[-1:-1] = smart_video.commands
                    passes[-1:-1] = smart_video.passes
                    video_step.update(_smart_step(smart_video, total_frames))
            if smart_video is None:
                full_graph = f"{video_graph};[vjoin]format=yuv420p,{BT709_TAGS}[vout];"
                render(inputs, full_graph, ["-map", "[vout]", *encoding.video_args()], "reel render")
            result = probe(part)
            if not faststart_ok(part) or edit_lists(part):
                raise MediaError("reel is off spec: moov after mdat, or edit lists")
    steps.append(video_step)
    steps.append(loud_step)
    steps.append({"step": "encode", **encoding.describe()})
    steps.append({"step": "metadata", "tags": meta})
    if (result.width, result.height) != frame or abs(result.duration_s - duration) > 2 / FPS:
        raise MediaError(
            f"reel is off spec: {result.width}x{result.height}, {result.duration_s:.3f} s "
            f"(expected {frame[0]}x{frame[1]}, {duration:.3f} s)"
        )
    return ReelResult(
        width=frame[0],
        height=frame[1],
        fps=float(FPS),
        duration_s=duration,
        transition=transition,
        transition_seconds=t_frames / FPS,
        chapters=chapter_list,
        steps=steps,
        encoder=encoding.describe(),
        ffmpeg_commands=commands,
        passes=passes,
        video_path=video_step["path"],
    )


def _smart_step(video: SmartVideo, total_frames: int) -> dict[str, Any]:
    copied = video.copied_frames()
    return {
        "path": "smart",
        "copied_frames": copied,
        "encoded_frames": total_frames - copied,
        "clips": video.clip_steps,
        "pieces": [p.describe() for p in video.pieces],
    }
