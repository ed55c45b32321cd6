"""What decoding a clip showed: the facts every stage after generation relies on."""

from __future__ import annotations

from pydantic import BaseModel


class ClipFacts(BaseModel):
    """What decoding a clip showed."""

    width: int
    height: int
    fps: float
    frames: int
    duration_s: float  # frames / fps: how long the video itself lasts
    container_duration_s: float
    has_audio: bool
    video_codec: str
    audio_codec: str | None = None
    size_bytes: int
