"""What a video file is, and whether it is sound: probe, full decode check, faststart, loudness.

There is no ffprobe beside moviepy's ffmpeg, so `probe` parses the stream summary `ffmpeg -i` prints
(the same text moviepy's own `ffmpeg_parse_infos` parses, which drops the profile and colour tags).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel, Field

from shotline.errors import MediaError
from shotline.media.ffmpeg import Arg, PathArg, run_ffmpeg, stderr_tail
from shotline.media.loudness import measure_file


class ChapterInfo(BaseModel):
    start_s: float
    end_s: float
    title: str = ""


class VideoInfo(BaseModel):
    """The first video stream and the first audio stream of a file, and the container around them."""

    container: str
    width: int
    height: int
    duration_s: float
    fps: float
    video_codec: str
    profile: str | None = None
    pix_fmt: str | None = None
    sar: str | None = None
    rotation: int = 0
    color_range: str | None = None  # "tv" (limited) or "pc" (full)
    color_space: str | None = None  # matrix, e.g. "bt709"
    color_primaries: str | None = None
    color_transfer: str | None = None
    has_audio: bool = False
    audio_codec: str | None = None
    audio_profile: str | None = None  # "LC" for AAC-LC
    audio_rate: int | None = None
    audio_channels: int | None = None
    audio_layout: str | None = None
    bitrate_kbps: int | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    chapters: list[ChapterInfo] = Field(default_factory=list)

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown (decoders apply the rotation, so 90° swaps them)."""
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height


class DecodeStats(BaseModel):
    video_frames: int
    decoded_s: float


_LAYOUT_CHANNELS = {
    "mono": 1,
    "stereo": 2,
    "2.1": 3,
    "3.0": 3,
    "3.0(back)": 3,
    "4.0": 4,
    "quad": 4,
    "quad(side)": 4,
    "3.1": 4,
    "5.0": 5,
    "5.0(side)": 5,
    "4.1": 5,
    "5.1": 6,
    "5.1(side)": 6,
    "6.0": 6,
    "6.1": 7,
    "7.0": 7,
    "7.1": 8,
    "7.1(wide)": 8,
    "downmix": 2,
}

_INPUT_RE = re.compile(r"^Input #0, ([^ ]+), from ")
_DURATION_RE = re.compile(
    r"^\s*Duration: (N/A|(\d+):(\d+):(\d+(?:\.\d+)?))(?:, start: [-\d.]+)?(?:, bitrate: (\d+) kb/s)?"
)
_CHAPTER_RE = re.compile(r"^\s*Chapter #\d+:\d+: start (-?[\d.]+), end (-?[\d.]+)")
_STREAM_RE = re.compile(r"^\s*Stream #\d+:\d+[^:]*: (Video|Audio|Subtitle|Data|Attachment): (.*)$")
_META_RE = re.compile(r"^(\s*)([^:]+?)\s*: (.*)$")
_SIZE_RE = re.compile(r"^(\d+)x(\d+)(?: \[SAR (\d+:\d+) DAR \d+:\d+\])?")
_ROTATION_RE = re.compile(r"rotation of (-?[\d.]+) degrees")


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses or brackets."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur).strip())
    return parts


def _codec_and_profile(token: str) -> tuple[str, str | None]:
    # "h264 (High) (avc1 / 0x31637661)" -> ("h264", "High"); the group with " / " is the fourcc.
    name = token.split(" ", 1)[0]
    groups = re.findall(r"\(([^()]*)\)", token)
    profile = next((g for g in groups if " / " not in g), None)
    return name, profile


def _rate(text: str) -> float:
    return float(text[:-1]) * 1000 if text.endswith("k") else float(text)


def _parse_video(desc: str, info: dict[str, Any]) -> None:
    tokens = split_top_level(desc)
    info["video_codec"], info["profile"] = _codec_and_profile(tokens[0])
    for tok in tokens[1:]:
        if m := _SIZE_RE.match(tok):
            info["width"], info["height"] = int(m.group(1)), int(m.group(2))
            info["sar"] = m.group(3)
        elif tok.endswith(" fps"):
            info["fps"] = _rate(tok[:-4])
        elif tok.endswith(" tbr"):
            info["tbr"] = _rate(tok[:-4])
        elif "pix_fmt" not in info and re.match(r"^[a-z0-9_]+(\(.*\))?$", tok) and not tok[0].isdigit():
            name, _, rest = tok.partition("(")
            info["pix_fmt"] = name
            for part in (p.strip() for p in rest.rstrip(")").split(",") if rest):
                if part in ("tv", "pc"):
                    info["color_range"] = part
                elif "/" in part:
                    space, prim, trc = (None if p == "unknown" else p for p in part.split("/"))
                    info["color_space"], info["color_primaries"], info["color_transfer"] = space, prim, trc
                elif part and "first" not in part and part != "progressive":
                    info["color_space"] = info["color_primaries"] = info["color_transfer"] = part


