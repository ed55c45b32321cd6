"""Smart-rendered reel against ffmpeg's own CLI re-encoding the same reel, measured in one run on this machine.

Ten 6 s 720p shots are finished by shotline (`render_final`, with the IDRs a 0.5 s crossfade reel needs), then
cut into one reel with 0.5 s crossfades three ways, interleaved `--reps` times:

- smart: `render_reel` (clip bodies copied, transition windows encoded, audio joined and encoded whole);
- cli: one ffmpeg command with the xfade/acrossfade filtergraph of the whole reel, same encoder settings
  (`Encoding.video_args()`: x264 preset, CRF, closed GOP of 12, 2 B-frames, BT.709), AAC 192k, chapters,
  faststart; the baseline (it measures no loudness, so it does less than either project render);
- full: `render_reel(smart=False)`, the project's full re-encode (the fallback path).

Printed: median wall seconds and the ratio smart / cli; the PSNR (ffmpeg's psnr filter, luma and average) of
the dissolve frames and of all encoded frames of the smart reel against the full re-encode; frame count and
duration of both against `planned_duration`; what was copied and encoded.

    python bench/smart_reel.py [--preset medium] [--reps 1] [--clips 10]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shotline.media.encoding import BT709_TAGS, FPS, Encoding, metadata_args
from shotline.media.ffmpeg import ffmpeg_exe
from shotline.media.postprocess import FinishSpec, render_final
from shotline.media.probe import decode_check, probe
from shotline.media.reel import Chapter, ReelResult, planned_duration, render_reel, write_ffmetadata

FF = ffmpeg_exe()
SECONDS = 6.0
TRANSITION_S = 0.5
# lavfi sources: moving patterns, fractals, bars. (Noise-like ones such as cellauto or life are left out: two encodes
# of noise at CRF 20 differ by ~30 dB whatever they are, which would measure the noise, not the reel.)
SOURCES = ["testsrc2", "mandelbrot", "testsrc", "smptehdbars", "rgbtestsrc", "gradients", "yuvtestsrc", "sierpinski"]


def make_source(path: Path, seconds: float, video: str, seed: int) -> Path:
    """A 1280x720 24 fps clip like the generator's: H.264 + AAC pink noise whose level breathes."""
    audio = (
        f"anoisesrc=color=pink:seed={seed}:amplitude=0.05:r=48000:d={seconds},"
        f"volume='0.6+0.4*sin(2*PI*0.7*t)':eval=frame,aformat=channel_layouts=stereo"
    )
    source = f"{video}=size=1280x720:rate=24"
    subprocess.run(
        [FF, "-v", "error", "-y", "-f", "lavfi", "-t", str(seconds), "-i", source, "-f", "lavfi", "-i", audio,
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
         "-shortest", "-movflags", "+faststart", str(path)],
        check=True,
    )  # fmt: skip
    return path


