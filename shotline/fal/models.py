"""The shapes fal's queue API sends and receives, validated at the edge.

Outgoing payloads are strict (a typo must not reach a paid API); everything fal sends back is lenient:
unknown fields are kept, optional fields may be missing or null (fal's queue API reference: https://fal.ai/docs/api-reference/inference-api).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shotline.fal.outcomes import Outcome
from shotline.media.frames import Resolution

QueueState = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class SubmitPayload(BaseModel):
    """The model input for xai/grok-imagine-video/v1.5/image-to-video."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1)
    image_url: str = Field(min_length=1)
    duration: int = Field(default=6, ge=1, le=15)
    resolution: Resolution = "720p"


class SubmitResponse(_Lenient):
    """The envelope a submit answers with. Only `request_id` is guaranteed."""

    request_id: str
    response_url: str | None = None
    status_url: str | None = None
    cancel_url: str | None = None
    queue_position: int | None = None
    status: QueueState | None = None


class RequestHandle(BaseModel):
    """Where to ask about one submitted request: what the ledger stores to resume it later."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    status_url: str
    response_url: str
    cancel_url: str


class LogEntry(_Lenient):
    message: str = ""
    timestamp: str | None = None
    level: str | None = None


class Metrics(_Lenient):
    inference_time: float | None = None


class QueueStatus(_Lenient):
    """A status poll's body. A failed request is COMPLETED with `error`/`error_type` (fal has no FAILED)."""

    status: QueueState
    request_id: str | None = None
    response_url: str | None = None
    queue_position: int | None = None
    logs: list[LogEntry] | None = None
    metrics: Metrics | None = None
    error: str | None = None
    error_type: str | None = None

    @property
    def completed(self) -> bool:
        return self.status == "COMPLETED"

    @property
    def failed(self) -> bool:
        return self.completed and bool(self.error or self.error_type)

    @property
    def inference_time(self) -> float | None:
        return self.metrics.inference_time if self.metrics else None


class VideoFile(_Lenient):
    url: str
    content_type: str | None = None
    file_name: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    duration: float | None = None
    num_frames: int | None = None
    file_size: int | None = None


class VideoResult(_Lenient):
    """The model output the result endpoint returns on success."""

    video: VideoFile


class ResultAnswer(BaseModel):
    """A COMPLETED request's final answer: its classified outcome and, on success, the video."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    outcome: Outcome
    video: VideoFile | None = None
