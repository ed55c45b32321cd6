"""Post-processing speed against ffmpeg's own CLI, measured in one run on this machine.

For each operation the project's call (`render_final`, `render_reel`) and the ffmpeg command(s) a person
would type for the same deliverable (same x264 preset, CRF, GOP and threads; AAC 192k 48 kHz stereo;
faststart; two-pass loudness: measure with ebur128, then one gain) are run in turn, `--reps` times each,
interleaved, on synthetic 720p clips made with ffmpeg's lavfi sources. Printed: median wall seconds of
each, their ratio, and the peak RSS of each process tree (the Python process and its ffmpeg children for
the project, the ffmpeg process for the CLI), sampled every 20 ms.

Then: what the full chain decoded and encoded (from ffmpeg's own stream mapping), whether the no-op was a
stream copy (video packets byte-identical), and the peak RSS of the full chain on a 3 s and a 15 s clip.

    python bench/postprocess.py [--preset medium] [--reps 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shotline.media.encoding import BT709_TAGS
from shotline.media.ffmpeg import ffmpeg_exe
from shotline.media.fonts import font_path
from shotline.media.postprocess import FinishSpec, LogoSpec, render_final
from shotline.media.reel import render_reel

FF = ffmpeg_exe()
CAPTION = "The fishing boats come home at dawn"


# -- peak RSS of a process tree, sampled -------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(k) for k in f.read().split()]
    except OSError:
        pass
    return kids


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeRSS:
    """Samples the summed RSS of `root` and all its descendants (shared pages count twice, as in `ps`)."""

    def __init__(self, root: int, include_root: bool = True, interval: float = 0.02) -> None:
        self.root, self.include_root, self.interval = root, include_root, interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total, stack = (_rss_kb(self.root) if self.include_root else 0), _children(self.root)
        while stack:
            pid = stack.pop()
            total += _rss_kb(pid)
            stack += _children(pid)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


def run_project(fn: Callable[[], object]) -> tuple[float, float, object]:
    with TreeRSS(os.getpid()) as rss:
        t0 = time.perf_counter()
        result = fn()
        wall = time.perf_counter() - t0
    return wall, rss.peak_mb, result


def run_cli(commands: Callable[[], list[list[str]]]) -> tuple[float, float]:
    """Run the commands one after another (a later one may depend on an earlier one's output)."""
    wall, peak = 0.0, 0.0
    for argv in commands():
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with TreeRSS(proc.pid) as rss:
            _, err = proc.communicate()
        wall += time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"ffmpeg failed: {' '.join(argv)}\n{err.decode()[-2000:]}")
        # wait4's maxrss catches processes too short for the sampler
        peak = max(peak, rss.peak_mb)
        run_cli.last_stderr = err.decode(errors="replace")  # type: ignore[attr-defined]
    return wall, peak


# -- the CLI equivalents ------------------------------------------------------------------------------------


class Cli:
    def __init__(self, preset: str, threads: int, out: Path) -> None:
        self.preset, self.threads, self.out = preset, threads, out

    def video(self) -> list[str]:
        return [
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-preset",
            self.preset,
            "-crf",
            "20",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "12",
            "-bf",
            "2",
            "-threads",
            str(self.threads),
            "-r",
            "24",
            "-colorspace",
            "bt709",
            "-color_primaries",
            "bt709",
            "-color_trc",
            "bt709",
            "-color_range",
            "tv",
        ]

    @staticmethod
    def audio() -> list[str]:
        return ["-c:a", "aac", "-b:a", "192k", "-ar", "48000", "-ac", "2"]

    @staticmethod
    def measure(src: Path, audio_filter: str = "anull") -> list[str]:
        return [
            FF,
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-i",
            str(src),
            "-map",
            "0:a:0",
            "-af",
            f"{audio_filter},ebur128=peak=true:framelog=quiet",
            "-f",
            "null",
            "-",
        ]

    @staticmethod
    def gain(target: float = -14.0, ceiling: float = -1.0) -> str:
        """Pass 2's audio gain from pass 1's ebur128 summary: a volume, plus the same true-peak limiter the
        project uses when the gain alone would break the ceiling (so both sides make the same deliverable)."""
        text = run_cli.last_stderr  # type: ignore[attr-defined]
        summary = text[text.rfind("Summary:") :]
        measured = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))  # type: ignore[union-attr]
        peak = float(re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary).group(1))  # type: ignore[union-attr]
        gain = target - measured
        if peak + gain <= ceiling - 0.5:
            return f"volume={gain:.2f}dB"
        limit = 10 ** ((ceiling - 0.5) / 20)
        return (
            f"volume={gain:.2f}dB,aresample=192000,"
            f"alimiter=limit={limit:.4f}:attack=5:release=50:level=disabled:latency=1,aresample=48000"
        )

    def two_pass(
        self,
        src: Path,
        vf: str,
        af: str = "anull",
        inputs: list[str] | None = None,
        extra: list[str] | None = None,
        complex_graph: bool = False,
    ) -> Callable[[], list[list[str]]]:
        """Pass 1 measures the audio as it will be; pass 2 renders with the gain."""
        state: dict[str, list[str]] = {}

        def commands():
            yield self.measure(src, af)
            gain = self.gain()
            filters = (
                ["-filter_complex", f"{vf};[0:a]{af},{gain}[a]", "-map", "[v]", "-map", "[a]"]
                if complex_graph
                else ["-vf", vf, "-af", f"{af},{gain}"]
            )
            state["pass2"] = [
                FF,
                "-hide_banner",
                "-nostdin",
                "-y",
                "-i",
                str(src),
                *(inputs or []),
                *filters,
                *self.video(),
                *self.audio(),
                *(extra or []),
                "-movflags",
                "+faststart",
                str(self.out),
            ]
            yield state["pass2"]

        return commands  # type: ignore[return-value]


