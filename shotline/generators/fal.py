"""The fal generator: one paid Grok Imagine Video request per clip key, never two.

Every generate() runs under the clip's ledger lock and starts from the ledger record:

    none, failed unbilled, cancelled   reserve budget, record `submitting`, submit once, record `submitted`
    submitted                          resume polling that request (a crash or a retry never resubmits)
    completed, video in the store      return it, no HTTP at all
    submitting                         refuse: the outcome of that submit is unknown (it may be billed)
    failed and (maybe) billed          refuse, with fal's explanation and how to try again deliberately

then polls (forwarding queue position and de-duplicated logs), fetches the result, downloads the video into
`workdir`, keeps a copy in the store, and decodes it: a video that is not what was asked (duration, frame,
audio, or not what fal's own output metadata says) is recorded as a paid failure and never resubmitted by
itself. A per-clip deadline or an interrupt (KeyboardInterrupt, an orchestrator's BaseException) cancels
the request on fal before re-raising. The submit carries X-Fal-Request-Timeout, so fal itself drops a
request that has not started in time, even if this process is gone.

`on_record` sees every ledger record as soon as it is written (the pipeline turns them into Dagster
observations).
"""

from __future__ import annotations

import base64
import logging
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr, ValidationError

from shotline.budget import Budget, Reservation
from shotline.config import DEFAULT_FAL_MODEL, Settings
from shotline.errors import GenerationError, InputError, MediaError
from shotline.fal.client import FalQueueClient
from shotline.fal.errors import (
    CANCELLED_ERROR_TYPES,
    FalDeadlineExceeded,
    FalError,
    FalMediaError,
    FalRequestFailed,
    SubmitOutcomeUnknown,
    failure_is_retryable,
    failure_may_be_billed,
)
from shotline.fal.models import QueueStatus, RequestHandle, SubmitPayload, VideoFile, VideoResult
from shotline.fsutil import atomic_path
from shotline.generation import ClipFacts, check_clip
from shotline.generators.base import GenerationRequest, GenerationResult, LogFn
from shotline.hashing import sha256_bytes
from shotline.ledger import REJECTED_ERROR_TYPE, LedgerEntry, LedgerState, RequestLedger
from shotline.pricing import clip_cost_usd, estimate_cost_usd
from shotline.store import WorkStore

