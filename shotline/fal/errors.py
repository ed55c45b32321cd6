"""Errors of the fal clients, each a GenerationError saying whether a retry may help and whether fal may bill.

    ShotlineError
    └── GenerationError              .retryable, .billed (True, False, None = maybe), .request_id
        └── FalError                 fal answered, or failed to: .status_code, .error_type, .detail
            ├── FalAuthError         401 (bad key) or 403 (account locked): a human acts, never retried
            ├── FalValidationError   422 on submit: fal refused the input, .problems
            ├── FalRequestFailed     a submitted request ended in failure
            ├── FalUnavailable       still failing after the bounded retries; the request may be fine
            ├── FalProtocolError     an answer this client does not understand
            ├── FalMediaError        the video could not be downloaded, or is not what it should be
            ├── FalDeadlineExceeded  the per-clip deadline passed first
            ├── SubmitNotSent        the submit never left: submitting again is safe
            ├── SubmitOutcomeUnknown the submit went out, no answer came back: maybe billed, never retried
            ├── FalStorageError      an upload to fal storage or the check of one (shotline.fal.storage)
            └── FalPlatformError     the platform API's request listing (shotline.fal.platform)

Messages carry fal's own explanation (the `detail` text or list) and never the API key.
"""

from __future__ import annotations

from typing import Any

from shotline.errors import GenerationError


class FalError(GenerationError):
    """Something fal answered (or failed to answer). `detail` is fal's explanation when it gave one."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        billed: bool = False,
        request_id: str | None = None,
        status_code: int | None = None,
        error_type: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.error_type = error_type
        self.detail = detail
        super().__init__(message, retryable=retryable, billed=billed, request_id=request_id)


class FalAuthError(FalError):
    """401 (bad key) or 403 (account locked): a human has to act; never retried."""

    def __init__(self, message: str, *, status_code: int, detail: str | None = None) -> None:
        super().__init__(message, retryable=False, status_code=status_code, detail=detail)


class FalValidationError(FalError):
    """422 on submit: fal refused the input. `problems` is fal's `detail` list (loc, msg, type, ctx)."""

    def __init__(self, message: str, *, problems: list[dict[str, Any]], detail: str | None = None) -> None:
        self.problems = problems
        super().__init__(message, retryable=False, status_code=422, detail=detail)


class FalRequestFailed(FalError):
    """A submitted request ended in failure (COMPLETED with an error, or an error answer on its result)."""


class FalUnavailable(FalError):
    """fal (or the network to it) kept failing after the bounded retries; the request itself may be fine."""


class FalProtocolError(FalError):
    """fal answered something this client does not understand."""


class FalMediaError(FalError):
    """The generated video could not be downloaded, or is not what it should be."""


class FalDeadlineExceeded(FalError):
    """The per-clip deadline passed before fal finished."""


class SubmitNotSent(FalError):
    """The submit never reached fal (connection refused, connect timeout): safe to submit again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True, billed=False)


class SubmitOutcomeUnknown(FalError):
    """The submit body went out but no answer came back: fal may have accepted (and billed) it.

    Never retried automatically: a second submit would be a second, separately billed request.
    """

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message, retryable=False, billed=True, request_id=request_id)


def format_detail(detail: Any) -> str:
    """fal's `detail`, a string or a list of {loc, msg, type, ctx}, as one readable line."""
    if detail is None:
        return ""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if not isinstance(item, dict):
                parts.append(str(item))
                continue
            loc = ".".join(str(p) for p in item.get("loc") or [] if p != "body")
            msg = str(item.get("msg") or "")
            kind = item.get("type")
            text = f"{loc}: {msg}" if loc else msg
            if kind:
                text += f" ({kind})"
            parts.append(text)
        return "; ".join(parts)
    if isinstance(detail, dict):
        return format_detail(detail.get("detail") or detail.get("message") or str(detail))
    return str(detail)


def add_context(exc: GenerationError, message: str) -> None:
    """Reword the error (same class, same flags, same cause) to say which clip it is about."""
    exc.args = (message,)