# -- media ----------------------------------------------------------------------------------------------------


def make_source(path: Path, seconds: float, video: str = "testsrc2", seed: int = 7) -> Path:
    """A 1280x720 24 fps clip like the generator's: H.264 + AAC pink noise whose level breathes (~-30 LUFS)."""
    audio = (
        f"anoisesrc=color=pink:seed={seed}:amplitude=0.05:r=48000:d={seconds},"
        f"volume='0.6+0.4*sin(2*PI*0.7*t)':eval=frame,aformat=channel_layouts=stereo"
    )
    subprocess.run(
        [
            FF,
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-t",
            str(seconds),
            "-i",
            f"{video}=size=1280x720:rate=24",
            "-f",
            "lavfi",
            "-i",
            audio,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-shortest",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
    )
    return path


def make_logo(path: Path) -> Path:
    from PIL import Image, ImageDraw

    im = Image.new("RGBA", (240, 120), (0, 0, 0, 0))
    ImageDraw.Draw(im).rounded_rectangle((0, 0, 239, 119), radius=24, fill=(240, 200, 40, 255))
    im.save(path)
    return path


def video_md5(path: Path) -> str:
    return subprocess.run(
        [FF, "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "hash", "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


# -- the benchmark -------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="medium", help="x264 preset for both sides (default: the deliverable's)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    preset, threads = args.preset, args.threads

    with tempfile.TemporaryDirectory(prefix="shotline-bench-") as tmp_name:
        tmp = Path(tmp_name)
        print(
            f"load average {os.getloadavg()[0]:.1f}; ffmpeg {FF.rsplit('-', 1)[-1]}, x264 preset {preset}, "
            f"threads {threads}, {args.reps} reps, "
            f"{os.cpu_count()} CPUs; clips 1280x720 24 fps",
            flush=True,
        )
        src = make_source(tmp / "src6.mp4", 6)
        logo = make_logo(tmp / "logo.png")
        font = str(font_path()).replace(":", r"\:")
        out, cli_out = tmp / "project.mp4", tmp / "cli.mp4"
        cli = Cli(preset, threads, cli_out)
        common = {"x264_preset": preset, "threads": threads}

        def finish(**spec: object) -> Callable[[], object]:
            return lambda: render_final(src, FinishSpec(**{**common, **spec}), out, tmp / "scratch")

        # the no-op source: a deliverable already (landscape 720p, -14 LUFS, BT.709, no fades)
        deliverable = tmp / "deliverable.mp4"
        render_final(src, FinishSpec(resolution="720p", fade=0, **common), deliverable, tmp / "scratch")
        # the reel's clips: four finished 6 s shots
        finals = []
        for i, kind in enumerate(["testsrc2", "mandelbrot", "testsrc", "smptebars"]):
            raw = make_source(tmp / f"raw{i}.mp4", 6, kind, seed=i + 1)
            finals.append(tmp / f"final{i}.mp4")
            render_final(raw, FinishSpec(resolution="720p", fade=0.5, **common), finals[-1], tmp / "scratch")

        drawtext = (
            f"drawtext=fontfile='{font}':text='{CAPTION}':fontsize=43:fontcolor=white:borderw=2:"
            f"bordercolor=black:box=1:boxcolor=black@0.6:boxborderw=26:x=(w-text_w)/2:y=h*0.95-text_h-26"
        )
        fades_v = "fade=t=in:s=0:n=12,fade=t=out:s=131:n=12"
        fades_a = "afade=t=in:d=0.5,afade=t=out:st=5.5:d=0.5"
        tags = {"title": "Harbor: s01", "storyboard": "harbor", "shot": "s01", "generator": "preview"}
        meta = [a for k, v in tags.items() for a in ("-metadata", f"{k}={v}")] + ["-movflags", "+use_metadata_tags"]
        full_v = (
            f"[0:v]trim=start=0.5:end=5.5,setpts=PTS-STARTPTS,scale=-2:1280:flags=lanczos,crop=720:1280,"
            f"setsar=1[p];[p][1:v]overlay=x=W-w-36:y=64[l];[l]{drawtext},"
            f"fade=t=in:s=0:n=12,fade=t=out:s=107:n=12,format=yuv420p,{BT709_TAGS}[v]"
        )
        full_a = "atrim=start=0.5:end=5.5,asetpts=PTS-STARTPTS,afade=t=in:d=0.5,afade=t=out:st=4.5:d=0.5"
        logo_small = tmp / "logo-small.png"
        from PIL import Image

        with Image.open(logo) as im:
            im.resize((86, 44)).save(logo_small)

        ops: list[tuple[str, Callable[[], object], Callable[[], list[list[str]]]]] = [
            (
                "conform 16:9 -> 9:16 cover",
                finish(format="portrait", fade=0),
                cli.two_pass(src, f"scale=-2:1280:flags=lanczos,crop=720:1280,setsar=1,format=yuv420p,{BT709_TAGS}"),
            ),
            (
                "contain (black bars)",
                finish(format="square", fit="contain", fade=0),
                cli.two_pass(
                    src,
                    f"scale=720:-2:flags=lanczos,pad=720:720:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,format=yuv420p,"
                    f"{BT709_TAGS}",
                ),
            ),
            (
                "contain (blurred fill)",
                finish(format="square", fit="contain", fill="blur", fade=0),
                cli.two_pass(
                    src,
                    f"[0:v]split[a][b];[a]scale=1280:720,crop=720:720,gblur=sigma=20[bg];"
                    f"[b]scale=720:-2:flags=lanczos[fg];[bg][fg]overlay=0:158,setsar=1,format=yuv420p,"
                    f"{BT709_TAGS}[v]",
                    complex_graph=True,
                ),
            ),
            (
                "fades (video + audio)",
                finish(fade=0.5),
                cli.two_pass(src, f"{fades_v},format=yuv420p,{BT709_TAGS}", fades_a),
            ),
            ("caption", finish(fade=0, caption=CAPTION), cli.two_pass(src, f"{drawtext},format=yuv420p,{BT709_TAGS}")),
            (
                "full chain (trim, 9:16, logo, caption, fades, loudness, tags)",
                finish(
                    format="portrait",
                    trim=(0.5, 5.5),
                    fade=0.5,
                    caption=CAPTION,
                    title=tags["title"],
                    tags={k: v for k, v in tags.items() if k != "title"},
                    logo=LogoSpec(path=logo),
                ),
                cli.two_pass(src, full_v, full_a, inputs=["-i", str(logo_small)], extra=meta, complex_graph=True),
            ),
        ]

        # The reel: xfade/acrossfade chains, chapters from an ffmetadata file, two-pass loudness.
        reel_out = tmp / "reel.mp4"
        chapters = tmp / "chapters.txt"
        chapters.write_text(
            ";FFMETADATA1\n"
            + "".join(
                f"[CHAPTER]\nTIMEBASE=1/1000\nSTART={round(s * 1000)}\nEND={round(e * 1000)}\ntitle=s0{i + 1}\n"
                for i, (s, e) in enumerate([(0, 5.75), (5.75, 11.25), (11.25, 16.75), (16.75, 22.5)])
            )
        )
        inputs = [a for f in finals for a in ("-i", str(f))]
        xv = (
            "[0:v][1:v]xfade=transition=fade:duration=0.5:offset=5.5[x1];"
            "[x1][2:v]xfade=transition=fade:duration=0.5:offset=11[x2];"
            f"[x2][3:v]xfade=transition=fade:duration=0.5:offset=16.5,format=yuv420p,{BT709_TAGS}[v]"
        )
        xa = (
            "[0:a][1:a]acrossfade=d=0.5:c1=tri:c2=tri[y1];[y1][2:a]acrossfade=d=0.5:c1=tri:c2=tri[y2];"
            "[y2][3:a]acrossfade=d=0.5:c1=tri:c2=tri"
        )

        def reel_cli():
            yield [
                FF,
                "-hide_banner",
                "-nostdin",
                "-nostats",
                *inputs,
                "-filter_complex",
                f"{xa},ebur128=peak=true:framelog=quiet[m]",
                "-map",
                "[m]",
                "-f",
                "null",
                "-",
            ]
            yield [
                FF,
                "-hide_banner",
                "-nostdin",
                "-y",
                *inputs,
                "-i",
                str(chapters),
                "-filter_complex",
                f"{xv};{xa},{Cli.gain()}[a]",
                "-map",
                "[v]",
                "-map",
                "[a]",
                "-map_metadata",
                "4",
                "-map_chapters",
                "4",
                *cli.video(),
                *cli.audio(),
                "-movflags",
                "+faststart",
                str(cli_out),
            ]

        ops.append(
            (
                # every frame re-encoded, as the CLI does; bench/smart_reel.py measures the smart render
                "reel: 4 clips, 0.5 s crossfades, chapters (full re-encode)",
                lambda: render_reel(
                    finals,
                    reel_out,
                    tmp / "scratch",
                    transition="crossfade",
                    transition_seconds=0.5,
                    chapters=[f"s0{i}" for i in range(1, 5)],
                    x264_preset=preset,
                    threads=threads,
                    smart=False,
                ),
                reel_cli,
            )
        )
        noop_spec = FinishSpec(resolution="720p", fade=0, **common)
        ops.append(
            (
                "no-op (already the deliverable)",
                lambda: render_final(deliverable, noop_spec, out, tmp / "scratch"),
                lambda: iter(
                    [
                        [
                            FF,
                            "-hide_banner",
                            "-nostdin",
                            "-y",
                            "-i",
                            str(deliverable),
                            "-c",
                            "copy",
                            "-movflags",
                            "+faststart",
                            str(cli_out),
                        ]
                    ]
                ),
            )
        )

        rows = []
        results: dict[str, object] = {}
        for name, project, cli_cmds in ops:
            project()  # warm-up: imports, font caches, page cache
            p_times, c_times, p_rss, c_rss = [], [], [], []
            for _ in range(args.reps):
                wall, rss, results[name] = run_project(project)
                p_times.append(wall)
                p_rss.append(rss)
                wall, rss = run_cli(cli_cmds)
                c_times.append(wall)
                c_rss.append(rss)
            p, c = statistics.median(p_times), statistics.median(c_times)
            best = min(p_times) / min(c_times)
            rows.append((name, p, c, p / c, max(p_rss), max(c_rss), best))
            print(
                f"  {name:<62} project {p:6.2f} s  ffmpeg {c:6.2f} s  ratio {p / c:4.2f} (best-of {best:4.2f})  "
                f"peak RSS {max(p_rss):5.0f} / {max(c_rss):5.0f} MB",
                flush=True,
            )

        # The no-op against the CLI doing what the project must also do: copy, and check the loudness.
        def noop_cli_measured():
            yield [
                FF,
                "-hide_banner",
                "-nostdin",
                "-y",
                "-i",
                str(deliverable),
                "-map",
                "0:v:0",
                "-map",
                "0:a:0",
                "-c",
                "copy",
                "-movflags",
                "+faststart",
                str(cli_out),
                "-map",
                "0:a:0",
                "-af",
                "ebur128=peak=true:framelog=quiet",
                "-f",
                "null",
                "-",
            ]

        noop_project = [
            run_project(lambda: render_final(deliverable, noop_spec, out, tmp / "scratch"))[0] for _ in range(args.reps)
        ]
        noop_measured = [run_cli(noop_cli_measured)[0] for _ in range(args.reps)]
        print(
            f"  {'no-op vs ffmpeg copy + loudness measurement':<62} project {statistics.median(noop_project):6.2f} s"
            f"  ffmpeg {statistics.median(noop_measured):6.2f} s  ratio "
            f"{statistics.median(noop_project) / statistics.median(noop_measured):4.2f}"
        )

        full = results[ops[5][0]]
        noop = results["no-op (already the deliverable)"]
        render_final(deliverable, noop_spec, out, tmp / "scratch")
        print("\nfull chain: decodes", json.dumps(full.decodes()), "encodes", json.dumps(full.encodes()))  # type: ignore[attr-defined]
        print(
            f"no-op: mode {noop.mode!r}, video packets identical to the source: "  # type: ignore[attr-defined]
            f"{video_md5(out) == video_md5(deliverable)}"
        )

        print("\npeak RSS of the full chain (project process tree) by clip length:")
        for seconds in (3, 15):
            clip = make_source(tmp / f"src{seconds}.mp4", seconds)
            spec = FinishSpec(format="portrait", fade=0.5, caption=CAPTION, logo=LogoSpec(path=logo), **common)
            wall, rss, _ = run_project(lambda clip=clip, spec=spec: render_final(clip, spec, out, tmp / "scratch"))
            print(f"  {seconds:>2} s clip: {rss:5.0f} MB ({wall:.2f} s)", flush=True)
        worst = max(r[3] for r in rows)
        print(
            f"\nworst ratio of medians {worst:.2f}, of best runs {max(r[6] for r in rows):.2f} (target <= 1.5); "
            f"load average at the end {os.getloadavg()[0]:.1f}; peak RSS of a clip step "
            f"{max(r[4] for r in rows[:6]):.0f} MB (target <= 600)"
        )


if __name__ == "__main__":
    main()
