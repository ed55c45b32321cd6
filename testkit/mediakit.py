"""Small real media for the media tests: clips made with ffmpeg's lavfi sources, and ways to look inside."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Literal

import numpy as np

from shotline.media.ffmpeg import ffmpeg_exe

Audio = Literal["speech", "loud", "mono", "tone"] | None

# "speech": pink noise whose level breathes (a loudness range > 0, like real sound), around -35 LUFS.
_AUDIO = {
    "speech": "anoisesrc=color=pink:seed=7:amplitude=0.08:r=48000,"
    "volume='0.55+0.45*sin(2*PI*0.9*t)':eval=frame,aformat=channel_layouts=stereo",
    "loud": "anoisesrc=color=pink:seed=3:amplitude=0.9:r=48000,aformat=channel_layouts=stereo",
    "mono": "anoisesrc=color=pink:seed=5:amplitude=0.1:r=44100,aformat=channel_layouts=mono",
    "tone": "aevalsrc=exprs='0.5*sin(2*PI*997*t)|0.5*sin(2*PI*997*t)':s=48000",
}


def make_clip(
    path: Path,
    *,
    size: tuple[int, int] = (854, 480),
    duration: float = 2.0,
    audio: Audio = "speech",
    video: str = "testsrc2",
    fps: int = 24,
    faststart: bool = True,
    extra: list[str] | None = None,
) -> Path:
    """An H.264 (+ AAC) mp4 from lavfi. `video` is a lavfi source name or "color=c=<colour>"."""
    w, h = size
    source = f"{video}:size={w}x{h}:rate={fps}" if video.startswith("color") else f"{video}=size={w}x{h}:rate={fps}"
    args = [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-t", str(duration), "-i", source]
    if audio:
        args += ["-f", "lavfi", "-t", str(duration), "-i", _AUDIO[audio], "-c:a", "aac", "-b:a", "128k"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *(extra or [])]
    if faststart:
        args += ["-movflags", "+faststart"]
    subprocess.run([*args, str(path)], check=True, capture_output=True)
    return path


def gray_frames(path: Path) -> np.ndarray:
    """Every frame as 8-bit luma, shape (frames, height, width)."""
    from shotline.media.probe import probe

    info = probe(path)
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, info.height, info.width)


def ffmpeg_i(path: Path) -> str:
    """What `ffmpeg -i` prints about a file."""
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def zombie_children() -> list[int]:
    """PIDs of this process's children that exited but were never reaped."""
    zombies = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and int(fields[1]) == me:
            zombies.append(int(entry.name))
    return zombies


def live_children() -> list[int]:
    me = os.getpid()
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                kids.append(int(entry.name))
    return kids


def make_lavfi(path: Path, video: str, audio: str | None, *, extra: list[str] | None = None) -> Path:
    """An H.264 High (+ AAC) mp4 from lavfi graphs given whole (sizes, rates and durations inside them)."""
    args = [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", video]
    if audio:
        args += ["-f", "lavfi", "-i", audio, "-c:a", "aac", "-b:a", "128k", "-shortest"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]
    subprocess.run([*args, *(extra or []), str(path)], check=True, capture_output=True)
    return path


def packet_md5(path: Path, stream: str = "v") -> str:
    """MD5 of a stream's packets as stored (stream copy into ffmpeg's hash muxer): equal only when no
    re-encode happened."""
    out = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", f"0:{stream}:0", "-c", "copy", "-f", "hash",
         "-hash", "md5", "-"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return out.strip()


def audio_samples(path: Path, rate: int = 48000) -> np.ndarray:
    """The first audio stream decoded to mono float samples at `rate` (as a player without edit lists would)."""
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(rate), "-f", "f32le",
         "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.float32)


def rgb_frame(path: Path, t: float) -> np.ndarray:
    """The frame at `t` seconds as RGB, shape (height, width, 3)."""
    from shotline.media.probe import probe

    info = probe(path)
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-ss", str(t), "-frames:v", "1", "-f", "rawvideo",
         "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(info.height, info.width, 3)


def ffmpeg_processes() -> list[int]:
    """PIDs of every ffmpeg process descended from this one (running or not yet reaped)."""
    me = os.getpid()
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            names[int(entry.name)] = stat[stat.find("(") + 1 : stat.rfind(")")]
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])

    def descends(pid: int) -> bool:
        while pid in parents and pid > 1:
            pid = parents[pid]
            if pid == me:
                return True
        return False

    return [pid for pid, name in names.items() if "ffmpeg" in name and descends(pid)]
