"""One interface for every generator: a request in, a provider-neutral result out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from shotline.media.clip_facts import ClipFacts
from shotline.media.frames import Resolution, frame_size


class GenerationRequest(BaseModel):
    """What to generate. `clip_key` is the content key (model, image, prompt, duration, resolution)."""

    storyboard_id: str
    shot_id: str
    clip_key: str
    prompt: str
    image_path: Path
    image_sha256: str
    image_width: int
    image_height: int
    # A URL fal can fetch (https source, presigned S3 URL); None means the generator sends a data URI.
    image_url: str | None = None
    duration: int = Field(ge=1, le=15)
    resolution: Resolution = "720p"

    @property
    def where(self) -> str:
        """Which clip this is, for messages: "storyboard 'id', shot 'id'"."""
        return f"storyboard {self.storyboard_id!r}, shot {self.shot_id!r}"


class GenerationOutcome(BaseModel):
    """What came back, whoever made it, as later stages record it: everything but where one host keeps the
    file (`GenerationResult` adds that)."""

    width: int
    height: int
    fps: float
    duration_s: float
    generator: str
    model: str | None = None
    preview: bool = False
    request_id: str | None = None
    cost_usd: float = 0.0
    # submitted_at (ISO), queue_s, inference_s, download_s, total_s: whatever the generator knows
    timings: dict[str, float | str] = Field(default_factory=dict)
    parameters: dict[str, object] = Field(default_factory=dict)
    # what decoding the file showed, when the generator already decoded it (so nobody decodes it twice)
    checked: ClipFacts | None = None


class GenerationResult(GenerationOutcome):
    """What came back, whoever made it."""

    video_path: Path


LogFn = Callable[[str], None]


class Generator(Protocol):
    name: str
    model: str | None

    def generate(self, request: GenerationRequest, workdir: Path, log: LogFn) -> GenerationResult:
        """Write the clip into `workdir` and describe it. Raises GenerationError on failure."""
        ...


def output_frame(resolution: Resolution, image_width: int, image_height: int) -> tuple[int, int]:
    """The frame the model returns: its short side is the resolution's height, its shape follows the image
    (16:9 for landscape stills, 9:16 for portrait, 1:1 for near-square ones). Both sides even."""
    aspect = image_width / image_height
    return frame_size("landscape" if aspect >= 1.2 else "portrait" if aspect <= 1 / 1.2 else "square", resolution)
