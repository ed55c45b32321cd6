"""Where a video stream can be cut without decoding it: its packets, its IDR frames, its closed-GOP boundaries.

Read with the ffmpeg binary and no decode: `-c copy -f framecrc` lists every packet of the first video stream in
decode order (timestamps, size, CRC, key flag), and the same copy through the `filter_units` bitstream filter
keeping only IDR slices (NAL type 5) lists the packets that hold an IDR picture. A key flag alone is not enough:
an open-GOP recovery point is flagged key but its leading pictures reference the GOP before it.

A stream can be cut before frame k (copying packets from there, or up to there) when packet k in decode order is
an IDR showing frame k and the k packets before it show exactly frames 0..k-1: nothing after the cut is shown
before it, and nothing before it is referenced after it.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

from pydantic import BaseModel

from shotline.errors import MediaError
from shotline.media.encoding import FPS
from shotline.media.ffmpeg import Arg, PathArg, run_ffmpeg

_PACKET_RE = re.compile(r"^0,\s*(-?\d+),\s*(-?\d+),\s*(\d+),\s*(\d+),\s*(0x[0-9a-f]+)(.*)$")
_TB_RE = re.compile(r"^#tb 0: (\d+)/(\d+)$")


class Packet(BaseModel):
    dts: int
    pts: int
    duration: int
    size: int
    crc: str
    key: bool


class StreamLayout(BaseModel):
    """The first video stream of a file as packets; `frames[i]` is the frame packet i shows (decode order)."""

    time_base: tuple[int, int]
    packets: list[Packet]
    frames: list[int]
    idr_frames: list[int]  # frames shown by IDR packets, in order
    cfr: bool  # every packet lasts one frame at FPS and the frames are 0..n-1, each once
    cuts: list[int]  # frames k at which the stream can be cut (see the module docstring); 0 and n included

    @property
    def frame_count(self) -> int:
        return len(self.packets)

    def crcs(self, start: int, end: int) -> list[str]:
        """The CRCs of the packets of frames [start, end), a range between two cuts, in decode order."""
        return [p.crc for p in self.packets[start:end]]


def _framecrc(path: Path, bsf: str | None) -> tuple[tuple[int, int], list[Packet]]:
    args: list[Arg] = ["-v", "error", "-i", PathArg(path, path.name), "-map", "0:v:0", "-c", "copy"]
    if bsf:
        args += ["-bsf:v", bsf]
    run = run_ffmpeg([*args, "-f", "framecrc", "-"], what=f"packet scan of {path.name}", capture_stdout=True)
    tb: tuple[int, int] | None = None
    packets: list[Packet] = []
    for line in run.stdout.splitlines():
        if m := _TB_RE.match(line):
            tb = (int(m.group(1)), int(m.group(2)))
        elif m := _PACKET_RE.match(line):
            dts, pts, duration, size, crc, rest = m.groups()
            packets.append(
                Packet(
                    dts=int(dts), pts=int(pts), duration=int(duration), size=int(size), crc=crc, key="F=" not in rest
                )
            )
    if tb is None:
        raise MediaError(f"{path.name}: no video stream to scan")
    return tb, packets


def scan(path: str | Path) -> StreamLayout:
    """The packet layout of the first video stream of `path` (two stream copies, no decode)."""
    path = Path(path)
    tb, packets = _framecrc(path, None)
    _, idr_packets = _framecrc(path, "filter_units=pass_types=5")
    if not packets:
        raise MediaError(f"{path.name}: the video stream has no packets")
    tick = Fraction(tb[0], tb[1])
    start = min(p.pts for p in packets)
    exact = [Fraction(p.pts - start) * tick * FPS for p in packets]
    frames = [round(f) for f in exact]
    one_frame = Fraction(1, FPS) / tick
    cfr = (
        all(f.denominator == 1 for f in exact)
        and sorted(frames) == list(range(len(frames)))
        and all(p.duration == one_frame for p in packets)
    )
    idr_pts = {p.pts for p in idr_packets}
    idr_frames = [frames[i] for i, p in enumerate(packets) if p.pts in idr_pts]
    cuts: list[int] = []
    if cfr:
        idr = set(idr_frames)
        shown_max = -1
        for k, frame in enumerate(frames):
            # packets 0..k-1 show distinct frames, all below k: exactly 0..k-1
            if shown_max == k - 1 and frame == k and k in idr:
                cuts.append(k)
            shown_max = max(shown_max, frame)
        cuts.append(len(frames))
    return StreamLayout(time_base=tb, packets=packets, frames=frames, idr_frames=idr_frames, cfr=cfr, cuts=cuts)
