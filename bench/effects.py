"""Effects speed and memory, measured in one run on this machine.

For each effect: the finish of a synthetic 720p clip with that effect through moviepy's frame stream
(`effects_engine="moviepy"`) against the nearest ffmpeg path in the same run: the effect's own ffmpeg filter
where one exists (`effects_engine="auto"`), else the same finish without the effect (what ffmpeg alone does for
the rest of the deliverable). Printed: median wall seconds of each and their ratio.

Then the peak RSS of a moviepy-effects render (black_white + gamma_correction + time_mirror) of a 3 s and a
15 s clip, each in a child process: the Python process (resource.getrusage of itself) and its ffmpeg children
(VmRSS sampled from /proc: the largest one, and all of them at once). Flat means the 15 s figure is close to the
3 s one; the goal is python + children <= 600 MB.

    python bench/effects.py [--reps 2] [--seconds 3] [--only time_mirror,...] [--no-rss | --rss-only]
                            [--rss-seconds 3,15]

`--only` times just the named effects; `--rss-only` skips the timings (the memory part alone), `--no-rss` the
memory part. The moviepy side of a time effect also prints the reader restarts of its pass (how often moviepy's
reader restarted ffmpeg: a seek).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shotline.media.effects import registry
from shotline.media.ffmpeg import ffmpeg_exe
from shotline.media.postprocess import FinishSpec, render_final

FF = ffmpeg_exe()
EFFECTS: list[dict[str, Any]] = [
    {"name": "black_white"},
    {"name": "gamma_correction", "gamma": 0.8},
    {"name": "invert_colors"},
    {"name": "mirror_x"},
    {"name": "multiply_color", "factor": 1.2},
    {"name": "multiply_volume", "factor": 0.5},
    {"name": "lum_contrast", "lum": 10, "contrast": 0.2},
    {"name": "painting"},
    {"name": "rotate", "angle": 10},
    {"name": "scroll", "w": 960, "h": 540, "x_speed": 40},
    {"name": "time_mirror"},
    {"name": "freeze", "t": 1.0, "freeze_duration": 1.0},
    {"name": "audio_normalize"},
    {"name": "audio_delay", "offset": 0.2, "n_repeats": 3},
]
RSS_GOAL_MB = 600  # python + its ffmpeg children, flat from 3 s to 15 s
RSS_EFFECTS = [{"name": "black_white"}, {"name": "gamma_correction", "gamma": 0.8}, {"name": "time_mirror"}]


def make_source(path: Path, seconds: float) -> Path:
    subprocess.run(
        [FF, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=24:duration={seconds}",
         "-f", "lavfi", "-i", f"anoisesrc=color=pink:amplitude=0.1:r=48000:d={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path


def timed(src: Path, work: Path, effects: list[dict[str, Any]], engine: str) -> tuple[float, int | None]:
    """Wall seconds of the finish, and the reader restarts of its moviepy pass (None without one)."""
    spec = FinishSpec(resolution="720p", x264_preset="veryfast", effects=effects)
    start = time.perf_counter()
    r = render_final(src, spec, work / "out.mp4", work / "scratch", effects_engine=engine)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    restarts = next((p.get("reader_restarts") for p in r.passes if p["pass"] == "effects (moviepy)"), None)
    return elapsed, restarts


_CHILD = """
import json, os, resource, sys, threading, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from shotline.media.postprocess import FinishSpec, render_final

# RUSAGE_CHILDREN's ru_maxrss counts a child's forked copy of this process before its exec, so it reads as
# this process's own RSS: the ffmpeg children are sampled from /proc instead (VmRSS every 20 ms).
peak = {"child_kb": 0, "children_kb": 0}
roles, by_role = {}, {}  # pid -> what the ffmpeg child does; that -> its peak kB
done = threading.Event()