def _parse_audio(desc: str, info: dict[str, Any]) -> None:
    tokens = split_top_level(desc)
    info["audio_codec"], info["audio_profile"] = _codec_and_profile(tokens[0])
    for tok in tokens[1:]:
        if tok.endswith(" Hz"):
            info["audio_rate"] = int(tok[:-3])
        elif m := re.match(r"^(\d+) channels", tok):
            info["audio_channels"] = int(m.group(1))
            info["audio_layout"] = tok
        elif tok in _LAYOUT_CHANNELS:
            info["audio_channels"] = _LAYOUT_CHANNELS[tok]
            info["audio_layout"] = tok


def parse_ffmpeg_info(text: str, source: str = "input") -> VideoInfo:
    """Parse the `ffmpeg -i` summary of input #0 (exposed for tests; use `probe`)."""
    info: dict[str, Any] = {"tags": {}, "chapters": []}
    section: str | None = None  # where indented "Metadata:" lines belong
    section_indent = 0
    video_seen = audio_seen = in_input = False
    last_key = ""
    for line in text.splitlines():
        if m := _INPUT_RE.match(line):
            info["container"], in_input, section = m.group(1), True, "global"
            continue
        if not in_input:
            continue
        if line.startswith(("Output #", "Stream mapping:", "Input #1")):
            break
        if m := _DURATION_RE.match(line):
            section = None
            if m.group(1) != "N/A":
                info["duration_s"] = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + float(m.group(4))
            if m.group(5):
                info["bitrate_kbps"] = int(m.group(5))
            continue
        if m := _CHAPTER_RE.match(line):
            info["chapters"].append({"start_s": float(m.group(1)), "end_s": float(m.group(2))})
            section = "chapter"
            continue
        if m := _STREAM_RE.match(line):
            kind, desc = m.groups()
            section = None
            if kind == "Video" and not video_seen and "(attached pic)" not in desc:
                _parse_video(desc, info)
                video_seen = True
                section = "video"
            elif kind == "Audio" and not audio_seen:
                _parse_audio(desc, info)
                audio_seen = True
            continue
        if m := _ROTATION_RE.search(line):
            if section == "video":
                info["rotation"] = round(float(m.group(1))) % 360
            continue
        stripped = line.strip()
        if stripped in ("Metadata:", "Side data:", "Chapters:"):
            section_indent = len(line) - len(line.lstrip())
            continue
        if section and (m := _META_RE.match(line)) and len(m.group(1)) > section_indent:
            key, value = m.group(2).strip(), m.group(3)
            if section == "global" and len(m.group(1)) == section_indent + 2 and key:
                info["tags"][key] = value
                last_key = key
            elif section == "global" and not key and last_key:  # a multi-line value continues
                info["tags"][last_key] += "\n" + value
            elif section == "chapter" and key == "title":
                info["chapters"][-1]["title"] = value
    if not in_input:
        raise MediaError(f"{source}: not a media file ffmpeg can read\n{stderr_tail(text)}")
    if not video_seen or "width" not in info:
        raise MediaError(f"{source}: no video stream")
    if "duration_s" not in info:
        raise MediaError(f"{source}: duration unknown")
    if "fps" not in info:
        info["fps"] = info.pop("tbr", 0.0)
    info.pop("tbr", None)
    info["has_audio"] = audio_seen
    for key in ("major_brand", "minor_version", "compatible_brands"):
        info["tags"].pop(key, None)
    return VideoInfo(**info)


def probe(path: str | Path) -> VideoInfo:
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path.name}: no such file")
    # `ffmpeg -i` with no output exits 1 after printing the summary; the summary is what we want.
    run = run_ffmpeg(["-i", PathArg(path, "input")], what=f"probe {path.name}", check=False, timeout=120)
    return parse_ffmpeg_info(run.stderr, path.name)


def decode_check(path: str | Path) -> DecodeStats:
    """Decode every video and audio frame; any decoder or demuxer error raises MediaError."""
    path = Path(path)
    args: list[Arg] = ["-v", "error", "-nostats", "-i", PathArg(path, "input"), "-map", "0:v", "-map", "0:a?",
            "-f", "null", "-", "-progress", "pipe:1"]  # fmt: skip
    run = run_ffmpeg(args, what=f"decode check of {path.name}", capture_stdout=True)
    errors = [ln for ln in run.stderr.splitlines() if ln.strip()]
    if errors:
        raise MediaError(f"{path.name}: decode errors\n{stderr_tail(run.stderr)}")
    progress = dict(ln.split("=", 1) for ln in run.stdout.splitlines() if "=" in ln)
    frames = int(progress.get("frame", "0"))
    if frames == 0:
        raise MediaError(f"{path.name}: no video frame decoded")
    out_us = progress.get("out_time_us", "0")
    return DecodeStats(video_frames=frames, decoded_s=int(out_us) / 1e6 if out_us.isdigit() else 0.0)


