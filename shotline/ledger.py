"""The durable ledger of paid fal requests, one record per clip key, under the WorkStore.

    records/fal-requests/<clip_key>.json   the record (written atomically)
    records/fal-requests/<clip_key>.lock   flock'd while a process works on that clip

States: `submitting` is written *before* the POST, so a process that dies mid-submit leaves a trace that
the outcome is unknown; `submitted` (with request id and URLs) lets any later run resume polling the same
request instead of paying for a new one; then `completed`, `failed` or `cancelled`. Earlier attempts of the
same clip are kept in `previous`, so what a clip cost in total stays known.
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

from pydantic import BaseModel, ConfigDict, Field

from shotline.fal.models import RequestHandle
from shotline.store import WorkStore

LEDGER_KIND = "fal-requests"
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


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RequestLedger:
    def __init__(self, store: WorkStore, *, now: Callable[[], datetime] = _utc_now) -> None:
        self.store = store
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
    ) -> LedgerEntry:
        return self._update(
            entry,
            state=LedgerState.COMPLETED,
            result=result,
            cost_usd=cost_usd,
            timings=timings,
            video_sha256=video_sha256,
            video_size=video_size,
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

    def mark_cancelled(self, entry: LedgerEntry, *, reason: str, billed: bool) -> LedgerEntry:
        return self._update(
            entry,
            state=LedgerState.CANCELLED,
            error=reason,
            billed=billed,
            retryable=True,
            finished_at=self._stamp(),
        )

    def _update(self, entry: LedgerEntry, **changes: Any) -> LedgerEntry:
        updated = entry.model_copy(update={**changes, "updated_at": self._stamp()})
        self._write(updated)
        return updated

    def _write(self, entry: LedgerEntry) -> None:
        self.store.put_record(LEDGER_KIND, _checked(entry.clip_key), entry.model_dump(mode="json"))

    def _stamp(self) -> str:
        return self._now().astimezone(UTC).isoformat()


def _checked(clip_key: str) -> str:
    if not _SAFE_KEY.match(clip_key):
        raise ValueError(f"clip key {clip_key!r} is not a safe file name ([A-Za-z0-9._-], max 201 chars)")
    return clip_key
