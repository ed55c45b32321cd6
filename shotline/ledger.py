"""The durable ledger of paid fal requests, one record per clip key, under the WorkStore.

    records/fal-requests/<clip_key>.json   the record (written atomically)
    records/fal-requests/<clip_key>.lock   flock'd while a process works on that clip

States: `submitting` is written *before* the POST, so a process that dies mid-submit leaves a trace that
the outcome is unknown; `submitted` (with request id and URLs) lets any later run resume polling the same
request instead of paying for a new one; then `completed`, `failed` or `cancelled`. Earlier attempts of the
same clip are kept in `previous`, so what a clip cost in total stays known. Every record says whether the
attempt was (or may have been) `billed` and what it cost (`cost_usd`).

Where it lives: under SHOTLINE_HOME, guarded by flock. Processes on several machines share it only if
SHOTLINE_HOME is on a shared filesystem whose locks work across machines (NFSv4, EFS); otherwise give
each machine its own SHOTLINE_HOME and run a given shot from one machine at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from shotline.fal.models import RequestHandle
from shotline.store import WorkStore

LEDGER_KIND = "fal-requests"
# error_type of a finished, paid request whose video failed the checks (not one of fal's own types)
REJECTED_ERROR_TYPE = "video_rejected"
_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class LedgerState(StrEnum):
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class LedgerEntry(BaseModel):
    """One clip's paid request. Parameters never hold image data: `image_sha256` names the image."""

    model_config = ConfigDict(extra="allow")

    clip_key: str
    state: LedgerState
    storyboard_id: str
    shot_id: str
    model: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    image_sha256: str | None = None
    estimated_cost_usd: float = 0.0
    budget_reservation: dict[str, Any] | None = None
    # X-Fal-Request-Timeout sent with the submit: fal drops the request if it has not started by then
    start_timeout_s: float | None = None
    created_at: str
    updated_at: str
    host: str = ""
    pid: int = 0
    request_id: str | None = None
    status_url: str | None = None
    response_url: str | None = None
    cancel_url: str | None = None
    submitted_at: str | None = None
    finished_at: str | None = None
    result: dict[str, Any] | None = None
    cost_usd: float | None = None
    timings: dict[str, float | str] = Field(default_factory=dict)
    video_sha256: str | None = None
    video_size: int | None = None
    # what decoding the downloaded file showed (width, height, fps, frames, duration_s, has_audio)
    decoded: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None
    billed: bool | None = None
    retryable: bool | None = None
    previous: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def handle(self) -> RequestHandle | None:
        if not (self.request_id and self.status_url and self.response_url and self.cancel_url):
            return None
        return RequestHandle(
            request_id=self.request_id,
            status_url=self.status_url,
            response_url=self.response_url,
            cancel_url=self.cancel_url,
        )

    @property
    def where(self) -> str:
        return f"storyboard {self.storyboard_id!r}, shot {self.shot_id!r}"

    def public_view(self) -> dict[str, Any]:
        """What an observer (Dagster's event log, the UI) may see: no image bytes, URLs without their query
        or user info, no budget bookkeeping, no earlier attempts. None values are left out."""
        view: dict[str, Any] = {
            "clip_key": self.clip_key,
            "fal_state": self.state.value,
            "model": self.model,
            "fal_request_id": self.request_id,
            "status_url": _without_secrets(self.status_url),
            "response_url": _without_secrets(self.response_url),
            "cancel_url": _without_secrets(self.cancel_url),
            "parameters": self.parameters,
            "estimated_cost_usd": self.estimated_cost_usd,
            "start_timeout_s": self.start_timeout_s,
            "submit_started_at": self.created_at,
            "submitted_at": self.submitted_at,
            "finished_at": self.finished_at,
            "billed": self.billed,
            "cost_usd": self.cost_usd,
            "error": self.error,
            "error_type": self.error_type,
            "video_sha256": self.video_sha256,
            "host": self.host,
            "pid": self.pid,
        }
        return {k: v for k, v in view.items() if v is not None}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RequestLedger:
    """`on_write` is called with every record right after it is durably written (an observer: a Dagster
    observation, a log line). Its failures are reported to `on_write_error`, never raised."""

    def __init__(
        self,
        store: WorkStore,
        *,
        now: Callable[[], datetime] = _utc_now,
        on_write: Callable[[LedgerEntry], None] | None = None,
        on_write_error: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.on_write = on_write
        self.on_write_error = on_write_error
        self._now = now

    def path(self, clip_key: str) -> Path:
        return self.store.record_path(LEDGER_KIND, _checked(clip_key))

    def get(self, clip_key: str) -> LedgerEntry | None:
        data = self.store.get_record(LEDGER_KIND, _checked(clip_key))
        return LedgerEntry.model_validate(data) if data is not None else None

    @contextlib.contextmanager
    def lock(self, clip_key: str, *, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the clip's lock: across processes, one generate() per clip at a time.

        `on_wait` is told when another process holds it (this call then blocks until it is free)."""
        path = self.path(clip_key).with_suffix(".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait(f"another process is generating clip {clip_key}; waiting for it ({path})")
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- transitions (call them while holding the lock) ---------------------------------------------------

    def begin_submit(
        self,
        *,
        clip_key: str,
        storyboard_id: str,
        shot_id: str,
        model: str,
        parameters: dict[str, Any],
        image_sha256: str,
        estimated_cost_usd: float,
        budget_reservation: dict[str, Any] | None,
        start_timeout_s: float | None = None,
    ) -> LedgerEntry:
        now = self._stamp()
        previous = self.get(clip_key)
        history = []
        if previous is not None:
            history = [*previous.previous, previous.model_dump(mode="json", exclude={"previous"})]
        entry = LedgerEntry(
            clip_key=clip_key,
            state=LedgerState.SUBMITTING,
            storyboard_id=storyboard_id,
            shot_id=shot_id,
            model=model,
            parameters=parameters,
            image_sha256=image_sha256,
            estimated_cost_usd=estimated_cost_usd,
            budget_reservation=budget_reservation,
            start_timeout_s=start_timeout_s,
            created_at=now,
            updated_at=now,
            host=socket.gethostname(),
            pid=os.getpid(),
            previous=history,
        )
        self._write(entry)
        return entry

    def mark_submit_unknown(self, entry: LedgerEntry, error: str) -> LedgerEntry:
        """The submit's answer was lost: stay `submitting` (outcome unknown), with what happened."""
        return self._update(entry, error=error, billed=None, retryable=False)

    def mark_submitted(self, entry: LedgerEntry, handle: RequestHandle) -> LedgerEntry:
        return self._update(
            entry,
            state=LedgerState.SUBMITTED,
            request_id=handle.request_id,
            status_url=handle.status_url,
            response_url=handle.response_url,
            cancel_url=handle.cancel_url,
            submitted_at=self._stamp(),
            error=None,
        )

    def mark_completed(
        self,
        entry: LedgerEntry,
        *,
        result: dict[str, Any],
        cost_usd: float,
        timings: dict[str, float | str],
        video_sha256: str,
        video_size: int,
        decoded: dict[str, Any] | None = None,
    ) -> LedgerEntry:
        return self._update(
            entry,
            state=LedgerState.COMPLETED,
            result=result,
            cost_usd=cost_usd,
            timings=timings,
            video_sha256=video_sha256,
            video_size=video_size,
            decoded=decoded,
            finished_at=self._stamp(),
            billed=True,
            error=None,
            error_type=None,
        )

    def mark_failed(
        self,
        entry: LedgerEntry,
        *,
        error: str,
        error_type: str | None,
        billed: bool,
        retryable: bool,
        cost_usd: float | None = None,
    ) -> LedgerEntry:
        return self._update(
            entry,
            state=LedgerState.FAILED,
            error=error,
            error_type=error_type,
            billed=billed,
            retryable=retryable,
            cost_usd=cost_usd,
            finished_at=self._stamp(),
        )

    def mark_rejected(
        self,
        entry: LedgerEntry,
        *,
        reason: str,
        result: dict[str, Any],
        cost_usd: float,
        video_sha256: str,
        video_size: int,
    ) -> LedgerEntry:
        """fal finished and was paid, but the video is not what was asked: a failure that keeps the file."""
        return self._update(
            entry,
            state=LedgerState.FAILED,
            error=reason,
            error_type=REJECTED_ERROR_TYPE,
            billed=True,
            retryable=False,
            cost_usd=cost_usd,
            result=result,
            video_sha256=video_sha256,
            video_size=video_size,
            finished_at=self._stamp(),
        )

    def mark_cancelled(
        self, entry: LedgerEntry, *, reason: str, billed: bool, cost_usd: float | None = None
    ) -> LedgerEntry:
        return self._update(
            entry,
            state=LedgerState.CANCELLED,
            error=reason,
            billed=billed,
            retryable=True,
            cost_usd=cost_usd if cost_usd is not None else (entry.estimated_cost_usd if billed else 0.0),
            finished_at=self._stamp(),
        )

    def _update(self, entry: LedgerEntry, **changes: Any) -> LedgerEntry:
        updated = entry.model_copy(update={**changes, "updated_at": self._stamp()})
        self._write(updated)
        return updated

    def _write(self, entry: LedgerEntry) -> None:
        self.store.put_record(LEDGER_KIND, _checked(entry.clip_key), entry.model_dump(mode="json"))
        if self.on_write is not None:
            try:
                self.on_write(entry)
            except Exception as exc:  # an observer must never break the bookkeeping of money
                if self.on_write_error is not None:
                    self.on_write_error(f"ledger observer failed for clip {entry.clip_key}: {exc!r}")

    def _stamp(self) -> str:
        return self._now().astimezone(UTC).isoformat()


def _without_secrets(url: str | None) -> str | None:
    if not url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _checked(clip_key: str) -> str:
    if not _SAFE_KEY.match(clip_key):
        raise ValueError(f"clip key {clip_key!r} is not a safe file name ([A-Za-z0-9._-], max 201 chars)")
    return clip_key
