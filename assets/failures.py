"""Turn the core's errors into Dagster failures that say whether retrying can help."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg

from shotline.errors import GenerationError, InputError, ShotlineError
from shotline.reel_clips import ReelNotReady


@contextlib.contextmanager
def dagster_failures() -> Iterator[None]:
    """Bad input and permanent generation failures stop at once (no retry, no money); transient ones are
    left to the asset's RetryPolicy, which resumes the same paid request instead of submitting again."""
    try:
        yield
    except InputError as exc:
        # a source that may come back (network, timeout, 5xx) is left to the RetryPolicy; bad input is not
        raise dg.Failure(description=str(exc), allow_retries=bool(getattr(exc, "retryable", False))) from None
    except GenerationError as exc:
        if exc.retryable:
            raise
        metadata = {"billed": exc.billed}
        if exc.request_id:
            metadata["fal_request_id"] = exc.request_id  # type: ignore[assignment]
        raise dg.Failure(description=str(exc), metadata=metadata, allow_retries=False) from None
    except ReelNotReady as exc:
        raise dg.Failure(description=str(exc), metadata=exc.metadata or None, allow_retries=False) from None
    except ShotlineError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
