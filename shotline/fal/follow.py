"""Following one submitted fal request to the end fal proves, and recording that end in the request ledger.

Polls until COMPLETED, fetches the final answer once (or, when the queue forgot it, fal's request listing),
classifies it once (`shotline.fal.outcomes`) and records it: a video that is downloaded, priced and decoded
against the request and fal's own description of it; a failure with whether fal billed it; a proven cancel.
A deadline or an interrupt asks fal to cancel: the attempt becomes `cancel_requested` and is followed again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from shotline.errors import GenerationError, MediaError
from shotline.fal.client import FalQueueClient
from shotline.fal.errors import FalDeadlineExceeded, FalError, FalMediaError, add_context
from shotline.fal.ledger import REJECTED_ERROR_TYPE, LedgerEntry, LedgerState, RequestLedger
from shotline.fal.models import QueueStatus, ResultAnswer, VideoFile
from shotline.fal.outcomes import Outcome, OutcomeKind
from shotline.fal.platform import FalPlatform
from shotline.fal.pricing import billed_seconds, clip_cost_usd, estimate_cost_usd
from shotline.generators.base import GenerationRequest, GenerationResult, LogFn
from shotline.generators.clip_check import check_clip
from shotline.media.clip_facts import ClipFacts
from shotline.store import WorkStore

GENERATOR_NAME = "fal"
_CANCEL_ATTEMPTS = 2  # on the way out (deadline, interrupt): best effort, and quick
# fal's output metadata that is cross-checked against the decoded file
_FAL_FILE_FIELDS = {"width", "height", "fps", "duration", "num_frames", "content_type", "file_size"}


class RequestFollower:
    """Follows the attempts of the ledger to their end, within the per-clip deadline."""

    def __init__(
        self,
        ledger: RequestLedger,
        store: WorkStore,
        *,
        platform_factory: Callable[[], FalPlatform] | None,
        deadline_s: float,
        clock: Callable[[], float],
        now: Callable[[], datetime],
    ) -> None:
        self.ledger = ledger
        self.store = store
        self.deadline_s = deadline_s
        self._platform_factory = platform_factory
        self._clock = clock
        self._now = now

    def follow(
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
            raise GenerationError(f"{request.where}: ledger attempt {entry.id} has no request URLs", retryable=False)
        rid = handle.request_id
        if entry.state == LedgerState.CANCEL_REQUESTED:
            log(f"fal {rid}: a cancel was requested earlier; following it until fal says how it ended")
        elif entry.state == LedgerState.SUBMITTED and entry.pid and entry.submitted_at and entry.submitted_elsewhere:
            log(f"fal: resuming request {rid} for {request.where} (no new submit)")
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
                    if not str(exc).startswith(request.where):  # the GET itself failed: say which clip
                        add_context(exc, f"{request.where}: {exc}")
                    raise
                answer = None  # fal's queue no longer knows it (its stored result is kept 1 h)
            if answer is None or answer.outcome.status_code == 404:
                final = QueueStatus(status="COMPLETED")
                answer = self._answer_from_listing(client, entry, log)
        except Exception:
            raise  # failures are handled where they happen; only interrupts (BaseException) cancel
        except BaseException:
            if not seen.completed:
                self.cancel(client, entry, "the run was interrupted", log)
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
        return item.answer()

    def _wait(
        self,
        client: FalQueueClient,
        entry: LedgerEntry,
        request: GenerationRequest,
        log: LogFn,
        started: float,
        seen: _Progress,
    ) -> QueueStatus:
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
                add_context(exc, f"{request.where}: {reason} while waiting for cancelled request {rid} to end")
                exc.retryable = False
                raise
            if self.cancel(client, entry, reason, log):
                add_context(
                    exc,
                    f"{request.where}: {reason}: {exc}; asked fal to cancel it. fal may still run it (and bill "
                    "it): the next run of this shot follows it and uses its video if it comes",
                )
            else:
                add_context(exc, f"{request.where}: {reason}: {exc}; not cancelled, the next run resumes it")
            exc.retryable = False  # a retry now would only wait for the same request again
            raise
        except GenerationError as exc:  # the request itself may be fine: the ledger keeps it open
            add_context(exc, f"{request.where}: {exc}")
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
            add_context(exc, f"{request.where}: {exc}")
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
        if entry.submitted_elsewhere:  # lineage: GenerationTimings.resumed_at
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
        return clip_result(entry, video, dest, cost, timings, facts)

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

    def cancel(self, client: FalQueueClient, entry: LedgerEntry, reason: str, log: LogFn) -> bool:
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


def clip_result(
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
        generator=GENERATOR_NAME,
        model=entry.model,
        request_id=entry.request_id,
        cost_usd=cost,
        timings=dict(timings),
        parameters=dict(entry.parameters),
        checked=facts,
    )