DEFAULT_DEADLINE_S = 30 * 60.0
_LARGE_DATA_URI_BYTES = 4 << 20
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
        *,
        model: str = DEFAULT_FAL_MODEL,
        budget: Budget | None = None,
        deadline_s: float = DEFAULT_DEADLINE_S,
        queue_timeout_s: float | None = None,
        on_record: Callable[[LedgerEntry], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        """`deadline_s`: most a clip may take, from this process taking it up to the video being checked
        (past it, the request is cancelled). `queue_timeout_s`: sent as X-Fal-Request-Timeout, how long fal
        may keep the request waiting to start (default: the deadline)."""
        if deadline_s <= 0 or (queue_timeout_s is not None and queue_timeout_s <= 0):
            raise ValueError("deadline_s and queue_timeout_s must be positive")
        self.model: str | None = model
        self.store = store
        self.budget = budget
        self.deadline_s = deadline_s
        self.queue_timeout_s = queue_timeout_s if queue_timeout_s is not None else deadline_s
        self.ledger = RequestLedger(store, now=now, on_write=on_record, on_write_error=logger.warning)
        self._client_factory = client_factory
        self._clock = clock
        self._now = now

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: WorkStore,
        *,
        deadline_s: float = DEFAULT_DEADLINE_S,
        **client_options: Any,
    ) -> FalGenerator:
        """The generator the environment asks for (FAL_KEY, SHOTLINE_FAL_*, SHOTLINE_BUDGET_USD)."""
        if settings.fal_key is None:
            raise InputError(
                "the fal generator needs FAL_KEY: set it, or SHOTLINE_GENERATOR=preview", field="FAL_KEY"
            )
        return build_fal_generator(
            store=store,
            key=settings.fal_key,
            base_url=settings.fal_queue_url,
            model=settings.fal_model,
            budget_usd=settings.budget_usd,
            deadline_s=deadline_s,
            **client_options,
        )

    def __repr__(self) -> str:
        return f"FalGenerator(model={self.model!r}, store={str(self.store.root)!r})"

    # -- the Generator interface --------------------------------------------------------------------------

    def generate(self, request: GenerationRequest, workdir: Path, log: LogFn) -> GenerationResult:
        workdir.mkdir(parents=True, exist_ok=True)
        with self.ledger.lock(request.clip_key, on_wait=log):
            started = self._clock()  # the deadline runs from here, not from the wait for another worker
            entry = self.ledger.get(request.clip_key)
            if entry is not None and entry.state == LedgerState.COMPLETED:
                reused = self._reuse(entry, workdir, log)
                if reused is not None:
                    return reused
            if entry is not None:
                self._refuse_if_unsafe(entry, request)
            if entry is not None and entry.state in (LedgerState.SUBMITTED, LedgerState.COMPLETED):
                log(f"fal: resuming request {entry.request_id} for {_where(request)} (no new submit)")
                with self._client_factory() as client:
                    return self._follow(client, entry, request, workdir, log, started, resumed=True)
            payload = build_payload(request, log)
            with self._client_factory() as client:
                entry = self._submit(client, payload, request, log)
                return self._follow(client, entry, request, workdir, log, started, resumed=False)

    # -- ledger decisions ---------------------------------------------------------------------------------

    def _reuse(self, entry: LedgerEntry, workdir: Path, log: LogFn) -> GenerationResult | None:
        stored = self.store.get(entry.video_sha256, ".mp4") if entry.video_sha256 else None
        if stored is None or entry.result is None:
            log(
                f"fal: request {entry.request_id} completed earlier but its video left the store; fetching it"
            )
            return None
        dest = workdir / f"fal-{entry.request_id}.mp4"
        with atomic_path(dest) as tmp:
            shutil.copyfile(stored.path, tmp)
        log(f"fal: reusing request {entry.request_id} (completed {entry.finished_at}), no new submit")
        video = VideoResult.model_validate(entry.result).video
        facts = ClipFacts.model_validate(entry.decoded) if entry.decoded else None
        return self._result(entry, video, dest, entry.cost_usd or 0.0, entry.timings, facts)

    def _refuse_if_unsafe(self, entry: LedgerEntry, request: GenerationRequest) -> None:
        path = self.ledger.path(entry.clip_key)
        if entry.state == LedgerState.SUBMITTING:
            raise SubmitOutcomeUnknown(
                f"{_where(request)}: a fal submit for clip {entry.clip_key} started at {entry.created_at} "
                f"(host {entry.host}, pid {entry.pid}) and its answer was never recorded"
                f"{' (' + entry.error + ')' if entry.error else ''}: the process died or the connection "
                f"dropped mid-submit, so fal may have accepted and billed it. Not submitting again "
                f"automatically. Check the requests list on fal's dashboard; to submit again deliberately, "
                f"delete the ledger record {path} (`shotline resubmit` does not exist yet)"
            )
        if entry.state == LedgerState.FAILED and entry.billed is not False:
            raise FalRequestFailed(
                f"{_where(request)}: fal request {entry.request_id} for this clip failed earlier "
                f"({entry.finished_at}): {entry.error}. It may have been billed, and the same input would "
                f"most likely fail the same way, so it is not submitted again automatically; to try again "
                f"deliberately, delete the ledger record {path}",
                retryable=False,
                billed=True,
                request_id=entry.request_id,
                error_type=entry.error_type,
            )

    # -- submit -------------------------------------------------------------------------------------------

    def _submit(
        self, client: FalQueueClient, payload: SubmitPayload, request: GenerationRequest, log: LogFn
    ) -> LedgerEntry:
        if client.model != self.model:
            raise ValueError(f"client model {client.model!r} is not the generator's model {self.model!r}")
        estimate = estimate_cost_usd(request.resolution, request.duration)
        reservation = None
        if self.budget is not None:
            reservation = self.budget.reserve(
                estimate, request.clip_key, label=f"{request.storyboard_id}/{request.shot_id}"
            )
        entry = self.ledger.begin_submit(
            clip_key=request.clip_key,
            storyboard_id=request.storyboard_id,
            shot_id=request.shot_id,
            model=client.model,
            parameters=recorded_parameters(payload, request),
            image_sha256=request.image_sha256,
            estimated_cost_usd=estimate,
            budget_reservation=reservation.to_dict() if reservation else None,
            start_timeout_s=self.queue_timeout_s,
        )
        try:
            submitted = client.submit(payload, start_timeout_s=self.queue_timeout_s)
        except SubmitOutcomeUnknown as exc:
            self.ledger.mark_submit_unknown(entry, str(exc))
            _add_context(
                exc,
                f"{_where(request)}: {exc}. The ledger keeps this clip as 'submitting' so no later run "
                f"submits it again; to submit again deliberately, delete "
                f"{self.ledger.path(request.clip_key)}",
            )
            raise
        except GenerationError as exc:
            # fal refused it, or it never left: nothing was queued, so a later run may submit again
            self.ledger.mark_failed(
                entry,
                error=str(exc),
                error_type=getattr(exc, "error_type", None),
                billed=False,
                retryable=exc.retryable,
            )
            self._release(reservation)
            _add_context(exc, f"{_where(request)}: {exc}")
            raise
        except BaseException as exc:
            self.ledger.mark_submit_unknown(entry, f"interrupted during submit ({type(exc).__name__})")
            raise
        handle = client.handle_for(submitted)
        entry = self.ledger.mark_submitted(entry, handle)
        position = (
            f", queue position {submitted.queue_position}" if submitted.queue_position is not None else ""
        )
        log(
            f"fal: submitted request {handle.request_id} for {_where(request)} "
            f"(estimated ${estimate:.2f}{position})"
        )
        return entry

    # -- poll, fetch, download ----------------------------------------------------------------------------

    def _follow(
        self,
        client: FalQueueClient,
        entry: LedgerEntry,
        request: GenerationRequest,
        workdir: Path,
        log: LogFn,
        started: float,
        *,
        resumed: bool,
    ) -> GenerationResult:
        handle = entry.handle
        if handle is None:
            raise GenerationError(
                f"{_where(request)}: ledger record {self.ledger.path(entry.clip_key)} has no request URLs",
                retryable=False,
            )
        rid = handle.request_id
        seen = _Progress(self._clock())

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

        try:
            remaining = self.deadline_s - (self._clock() - started)
            try:
                final = client.wait(
                    handle,
                    timeout_s=remaining,
                    on_status=on_status,
                    on_log=lambda line: log(f"fal {rid}: {line.message}"),
                )
            except FalDeadlineExceeded as exc:
                reason = f"the per-clip deadline of {self.deadline_s:g} s passed"
                billed = self._cancel(client, entry, seen, reason, log)
                if billed is None:
                    _add_context(exc, f"{_where(request)}: {reason}: {exc}; not cancelled, a rerun resumes it")
                else:
                    # cancelled while running, it may be billed: no automatic retry pays for it again
                    exc.retryable, exc.billed = not billed, billed
                    _add_context(exc, f"{_where(request)}: {reason}: {exc}; cancelled it on fal")
                raise
            except GenerationError as exc:  # the request itself may be fine: the ledger stays `submitted`
                _add_context(exc, f"{_where(request)}: {exc}")
                raise
            if final.failed:
                self._fail_from_status(client, entry, handle, final, request)
            video = self._fetch_result(client, entry, handle, request)
            download_started = self._clock()
            dest = workdir / f"fal-{rid}.mp4"
            try:
                size, sha = client.download(video.url, dest, expected_size=video.file_size)
            except FalMediaError as exc:
                if not exc.retryable:
                    self._mark_failed(entry, exc, billed=True, retryable=False)
                _add_context(exc, f"{_where(request)}: {exc}")
                raise
        except Exception:
            raise  # failures are handled above; only interrupts (BaseException) cancel
        except BaseException:
            if not seen.completed:
                self._cancel(client, entry, seen, "interrupted", log)
            raise
        done = self._clock()
        stored = self.store.put_file(dest, ".mp4", move=False)  # kept whatever the checks say: it was paid for
        parameters = entry.parameters
        cost = clip_cost_usd(
            str(parameters.get("resolution", request.resolution)),
            video.duration,
            requested_duration_s=int(parameters.get("duration", request.duration)),
        )
        facts = self._check(entry, video, dest, stored.sha256, size, cost, request)
        timings: dict[str, float | str] = {
            "submitted_at": entry.submitted_at or "",
            "queue_s": round(seen.queue_s(done), 3),
            "download_s": round(done - download_started, 3),
            "total_s": round(done - started, 3),
        }
        if final.inference_time is not None:
            timings["inference_s"] = final.inference_time
        if resumed:
            timings["resumed_at"] = self._now().isoformat()
        entry = self.ledger.mark_completed(
            entry,
            result={"video": video.model_dump(mode="json", exclude_none=True)},
            cost_usd=cost,
            timings=timings,
            video_sha256=stored.sha256,
            video_size=size,
            decoded=facts.model_dump(mode="json"),
        )
        self._settle(entry, Decimal(str(cost)))
        inference = f", inference {final.inference_time:g} s" if final.inference_time is not None else ""
        log(
            f"fal {rid}: done, {facts.width}x{facts.height}, {facts.frames} frames at {facts.fps:g} fps "
            f"({facts.duration_s:.3f} s){inference}, ${cost:.2f}, sha256 {sha[:12]}"
        )
        return self._result(entry, video, dest, cost, timings, facts)

    def _check(
        self,
        entry: LedgerEntry,
        video: VideoFile,
        path: Path,
        sha256: str,
        size: int,
        cost: float,
        request: GenerationRequest,
    ) -> ClipFacts:
        """Decode the video and hold it to the request and to fal's own description of it. A video that
        fails is a paid failure: recorded (with its file kept) and never resubmitted by itself."""
        claimed = video.model_dump(include=_FAL_FILE_FIELDS, exclude_none=True)
        try:
            return check_clip(path, request, claims={"fal's output metadata": claimed})
        except MediaError as exc:
            entry = self.ledger.mark_rejected(
                entry,
                reason=str(exc),
                result={"video": video.model_dump(mode="json", exclude_none=True)},
                cost_usd=cost,
                video_sha256=sha256,
                video_size=size,
            )
            self._settle(entry, Decimal(str(cost)))
            raise FalMediaError(
                f"{exc}. fal request {entry.request_id} finished and was billed (${cost:.2f}); its video is kept "
                f"at {self.store.object_path(sha256, '.mp4')}. Not submitted again automatically (the same input "
                f"would most likely come back the same way); to pay for a new one deliberately, delete the "
                f"ledger record {self.ledger.path(entry.clip_key)}",
                retryable=False,
                billed=True,
                request_id=entry.request_id,
                error_type=REJECTED_ERROR_TYPE,
            ) from exc

    def _fail_from_status(
        self,
        client: FalQueueClient,
        entry: LedgerEntry,
        handle: RequestHandle,
        final: QueueStatus,
        request: GenerationRequest,
    ) -> None:
        error_type = final.error_type
        explanation = final.error or ""
        try:  # the result endpoint often explains better (fal's `detail` list); best effort
            client.result_json(handle)
        except FalRequestFailed as exc:
            if exc.detail and exc.detail not in explanation:
                explanation = f"{explanation}: {exc.detail}" if explanation else exc.detail
            error_type = error_type or exc.error_type
        except GenerationError:
            pass
        retryable, billed = failure_is_retryable(error_type), failure_may_be_billed(error_type)
        message = (
            f"{_where(request)}: fal request {entry.request_id} failed"
            f"{' (' + error_type + ')' if error_type else ''}: {explanation or 'no explanation given'}"
        )
        error = FalRequestFailed(
            message,
            retryable=retryable,
            billed=billed,
            request_id=entry.request_id,
            error_type=error_type,
            detail=explanation,
        )
        if error_type in CANCELLED_ERROR_TYPES:
            entry = self.ledger.mark_cancelled(entry, reason=message, billed=False)
            self._release_entry(entry)
        else:
            self._mark_failed(entry, error, billed=billed, retryable=retryable)
        raise error

    def _fetch_result(
        self, client: FalQueueClient, entry: LedgerEntry, handle: RequestHandle, request: GenerationRequest
    ) -> VideoFile:
        try:
            return client.result(handle).video
        except FalRequestFailed as exc:
            self._mark_failed(entry, exc, billed=exc.billed, retryable=exc.retryable)
            _add_context(exc, f"{_where(request)}: {exc}")
            raise
        except FalError as exc:
            if exc.billed and not exc.retryable:  # an unusable answer for a finished request
                self._mark_failed(entry, exc, billed=True, retryable=False)
            _add_context(exc, f"{_where(request)}: {exc}")
            raise

    def _cancel(
        self, client: FalQueueClient, entry: LedgerEntry, seen: _Progress, reason: str, log: LogFn
    ) -> bool | None:
        """Cancel on fal; return whether the cancelled request may be billed, or None if it was not cancelled.

        Only a cancel fal accepted marks the ledger `cancelled`; otherwise the request may still finish, so
        the ledger stays `submitted` and a later run picks it up instead of paying again."""
        handle = entry.handle
        assert handle is not None
        try:
            accepted = client.cancel(handle, attempts=_CANCEL_ATTEMPTS)
        except Exception as exc:
            log(f"fal {handle.request_id}: cancel failed ({exc}); a later run will resume this request")
            return None
        if not accepted:
            log(f"fal {handle.request_id}: nothing to cancel (already finished); a later run will fetch it")
            return None
        # fal does not bill queue time; whether a cancelled running request is billed is not documented
        billed = seen.started_running
        entry = self.ledger.mark_cancelled(entry, reason=reason, billed=billed)
        if billed:
            self._settle(entry, None)
        else:
            self._release_entry(entry)
        log(f"fal {handle.request_id}: cancelled ({reason})")
        return billed

    # -- bookkeeping ----------------------------------------------------------------------------------------

    def _mark_failed(
        self, entry: LedgerEntry, exc: GenerationError, *, billed: bool, retryable: bool
    ) -> None:
        entry = self.ledger.mark_failed(
            entry,
            error=str(exc),
            error_type=getattr(exc, "error_type", None),
            billed=billed,
            retryable=retryable,
            cost_usd=entry.estimated_cost_usd if billed else 0.0,
        )
        if billed:
            self._settle(entry, None)
        else:
            self._release_entry(entry)

    def _settle(self, entry: LedgerEntry, actual: Decimal | None) -> None:
        if self.budget is not None and entry.budget_reservation:
            self.budget.settle(Reservation.from_dict(entry.budget_reservation), actual)

    def _release_entry(self, entry: LedgerEntry) -> None:
        if entry.budget_reservation:
            self._release(Reservation.from_dict(entry.budget_reservation))

    def _release(self, reservation: Reservation | None) -> None:
        if self.budget is not None and reservation is not None:
            self.budget.release(reservation)

    def _result(
        self,
        entry: LedgerEntry,
        video: VideoFile,
        path: Path,
        cost: float,
        timings: dict[str, float | str],
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
        )


