"""fal.ai's HTTP queue API: a typed client, the wire models and the errors."""

from shotline.fal.client import FalQueueClient, LogWindow
from shotline.fal.errors import (
    FalAuthError,
    FalDeadlineExceeded,
    FalError,
    FalMediaError,
    FalProtocolError,
    FalRequestFailed,
    FalUnavailable,
    FalValidationError,
    SubmitNotSent,
    SubmitOutcomeUnknown,
)
from shotline.fal.models import (
    LogEntry,
    QueueStatus,
    RequestHandle,
    SubmitPayload,
    SubmitResponse,
    VideoFile,
    VideoResult,
)

__all__ = [
    "FalAuthError",
    "FalDeadlineExceeded",
    "FalError",
    "FalMediaError",
    "FalProtocolError",
    "FalQueueClient",
    "FalRequestFailed",
    "FalUnavailable",
    "FalValidationError",
    "LogEntry",
    "LogWindow",
    "QueueStatus",
    "RequestHandle",
    "SubmitNotSent",
    "SubmitOutcomeUnknown",
    "SubmitPayload",
    "SubmitResponse",
    "VideoFile",
    "VideoResult",
]
