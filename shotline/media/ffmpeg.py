"""Running the ffmpeg binary that moviepy uses (imageio-ffmpeg's static build; there is no ffprobe).

Every call goes through `run_ffmpeg`: stderr is captured, a failure raises MediaError with the tail of
stderr, and the child is always reaped (killed first if we are interrupted or time out), so a long-lived
worker never accumulates zombies or open pipes. Commands are lists whose file arguments are `PathArg`s,
so the same command can be run and also be summarised for lineage without the machine's paths.
"""

from __future__ import annotations

import contextlib
import functools
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from shotline.errors import MediaError

DEFAULT_TIMEOUT_S = 900.0
_STDERR_TAIL_LINES = 12


@functools.cache
def ffmpeg_exe() -> str:
    """The ffmpeg binary moviepy uses by default (`moviepy.config.FFMPEG_BINARY == "ffmpeg-imageio"`).

    imageio-ffmpeg honours IMAGEIO_FFMPEG_EXE, then its bundled static build, then a system ffmpeg.
    """
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception as exc:  # imageio-ffmpeg raises RuntimeError when it finds nothing
        raise MediaError(f"no ffmpeg binary found (imageio-ffmpeg): {exc}") from exc


@dataclass(frozen=True)
class PathArg:
    """A file argument: the real path is passed to ffmpeg, the label is what summaries show."""

    path: Path
    label: str

    def __str__(self) -> str:
        return str(self.path)


Arg = str | PathArg


def to_argv(args: Sequence[Arg]) -> list[str]:
    return [str(a) for a in args]


def summarize(args: Sequence[Arg]) -> str:
    """A shell-like rendering of an ffmpeg command with file paths replaced by their labels."""
    parts = ["ffmpeg"]
    for a in args:
        parts.append(f"<{a.label}>" if isinstance(a, PathArg) else shlex.quote(a))
    return " ".join(parts)


@dataclass(frozen=True)
class FfmpegRun:
    returncode: int
    stdout: str
    stderr: str


def stderr_tail(stderr: str, lines: int = _STDERR_TAIL_LINES) -> str:
    kept = [ln for ln in stderr.replace("\r", "\n").splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


def run_ffmpeg(
    args: Sequence[Arg],
    *,
    what: str,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    check: bool = True,
    capture_stdout: bool = False,
) -> FfmpegRun:
    """Run `ffmpeg -hide_banner -nostdin <args>`; `what` names the task in error messages.

    With `check`, a non-zero exit raises MediaError quoting the last lines of stderr.
    """
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", *to_argv(args)]
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise MediaError(f"{what}: cannot start ffmpeg: {exc}") from exc
    with proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            tail = stderr_tail(err.decode(errors="replace"))
            raise MediaError(f"{what}: ffmpeg timed out after {timeout:.0f} s\n{tail}") from None
        except BaseException:
            # Interrupted (KeyboardInterrupt, a Dagster termination...): never leave the child running.
            proc.kill()
            proc.wait()
            raise
    stderr = err.decode(errors="replace")
    stdout = out.decode(errors="replace") if out is not None else ""
    if check and proc.returncode != 0:
        raise MediaError(f"{what}: ffmpeg failed (exit {proc.returncode})\n{stderr_tail(stderr)}")
    return FfmpegRun(proc.returncode, stdout, stderr)


_MAP_DECODE_TO_FILTER = re.compile(r"^\s+Stream #(\d+):(\d+) \(([^()]+)\) -> ")
_MAP_DIRECT = re.compile(r"^\s+Stream #(\d+):(\d+) -> #(\d+):(\d+) \((.*)\)\s*$")
_MAP_FILTER_TO_ENCODE = re.compile(r"-> Stream #(\d+):(\d+) \(([^()]+)\)\s*$")
_TRANSCODE = re.compile(r"^(\S+) \(\w+\) -> (\S+) \(\w+\)$")


def input_labels(args: Sequence[Arg]) -> list[str]:
    """The label of each input of a command, in order (`-i <path>`; "lavfi" for lavfi sources)."""
    labels, prev = [], ""
    for a in args:
        if prev == "-i":
            labels.append(a.label if isinstance(a, PathArg) else "lavfi" if "=" in str(a) else str(a))
        prev = a if isinstance(a, str) else ""
    return labels


def stream_report(args: Sequence[Arg], stderr: str) -> dict[str, list[str]]:
    """What one ffmpeg run decoded, encoded and copied, from the "Stream mapping" it printed.

    Decodes are named `<input label>#<stream> (<codec>)`; ffmpeg decodes an input stream once however many
    filters or outputs use it. Encodes are encoder names, one per output stream.
    """
    labels = input_labels(args)
    decoded: set[str] = set()
    encoded: list[str] = []
    copied: list[str] = []

    def name(i: str, s: str, codec: str | None = None) -> str:
        idx = int(i)
        base = f"{labels[idx] if idx < len(labels) else i}#{s}"
        return f"{base} ({codec})" if codec else base

    lines = stderr.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Stream mapping:")), None)
    for line in lines[start + 1 :] if start is not None else []:
        if not line.startswith("  "):
            break
        if m := _MAP_DIRECT.match(line):
            what = m.group(5)
            if what == "copy":
                copied.append(name(m.group(1), m.group(2)))
            elif t := _TRANSCODE.match(what):
                decoded.add(name(m.group(1), m.group(2), t.group(1)))
                encoded.append(t.group(2))
            continue
        if m := _MAP_DECODE_TO_FILTER.match(line):
            decoded.add(name(m.group(1), m.group(2), m.group(3)))
        if m := _MAP_FILTER_TO_ENCODE.search(line):
            encoded.append(m.group(3))
    return {"decoded": sorted(decoded), "encoded": encoded, "copied": copied}


@contextlib.contextmanager
def task_tempdir(parent: Path, prefix: str) -> Iterator[Path]:
    """A private folder inside `parent` (the task's scratch) for one operation's temp files, removed after.

    Unique per call, so concurrent tasks that share a scratch folder never collide on file names.
    """
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