def build_fal_generator(
    *,
    store: WorkStore,
    key: SecretStr,
    base_url: str,
    model: str,
    budget_usd: float | None,
    deadline_s: float = DEFAULT_DEADLINE_S,
    queue_timeout_s: float | None = None,
    on_record: Callable[[LedgerEntry], None] | None = None,
    **client_options: Any,
) -> FalGenerator:
    """A FalGenerator with a fresh FalQueueClient per generate() and the store's daily budget.

    `client_options` go to FalQueueClient (timeout, poll_interval, max_poll_interval, max_attempts...)."""
    if not key.get_secret_value().strip():
        raise InputError("FAL_KEY is empty", field="FAL_KEY")

    def client_factory() -> FalQueueClient:
        return FalQueueClient(base_url, key, model=model, **client_options)

    return FalGenerator(
        client_factory,
        store,
        model=model,
        budget=Budget(store, budget_usd),
        deadline_s=deadline_s,
        queue_timeout_s=queue_timeout_s,
        on_record=on_record,
    )


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


def build_payload(request: GenerationRequest, log: LogFn | None = None) -> SubmitPayload:
    """The model input for `request`: its image URL, or the image file as a data URI."""
    image_url = request.image_url or image_data_uri(request, log)
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


def image_data_uri(request: GenerationRequest, log: LogFn | None = None) -> str:
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
            f"the image {request.image_path} changed since it was hashed "
            f"(sha256 {request.image_sha256[:12]}...)",
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
    if log is not None and len(data) > _LARGE_DATA_URI_BYTES:
        log(f"fal: sending a {len(data) >> 20} MiB image inline as a data URI; a URL would be lighter")
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
        parameters["image_source"] = "url"
        parameters["image_url"] = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return parameters


def _where(request: GenerationRequest) -> str:
    return f"storyboard {request.storyboard_id!r}, shot {request.shot_id!r}"


def _add_context(exc: GenerationError, message: str) -> None:
    """Reword the error (same class, same flags, same cause) to say which clip it is about."""
    exc.args = (message,)
