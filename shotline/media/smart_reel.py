"""Smart rendering of a reel's picture: copy each clip's body as it is, encode only around the transitions.

A reel of n clips joined by crossfades of t frames shows clip i's frames [t, N_i - t) untouched (the first
clip's from 0, the last clip's to its end). Shotline's finals are its own encodes with one set of encoder
settings and, when the storyboard has a crossfade, IDRs at frames t and N - t (`FinishSpec.encoding`), so those
frames are whole closed GOPs that can be copied packet for packet. Only the transition windows (tail of clip i
crossfaded with the head of clip i+1) are decoded and encoded, with the same settings. A cut reel copies
every clip whole.

A clip is copied only where it can be cut (`keyframes.py`: at IDRs closing the GOP before them): a final
encoded for another transition length, or by an older version, is copied from its first cut after the
transition to its last cut before the next one, the frames in between going into the neighbouring windows.
A clip that is not in the reel's frame, not H.264 High 4:2:0 at 24 fps CFR, or whose decoder configuration
(SPS/PPS, the `avcC` box) differs from what the reel's encoder writes, is not copied at all: its frames are
encoded within the window around it, exactly as the full render would (conform, letterbox, pad).

Each piece is an mp4 of its own, its decode timestamps rewritten as (packet index - B-frames) frames so all
pieces share one decode delay (the pieces keep the mp4 muxer's default edit list for that delay: without one,
ffmpeg's mp4 reader mistimes short files with negative composition offsets). ffmpeg's concat demuxer joins
them, with its H.264 auto-conversion off (it would put SPS/PPS in band before every IDR), into one stream:
one SPS/PPS, cuts only at IDRs. Every window's decoder configuration is checked
against the copied clips' before the join; any difference, and the reel falls back to the full render.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from shotline.errors import MediaError
from shotline.media.encoding import BT709_TAGS, FPS, Encoding
from shotline.media.ffmpeg import Arg, PathArg, run_ffmpeg, stream_report, summarize
from shotline.media.frames import plan_fit
from shotline.media.keyframes import StreamLayout, scan
from shotline.media.probe import VideoInfo, avc_config

# Encodes running at once: on 2 cores two short x264 runs keep both busy better than one (its start-up,
# decode and lookahead are serial).
PARALLEL_ENCODES = 2


class Span(BaseModel):
    clip: int  # 0-based
    start: int  # clip frames [start, end)
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start


class Piece(BaseModel):
    """A run of reel frames: one clip's frames copied, or spans of clips encoded (crossfaded where they meet)."""

    kind: Literal["copy", "encode"]
    spans: list[Span]
    reel_start: int
    frames: int

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "piece": self.kind,
            "reel_frames": [self.reel_start, self.reel_start + self.frames],
            "clips": [{"clip": s.clip + 1, "frames": [s.start, s.end]} for s in self.spans],
        }
        if self.kind == "encode":
            out["transitions"] = len(self.spans) - 1
        return out


def copy_range(cuts: list[int], lo: int, hi: int) -> tuple[int, int] | None:
    """The widest [a, b) between cuts with lo <= a < b <= hi, or None."""
    starts = [c for c in cuts if c >= lo]
    ends = [c for c in cuts if c <= hi]
    if not starts or not ends or min(starts) >= max(ends):
        return None
    return min(starts), max(ends)


def plan_pieces(frames: list[int], t: int, cuts: list[list[int] | None]) -> list[Piece]:
    """The reel as pieces. `frames`: each clip's planned length; `t`: transition frames (0 = cuts);
    `cuts[i]`: where clip i can be cut (frames <= frames[i]), or None when it must not be copied."""
    n = len(frames)
    ranges: list[tuple[int, int] | None] = []
    for i, clip_cuts in enumerate(cuts):
        lo = t if i > 0 else 0
        hi = frames[i] - t if i < n - 1 else frames[i]
        ranges.append(copy_range(clip_cuts, lo, hi) if clip_cuts is not None else None)
    pieces: list[Piece] = []
    reel = 0

    def encode(start: tuple[int, int], stop: tuple[int, int]) -> None:
        nonlocal reel
        (i, s), (j, e) = start, stop
        if i == j:
            spans = [Span(clip=i, start=s, end=e)]
        else:
            spans = [Span(clip=i, start=s, end=frames[i])]
            spans += [Span(clip=k, start=0, end=frames[k]) for k in range(i + 1, j)]
            spans.append(Span(clip=j, start=0, end=e))
        spans = [sp for sp in spans if sp.frames > 0]  # only cut reels have empty ones
        if not spans:
            return
        count = sum(sp.frames for sp in spans) - (len(spans) - 1) * t
        pieces.append(Piece(kind="encode", spans=spans, reel_start=reel, frames=count))
        reel += count

    cursor = (0, 0)
    for i, copied in enumerate(ranges):
        if copied is None:
            continue
        a, b = copied
        if cursor != (i, a):
            encode(cursor, (i, a))
        pieces.append(Piece(kind="copy", spans=[Span(clip=i, start=a, end=b)], reel_start=reel, frames=b - a))
        reel += b - a
        cursor = (i, b)
    if cursor != (n - 1, frames[-1]):
        encode(cursor, (n - 1, frames[-1]))
    return pieces


