"""The fal generator: each clip's paid requests decided from the ledger, billed only as fal bills.

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

Following an open attempt to its end is `shotline.fal.follow`'s job; the model input, `shotline.fal.payload`'s.
A deadline or an interrupt asks fal to cancel (PUT cancel): the attempt becomes `cancel_requested` and is
followed, now or by the next run, until fal proves the cancel (unbilled) or delivers the video anyway (billed:
kept and used).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shotline.budget import Budget
from shotline.config import DEFAULT_FAL_DEADLINE_S, DEFAULT_FAL_MAX_ATTEMPTS, DEFAULT_FAL_MODEL
from shotline.db.engine import Database
from shotline.db.leases import ClipLeases, Lease
from shotline.errors import GenerationError, InputError
from shotline.fal.client import FalQueueClient
from shotline.fal.errors import FalAuthError, FalRequestFailed, SubmitOutcomeUnknown, add_context
from shotline.fal.follow import GENERATOR_NAME, RequestFollower, clip_result
from shotline.fal.ledger import LedgerEntry, LedgerState, RequestLedger
from shotline.fal.models import SubmitPayload, VideoFile
from shotline.fal.payload import build_payload, recorded_parameters
from shotline.fal.platform import FalPlatform, input_sha256
from shotline.fal.pricing import estimate_cost_usd
from shotline.fal.storage import FalStorage
from shotline.fal.uploads import StillUploads
from shotline.fsutil import atomic_path
from shotline.generators.base import GenerationRequest, GenerationResult, LogFn
from shotline.media.clip_facts import ClipFacts
from shotline.store import WorkStore

# the longest a started Grok request plausibly runs (third parties: 1-4 min): with the start timeout, how long
# a submit whose answer was lost may stay invisible in fal's listing before it is taken as never queued
DEFAULT_MAX_RUN_S = 15 * 60.0
DEFAULT_LOOKUP_INTERVAL_S = 30.0

logger = logging.getLogger("shotline.fal")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FalGenerator:
    name = GENERATOR_NAME

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
        deadline_s: float = DEFAULT_FAL_DEADLINE_S,
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
        self.follower = RequestFollower(
            self.ledger, store, platform_factory=platform_factory, deadline_s=deadline_s, clock=clock, now=now
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
                    result = self.follower.follow(client, entry, request, workdir, log, started)
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
        return clip_result(entry, video, dest, entry.cost_usd or 0.0, entry.timings, facts)

    def _refuse_if_done_trying(self, attempts: list[LedgerEntry], request: GenerationRequest, log: LogFn) -> None:
        """Before a new submit: allowed for a first attempt, after a proven cancel, and after unbilled,
        retryable failures while fewer than `max_attempts` requests were tried."""
        if not attempts or attempts[-1].state in (LedgerState.CANCELLED, LedgerState.RESUBMIT_REQUESTED):
            return
        last = attempts[-1]
        reason = (last.error or "").removeprefix(f"{request.where}: ")
        since = max((a.attempt for a in attempts if a.state == LedgerState.RESUBMIT_REQUESTED), default=0)
        where = request.where
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
            log(f"fal: {request.where}: the submit's answer was lost ({exc}); looking it up in fal's listing")
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
                add_context(exc, f"{request.where}: {exc}")
                raise
            return
        except BaseException as exc:
            self.ledger.mark_submit_unknown(entry, f"interrupted during submit ({type(exc).__name__})")
            raise
        handle = client.handle_for(submitted)
        self.ledger.mark_submitted(entry, handle)
        position = f", queue position {submitted.queue_position}" if submitted.queue_position is not None else ""
        log(
            f"fal: submitted request {handle.request_id} for {request.where} (attempt {entry.attempt}, "
            f"estimated ${estimate:.2f}{position})"
        )

    def _recover(
        self, client: FalQueueClient, entry: LedgerEntry, request: GenerationRequest, log: LogFn, started: float
    ) -> None:
        """A submit whose answer was lost: find it in fal's listing (by its canonical input) and adopt it, or,
        once it can no longer appear, record that it never reached the queue."""
        if self._platform_factory is None:
            raise SubmitOutcomeUnknown(
                f"{request.where}: the answer to fal submit attempt {entry.attempt} (sent {entry.sent_at}) was "
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
                    f"{request.where}: the answer to fal submit attempt {entry.attempt} (sent {entry.sent_at}) "
                    f"was lost and fal's listing does not show it yet; it may still be queued or running. Not "
                    f"submitting again before {window_ends.isoformat()}; the next run looks again"
                )
            log(f"fal: the lost submit is not in fal's listing yet; looking again in {wait:.0f} s")
            self._sleep(max(wait, 0.0))

    def build_payload(self, request: GenerationRequest, log: LogFn) -> SubmitPayload:
        """The model input for `request`, its still uploaded to fal storage when one is configured."""
        return build_payload(request, self.uploads, log)


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
    deadline_s: float = DEFAULT_FAL_DEADLINE_S,
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
