"""The durable ledger of paid fal requests, in the shared database: one row per attempt of a clip key.

States of an attempt:

    submitting        written, with the canonical input and send time, *before* the POST: if the answer is
                      lost, the request can be found again in fal's request listing and adopted
    submitted         fal answered with a request id and URLs; any host can resume polling it
    cancel_requested  PUT cancel was accepted (202): only a request, fal may still run it (and bill it), so it
                      is followed to its end before anything else is submitted for the clip
    completed         a video came back (billed)
    failed            fal's answer says it failed; `billed` (True, False, or None = maybe), `retryable`
    cancelled         fal proved the cancel (status client_cancelled / result 499): not billed
    resubmit_requested  no request: someone ran `shotline resubmit`, so the next run pays for a new one

Every change of state is one transaction together with the budget reservation it settles or releases, so
the ledger and the budget never disagree, whichever host dies when.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypedDict
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from shotline.budget import Budget
from shotline.db.engine import Database
from shotline.db.leases import Lease
from shotline.db.tables import fal_requests
from shotline.fal.models import RequestHandle

# error_type of a finished, paid request whose video failed the checks (not one of fal's own types)
REJECTED_ERROR_TYPE = "video_rejected"


class LedgerState(StrEnum):
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    CANCEL_REQUESTED = "cancel_requested"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # not a request: a person chose to pay for a new one (`shotline resubmit`); attempts count from here
    RESUBMIT_REQUESTED = "resubmit_requested"


# states in which a request may still run on fal (and be billed): never submit another beside one of these
OPEN_STATES = frozenset({LedgerState.SUBMITTING, LedgerState.SUBMITTED, LedgerState.CANCEL_REQUESTED})


class LedgerEntry(BaseModel):
    """One attempt. Parameters never hold image data or signed URLs: `image_sha256` names the image."""

    model_config = ConfigDict(extra="ignore")

    id: int = 0
    clip_key: str
    attempt: int = 1
    state: LedgerState
    storyboard_id: str
    shot_id: str
    model: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    input_sha256: str | None = None
    image_sha256: str | None = None
    estimated_cost_usd: float = 0.0
    budget_reservation: str | None = None
    start_timeout_s: float | None = None
    origin: str = "submitted"
    created_at: str
    updated_at: str
    sent_at: str | None = None
    host: str = ""
    pid: int = 0
    request_id: str | None = None
    status_url: str | None = None
    response_url: str | None = None
    cancel_url: str | None = None
    submitted_at: str | None = None
    cancel_requested_at: str | None = None
    finished_at: str | None = None
    outcome: str | None = None
    billed: bool | None = None
    billable_units: float | None = None
    cost_usd: float | None = None
    error: str | None = None
    error_type: str | None = None
    retryable: bool | None = None
    result: dict[str, Any] | None = None
    decoded: dict[str, Any] | None = None
    timings: dict[str, Any] = Field(default_factory=dict)
    video_sha256: str | None = None
    video_size: int | None = None

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
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def where(self) -> str:
        return f"storyboard {self.storyboard_id!r}, shot {self.shot_id!r}"

    @property
    def submitted_elsewhere(self) -> bool:
        """Whether another process submitted this attempt (this one is picking it up)."""
        return (self.host, self.pid) != (socket.gethostname(), os.getpid())

    def public_view(self) -> dict[str, Any]:
        """What an observer (Dagster's event log, the UI) may see: no image bytes, URLs without their query
        or user info, no budget bookkeeping. None values are left out."""
        view: dict[str, Any] = {
            "clip_key": self.clip_key,
            "attempt": self.attempt,
            "fal_state": self.state.value,
            "origin": self.origin,
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
            "cancel_requested_at": self.cancel_requested_at,
            "finished_at": self.finished_at,
            "outcome": self.outcome,
            # an attempt that ended without fal saying (a 422, a lost request) is shown as possibly billed
            "billed": "possibly" if self.billed is None and not self.is_open else self.billed,
            "billable_units": self.billable_units,
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
    """`on_write` is called with every record right after it is committed (an observer: a Dagster
    observation, a log line). Its failures are reported to `on_write_error`, never raised."""

    def __init__(
        self,
        db: Database,
        *,
        budget: Budget | None = None,
        now: Callable[[], datetime] = _utc_now,
        on_write: Callable[[LedgerEntry], None] | None = None,
        on_write_error: Callable[[str], None] | None = None,
    ) -> None:
        self.db = db
        self.budget = budget
        self.on_write = on_write
        self.on_write_error = on_write_error
        self._now = now

    # -- reading ------------------------------------------------------------------------------------------

    def attempts(self, clip_key: str) -> list[LedgerEntry]:
        """Every attempt of the clip, oldest first."""
        query = sa.select(fal_requests).where(fal_requests.c.clip_key == clip_key).order_by(fal_requests.c.attempt)
        with self.db.begin() as conn:
            return [_entry(row) for row in conn.execute(query).mappings()]

    def get(self, clip_key: str) -> LedgerEntry | None:
        """The clip's latest attempt."""
        found = self.attempts(clip_key)
        return found[-1] if found else None

    def by_request_id(self, request_id: str) -> LedgerEntry | None:
        with self.db.begin() as conn:
            row = (
                conn.execute(sa.select(fal_requests).where(fal_requests.c.request_id == request_id)).mappings().first()
            )
        return _entry(row) if row else None

    def for_storyboard(self, storyboard_id: str, shot_id: str | None = None) -> list[LedgerEntry]:
        query = sa.select(fal_requests).where(fal_requests.c.storyboard_id == storyboard_id)
        if shot_id is not None:
            query = query.where(fal_requests.c.shot_id == shot_id)
        query = query.order_by(fal_requests.c.shot_id, fal_requests.c.clip_key, fal_requests.c.attempt)
        with self.db.begin() as conn:
            return [_entry(row) for row in conn.execute(query).mappings()]

    def spent_usd(self, clip_key: str) -> float:
        """What every attempt of the clip cost (billed or maybe billed), in USD."""
        return round(sum(e.cost_usd or 0.0 for e in self.attempts(clip_key) if e.billed is not False), 2)

    # -- transitions --------------------------------------------------------------------------------------

    def begin_submit(
        self,
        lease: Lease | None,
        *,
        clip_key: str,
        storyboard_id: str,
        shot_id: str,
        model: str,
        parameters: dict[str, Any],
        input_sha256: str,
        image_sha256: str,
        estimated_cost_usd: float,
        start_timeout_s: float | None = None,
        label: str | None = None,
    ) -> LedgerEntry:
        """Record a new attempt as `submitting`, reserving its estimate from today's budget, in one
        transaction that first proves this worker still holds the clip's lease. Raises BudgetExceeded
        (nothing recorded) when the budget cannot take it."""
        return self._insert(
            lease,
            clip_key=clip_key,
            storyboard_id=storyboard_id,
            shot_id=shot_id,
            model=model,
            parameters=parameters,
            input_sha256=input_sha256,
            image_sha256=image_sha256,
            estimated_cost_usd=estimated_cost_usd,
            start_timeout_s=start_timeout_s,
            origin="submitted",
            state=LedgerState.SUBMITTING,
            label=label,
            reserve=True,
        )

    def record_duplicate(self, like: LedgerEntry, handle: RequestHandle, *, sent_at: str | None) -> LedgerEntry:
        """Another request fal holds for the same input (a lost submit answered twice): its own attempt,
        followed like any other, since fal bills it."""
        entry = self._insert(
            None,
            clip_key=like.clip_key,
            storyboard_id=like.storyboard_id,
            shot_id=like.shot_id,
            model=like.model,
            parameters=like.parameters,
            input_sha256=like.input_sha256,
            image_sha256=like.image_sha256,
            estimated_cost_usd=like.estimated_cost_usd,
            start_timeout_s=like.start_timeout_s,
            origin="duplicate",
            state=LedgerState.SUBMITTED,
            label=None,
            reserve="always",
            sent_at=sent_at,
        )
        return self._update(entry, **_handle_fields(handle), submitted_at=self._stamp())

    def mark_submit_unknown(self, entry: LedgerEntry, error: str) -> LedgerEntry:
        """The submit's answer was lost: stay `submitting` (outcome unknown), with what happened."""
        return self._update(entry, error=error, billed=None, retryable=False)

    def mark_submitted(self, entry: LedgerEntry, handle: RequestHandle, *, origin: str | None = None) -> LedgerEntry:
        changes: dict[str, Any] = {**_handle_fields(handle), "state": LedgerState.SUBMITTED, "error": None}
        changes["submitted_at"] = self._stamp()
        if origin:
            changes["origin"] = origin
        return self._update(entry, **changes)

    def mark_cancel_requested(self, entry: LedgerEntry, reason: str) -> LedgerEntry:
        return self._update(entry, state=LedgerState.CANCEL_REQUESTED, cancel_requested_at=self._stamp(), error=reason)

    def mark_completed(
        self,
        entry: LedgerEntry,
        *,
        result: dict[str, Any],
        cost_usd: float,
        billable_units: float | None,
        timings: dict[str, Any],
        video_sha256: str,
        video_size: int,
        decoded: dict[str, Any] | None = None,
    ) -> LedgerEntry:
        return self._update(
            entry,
            budget=("settle", cost_usd),
            state=LedgerState.COMPLETED,
            outcome="succeeded",
            result=result,
            cost_usd=cost_usd,
            billable_units=billable_units,
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
        outcome: str,
        error: str,
        error_type: str | None,
        billed: bool | None,
        retryable: bool,
        billable_units: float | None = None,
        cost_usd: float | None = None,
        state: LedgerState = LedgerState.FAILED,
        **extra: Any,
    ) -> LedgerEntry:
        """A final outcome other than a usable video. billed True/None settles the reservation (at
        `cost_usd`, default the estimate: a maybe-billed request counts against the cap); False releases it."""
        budget: tuple[str, float | None]
        if billed is False:
            cost, budget = 0.0, ("release", None)
        else:
            cost = entry.estimated_cost_usd if cost_usd is None else cost_usd
            budget = ("settle", cost)
        return self._update(
            entry,
            budget=budget,
            state=state,
            outcome=outcome,
            error=error,
            error_type=error_type,
            billed=billed,
            retryable=retryable,
            billable_units=billable_units,
            cost_usd=cost,
            finished_at=self._stamp(),
            **extra,
        )

    def mark_cancelled(self, entry: LedgerEntry, *, reason: str, billable_units: float | None = None) -> LedgerEntry:
        """fal proved the cancel (client_cancelled / 499): nothing was billed."""
        return self.mark_failed(
            entry,
            outcome="cancelled",
            error=reason,
            error_type="client_cancelled",
            billed=False,
            retryable=True,
            billable_units=billable_units,
            state=LedgerState.CANCELLED,
        )

    def request_resubmit(self, last: LedgerEntry, *, by: str) -> LedgerEntry:
        """Let the next run submit a new request for the clip, whatever ended the earlier ones."""
        fields = {
            name: getattr(last, name)
            for name in ("clip_key", "storyboard_id", "shot_id", "model", "parameters", "input_sha256", "image_sha256")
        }
        return self._insert(
            None,
            **fields,
            estimated_cost_usd=0.0,
            start_timeout_s=None,
            origin="resubmit",
            state=LedgerState.RESUBMIT_REQUESTED,
            label=None,
            reserve=False,
            error=f"resubmit requested by {by}",
            billed=False,
            cost_usd=0.0,
        )

    def forget_unknown_submit(self, entry: LedgerEntry, reason: str) -> LedgerEntry:
        """A `submitting` attempt that fal's listing never showed, after its start timeout and the longest
        plausible run had passed: it never reached fal's queue, nothing was billed."""
        return self.mark_failed(
            entry, outcome="never_queued", error=reason, error_type=None, billed=False, retryable=True
        )

    # -- plumbing -----------------------------------------------------------------------------------------

    def _insert(
        self,
        lease: Lease | None,
        *,
        reserve: bool | str,
        label: str | None,
        state: LedgerState,
        sent_at: str | None = None,
        **fields: Any,
    ) -> LedgerEntry:
        now = self._stamp()
        with self.db.begin() as conn:
            if lease is not None:
                lease.holds(conn)
            last = conn.execute(
                sa.select(sa.func.max(fal_requests.c.attempt)).where(fal_requests.c.clip_key == fields["clip_key"])
            ).scalar()
            reservation = None
            if reserve and self.budget is not None:
                reservation = self.budget.reserve(
                    fields["estimated_cost_usd"],
                    fields["clip_key"],
                    label=label,
                    conn=conn,
                    enforce=reserve != "always",  # fal bills a duplicate whatever the cap says
                )
            values = {
                **fields,
                "attempt": (last or 0) + 1,
                "state": state.value,
                "budget_reservation": reservation.id if reservation else None,
                "created_at": now,
                "updated_at": now,
                "sent_at": sent_at or now,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "timings": {},
            }
            primary_key = conn.execute(sa.insert(fal_requests).values(**values)).inserted_primary_key
            assert primary_key is not None  # a single-row INSERT always reports its key
            new_id = primary_key[0]
            row = conn.execute(sa.select(fal_requests).where(fal_requests.c.id == new_id)).mappings().one()
        entry = _entry(row)
        self._notify(entry)
        return entry

    def _update(
        self, entry: LedgerEntry, *, budget: tuple[str, float | None] | None = None, **changes: Any
    ) -> LedgerEntry:
        changes["updated_at"] = self._stamp()
        values = {k: (v.value if isinstance(v, StrEnum) else v) for k, v in changes.items()}
        with self.db.begin() as conn:
            conn.execute(sa.update(fal_requests).where(fal_requests.c.id == entry.id).values(**values))
            if budget is not None:
                self._apply_budget(conn, entry, *budget)
            row = conn.execute(sa.select(fal_requests).where(fal_requests.c.id == entry.id)).mappings().one()
        updated = _entry(row)
        self._notify(updated)
        return updated

    def _apply_budget(self, conn: Connection, entry: LedgerEntry, action: str, amount: float | None) -> None:
        if self.budget is None or not entry.budget_reservation:
            return
        if action == "settle":
            self.budget.settle(entry.budget_reservation, None if amount is None else Decimal(str(amount)), conn=conn)
        else:
            self.budget.release(entry.budget_reservation, conn=conn)

    def _notify(self, entry: LedgerEntry) -> None:
        if self.on_write is None:
            return
        try:
            self.on_write(entry)
        except Exception as exc:  # an observer must never break the bookkeeping of money
            if self.on_write_error is not None:
                self.on_write_error(f"ledger observer failed for clip {entry.clip_key}: {exc!r}")

    def _stamp(self) -> str:
        return self._now().astimezone(UTC).isoformat()


def _entry(row: Any) -> LedgerEntry:
    data = dict(row)
    data["timings"] = data.get("timings") or {}
    data["parameters"] = data.get("parameters") or {}
    return LedgerEntry.model_validate(data)


class _HandleFields(TypedDict):
    request_id: str
    status_url: str
    response_url: str
    cancel_url: str


def _handle_fields(handle: RequestHandle) -> _HandleFields:
    return {
        "request_id": handle.request_id,
        "status_url": handle.status_url,
        "response_url": handle.response_url,
        "cancel_url": handle.cancel_url,
    }


def _without_secrets(url: str | None) -> str | None:
    if not url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
