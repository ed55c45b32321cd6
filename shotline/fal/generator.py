"""The fal generator: every paid Grok Imagine Video request followed to its end, billed only as fal bills.

Every generate() holds the clip's lease (one worker per clip key across every host sharing the database)
and decides from the clip's attempts in the ledger:

    a completed attempt, video in the store   return it, no HTTP at all
    an open attempt (submitted, cancel_requested)
                                              follow it to the end fal proves: never submit beside it
    an attempt whose submit answer was lost   look it up in fal's request listing: adopt what matches (all
                                              of it, duplicates are billed too); nothing yet -> look again
                                              until its start timeout plus the longest run has passed
    a failed attempt, unbilled and retryable  submit a new attempt, up to `max_attempts` per clip
    a failed attempt otherwise                refuse, with fal's explanation (`shotline resubmit` pays again)

A request's final answer is classified once (`shotline.fal.outcomes`). A deadline or an interrupt asks fal
to cancel (PUT cancel): the attempt becomes `cancel_requested` and is followed, now or by the next run, until
fal proves the cancel (unbilled) or delivers the video anyway (billed: kept and used).
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr, ValidationError

from shotline.budget import Budget
from shotline.config import DEFAULT_FAL_MAX_ATTEMPTS, DEFAULT_FAL_MODEL, Settings
from shotline.db.engine import Database
from shotline.db.leases import ClipLeases, Lease
from shotline.errors import GenerationError, InputError, MediaError
from shotline.fal.client import FalQueueClient
from shotline.fal.errors import (
    FalAuthError,
    FalDeadlineExceeded,
    FalError,
    FalMediaError,
    FalRequestFailed,
    SubmitOutcomeUnknown,
)
from shotline.fal.models import QueueStatus, ResultAnswer, SubmitPayload, VideoFile, VideoResult
from shotline.fal.outcomes import Outcome, OutcomeKind, classify_answer
from shotline.fal.platform import FalPlatform, input_sha256
from shotline.fal.storage import FalStorage
from shotline.fal.uploads import StillUploads
from shotline.fsutil import atomic_path
from shotline.generators.base import GenerationRequest, GenerationResult, LogFn
from shotline.hashing import sha256_bytes
from shotline.ledger import REJECTED_ERROR_TYPE, LedgerEntry, LedgerState, RequestLedger
from shotline.media.clip_check import check_clip
from shotline.media.clip_facts import ClipFacts
from shotline.pricing import billed_seconds, clip_cost_usd, estimate_cost_usd
from shotline.store import WorkStore

DEFAULT_DEADLINE_S = 30 * 60.0
# the longest a started Grok request plausibly runs (third parties: 1-4 min): with the start timeout, how long
# a submit whose answer was lost may stay invisible in fal's listing before it is taken as never queued
DEFAULT_MAX_RUN_S = 15 * 60.0
DEFAULT_LOOKUP_INTERVAL_S = 30.0
_CANCEL_ATTEMPTS = 2  # on the way out (deadline, interrupt): best effort, and quick
# fal's output metadata that is cross-checked against the decoded file
_FAL_FILE_FIELDS = {"width", "height", "fps", "duration", "num_frames", "content_type", "file_size"}

logger = logging.getLogger("shotline.fal")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FalGenerator:
    name = "fal"

    def __init__(
        self,
        client_factory: Callable[[], FalQueueClient],
        store: WorkStore,
        db: Database,
        *,
        model: str = DEFAULT_FAL_MODEL,
        budget: Budget | None = None,
        uploads: StillUploads | None = None,
        platform_factory: Callable[[], FalPlatform] | None = None,
        max_attempts: int = DEFAULT_FAL_MAX_ATTEMPTS,
        deadline_s: float = DEFAULT_DEADLINE_S,
        queue_timeout_s: float | None = None,
        max_run_s: float = DEFAULT_MAX_RUN_S,
        lookup_interval_s: float = DEFAULT_LOOKUP_INTERVAL_S,
        lease_s: float | None = None,
        on_record: Callable[[LedgerEntry], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`deadline_s`: most a clip may take in one run, from taking it up to the video being checked (past
        it, the request is cancelled). `queue_timeout_s`: sent as X-Fal-Request-Timeout, how long fal may keep
        the request waiting to start (default: the deadline). `max_attempts`: most requests per clip while
        earlier ones failed unbilled and retryable."""
        if deadline_s <= 0 or (queue_timeout_s is not None and queue_timeout_s <= 0) or max_attempts < 1:
            raise ValueError("deadline_s and queue_timeout_s must be positive, max_attempts at least 1")
        self.model: str | None = model
        self.store = store
        self.db = db
        self.budget = budget
        self.uploads = uploads
        self.max_attempts = max_attempts
        self.deadline_s = deadline_s
        self.queue_timeout_s = queue_timeout_s if queue_timeout_s is not None else deadline_s
        self.max_run_s = max_run_s
        self.lookup_interval_s = lookup_interval_s
        self.ledger = RequestLedger(db, budget=budget, now=now, on_write=on_record, on_write_error=logger.warning)
        self.leases = ClipLeases(db) if lease_s is None else ClipLeases(db, lease_s=lease_s)
        self._client_factory = client_factory
        self._platform_factory = platform_factory
        self._clock = clock
        self._now = now
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, store: WorkStore, db: Database, **options: Any) -> FalGenerator:
        """The generator the environment asks for (FAL_KEY, SHOTLINE_FAL_*, SHOTLINE_BUDGET_USD)."""
        if settings.fal_key is None:
            raise InputError("the fal generator needs FAL_KEY: set it, or SHOTLINE_GENERATOR=preview", field="FAL_KEY")
        return build_fal_generator(
            store=store,
            db=db,
            key=settings.fal_key,
            base_url=settings.fal_queue_url,
            rest_url=settings.fal_rest_url,
            cdn_url=settings.fal_cdn_url,
            api_url=settings.fal_api_url,
            model=settings.fal_model,
            budget_usd=settings.budget_usd,
            max_attempts=settings.fal_max_attempts,
            **options,
        )

    def __repr__(self) -> str:
        return f"FalGenerator(model={self.model!r}, store={str(self.store.root)!r})"

    # -- the Generator interface --------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, workdir: Path, log: LogFn) -> GenerationResult:
        workdir.mkdir(parents=True, exist_ok=True)
        with self.leases.hold(request.clip_key, on_wait=log) as lease:
            started = self._clock()  # the deadline runs from here, not from the wait for another worker
            with self._client_factory() as client:
                return self._drive(client, lease, request, workdir, log, started)

    def _drive(
        self,
        client: FalQueueClient,
        lease: Lease,
        request: GenerationRequest,
        workdir: Path,
        log: LogFn,
        started: float,
    ) -> GenerationResult:
        """Decide from the ledger, act, and decide again, until a video is in hand or a refusal is due."""
        found: GenerationResult | None = None
        while True:
            attempts = self.ledger.attempts(request.clip_key)
            open_attempts = [a for a in attempts if a.is_open]
            if found is None:
                done = next((a for a in reversed(attempts) if a.state == LedgerState.COMPLETED), None)
                if done is not None and not open_attempts:
                    reused = self._reuse(done, workdir, log)
                    if reused is not None:
                        return reused
                    open_attempts = [done]  # completed, but its video left the store: fetch it again
            elif not open_attempts:
                return found
            if open_attempts:
                entry = open_attempts[0]
                if entry.state == LedgerState.SUBMITTING:
                    self._recover(client, entry, request, log, started)
                    continue
                try:
                    result = self._follow(client, entry, request, workdir, log, started)
                except GenerationError as exc:
                    if found is None:
                        raise
                    log(f"fal {entry.request_id}: a duplicate did not finish here ({exc}); a later run records it")
                    return found
                found = found or result
                continue
            self._refuse_if_done_trying(attempts, request, log)
            self._submit(client, lease, request, log)

    # -- ledger decisions ---------------------------------------------------------------------------------

    def _reuse(self, entry: LedgerEntry, workdir: Path, log: LogFn) -> GenerationResult | None:
        stored = self.store.get(entry.video_sha256, ".mp4") if entry.video_sha256 else None
        if stored is None or entry.result is None:
            log(f"fal: request {entry.request_id} completed earlier but its video left the store; fetching it")
            return None
        dest = workdir / f"fal-{entry.request_id}.mp4"
        with atomic_path(dest) as tmp:
            shutil.copyfile(stored.path, tmp)
        log(f"fal: reusing request {entry.request_id} (completed {entry.finished_at}), no new submit")
        video = VideoFile.model_validate(entry.result["video"])
        facts = ClipFacts.model_validate(entry.decoded) if entry.decoded else None
        return self._result(entry, video, dest, entry.cost_usd or 0.0, entry.timings, facts)

    def _refuse_if_done_trying(self, attempts: list[LedgerEntry], request: GenerationRequest, log: LogFn) -> None:
        """Before a new submit: allowed for a first attempt, after a proven cancel, and after unbilled,
        retryable failures while fewer than `max_attempts` requests were tried."""
        if not attempts or attempts[-1].state in (LedgerState.CANCELLED, LedgerState.RESUBMIT_REQUESTED):
            return
        last = attempts[-1]
        reason = (last.error or "").removeprefix(f"{_where(request)}: ")
        since = max((a.attempt for a in attempts if a.state == LedgerState.RESUBMIT_REQUESTED), default=0)
        where = _where(request)
        if not (last.retryable and last.billed is False):
            billed = {True: "it was billed", None: "it may have been billed", False: "it was not billed"}[last.billed]
            raise FalRequestFailed(
                f"{where}: fal request {last.request_id or '(no id)'} (attempt {last.attempt}) failed "
                f"{last.finished_at}: {reason}. {billed.capitalize()}, and the same input would most likely "
                f"fail the same way, so it is not submitted again automatically; to pay for a new request "
                f"deliberately: shotline resubmit {request.storyboard_id}/{request.shot_id}",
                retryable=False,
                billed=last.billed is not False,  # possibly billed counts as billed
                request_id=last.request_id,
                error_type=last.error_type,
            )
        tried = sum(1 for a in attempts if a.state == LedgerState.FAILED and a.attempt > since)
        if tried >= self.max_attempts:
            raise FalRequestFailed(
                f"{where}: {tried} fal requests for this clip failed (none billed), the last one "
                f"{last.request_id or '(no id)'}: {reason}. SHOTLINE_FAL_MAX_ATTEMPTS={self.max_attempts} "
                f"reached for this clip; to pay for another request deliberately: shotline resubmit "
                f"{request.storyboard_id}/{request.shot_id} (or raise the limit)",
                retryable=False,
                billed=False,
                request_id=last.request_id,
                error_type=last.error_type,
            )
        log(
            f"fal: attempt {last.attempt} failed unbilled ({last.error_type or last.outcome}); submitting a new "
            f"request (attempt {tried + 1} of at most {self.max_attempts})"
        )
        self._sleep(min(30.0, 2.0 * tried))

    # -- submit -------------------------------------------------------------------------------------------

    def _submit(self, client: FalQueueClient, lease: Lease, request: GenerationRequest, log: LogFn) -> None:
        if client.model != self.model:
            raise ValueError(f"client model {client.model!r} is not the generator's model {self.model!r}")
        estimate = estimate_cost_usd(request.resolution, request.duration)
        label = f"{request.storyboard_id}/{request.shot_id}"
        if self.budget is not None:  # before the still goes to fal storage; the reservation below decides
            self.budget.check(estimate, request.clip_key, label=label)
        payload = self.build_payload(request, log)
        entry = self.ledger.begin_submit(
            lease,
            clip_key=request.clip_key,
            storyboard_id=request.storyboard_id,
            shot_id=request.shot_id,
            model=client.model,
            parameters=recorded_parameters(payload, request),
            input_sha256=input_sha256(payload.model_dump()),
            image_sha256=request.image_sha256,
            estimated_cost_usd=estimate,
            start_timeout_s=self.queue_timeout_s,
            label=label,
        )
        try:
            submitted = client.submit(payload, start_timeout_s=self.queue_timeout_s)
        except SubmitOutcomeUnknown as exc:
            self.ledger.mark_submit_unknown(entry, str(exc))
            log(f"fal: {_where(request)}: the submit's answer was lost ({exc}); looking it up in fal's listing")
            return
        except GenerationError as exc:
            # fal refused it, or it never left: nothing was queued
            self.ledger.mark_failed(
                entry,
                outcome="refused",
                error=str(exc),
                error_type=getattr(exc, "error_type", None),
                billed=False,
                # a refused key or a locked account is not the input's fault: once fixed, a new submit is right
                retryable=exc.retryable or isinstance(exc, FalAuthError),
            )
            if not exc.retryable:
                _add_context(exc, f"{_where(request)}: {exc}")
                raise
            return
        except BaseException as exc:
            self.ledger.mark_submit_unknown(entry, f"interrupted during submit ({type(exc).__name__})")
            raise
        handle = client.handle_for(submitted)
        self.ledger.mark_submitted(entry, handle)
        position = f", queue position {submitted.queue_position}" if submitted.queue_position is not None else ""
        log(
            f"fal: submitted request {handle.request_id} for {_where(request)} (attempt {entry.attempt}, "
            f"estimated ${estimate:.2f}{position})"
        )

    def _recover(
        self, client: FalQueueClient, entry: LedgerEntry, request: GenerationRequest, log: LogFn, started: float
    ) -> None:
        """A submit whose answer was lost: find it in fal's listing (by its canonical input) and adopt it, or,
        once it can no longer appear, record that it never reached the queue."""
        if self._platform_factory is None:
            raise SubmitOutcomeUnknown(
                f"{_where(request)}: the answer to fal submit attempt {entry.attempt} (sent {entry.sent_at}) was "
                "lost and no platform API is configured to look it up; it may have been queued and billed. Not "
                f"submitting again by itself: shotline resubmit {request.storyboard_id}/{request.shot_id}"
            )
        sent_at = datetime.fromisoformat(entry.sent_at or entry.created_at)
        window_ends = sent_at + timedelta(seconds=(entry.start_timeout_s or self.queue_timeout_s) + self.max_run_s)
        while True:
            with self._platform_factory() as platform:
                listed = platform.list_requests(client.model, start=sent_at - timedelta(minutes=2))
            matches = [
                item
                for item in listed
                if item.json_input is not None and input_sha256(item.json_input) == entry.input_sha256
            ]
            matches.sort(key=lambda item: item.sent_or_known_at or sent_at)
            if matches:
                first, *others = matches
                self.ledger.mark_submitted(entry, client.handle(first.request_id), origin="adopted")
                log(f"fal: found the lost submit in fal's listing: adopting request {first.request_id}")
                for item in others:
                    sent = item.sent_or_known_at.isoformat() if item.sent_or_known_at else None
                    self.ledger.record_duplicate(entry, client.handle(item.request_id), sent_at=sent)
                    log(f"fal: request {item.request_id} has the same input (a duplicate fal bills too): following it")
                return
            if self._now() >= window_ends:
                self.ledger.forget_unknown_submit(
                    entry,
                    f"the lost submit never appeared in fal's listing by {window_ends.isoformat()} (its start "
                    f"timeout plus the longest plausible run): it never reached fal's queue",
                )
                log(f"fal: the lost submit of attempt {entry.attempt} never reached fal; a new one is safe")
                return
            wait = min(self.lookup_interval_s, (window_ends - self._now()).total_seconds())
            if self._clock() + wait - started > self.deadline_s:
                raise SubmitOutcomeUnknown(
                    f"{_where(request)}: the answer to fal submit attempt {entry.attempt} (sent {entry.sent_at}) "
                    f"was lost and fal's listing does not show it yet; it may still be queued or running. Not "
                    f"submitting again before {window_ends.isoformat()}; the next run looks again"
                )
            log(f"fal: the lost submit is not in fal's listing yet; looking again in {wait:.0f} s")
            self._sleep(max(wait, 0.0))

    # -- follow a request to its end ----------------------------------------------------------------------

    def _follow(
        self,
        client: FalQueueClient,
        entry: LedgerEntry,
        request: GenerationRequest,
        workdir: Path,
        log: LogFn,
        started: float,
    ) -> GenerationResult | None:
        """Poll, fetch the final answer, classify it once and record it. Returns the result on success,
        None when the attempt ended otherwise (recorded: the caller decides what comes next)."""
        handle = entry.handle
        if handle is None:
            raise GenerationError(f"{_where(request)}: ledger attempt {entry.id} has no request URLs", retryable=False)
        rid = handle.request_id
        if entry.state == LedgerState.CANCEL_REQUESTED:
            log(f"fal {rid}: a cancel was requested earlier; following it until fal says how it ended")
        elif entry.state == LedgerState.SUBMITTED and entry.pid and entry.submitted_at and _is_resume(entry):
            log(f"fal: resuming request {rid} for {_where(request)} (no new submit)")
        seen = _Progress(self._clock())
        try:
            try:
                final = self._wait(client, entry, request, log, started, seen)
                answer = client.result(handle)
            except FalError as exc:
                if exc.billed and not exc.retryable:  # fal finished (and billed) it, but its answer is unusable
                    self.ledger.mark_failed(
                        entry,
                        outcome="unusable_result",
                        error=str(exc),
                        error_type=exc.error_type,
                        billed=True,
                        retryable=False,
                    )
                if exc.status_code != 404:
                    if not str(exc).startswith(_where(request)):  # the GET itself failed: say which clip
                        _add_context(exc, f"{_where(request)}: {exc}")
                    raise
                answer = None  # fal's queue no longer knows it (its stored result is kept 1 h)
            if answer is None or answer.outcome.status_code == 404:
                final = QueueStatus(status="COMPLETED")
                answer = self._answer_from_listing(client, entry, log)
        except Exception:
            raise  # failures are handled where they happen; only interrupts (BaseException) cancel
        except BaseException:
            if not seen.completed:
                self._cancel(client, entry, "the run was interrupted", log)
            raise
        if answer is None:
            self.ledger.mark_failed(
                entry,
                outcome="unknown_to_fal",
                error=f"fal no longer knows request {rid} (its stored result expired) and its request listing "
                "does not show it: whether it ran is unknown",
                error_type=None,
                billed=None,
                retryable=False,
            )
            return None
        if not answer.outcome.succeeded or answer.video is None:
            self._record_failure(entry, answer.outcome, final, log)
            return None
        return self._complete(client, entry, answer.video, answer.outcome, final, request, workdir, log, started, seen)

    def _answer_from_listing(self, client: FalQueueClient, entry: LedgerEntry, log: LogFn) -> ResultAnswer | None:
        """A request the queue forgot (results are kept about an hour): fal's platform listing still has its
        status code and output (the video URL stays valid for days)."""
        if self._platform_factory is None or entry.request_id is None:
            return None
        since = datetime.fromisoformat(entry.sent_at or entry.created_at) - timedelta(minutes=2)
        with self._platform_factory() as platform:
            items = platform.list_requests(client.model, start=since, request_id=entry.request_id)
        item = next((i for i in items if i.request_id == entry.request_id and i.status_code is not None), None)
        if item is None:
            return None
        log(f"fal {entry.request_id}: the queue no longer has it; fal's listing says HTTP {item.status_code}")
        outcome = classify_answer(int(item.status_code or 0), {}, item.json_output)
        video = None
        if outcome.succeeded:
            try:
                video = VideoResult.model_validate(item.json_output).video
            except ValidationError:
                return None
        return ResultAnswer(outcome=outcome, video=video)

    def _wait(
        self,
        client: FalQueueClient,
        entry: LedgerEntry,
        request: GenerationRequest,
        log: LogFn,
        started: float,
        seen: _Progress,
    ) -> QueueStatus | None:
        handle = entry.handle
        assert handle is not None
        rid = handle.request_id

        def on_status(status: QueueStatus) -> None:
            requeued = status.status == "IN_QUEUE" and seen.started_running
            seen.update(status, self._clock())
            if status.status == "IN_QUEUE":
                if status.queue_position != seen.position or seen.last_logged != "IN_QUEUE":
                    seen.position = status.queue_position
                    where = "back in queue (fal retries it on another runner)" if requeued else "in queue"
                    position = f", position {status.queue_position}" if status.queue_position is not None else ""
                    log(f"fal {rid}: {where}{position}")
            elif status.status != seen.last_logged:
                log(f"fal {rid}: {status.status.lower().replace('_', ' ')}")
            seen.last_logged = status.status

        remaining = self.deadline_s - (self._clock() - started)
        try:
            return client.wait(
                handle,
                timeout_s=max(remaining, 0.001),
                on_status=on_status,
                on_log=lambda line: log(f"fal {rid}: {line.message}"),
            )
        except FalDeadlineExceeded as exc:
            reason = f"the per-clip deadline of {self.deadline_s:g} s passed"
            if entry.state == LedgerState.CANCEL_REQUESTED:
                _add_context(exc, f"{_where(request)}: {reason} while waiting for cancelled request {rid} to end")
                exc.retryable = False
                raise
            if self._cancel(client, entry, reason, log):
                _add_context(
                    exc,
                    f"{_where(request)}: {reason}: {exc}; asked fal to cancel it. fal may still run it (and bill "
                    "it): the next run of this shot follows it and uses its video if it comes",
                )
            else:
                _add_context(exc, f"{_where(request)}: {reason}: {exc}; not cancelled, the next run resumes it")
            exc.retryable = False  # a retry now would only wait for the same request again
            raise
        except GenerationError as exc:  # the request itself may be fine: the ledger keeps it open
            _add_context(exc, f"{_where(request)}: {exc}")
            raise

    def _complete(
        self,
        client: FalQueueClient,
        entry: LedgerEntry,
        video: VideoFile,
        outcome: Outcome,
        final: QueueStatus,
        request: GenerationRequest,
        workdir: Path,
        log: LogFn,
        started: float,
        seen: _Progress,
    ) -> GenerationResult:
        rid = entry.request_id
        cost = self._billed_cost(entry, video, outcome, log)
        download_started = self._clock()
        dest = workdir / f"fal-{rid}.mp4"
        try:
            size, sha = client.download(video.url, dest, expected_size=video.file_size)
        except FalMediaError as exc:
            if not exc.retryable:  # paid for, but unusable: never paid for again by itself
                self.ledger.mark_failed(
                    entry,
                    outcome="media_unusable",
                    error=str(exc),
                    error_type=exc.error_type,
                    billed=True,
                    retryable=False,
                    cost_usd=cost,
                    billable_units=outcome.billable_units,
                )
            _add_context(exc, f"{_where(request)}: {exc}")
            raise
        done = self._clock()
        stored = self.store.put_file(dest, ".mp4", move=False)  # kept whatever the checks say: it was paid for
        facts = self._check(entry, video, dest, stored.sha256, size, cost, outcome, request)
        timings: dict[str, float | str] = {
            "submitted_at": entry.submitted_at or "",
            "queue_s": round(seen.queue_s(done), 3),
            "download_s": round(done - download_started, 3),
            "total_s": round(done - started, 3),
        }
        if final.inference_time is not None:
            timings["inference_s"] = final.inference_time
        if _is_resume(entry):  # lineage: GenerationTimings.resumed_at
            timings["resumed_at"] = self._now().isoformat()
        if entry.state == LedgerState.CANCEL_REQUESTED:
            timings["cancel_ignored"] = "fal ran it to the end despite the cancel: billed, and used"
        entry = self.ledger.mark_completed(
            entry,
            result={"video": video.model_dump(mode="json", exclude_none=True)},
            cost_usd=cost,
            billable_units=outcome.billable_units,
            timings=timings,
            video_sha256=stored.sha256,
            video_size=size,
            decoded=facts.model_dump(mode="json"),
        )
        inference = f", inference {final.inference_time:g} s" if final.inference_time is not None else ""
        log(
            f"fal {rid}: done, {facts.width}x{facts.height}, {facts.frames} frames at {facts.fps:g} fps "
            f"({facts.duration_s:.3f} s){inference}, ${cost:.2f} billed, sha256 {sha[:12]}"
        )
        return self._result(entry, video, dest, cost, timings, facts)

    def _billed_cost(self, entry: LedgerEntry, video: VideoFile, outcome: Outcome, log: LogFn) -> float:
        """The price table's cost of what fal returned, cross-checked with X-Fal-Billable-Units when sent."""
        resolution = str(entry.parameters.get("resolution", "720p"))
        requested = int(entry.parameters.get("duration", 0)) or None
        cost = clip_cost_usd(resolution, video.duration, requested_duration_s=requested)
        units = outcome.billable_units
        if units is None:
            return cost
        if units == 0:
            log(f"fal {entry.request_id}: fal reports 0 billable units for this result: $0.00")
            return 0.0
        expected = billed_seconds(requested, video.duration)
        if abs(units - expected) > 0.5:
            log(
                f"fal {entry.request_id}: fal reports {units:g} billable units, the price table bills {expected} s; "
                f"recording the price table's ${cost:.2f} and the units as fal sent them"
            )
        return cost

    def _record_failure(self, entry: LedgerEntry, outcome: Outcome, final: QueueStatus | None, log: LogFn) -> None:
        rid = entry.request_id
        if entry.state == LedgerState.COMPLETED:  # fetched again for a video that left the store
            raise FalMediaError(
                f"{entry.where}: fal request {rid} completed and was billed earlier, but its video left the work "
                f"store and fal no longer serves its result ({outcome.describe()}); to pay for a new one: "
                f"shotline resubmit {entry.storyboard_id}/{entry.shot_id}",
                retryable=False,
                billed=True,
                request_id=rid,
            )
        detail = outcome.detail or (final.error if final and final.error else "") or "no explanation given"
        message = f"{outcome.describe().split(': ', 1)[0]}: {detail}"
        if outcome.kind == OutcomeKind.CANCELLED and not outcome.billed:
            self.ledger.mark_cancelled(entry, reason=message, billable_units=outcome.billable_units)
        else:
            cost = None
            if outcome.billed:
                resolution = str(entry.parameters.get("resolution", "720p"))
                cost = estimate_cost_usd(resolution, int(entry.parameters.get("duration", 1)))
            self.ledger.mark_failed(
                entry,
                outcome=outcome.kind.value,
                error=message,
                error_type=outcome.error_type,
                billed=outcome.billed,
                retryable=outcome.retryable,
                billable_units=outcome.billable_units,
                cost_usd=cost,
            )
        log(f"fal {rid}: {outcome.describe()}")

    def _check(
        self,
        entry: LedgerEntry,
        video: VideoFile,
        path: Path,
        sha256: str,
        size: int,
        cost: float,
        outcome: Outcome,
        request: GenerationRequest,
    ) -> ClipFacts:
        """Decode the video and hold it to the request and to fal's own description of it. A video that
        fails is a paid failure: recorded (with its file kept) and never resubmitted by itself."""
        claimed = video.model_dump(include=_FAL_FILE_FIELDS, exclude_none=True)
        try:
            return check_clip(path, request, claims={"fal's output metadata": claimed})
        except MediaError as exc:
            entry = self.ledger.mark_failed(
                entry,
                outcome=REJECTED_ERROR_TYPE,
                error=str(exc),
                error_type=REJECTED_ERROR_TYPE,
                billed=True,
                retryable=False,
                cost_usd=cost,
                billable_units=outcome.billable_units,
                result={"video": video.model_dump(mode="json", exclude_none=True)},
                video_sha256=sha256,
                video_size=size,
            )
            raise FalMediaError(
                f"{exc}. fal request {entry.request_id} finished and was billed (${cost:.2f}); its video is kept "
                f"in the work store (sha256 {sha256[:12]}). Not submitted again automatically (the same input "
                f"would most likely come back the same way); to pay for a new one deliberately: shotline "
                f"resubmit {request.storyboard_id}/{request.shot_id}",
                retryable=False,
                billed=True,
                request_id=entry.request_id,
                error_type=REJECTED_ERROR_TYPE,
            ) from exc

    def _cancel(self, client: FalQueueClient, entry: LedgerEntry, reason: str, log: LogFn) -> bool:
        """Ask fal to cancel; True if fal accepted the request (the attempt is then `cancel_requested`: fal
        may still run and bill it, so it is followed before anything else is submitted)."""
        handle = entry.handle
        assert handle is not None
        try:
            accepted = client.cancel(handle, attempts=_CANCEL_ATTEMPTS)
        except Exception as exc:
            log(f"fal {handle.request_id}: cancel failed ({exc}); the next run resumes this request")
            return False
        if not accepted:
            log(f"fal {handle.request_id}: nothing to cancel (already finished); the next run fetches it")
            return False
        self.ledger.mark_cancel_requested(entry, reason)
        log(f"fal {handle.request_id}: cancel requested ({reason}); fal may still finish it")
        return True

    # -- payload ------------------------------------------------------------------------------------------

    def build_payload(self, request: GenerationRequest, log: LogFn) -> SubmitPayload:
        """The model input for `request`: its image URL as given, or the still uploaded to fal storage
        (a data URI only for tiny images, or when no storage is configured)."""
        image_url = request.image_url or self._still_url(request, log)
        try:
            return SubmitPayload(
                prompt=request.prompt,
                image_url=image_url,
                duration=request.duration,
                resolution=request.resolution,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or None
            raise InputError(
                f"not a valid fal input: {first['msg']}",
                storyboard=request.storyboard_id,
                shot=request.shot_id,
                field=field,
            ) from exc

    def _still_url(self, request: GenerationRequest, log: LogFn) -> str:
        data, mime = read_still(request)
        if self.uploads is None:
            return data_uri_of(data, mime)
        return self.uploads.url_for(data, request.image_sha256, mime, log)

    def _result(
        self,
        entry: LedgerEntry,
        video: VideoFile,
        path: Path,
        cost: float,
        timings: dict[str, Any],
        facts: ClipFacts | None = None,
    ) -> GenerationResult:
        """The result, sized from the decoded file when known (fal's numbers were cross-checked with it)."""
        return GenerationResult(
            video_path=path,
            width=facts.width if facts else video.width or 0,
            height=facts.height if facts else video.height or 0,
            fps=facts.fps if facts else video.fps or 0.0,
            duration_s=facts.duration_s if facts else video.duration or 0.0,
            generator=self.name,
            model=entry.model,
            request_id=entry.request_id,
            cost_usd=cost,
            timings=dict(timings),
            parameters=dict(entry.parameters),
            checked=facts,
        )


def build_fal_generator(
    *,
    store: WorkStore,
    db: Database,
    key: SecretStr,
    base_url: str,
    model: str,
    budget_usd: float | None,
    rest_url: str | None = None,
    cdn_url: str | None = None,
    api_url: str | None = None,
    max_attempts: int = DEFAULT_FAL_MAX_ATTEMPTS,
    deadline_s: float = DEFAULT_DEADLINE_S,
    queue_timeout_s: float | None = None,
    on_record: Callable[[LedgerEntry], None] | None = None,
    generator_options: dict[str, Any] | None = None,
    **client_options: Any,
) -> FalGenerator:
    """A FalGenerator with a fresh FalQueueClient per generate(), fal storage for stills, the platform API
    for lost submits, and the database's daily budget.

    `client_options` go to FalQueueClient (timeout, poll_interval, max_poll_interval, max_attempts...);
    `generator_options` to FalGenerator (max_run_s, lookup_interval_s, lease_s, ...)."""
    if not key.get_secret_value().strip():
        raise InputError("FAL_KEY is empty", field="FAL_KEY")
    media_origins = tuple(url for url in (cdn_url,) if url)

    def client_factory() -> FalQueueClient:
        return FalQueueClient(base_url, key, model=model, media_origins=media_origins, **client_options)

    uploads = None
    if rest_url and cdn_url:
        uploads = StillUploads(db, lambda: FalStorage(rest_url, cdn_url, key))
    platform_factory = (lambda: FalPlatform(api_url, key)) if api_url else None
    return FalGenerator(
        client_factory,
        store,
        db,
        model=model,
        budget=Budget(db, budget_usd),
        uploads=uploads,
        platform_factory=platform_factory,
        max_attempts=max_attempts,
        deadline_s=deadline_s,
        queue_timeout_s=queue_timeout_s,
        on_record=on_record,
        **(generator_options or {}),
    )


def _is_resume(entry: LedgerEntry) -> bool:
    """Whether the attempt was submitted by another process (this one is picking it up)."""
    return (entry.host, entry.pid) != (socket.gethostname(), os.getpid())


class _Progress:
    """What the polls have shown so far, for logging and timings."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.running_at: float | None = None
        self.position: int | None = None
        self.last_logged: str | None = None
        self.completed = False

    @property
    def started_running(self) -> bool:
        return self.running_at is not None

    def update(self, status: QueueStatus, now: float) -> None:
        if status.status != "IN_QUEUE" and self.running_at is None:
            self.running_at = now
        self.completed = self.completed or status.completed

    def queue_s(self, now: float) -> float:
        return (self.running_at if self.running_at is not None else now) - self.started


# -- payload ------------------------------------------------------------------------------------------------


def read_still(request: GenerationRequest) -> tuple[bytes, str]:
    """The stored still's bytes and MIME type, checked against the sha256 the clip key was made from."""
    try:
        data = request.image_path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read the image {request.image_path}: {exc}",
            storyboard=request.storyboard_id,
            shot=request.shot_id,
            field="image",
        ) from exc
    if sha256_bytes(data) != request.image_sha256:
        raise InputError(
            f"the image {request.image_path} changed since it was hashed (sha256 {request.image_sha256[:12]}...)",
            storyboard=request.storyboard_id,
            shot=request.shot_id,
            field="image",
        )
    mime = _image_mime(data)
    if mime is None:
        raise InputError(
            f"the image {request.image_path} is not a PNG, JPEG or WebP file",
            storyboard=request.storyboard_id,
            shot=request.shot_id,
            field="image",
        )
    return data, mime


def data_uri_of(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _image_mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def recorded_parameters(payload: SubmitPayload, request: GenerationRequest) -> dict[str, Any]:
    """The payload as the ledger and lineage keep it: the image by sha256, never its bytes or a URL's query
    (presigned URLs carry signatures)."""
    parameters: dict[str, Any] = payload.model_dump(exclude={"image_url"})
    parameters["image_sha256"] = request.image_sha256
    if payload.image_url.startswith("data:"):
        parameters["image_source"] = "data-uri"
    else:
        parts = urlsplit(payload.image_url)
        parameters["image_source"] = "url" if request.image_url else "fal-storage"
        parameters["image_url"] = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return parameters


def _where(request: GenerationRequest) -> str:
    return f"storyboard {request.storyboard_id!r}, shot {request.shot_id!r}"


def _add_context(exc: GenerationError, message: str) -> None:
    """Reword the error (same class, same flags, same cause) to say which clip it is about."""
    exc.args = (message,)
