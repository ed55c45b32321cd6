"""Frames of a moviepy video file read backwards without a seek per frame.

moviepy's `FFMPEG_VideoReader` only reads forward: asking it for an earlier frame restarts its ffmpeg child at
that time, so time_mirror (which asks for every frame in decreasing time order) would start one ffmpeg per
frame. `ChunkedReverseFrames` sits between the clip and its reader: when a frame earlier than the last one
asked for is wanted and is not buffered, it seeks once to the start of a chunk ending at that frame, reads the
chunk forward into a small buffer and serves it from there, backwards. Each frame is then decoded about once,
the reader restarts about once per chunk, and memory holds one chunk (at most `CHUNK_BYTES` of frames). Forward
(and repeated) requests go straight to the reader, which already handles them without restarting.

The frames are the reader's own: a chunk is read with the reader's `get_frame` at each frame's exact time, which
is what reading forward from the start gives, so the pictures are those of a forward read.
"""

from __future__ import annotations

from typing import Any

CHUNK_FRAMES = 24  # about 1 s at the deliverable's rate
CHUNK_BYTES = 72 * 2**20  # a 720p rgb24 frame is 2.76 MB: 24 of them fit; a 4K source gets fewer per chunk


class ChunkedReverseFrames:
    """A frame function `t -> frame` over a moviepy `FFMPEG_VideoReader` that is cheap read backwards."""

    def __init__(self, reader: Any, chunk_frames: int = CHUNK_FRAMES, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.reader = reader
        w, h = reader.size
        frame_bytes = max(1, int(w) * int(h) * int(getattr(reader, "depth", 3)))
        self.chunk = max(1, min(chunk_frames, chunk_bytes // frame_bytes))
        self._buffer: dict[int, Any] = {}  # frame index -> frame, one chunk at most
        self._last: int | None = None  # index of the last frame asked for
        self.chunks_read = 0

    def _index(self, t: float) -> int:
        return int(self.reader.get_frame_number(t))

    def get_frame(self, t: float) -> Any:
        n = self._index(t)
        last, self._last = self._last, n
        frame = self._buffer.get(n)
        if frame is not None:
            return frame
        if last is None or n >= last:
            return self.reader.get_frame(t)  # forward or the same frame: the reader reads on without a seek
        return self._read_chunk_ending_at(n)

    __call__ = get_frame

    def _read_chunk_ending_at(self, n: int) -> Any:
        """Frames [n - chunk + 1, n] read forward (one seek, to the first), kept; frame n returned."""
        self._buffer.clear()  # the old chunk goes before the new one is read: one chunk in memory
        fps = self.reader.fps
        first = max(0, n - self.chunk + 1)
        for i in range(first, n + 1):
            self._buffer[i] = self.reader.get_frame(i / fps)
        self.chunks_read += 1
        return self._buffer[n]


def reverse_friendly(clip: Any) -> Any:
    """A copy of the moviepy `VideoFileClip` `clip` whose frames come through a `ChunkedReverseFrames` over its
    reader (the copy shares the reader: closing `clip` closes it)."""
    frames = ChunkedReverseFrames(clip.reader)
    wrapped = clip.with_updated_frame_function(frames.get_frame)
    wrapped._shotline_frames = frames
    return wrapped