def cli_command(finals: list[Path], out: Path, chapters: Path, encoding: Encoding) -> list[str]:
    """The whole reel in one ffmpeg command: xfade and acrossfade chains, chapters, the same encoder settings."""
    inputs = [a for f in finals for a in ("-i", str(f))]
    d = TRANSITION_S
    video, audio, prev_v, prev_a = [], [], "0:v", "0:a"
    for i in range(1, len(finals)):
        last = i == len(finals) - 1
        v, a = ("v" if last else f"x{i}"), ("a" if last else f"y{i}")
        video.append(f"[{prev_v}][{i}:v]xfade=transition=fade:duration={d}:offset={i * (SECONDS - d)}[{v}]")
        audio.append(f"[{prev_a}][{i}:a]acrossfade=d={d}:c1=tri:c2=tri[{a}]")
        prev_v, prev_a = v, a
    graph = ";".join(video) + f";[v]format=yuv420p,{BT709_TAGS}[vout];" + ";".join(audio)
    meta = len(finals)
    return [
        FF, "-hide_banner", "-nostdin", "-nostats", "-y", *inputs, "-i", str(chapters),
        "-filter_complex", graph, "-map", "[vout]", "-map", "[a]", *encoding.video_args(), *encoding.audio_args(),
        "-map_metadata", str(meta), "-map_chapters", str(meta), *metadata_args({"title": "bench reel"}),
        "-f", "mp4", str(out),
    ]  # fmt: skip


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def psnr_per_frame(a: Path, b: Path) -> list[tuple[float, float]]:
    """(luma PSNR, average PSNR) of every frame of `a` against `b`, by ffmpeg's psnr filter (frames paired by
    index, not by timestamp)."""
    run = subprocess.run(
        [FF, "-hide_banner", "-nostdin", "-v", "error", "-i", str(a), "-i", str(b), "-lavfi",
         "[0:v]setpts=N/(24*TB)[a];[1:v]setpts=N/(24*TB)[b];[a][b]psnr=stats_file=-", "-f", "null", "-"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    values = []
    for line in run.stdout.splitlines():
        y = re.search(r"psnr_y:(\S+)", line)
        avg = re.search(r"psnr_avg:(\S+)", line)
        if y and avg:
            values.append((float(y.group(1).replace("inf", "99")), float(avg.group(1).replace("inf", "99"))))
    return values


def gray(cmd_inputs: list[str], graph: str, count: int, size: tuple[int, int]) -> np.ndarray:
    """`count` frames of a filtergraph's [v] output as 8-bit luma, shape (count, height, width)."""
    raw = subprocess.run(
        [FF, "-v", "error", *cmd_inputs, "-filter_complex", graph, "-map", "[v]", "-frames:v", str(count),
         "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(count, size[1], size[0]).astype(np.float64)


def luma_psnr(a: np.ndarray, b: np.ndarray) -> list[float]:
    mse = ((a - b) ** 2).mean(axis=(1, 2))
    return [99.0 if m == 0 else float(10 * np.log10(255**2 / m)) for m in mse]


def dissolve_quality(finals: list[Path], smart: Path, full: Path, t: int) -> list[tuple[float, float, float]]:
    """Per dissolve, the mean luma PSNR of its frames: smart vs full, and each vs the ideal (the finals' decoded
    frames crossfaded, never encoded)."""
    n, size = round(SECONDS * FPS), (1280, 720)
    out = []
    for i in range(1, len(finals)):
        start = i * (n - t)
        pick = f"[0:v]select='between(n,{start},{start + t - 1})',setpts=N/(24*TB)[v]"
        s, f = gray(["-i", str(smart)], pick, t, size), gray(["-i", str(full)], pick, t, size)
        ideal = gray(
            ["-i", str(finals[i - 1]), "-i", str(finals[i])],
            f"[0:v]trim=start_frame={n - t},setpts=PTS-STARTPTS[a];[1:v]trim=end_frame={t},setpts=PTS-STARTPTS[b];"
            f"[a][b]xfade=transition=fade:duration={t / FPS}:offset=0[v]",
            t, size,
        )  # fmt: skip
        sf, si, fi = (float(np.mean(luma_psnr(x, y))) for x, y in ((s, f), (s, ideal), (f, ideal)))
        out.append((sf, si, fi))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--preset", default="medium", help="x264 preset of finals, reel and CLI (default: the deliverable's)"
    )
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--clips", type=int, default=10)
    args = ap.parse_args()
    encoding = Encoding(preset=args.preset)
    t_frames = round(TRANSITION_S * FPS)

    with tempfile.TemporaryDirectory(prefix="shotline-bench-") as tmp_name:
        tmp = Path(tmp_name)
        print(
            f"load average {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs; x264 preset {args.preset}; "
            f"{args.clips} clips of {SECONDS:g} s 1280x720 24 fps, {TRANSITION_S} s crossfades",
            flush=True,
        )
        finals = []
        spec = FinishSpec(
            resolution="720p", fade=0.5, trim=(0.0, SECONDS), reel_transition_frames=t_frames, x264_preset=args.preset
        )
        for i in range(args.clips):
            raw = make_source(tmp / f"raw{i}.mp4", SECONDS + 0.04, SOURCES[i % len(SOURCES)], seed=i + 1)
            finals.append(tmp / f"final{i}.mp4")
            render_final(raw, spec, finals[-1], tmp / "scratch")
        print(f"finals made (forced IDRs at {list(spec.encoding.keyframes)})", flush=True)

        n = len(finals)
        chapters = tmp / "chapters.txt"
        step = SECONDS - TRANSITION_S
        bounds = [0.0] + [i * step + TRANSITION_S / 2 for i in range(1, n)] + [n * step + TRANSITION_S]
        write_ffmetadata([Chapter(title=f"s{i + 1:02d}", start_s=bounds[i], end_s=bounds[i + 1]) for i in range(n)],
                         chapters)  # fmt: skip
        smart_out, full_out, cli_out = tmp / "smart.mp4", tmp / "full.mp4", tmp / "cli.mp4"
        titles = [f"s{i + 1:02d}" for i in range(n)]

        def smart():
            return render_reel(finals, smart_out, tmp / "scratch", transition_seconds=TRANSITION_S,
                               chapters=titles, x264_preset=args.preset)  # fmt: skip

        def full():
            return render_reel(finals, full_out, tmp / "scratch", transition_seconds=TRANSITION_S,
                               chapters=titles, x264_preset=args.preset, smart=False)  # fmt: skip

        def cli():
            return subprocess.run(cli_command(finals, cli_out, chapters, encoding), check=True, capture_output=True)

        walls: dict[str, list[float]] = {"smart": [], "cli": [], "full": []}
        result: ReelResult | None = None
        for rep in range(args.reps):
            for name, fn in (("cli", cli), ("smart", smart), ("full", full)):
                wall, out = timed(fn)
                walls[name].append(wall)
                if isinstance(out, ReelResult):
                    result = out
                print(f"  rep {rep + 1} {name}: {wall:.2f} s", flush=True)
        assert result is not None
        med = {k: statistics.median(v) for k, v in walls.items()}
        print(f"\nsmart {med['smart']:.2f} s, ffmpeg CLI {med['cli']:.2f} s, full re-encode {med['full']:.2f} s")
        print(f"ratio smart / CLI: {med['smart'] / med['cli']:.3f}x (goal <= 0.3x); "
              f"full / CLI: {med['full'] / med['cli']:.2f}x")  # fmt: skip

        video = next(s for s in result.steps if s["step"] == "video")
        print(
            f"path: {video['path']}; copied {video.get('copied_frames')} frames, encoded {video.get('encoded_frames')}"
        )
        encoded = [p for p in video.get("pieces", []) if p["piece"] == "encode"]
        encoded_frames = {f for p in encoded for f in range(*p["reel_frames"])}
        clip_frames = round(SECONDS * FPS)
        dissolves = {i * (clip_frames - t_frames) + k for i in range(1, n) for k in range(t_frames)}
        psnr = psnr_per_frame(smart_out, full_out)
        for label, frames in (("dissolve frames", dissolves), ("all encoded frames", encoded_frames)):
            ys = [psnr[f][0] for f in sorted(frames)]
            avgs = [psnr[f][1] for f in sorted(frames)]
            print(f"PSNR vs full re-encode, {label} ({len(ys)}): luma min {min(ys):.1f} dB, "
                  f"mean {statistics.mean(ys):.1f} dB; average min {min(avgs):.1f} dB (goal >= 40 dB)")  # fmt: skip
        quality = dissolve_quality(finals, smart_out, full_out, t_frames)
        print("per dissolve, mean luma PSNR: smart~full / smart~ideal / full~ideal (ideal: crossfade never encoded)")
        for i, (sf, si, fi) in enumerate(quality):
            print(f"  {i + 1}->{i + 2} ({SOURCES[i % len(SOURCES)]} -> {SOURCES[(i + 1) % len(SOURCES)]}): "
                  f"{sf:.1f} / {si:.1f} / {fi:.1f} dB")  # fmt: skip
        body = [psnr[f][0] for f in range(len(psnr)) if f not in encoded_frames]
        print(f"copied frames vs full re-encode, luma: mean {statistics.mean(body):.1f} dB (the copy is the finals' "
              "own frames; the full render encodes them once more)")  # fmt: skip

        planned = planned_duration([SECONDS] * n, "crossfade", TRANSITION_S)
        for name, path in (("smart", smart_out), ("full", full_out), ("cli", cli_out)):
            count = decode_check(path).video_frames
            info = probe(path)
            print(f"{name}: {count} frames, {info.duration_s:.3f} s (planned {round(planned * FPS)} frames, "
                  f"{planned:.3f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