def _boxes(f: BinaryIO, pos: int, end: int, name: str) -> Iterator[tuple[str, int, int]]:
    """The MP4 boxes from `pos` to `end` as (type, body start, box end), in file order."""
    while pos + 8 <= end:
        f.seek(pos)
        size, raw = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", f.read(8))
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            raise MediaError(f"{name}: corrupt MP4 box at offset {pos}")
        yield raw.decode("latin-1"), pos + header, pos + size
        pos += size


def top_level_boxes(path: str | Path) -> list[tuple[str, int]]:
    """The MP4 top-level boxes as (type, size), in file order."""
    boxes: list[tuple[str, int]] = []
    with open(path, "rb") as f:
        start = 0
        for kind, _, box_end in _boxes(f, 0, f.seek(0, 2), Path(path).name):
            boxes.append((kind, box_end - start))
            start = box_end
    return boxes


def faststart_ok(path: str | Path) -> bool:
    """True when the `moov` box comes before the first `mdat` (playback starts before the download ends)."""
    kinds = [k for k, _ in top_level_boxes(path)]
    if "moov" not in kinds or "mdat" not in kinds:
        return False
    return kinds.index("moov") < kinds.index("mdat")


def measure_loudness(path: str | Path) -> tuple[float, float]:
    """(integrated loudness in LUFS, true peak in dBTP) of the first audio stream, by ffmpeg's ebur128."""
    path = Path(path)
    m, _ = measure_file(PathArg(path, "input"), what=f"loudness of {path.name}")
    return m.integrated_lufs, m.true_peak_dbtp


_CONTAINER_BOXES = {"moov", "trak", "edts", "mdia", "minf", "stbl"}


def edit_lists(path: str | Path) -> list[dict[str, int]]:
    """The entries of every edit list (`elst`) in the file's tracks: [{"track", "duration", "media_time"}]."""
    entries: list[dict[str, int]] = []
    track = -1
    name = Path(path).name
    with open(path, "rb") as f:

        def walk(pos: int, end: int) -> None:
            nonlocal track
            for kind, body, box_end in _boxes(f, pos, end, name):
                if kind == "trak":
                    track += 1
                if kind in _CONTAINER_BOXES:
                    walk(body, box_end)  # depth first, in file order
                elif kind == "elst":
                    f.seek(body)
                    version = f.read(1)[0]
                    f.read(3)
                    (count,) = struct.unpack(">I", f.read(4))
                    for _ in range(count):
                        if version == 1:
                            duration, media_time = struct.unpack(">Qq", f.read(16))
                        else:
                            duration, media_time = struct.unpack(">Ii", f.read(8))
                        f.read(4)
                        entries.append({"track": track, "duration": duration, "media_time": media_time})

        walk(0, f.seek(0, 2))
    return entries


# A VisualSampleEntry's fixed fields before its child boxes (ISO/IEC 14496-12 12.1.3).
_VISUAL_SAMPLE_ENTRY_FIELDS = 78


def avc_config(path: str | Path) -> bytes | None:
    """The first H.264 track's decoder configuration (the `avcC` box body: profile, level, SPS and PPS), or None.

    Two H.264 streams can be joined into one track only when these are equal: a track has one of them."""
    name = Path(path).name
    with open(path, "rb") as f:
        data_end = f.seek(0, 2)

        def find(pos: int, end: int, route: list[str]) -> bytes | None:
            for kind, body, box_end in _boxes(f, pos, end, name):
                if box_end > end:
                    raise MediaError(f"{name}: corrupt MP4 box at offset {body}")
                if kind != route[0]:
                    continue
                if len(route) == 1:
                    f.seek(body)
                    return f.read(box_end - body)
                if kind == "stsd":
                    body += 8  # version, flags, entry count
                elif kind in ("avc1", "avc3"):
                    body += _VISUAL_SAMPLE_ENTRY_FIELDS
                found = find(body, box_end, route[1:])
                if found is not None:
                    return found
            return None

        for entry in ("avc1", "avc3"):
            config = find(0, data_end, ["moov", "trak", "mdia", "minf", "stbl", "stsd", entry, "avcC"])
            if config is not None:
                return config
    return None
