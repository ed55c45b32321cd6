"""Decode an mp4 with the bundled ffmpeg (`ffmpeg -i`, there is no ffprobe) and report what it holds."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg


@dataclass(frozen=True)
class Mp4Info:
    width: int
    height: int
    fps: float
    duration_s: float
    video_codec: str
    audio_codec: str | None


def inspect_mp4(path: str | Path) -> Mp4Info:
    """Header facts from `ffmpeg -i`, after checking that every frame decodes (`-f null`)."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    decoded = subprocess.run(
        [ffmpeg, "-hide_banner", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    assert decoded.returncode == 0 and not decoded.stderr.strip(), decoded.stderr
    header = subprocess.run([ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    duration = re.search(r"Duration: (\d+):(\d+):(\d+\.\d+)", header)
    video = re.search(r"Stream #\S+: Video: (\w+).*?, (\d+)x(\d+).*?, ([\d.]+) fps", header)
    audio = re.search(r"Stream #\S+: Audio: (\w+)", header)
    assert duration and video, header
    h, m, s = duration.groups()
    return Mp4Info(
        width=int(video.group(2)),
        height=int(video.group(3)),
        fps=float(video.group(4)),
        duration_s=int(h) * 3600 + int(m) * 60 + float(s),
        video_codec=video.group(1),
        audio_codec=audio.group(1) if audio else None,
    )