@dataclass
class ClipScan:
    info: VideoInfo
    layout: StreamLayout | None
    config: bytes | None
    blockers: list[str]


def clip_blockers(info: VideoInfo, layout: StreamLayout | None, frame: tuple[int, int], reorder: int) -> list[str]:
    """Why a clip's packets cannot go into the reel as they are (before comparing decoder configurations)."""
    reasons = []
    if info.display_size != frame or info.rotation:
        reasons.append(f"frame {info.display_size[0]}x{info.display_size[1]} is not the reel's {frame[0]}x{frame[1]}")
    if info.sar not in (None, "1:1"):
        reasons.append(f"pixel aspect {info.sar}")
    if (info.video_codec, info.profile, info.pix_fmt) != ("h264", "High", "yuv420p"):
        reasons.append(f"{info.video_codec} ({info.profile}) {info.pix_fmt} is not h264 High yuv420p")
    colour = (info.color_space, info.color_primaries, info.color_transfer, info.color_range)
    if colour != ("bt709", "bt709", "bt709", "tv"):
        reasons.append("colour is not tagged BT.709 limited range")
    if layout is None or not layout.cfr:
        reasons.append(f"not {FPS} fps constant frame rate")
    elif any(k - f > reorder for k, f in enumerate(layout.frames)):
        reasons.append(f"pictures reordered by more than {reorder} frames")
    return reasons


def scan_clip(path: Path, info: VideoInfo, frame: tuple[int, int], reorder: int) -> ClipScan:
    layout: StreamLayout | None = None
    with contextlib.suppress(MediaError):  # not a stream ffmpeg can list: encoded like any odd clip
        layout = scan(path)
    config = avc_config(path) if info.container.startswith("mov") else None
    blockers = clip_blockers(info, layout, frame, reorder)
    if config is None:
        blockers.append("no avcC decoder configuration (not an mp4 H.264 track)")
    return ClipScan(info=info, layout=layout, config=config, blockers=blockers)


@dataclass
class SmartVideo:
    """The reel's picture as pieces ready to join: the concat list to use as an input, and what was done."""

    concat_list: Path
    pieces: list[Piece]
    config: bytes
    clip_steps: list[dict[str, Any]]
    commands: list[str] = field(default_factory=list)
    passes: list[dict[str, Any]] = field(default_factory=list)
    expected_crcs: dict[int, list[str]] = field(default_factory=dict)  # reel frame -> crcs of a copied run

    def copied_frames(self) -> int:
        return sum(p.frames for p in self.pieces if p.kind == "copy")

    def input_args(self) -> list[Arg]:
        return [
            "-auto_convert",
            "0",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            PathArg(self.concat_list, "reel-video.ffconcat"),
        ]


def _retime(reorder: int) -> str:
    """Timestamps of a piece: shown from 0, decoded one frame apart starting `reorder` frames early."""
    return f"setts=pts=PTS-STARTPTS:dts=(N-{reorder})/({FPS}*TB)"


def _probe_config(encoding: Encoding, frame: tuple[int, int], tmp: Path) -> bytes | None:
    """The decoder configuration the reel's encoder writes at this frame size (a 2-frame encode)."""
    out = tmp / "encoder-config.mp4"
    w, h = frame
    args: list[Arg] = [
        "-y", "-v", "error", "-f", "lavfi", "-i", f"color=c=black:s={w}x{h}:r={FPS}:d={2 / FPS}",
        "-vf", f"format=yuv420p,{BT709_TAGS}", *encoding.video_args(), "-an", "-f", "mp4", PathArg(out, out.name),
    ]  # fmt: skip
    run_ffmpeg(args, what="encoder configuration probe")
    return avc_config(out)


def _span_graph(k: int, span: Span, scanned: ClipScan, frame: tuple[int, int], seek: bool, extra: int = 0) -> str:
    """[k:v] -> [v{k}]: the span's frames (and `extra` more) conformed to the reel's frame, as the full render
    conforms them."""
    width, height = scanned.info.display_size
    fit = plan_fit(width, height, frame, "contain", scanned.info.sar)
    start = "" if seek or span.start == 0 else f"trim=start_frame={span.start},setpts=PTS-STARTPTS,"
    return (
        f"[{k}:v:0]setpts=PTS-STARTPTS,fps={FPS},{start}tpad=stop_mode=clone:stop={FPS},"
        f"trim=end_frame={span.frames + extra},{fit.filters()},format=yuv420p,setpts=PTS-STARTPTS[v{k}]"
    )