def children_rss():
    me, found = str(os.getpid()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        # by name: a child between fork and exec is still a copy of python
        if fields.get("PPid", "").strip() == me and "ffmpeg" in fields["Name"] and "VmRSS" in fields:
            found.append((pid, int(fields["VmRSS"].split()[0])))
    return found

def role(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\\0")
    except OSError:
        return "?"
    if "pipe:0" in argv:
        return "render"
    if "image2pipe" in argv:
        return "moviepy video reader"
    if "-vn" in argv or "s32le" in argv:
        return "moviepy audio reader"
    return "other ffmpeg"

def sample():
    while not done.wait(0.02):
        found = children_rss()
        if found:
            kb = [k for _, k in found]
            peak["child_kb"] = max(peak["child_kb"], max(kb))
            peak["children_kb"] = max(peak["children_kb"], sum(kb))
            for pid, k in found:
                name = roles.setdefault(pid, role(pid))
                by_role[name] = max(by_role.get(name, 0), k)

threading.Thread(target=sample, daemon=True).start()
src, work, effects = Path(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[4])
spec = FinishSpec(resolution="720p", x264_preset="veryfast", effects=effects)
r = render_final(src, spec, work / "out.mp4", work / "scratch", effects_engine="moviepy")
done.set()
restarts = next((p.get("reader_restarts") for p in r.passes if p["pass"] == "effects (moviepy)"), None)
print(json.dumps({"self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "child_mb": peak["child_kb"] / 1024, "children_mb": peak["children_kb"] / 1024,
                  "by_role_mb": {k: round(v / 1024) for k, v in sorted(by_role.items())},
                  "duration_s": r.duration_s, "reader_restarts": restarts}))
"""


def peak_rss(src: Path, work: Path) -> dict[str, float]:
    repo = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, repo, str(src), str(work), json.dumps(RSS_EFFECTS)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--only", default="", help="comma-separated effect names to time (default: all)")
    parser.add_argument("--rss-seconds", default="3,15", help="clip lengths of the memory part")
    part = parser.add_mutually_exclusive_group()
    part.add_argument("--no-rss", action="store_true", help="skip the memory part")
    part.add_argument("--rss-only", action="store_true", help="only the memory part")
    args = parser.parse_args()
    only = {n for n in args.only.split(",") if n}
    unknown = only - {e["name"] for e in EFFECTS}
    if unknown:
        parser.error(f"unknown effect(s): {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.rss_only:
            src = make_source(work / "src.mp4", args.seconds)
            print(f"{args.seconds:g} s of 1280x720 at 24 fps -> 720p, x264 veryfast; median of {args.reps}")
            print(f"{'effect':<18} {'moviepy s':>10} {'ffmpeg s':>9} {'ratio':>7}  ffmpeg side")
            for effect in EFFECTS:
                if only and effect["name"] not in only:
                    continue
                native = registry()[effect["name"]].native is not None
                slow, fast, restarts = [], [], None
                for _ in range(args.reps):
                    seconds, restarts = timed(src, work, [effect], "moviepy")
                    slow.append(seconds)
                    fast.append(timed(src, work, [effect] if native else [], "auto")[0])
                m, f = statistics.median(slow), statistics.median(fast)
                side = "the effect as an ffmpeg filter" if native else "the finish without the effect"
                extra = f"; reader restarts {restarts}" if restarts else ""
                print(f"{effect['name']:<18} {m:>10.2f} {f:>9.2f} {m / f:>6.2f}x  {side}{extra}", flush=True)
        if not args.no_rss:
            names = ", ".join(e["name"] for e in RSS_EFFECTS)
            print(f"peak RSS of a moviepy-effects render ({names}), 1280x720 24 fps -> 720p, child process:")
            for seconds in (float(x) for x in args.rss_seconds.split(",") if x):
                clip = make_source(work / f"rss-{seconds:g}.mp4", seconds)
                start = time.perf_counter()
                rss = peak_rss(clip, work)
                wall = time.perf_counter() - start
                mb = (
                    f"python {rss['self_mb']:.0f} MB, largest ffmpeg child {rss['child_mb']:.0f} MB, "
                    f"children at once {rss['children_mb']:.0f} MB, "
                    f"sum {rss['self_mb'] + rss['children_mb']:.0f} MB <= {RSS_GOAL_MB} MB"
                )
                print(
                    f"  {seconds:>4g} s: {mb} ({wall:.1f} s wall, reader restarts {rss.get('reader_restarts')})",
                    flush=True,
                )
                roles = ", ".join(f"{k} {v} MB" for k, v in rss.get("by_role_mb", {}).items())
                print(f"        ffmpeg peaks: {roles}", flush=True)


if __name__ == "__main__":
    main()