def _encode_piece(
    piece: Piece,
    index: int,
    clips: list[Path],
    scans: list[ClipScan],
    t: int,
    frame: tuple[int, int],
    encoding: Encoding,
    tmp: Path,
) -> tuple[Path, bytes | None, list[Arg], str]:
    inputs: list[Arg] = []
    graphs: list[str] = []
    # x264 spends less on the last frames of a stream (nothing after them to predict): the window is encoded
    # with a GOP of what follows it (its last clip's next frames) behind a forced IDR, then cut at that IDR, so
    # its own frames come out as they would inside a longer encode.
    context = encoding.gop
    last = len(piece.spans) - 1
    for k, span in enumerate(piece.spans):
        scanned = scans[span.clip]
        # Seek only in a CFR clip (its frame k is at k/FPS); decoding resumes at the IDR before the seek point.
        seek = span.start > 0 and scanned.layout is not None and scanned.layout.cfr
        if seek:
            inputs += ["-ss", f"{(span.start - 0.5) / FPS:.6f}"]
        inputs += ["-i", PathArg(clips[span.clip], f"clip{span.clip + 1}")]
        graphs.append(_span_graph(k, span, scanned, frame, seek, context if k == last else 0))
    if len(piece.spans) == 1:
        graphs.append("[v0]null[vjoin]")
    elif t == 0:
        graphs.append(
            "".join(f"[v{k}]" for k in range(len(piece.spans))) + f"concat=n={len(piece.spans)}:v=1:a=0[vjoin]"
        )
    else:
        prev, end = "0", piece.spans[0].frames
        for k in range(1, len(piece.spans)):
            label = "join" if k == len(piece.spans) - 1 else f"x{k}"
            graphs.append(f"[v{prev}][v{k}]xfade=transition=fade:duration={t / FPS}:offset={(end - t) / FPS}[v{label}]")
            prev, end = label, end - t + piece.spans[k].frames
    graphs.append(f"[vjoin]format=yuv420p,{BT709_TAGS}[vout]")
    out = tmp / f"piece-{index:03d}.mp4"
    window = encoding.model_copy(update={"keyframes": (piece.frames,)})
    keep = f"noise=drop=gte(n\\,{piece.frames}),{_retime(encoding.bframes)}"
    args: list[Arg] = [
        "-y", "-nostats", *inputs, "-filter_complex", ";".join(graphs), "-map", "[vout]",
        *window.video_args(), "-an", "-bsf:v", keep,
        "-frames:v", str(piece.frames + context), "-f", "mp4", PathArg(out, out.name),
    ]  # fmt: skip
    run = run_ffmpeg(args, what=f"reel window {index}")
    return out, avc_config(out), args, run.stderr


def _copy_piece(
    piece: Piece, index: int, clips: list[Path], scans: list[ClipScan], reorder: int, tmp: Path
) -> tuple[Path, list[Arg], str]:
    span = piece.spans[0]
    layout = scans[span.clip].layout
    assert layout is not None
    out = tmp / f"piece-{index:03d}.mp4"
    # Packets by index in decode order; between two cuts they are exactly the frames [start, end).
    keep = f"noise=drop=not(between(n\\,{span.start}\\,{span.end - 1})),{_retime(reorder)}"
    args: list[Arg] = [
        "-y", "-nostats", "-i", PathArg(clips[span.clip], f"clip{span.clip + 1}"), "-map", "0:v:0",
        "-c:v", "copy", "-bsf:v", keep, "-an", "-f", "mp4", PathArg(out, out.name),
    ]  # fmt: skip
    run = run_ffmpeg(args, what=f"reel copy of clip {span.clip + 1}")
    return out, args, run.stderr


def build_smart_video(
    clips: list[Path],
    infos: list[VideoInfo],
    frames: list[int],
    t: int,
    frame: tuple[int, int],
    encoding: Encoding,
    tmp: Path,
) -> tuple[SmartVideo | None, list[str]]:
    """The reel's picture as copied and encoded pieces in `tmp`, or (None, why) when nothing can be copied or
    the pieces would not make one stream (the caller then renders the whole reel)."""
    reorder = encoding.bframes
    with ThreadPoolExecutor(max_workers=PARALLEL_ENCODES) as pool:
        scans = list(pool.map(lambda ci: scan_clip(Path(ci[0]), ci[1], frame, reorder), zip(clips, infos, strict=True)))

    def cuts_of(i: int, reference: bytes | None) -> list[int] | None:
        s = scans[i]
        if s.blockers or s.layout is None or (reference is not None and s.config != reference):
            return None
        return [c for c in s.layout.cuts if c <= frames[i]]

    candidates = [i for i, s in enumerate(scans) if not s.blockers]
    if not candidates:
        return None, ["no clip can be copied: " + "; ".join(f"clip {i + 1}: {', '.join(s.blockers)}" for i, s in
                                                            enumerate(scans))]  # fmt: skip
    reference = scans[candidates[0]].config
    pieces = plan_pieces(frames, t, [cuts_of(i, reference) for i in range(len(clips))])
    if any(p.kind == "encode" for p in pieces):
        # Windows come from the reel's encoder: the copied clips must match what it writes.
        reference = _probe_config(encoding, frame, tmp)
        if reference is None:
            return None, ["the encoder wrote no avcC decoder configuration"]
        pieces = plan_pieces(frames, t, [cuts_of(i, reference) for i in range(len(clips))])
    if not any(p.kind == "copy" for p in pieces):
        return None, ["no clip has a copyable run between its transitions"]
    assert reference is not None

    clip_steps = []
    for i, s in enumerate(scans):
        copied = [p.spans[0] for p in pieces if p.kind == "copy" and p.spans[0].clip == i]
        step: dict[str, Any] = {"clip": i + 1, "frames": frames[i]}
        if copied:
            step["copied"] = [copied[0].start, copied[0].end]
            step["encoded"] = frames[i] - copied[0].frames
        else:
            step["copied"] = None
            step["reasons"] = s.blockers or (
                ["decoder configuration (SPS/PPS) differs from the reel encoder's"]
                if s.config != reference
                else ["no IDR between its transitions"]
            )
        if s.layout is not None:
            step["idr_frames"] = s.layout.idr_frames
        clip_steps.append(step)

    video = SmartVideo(concat_list=tmp / "reel-video.ffconcat", pieces=pieces, config=reference, clip_steps=clip_steps)
    files: dict[int, Path] = {}
    reports: dict[int, dict[str, Any]] = {}

    def do(index: int) -> None:
        piece = pieces[index]
        if piece.kind == "copy":
            out, args, stderr = _copy_piece(piece, index, clips, scans, reorder, tmp)
        else:
            out, config, args, stderr = _encode_piece(piece, index, clips, scans, t, frame, encoding, tmp)
            if config != reference:
                raise _Mismatch(f"window {index} was encoded with another decoder configuration (SPS/PPS)")
        files[index] = out
        reports[index] = {"args": args, "stderr": stderr}

    order = sorted(range(len(pieces)), key=lambda k: pieces[k].kind != "encode")  # the slow ones first
    try:
        with ThreadPoolExecutor(max_workers=PARALLEL_ENCODES) as pool:
            list(pool.map(do, order))
    except (_Mismatch, MediaError) as exc:  # the full render then decides whether the reel can be made at all
        return None, [str(exc)]
    lines = ["ffconcat version 1.0"]
    for index, piece in enumerate(pieces):
        args, stderr = reports[index]["args"], reports[index]["stderr"]
        video.commands.append(summarize(args))
        video.passes.append({"pass": f"reel {piece.kind} {index}", **stream_report(args, stderr)})
        lines += [f"file {files[index].name}", f"duration {piece.frames / FPS:.6f}"]
        if piece.kind == "copy":
            span = piece.spans[0]
            layout = scans[span.clip].layout
            assert layout is not None
            video.expected_crcs[piece.reel_start] = layout.crcs(span.start, span.end)
    video.concat_list.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return video, []


class _Mismatch(Exception):
    pass


def verify_joined(path: Path, video: SmartVideo, total_frames: int) -> list[str]:
    """What is wrong with the reel's joined picture (empty: one CFR stream of `total_frames` frames, the
    encoder's decoder configuration, every copied run byte for byte where the plan put it)."""
    problems = []
    layout = scan(path)
    if layout.frame_count != total_frames or not layout.cfr:
        problems.append(f"{layout.frame_count} frames (expected {total_frames}), constant rate: {layout.cfr}")
    if avc_config(path) != video.config:
        problems.append("decoder configuration differs from the pieces'")
    if any(b.dts <= a.dts for a, b in zip(layout.packets, layout.packets[1:], strict=False)):
        problems.append("decode timestamps do not increase")
    for start, crcs in video.expected_crcs.items():
        if layout.crcs(start, start + len(crcs)) != crcs:
            problems.append(f"the copied run at reel frame {start} is not the clip's packets")
    return problems
