"""A fake fal.ai on loopback that behaves as fal's documentation says (https://fal.ai/docs/model-endpoints/queue).

Four origins, each its own port: the queue (`url`: submit, status, SSE status stream, result, cancel), the CDN
(`cdn_url`: generated mp4s, uploads), the storage REST API (`rest_url`: CDN token, upload initiation) and the
platform API (`api_url`: requests by endpoint). As on fal, every request ends COMPLETED (there is no FAILED
status) and a failed one answers every result GET with the same stored error; a cancel removes a queued
request but only asks a running one to stop (`cancel_mode`); what fal would bill is recorded when a request
ends (`bills`).

Progress is counted in status polls, so tests do not depend on timing; a request nobody polls still finishes
after `unpolled_finish_s` (and `generation_s` gives a fixed latency in seconds instead). Every HTTP request is
recorded (`requests`, `seen()`); `fail_next` answers the next N requests of a route instead of the protocol.

The `fake_fal` fixture (function-scoped) is registered by tests/conftest.py as a pytest plugin.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import math
import mimetypes
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import imageio_ffmpeg
import pytest
from PIL import Image

from shotline.generators.base import output_frame

MODEL = "xai/grok-imagine-video/v1.5/image-to-video"
TEST_KEY = "fake-key-id:fake-key-secret-7d3e9a"
FPS = 24
RESOLUTIONS = ("480p", "720p")
# the model page's prices (reference §10, §15.4)
PRICE_PER_SECOND_USD = {"480p": Decimal("0.08"), "720p": Decimal("0.14")}
PRICE_PER_IMAGE_USD = Decimal("0.01")
LOCKED_DETAIL = "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."
UNKNOWN_KEY_DETAIL = "No user found for Key ID and Secret"
CONTENT_POLICY_MSG = (
    "The content could not be processed because it was flagged by the partner's content checker "
    "(xAI moderation: depiction of a real person)."
)
CANCELLED_DETAIL = "Request cancelled by the client."
TIMEOUT_DETAIL = "Request timed out"
MIN_START_TIMEOUT_S = 0.1
DEFAULT_LOG_LINES = (
    "Loading model weights...",
    "Encoding input image...",
    "Generating frames...",
    "Generating audio...",
    "Done.",
)

Origin = Literal["queue", "cdn", "rest", "api"]
ORIGINS: tuple[Origin, ...] = ("queue", "cdn", "rest", "api")
Route = Literal[
    "submit",
    "status",
    "stream",
    "result",
    "cancel",
    "media",
    "asset",
    "token",
    "upload",
    "initiate",
    "upload_put",
    "file",
    "listing",
    "unknown",
]
FaultAction = Literal["respond", "drop", "accept_and_drop", "hang"]
# how a request ended, for its bill
Outcome = Literal[
    "success",  # 200 (also an ignored cancel that ran to the end)
    "cancelled_in_queue",  # removed from the queue by a cancel: 499, never ran
    "cancelled_running",  # a running request whose app handled the cancel: 499
    "unprocessable",  # 422 at result time (validation, image download/load, content policy)
    "model_error",  # model_error(): the app's stored error
    "request_error",  # fail_requests(): runner/infrastructure error
    "start_timeout",  # never started within X-Fal-Request-Timeout: 504, never ran
]
NEVER_RAN: frozenset[Outcome] = frozenset({"cancelled_in_queue", "start_timeout"})
Phase = Literal["queued", "running", "done"]


def nginx_error(code: int) -> dict[str, Any]:
    """The kwargs of `fail_next` for an ingress error page: nginx HTML, no x-fal-request-id."""
    reason = {
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Temporarily Unavailable",
        504: "Gateway Time-out",
    }.get(code, "Error")
    html = (
        f"<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return {"status": code, "body": html, "headers": {"Content-Type": "text/html"}}


@dataclass
class SeenRequest:
    """One request as the server saw it (the Authorization header is left out)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    route: Route
    request_id: str | None = None
    origin: Origin = "queue"

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Fault:
    route: Route
    status: int = 500
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    action: FaultAction = "respond"
    remaining: int = 1


@dataclass
class Failure:
    """How a request ends when it does not succeed: its stored result answer and its status body's error."""

    http_status: int
    body: dict[str, Any]
    error: str
    error_type: str
    outcome: Outcome = "request_error"
    headers: dict[str, str] = field(default_factory=dict)
    # whether the COMPLETED status body carries `error`/`error_type`
    status_fields: bool = True


@dataclass(frozen=True)
class Bill:
    """What fal would bill for one request, decided when it reached its terminal state."""

    request_id: str
    billed: bool
    units: float
    cost_usd: float
    outcome: Outcome


class Upload(NamedTuple):
    access_url: str
    sha256: str
    content_type: str
    via: Literal["token", "initiate"]


@dataclass
class FakeJob:
    request_id: str
    model: str
    payload: dict[str, Any]
    queue_polls: int
    progress_polls: int
    # a server-side retry: after this many IN_PROGRESS polls, back to IN_QUEUE for `requeue_polls` polls
    requeue_after: int | None = None
    requeue_polls: int = 0
    # a timeline in seconds instead of polls (FakeFal.generation_s)
    generation_s: float | None = None
    submitted_at: float = 0.0  # time.monotonic() at submit
    sent_at: float = 0.0  # time.time() at submit
    start_timeout: float | None = None  # seconds, from the submit's X-Fal-Request-Timeout
    polls: int = 0  # status polls (and stream events) answered
    status_requests: int = 0  # status/stream requests that arrived, those answered by a fault included
    steps: int = 0  # position on the poll-counted timeline
    run_from: float | None = None  # monotonic time from which it could run; None while no runner was free
    started_at: float | None = None  # time.time() it started running
    ended_at: float | None = None  # time.time() it reached its terminal state
    completed: bool = False
    cancel_requested: bool = False  # a PUT cancel was answered 202
    cancelled: bool = False  # it ended cancelled (removed from the queue, or the app handled the cancel)
    # set at submit for a request that will fail when it runs; after completion, how it ended (None: success)
    failure: Failure | None = None
    frame: tuple[int, int] | None = None

    @property
    def app_id(self) -> str:
        return "/".join(self.model.split("/")[:2])


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes | None = None  # raw bytes instead of the JSON body
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        return self.data if self.data is not None else json.dumps(self.body).encode()


@dataclass
class _Call:
    origin: Origin
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names, Authorization included
    body: bytes
    route: Route
    prefix: str
    request_id: str | None


@dataclass
class _Stream:
    job: FakeJob
    with_logs: bool


@dataclass
class _StoredFile:
    name: str
    data: bytes
    content_type: str
    expired: bool = False


@dataclass
class _PendingUpload:
    name: str
    signature: str
    content_type: str


@dataclass
class _ListingQuery:
    endpoint_ids: list[str]
    start: float
    end: float | None  # None: now, once the requests are brought up to date
    status: str | None
    request_id: str | None
    limit: int
    offset: int
    sort_by: str
    payloads: bool


class FakeFal:
    """The servers and their knobs. Change knobs before the requests they should affect."""

    def __init__(self, *, key: str = TEST_KEY, model: str = MODEL) -> None:
        self.key = key
        self.model = model
        # timeline, in status polls per request
        self.queue_polls = 2
        self.progress_polls = 3
        # or a timeline in seconds: when set, a request runs (IN_PROGRESS) for this long after its submit,
        # however often it is polled, then completes; for benchmarks that need a fixed generation latency
        self.generation_s: float | None = None
        # a request nobody polls (no status request at all, faults included) still runs on fal: it finishes
        # this long after its submit
        self.unpolled_finish_s = 1.0
        self.log_lines: tuple[str, ...] = DEFAULT_LOG_LINES
        self.log_window = 2
        self.inference_time = 3.42
        # fal's server-side retry on a new runner: IN_PROGRESS falls back to IN_QUEUE (see requeue())
        self.requeue_after: int | None = None
        self.requeue_polls = 0
        # submit answers
        self.url_form: Literal["app", "full"] = "app"
        self.response_suffix = False
        self.advertise_base: str | None = None
        self.omit_urls = False
        self.locked: str | None = None
        self.validate: Literal["submit", "result"] = "submit"
        # which submit headers set the start timeout (the newer X-Fal-Request-Start-Timeout is UNVERIFIED)
        self.start_timeout_headers: tuple[str, ...] = ("X-Fal-Request-Timeout",)
        # answer to a status/result/stream GET of an unknown request id (the body is UNVERIFIED)
        self.not_found_body: Literal["detail", "status"] = "detail"
        # outcomes
        self.failure: Failure | None = None
        self.include_file_size = False
        self.media_origin: Literal["cdn", "queue"] = "cdn"
        # a model that gets it wrong: frames more (or fewer) than asked, no audio track, and output metadata
        # that says something else than the file (merged into the result's `video`)
        self.frames_offset = 0
        self.render_audio = True
        self.video_overrides: dict[str, Any] = {}
        # cancel and billing (reference §15.1, §15.4)
        self.cancel_mode: Literal["ignore", "handle"] = "ignore"
        self.bill_handled_cancel = False
        self.bill_validation_errors = True
        self.billable_units_header = False
        # storage
        self.token_fails = 0
        self.token_ttl_s = 3600.0
        self.uploads: list[Upload] = []
        # platform API: whether queued and running requests are listed (UNVERIFIED)
        self.list_unfinished = False

        self.requests: list[SeenRequest] = []
        self.jobs: dict[str, FakeJob] = {}
        self._forgotten: set[str] = set()
        self._unlisted: set[str] = set()
        self._no_free_runner = False
        self._failure_left: int | None = None
        self._bills: dict[str, Bill] = {}
        self._faults: list[Fault] = []
        self._assets: dict[str, tuple[bytes, str]] = {}
        self._tokens: dict[str, float] = {}
        self._files: dict[str, _StoredFile] = {}
        self._pending_uploads: dict[str, _PendingUpload] = {}
        self._media: dict[tuple[int, int, int, bool], Path] = {}
        self._lock = threading.RLock()
        self._media_lock = threading.Lock()
        self._release = threading.Event()
        self._tmp = Path(tempfile.mkdtemp(prefix="fake-fal-"))
        self._servers: dict[Origin, ThreadingHTTPServer] = {}
        self._threads: list[threading.Thread] = []

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> FakeFal:
        for origin in ORIGINS:
            server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            server.daemon_threads = True
            server.fake = self  # type: ignore[attr-defined]
            server.origin = origin  # type: ignore[attr-defined]
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._servers[origin] = server
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._release.set()
        # each shutdown waits for its serve_forever poll: wait for all four at once
        stoppers = [threading.Thread(target=server.shutdown, daemon=True) for server in self._servers.values()]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout=5)
        for server in self._servers.values():
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _origin_url(self, origin: Origin) -> str:
        server = self._servers.get(origin)
        assert server is not None, "server not started"
        return f"http://127.0.0.1:{server.server_address[1]}"

    @property
    def url(self) -> str:
        """The queue origin (queue.fal.run)."""
        return self._origin_url("queue")

    @property
    def cdn_url(self) -> str:
        """The CDN origin (v3.fal.media): generated media and uploads."""
        return self._origin_url("cdn")

    @property
    def rest_url(self) -> str:
        """The storage REST origin (rest.fal.ai)."""
        return self._origin_url("rest")

    @property
    def api_url(self) -> str:
        """The platform API origin (api.fal.ai)."""
        return self._origin_url("api")

    # -- what tests look at (brought up to date first: fal does not wait to be looked at) ----------------

    def seen(self, route: Route) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.route == route]

    @property
    def submits(self) -> list[SeenRequest]:
        return self.seen("submit")

    @property
    def cancels(self) -> list[SeenRequest]:
        return self.seen("cancel")

    def job(self, request_id: str) -> FakeJob:
        with self._lock:
            job = self.jobs[request_id]
            self._settle(job)
            return job

    @property
    def bills(self) -> dict[str, Bill]:
        """request_id -> what fal would bill, for every request that reached its terminal state."""
        with self._lock:
            self._settle_all()
            return dict(self._bills)

    @property
    def billed_request_ids(self) -> list[str]:
        """The billed requests, in submit order."""
        bills = self.bills
        with self._lock:
            return [rid for rid in self.jobs if rid in bills and bills[rid].billed]

    @property
    def billed_total_usd(self) -> float:
        total = sum((Decimal(str(b.cost_usd)) for b in self.bills.values() if b.billed), Decimal(0))
        return float(total.quantize(Decimal("0.01")))

    # -- knobs ------------------------------------------------------------------------------------------

    @property
    def no_free_runner(self) -> bool:
        """While true, requests that have not started stay IN_QUEUE (position 0) until their start timeout."""
        return self._no_free_runner

    @no_free_runner.setter
    def no_free_runner(self, value: bool) -> None:
        with self._lock:
            if self._no_free_runner and not value:
                self._settle_all()  # start timeouts that passed while no runner was free fire first
                now, wall = time.monotonic(), time.time()
                for job in self.jobs.values():
                    if not job.completed and job.started_at is None:
                        job.run_from = now
                        if job.generation_s is not None:
                            job.started_at = wall
            self._no_free_runner = value

    def fail_next(
        self,
        route: Route,
        *,
        status: int = 500,
        body: bytes | str | dict[str, Any] = b"",
        headers: dict[str, str] | None = None,
        action: FaultAction = "respond",
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests of `route` with this instead of the protocol.

        Actions: respond (status/body/headers), drop (read the request, close without answering),
        accept_and_drop (do what the request asks, e.g. queue a submit or cancel, then close without
        answering), hang (never answer until the server stops)."""
        headers = dict(headers or {})
        if isinstance(body, dict):
            raw = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            raw = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._faults.append(Fault(route, status, raw, headers, action, times))

    def fail_requests(
        self,
        http_status: int = 503,
        error_type: str = "runner_unavailable",
        message: str = "Runner unavailable",
        *,
        times: int | None = None,
    ) -> None:
        """Requests submitted from now on (the next `times`; None: all) fail when they run with a runner
        error: fal's flat `{"detail", "error_type"}` + X-Fal-Error-Type; the status carries error/error_type."""
        failure = Failure(
            http_status,
            {"detail": message, "error_type": error_type},
            message,
            error_type,
            outcome="request_error",
            headers={"X-Fal-Error-Type": error_type},
        )
        self._plan_failure(failure, times)

    def model_error(
        self,
        *,
        retryable: bool | None = True,
        error_type: str = "internal_server_error",
        status: int = 500,
        msg: str = "Internal server error",
        times: int | None = None,
        status_error_fields: bool = False,
    ) -> None:
        """Requests submitted from now on (the next `times`; None: all) run, reach COMPLETED, and store the
        model's error (reference §15.2), answered the same on every result GET. Never billed."""
        detail = [{"loc": ["body"], "msg": msg, "type": error_type, "url": f"https://docs.fal.ai/errors#{error_type}"}]
        headers = {"x-fal-billable-units": "0"}
        if retryable is not None:
            headers["X-Fal-Retryable"] = "true" if retryable else "false"
        failure = Failure(
            status,
            {"detail": detail},
            msg,
            error_type,
            outcome="model_error",
            headers=headers,
            status_fields=status_error_fields,
        )
        self._plan_failure(failure, times)

    def content_policy(self, *, times: int | None = None) -> None:
        """Requests submitted from now on (the next `times`; None: all) are refused by the partner's
        moderation (422 list detail)."""
        detail = [
            {
                "loc": ["body", "image_url"],
                "msg": CONTENT_POLICY_MSG,
                "type": "content_policy_violation",
                "url": "https://docs.fal.ai/errors#content_policy_violation",
            }
        ]
        failure = Failure(422, {"detail": detail}, CONTENT_POLICY_MSG, "content_policy_violation", "unprocessable")
        self._plan_failure(failure, times)

    def _plan_failure(self, failure: Failure, times: int | None) -> None:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        with self._lock:
            self.failure = failure
            self._failure_left = times

    def requeue(self, *, after_progress_polls: int, queue_polls: int) -> None:
        """Requests submitted from now on go back IN_QUEUE (fal retrying them on a new runner) after
        `after_progress_polls` IN_PROGRESS polls, for `queue_polls` polls, then run again."""
        self.requeue_after = after_progress_polls
        self.requeue_polls = queue_polls

    def serve_asset(self, name: str, data: bytes, content_type: str) -> str:
        """Serve `data` at a public URL (an image for `image_url`, say); returns the URL."""
        with self._lock:
            self._assets[name] = (data, content_type)
        return f"{self.url}/assets/{name}"

    def expire_results(self, *, from_listing_too: bool = False) -> None:
        """The queue forgets every request that has ended (fal keeps a stored result about an hour): status,
        result and cancel answer 404 from now on, while the platform listing still shows them, with their
        payloads (kept 30 days), unless `from_listing_too` (that long has passed as well)."""
        with self._lock:
            self._settle_all()
            ended = {rid for rid, job in self.jobs.items() if job.ended_at is not None}
            self._forgotten.update(ended)
            if from_listing_too:
                self._unlisted.update(ended)

    def expire_uploads(self) -> None:
        """Every file uploaded so far answers 404 from now on (its lifecycle ran out)."""
        with self._lock:
            for stored in self._files.values():
                stored.expired = True

    # -- dispatch ---------------------------------------------------------------------------------------

    def _route(self, origin: Origin, method: str, path: str) -> tuple[Route, str, str | None]:
        """(route, the model or app prefix, request or file id) for a request path; trailing slashes ignored."""
        if origin == "queue":
            return _queue_route(method, path)
        parts = [p for p in path.split("/") if p]
        if origin == "cdn":
            if method == "POST" and parts == ["files", "upload"]:
                return "upload", "", None
            if method == "PUT" and len(parts) == 2 and parts[0] == "upload":
                return "upload_put", "", parts[1]
            if method == "GET" and len(parts) >= 3 and parts[0] == "files":
                with self._lock:
                    uploaded = parts[1] in self._files
                return ("file" if uploaded else "media"), "", parts[1]
        elif origin == "rest" and method == "POST":
            if parts == ["storage", "auth", "token"]:
                return "token", "", None
            if parts == ["storage", "upload", "initiate"]:
                return "initiate", "", None
        elif origin == "api" and method == "GET" and parts == ["v1", "models", "requests", "by-endpoint"]:
            return "listing", "", None
        return "unknown", "", None

    def _record(self, call: _Call) -> None:
        headers = {k: v for k, v in call.headers.items() if k != "authorization"}
        seen = SeenRequest(
            call.method, call.path, call.query, headers, call.body, call.route, call.request_id, call.origin
        )
        with self._lock:
            self.requests.append(seen)
            job = self.jobs.get(call.request_id or "")
            if job is not None and call.route in ("status", "stream"):
                job.status_requests += 1

    def _take_fault(self, route: Route) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.route == route and fault.remaining > 0:
                    fault.remaining -= 1
                    return fault
        return None

    def _answer(self, call: _Call) -> Answer | _Stream:
        route = call.route
        if route == "unknown":
            return Answer(404, {"detail": f"Path {call.path} not found"})
        if route in ("media", "asset", "file"):
            return self._serve(call)
        if route == "upload_put":
            return self._signed_put(call)
        if route == "upload":
            return self._bearer_upload(call)
        if route == "token" and self._take_token_failure():
            return Answer(500, {"detail": "Internal Server Error"})
        if call.headers.get("authorization") != f"Key {self.key}":
            return Answer(401, {"detail": UNKNOWN_KEY_DETAIL})
        if route == "submit":
            return self._submit(call)
        if route == "token":
            return self._token()
        if route == "initiate":
            return self._initiate(call)
        if route == "listing":
            return self._listing(call.query)
        return self._request_route(call)

    def _request_route(self, call: _Call) -> Answer | _Stream:
        with self._lock:
            job = self.jobs.get(call.request_id or "")
            if job is not None and job.request_id in self._forgotten:
                job = None
        if job is not None and call.prefix not in (job.app_id, job.model):
            job = None  # fal answers 404 for a path that is neither owner/app nor the full model id
        if call.route == "cancel":
            return self._cancel(job)
        if job is None:
            if self.not_found_body == "status":
                return Answer(404, {"status": "NOT_FOUND"})
            return Answer(404, {"detail": f"Request {call.request_id} not found"})
        with_logs = call.query.get("logs", ["0"])[-1].lower() in ("1", "true")
        if call.route == "status":
            return self._status(job, with_logs)
        if call.route == "stream":
            return _Stream(job, with_logs)
        return self._result(job)

    # -- submit -----------------------------------------------------------------------------------------

    def _submit(self, call: _Call) -> Answer:
        if self.locked:
            return Answer(403, {"detail": self.locked})
        start_timeout, bad_header = self._start_timeout(call.headers)
        if bad_header is not None:
            body = {"detail": bad_header, "error_type": "bad_request"}
            return Answer(400, body, {"X-Fal-Error-Type": "bad_request"})
        max_waiting, problems = _optional_int(call.query, "fal_max_queue_length")
        if problems:
            return Answer(422, {"detail": problems})
        try:
            payload = json.loads(call.body or b"null")
        except ValueError:
            payload = None
        problems = validate_input(payload)
        if problems and self.validate == "submit":
            return Answer(422, {"detail": problems})
        if max_waiting is not None and self._waiting(call.prefix) > max_waiting:
            return Answer(429, {"detail": f"The queue has more than {max_waiting} requests waiting"})
        job = self._new_job(call.prefix, payload if isinstance(payload, dict) else {}, start_timeout)
        if problems:
            job.failure = Failure(
                422, {"detail": problems}, "Unprocessable input", problems[0]["type"], "unprocessable"
            )
        else:
            job.failure = self._take_planned_failure() or self._load_image(job)
        with self._lock:
            self.jobs[job.request_id] = job
            position = 0 if self.no_free_runner else job.queue_polls
        answer: dict[str, Any] = {"request_id": job.request_id, "status": "IN_QUEUE", "queue_position": position}
        if not self.omit_urls:
            answer.update(self._urls(job))
        return Answer(200, answer, {"x-fal-request-id": job.request_id})

    def _new_job(self, model: str, payload: dict[str, Any], start_timeout: float | None) -> FakeJob:
        held = self.no_free_runner
        now = time.monotonic()
        job = FakeJob(
            request_id=str(uuid.uuid4()),
            model=model,
            payload=payload,
            queue_polls=self.queue_polls,
            progress_polls=self.progress_polls,
            requeue_after=self.requeue_after,
            requeue_polls=self.requeue_polls,
            generation_s=self.generation_s,
            submitted_at=now,
            sent_at=time.time(),
            start_timeout=start_timeout,
            run_from=None if held else now,
        )
        if job.generation_s is not None and not held:
            job.started_at = job.sent_at
        return job

    def _start_timeout(self, headers: dict[str, str]) -> tuple[float | None, str | None]:
        """(seconds, None) or (None, why the header is refused); the first header of the knob's list wins."""
        for name in self.start_timeout_headers:
            raw = headers.get(name.lower())
            if raw is None:
                continue
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
            if math.isnan(value) or value <= MIN_START_TIMEOUT_S:
                return None, f"Invalid {name} header {raw!r}: must be a number of seconds > {MIN_START_TIMEOUT_S}"
            return value, None
        return None, None

    def _waiting(self, model: str) -> int:
        with self._lock:
            jobs = [j for j in self.jobs.values() if j.model == model]
            for job in jobs:
                self._settle(job)
            return sum(1 for j in jobs if not j.completed and self._is_queued(j))

    def _take_planned_failure(self) -> Failure | None:
        with self._lock:
            failure = self.failure
            if failure is not None and self._failure_left is not None:
                self._failure_left -= 1
                if self._failure_left == 0:
                    self.failure, self._failure_left = None, None
            return failure

    def _load_image(self, job: FakeJob) -> Failure | None:
        image_url = str(job.payload["image_url"])
        try:
            if image_url.startswith("data:"):
                header, _, encoded = image_url.partition(",")
                if ";base64" not in header:
                    raise ValueError("not base64")
                data = base64.b64decode(encoded, validate=True)
            else:
                response = httpx.get(image_url, timeout=10, follow_redirects=True)
                if response.status_code != 200:
                    return _image_failure(
                        "file_download_error",
                        f"Failed to download the file: HTTP {response.status_code} for {image_url}",
                    )
                data = response.content
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except httpx.HTTPError as exc:
            return _image_failure("file_download_error", f"Failed to download the file: {exc}")
        except (ValueError, binascii.Error, OSError) as exc:
            return _image_failure("image_load_error", f"Failed to load the image: {exc}")
        job.frame = output_frame(str(job.payload.get("resolution", "720p")), width, height)
        return None

    def _urls(self, job: FakeJob) -> dict[str, str]:
        base = (self.advertise_base or self.url).rstrip("/")
        prefix = job.model if self.url_form == "full" else job.app_id
        root = f"{base}/{prefix}/requests/{job.request_id}"
        return {
            "response_url": root + ("/response" if self.response_suffix else ""),
            "status_url": f"{root}/status",
            "cancel_url": f"{root}/cancel",
        }

    # -- the request's life -----------------------------------------------------------------------------

    def _settle_all(self) -> None:
        with self._lock:
            for job in self.jobs.values():
                self._settle(job)

    def _settle(self, job: FakeJob) -> None:
        """Bring a request up to date without polling it: what fal did with it in the meantime."""
        with self._lock:
            if job.completed:
                return
            now = time.monotonic()
            if job.started_at is None and self.no_free_runner:
                if job.start_timeout is not None and now - job.submitted_at >= job.start_timeout:
                    self._finish(job, _start_timeout_failure())
                return
            if job.run_from is None:
                job.run_from = now
            if job.generation_s is not None:
                if job.started_at is None:
                    job.started_at = time.time()
                if now - job.run_from >= job.generation_s:
                    self._finish(job)
            elif job.status_requests == 0 and now - job.run_from >= self.unpolled_finish_s:
                self._finish(job)  # nobody watches it, so no poll will move it on: it ran meanwhile

    def _advance(self, job: FakeJob) -> tuple[Phase, int]:
        """Where this status poll finds the request: a poll moves a poll-counted request one step on."""
        if job.generation_s is not None:  # _settle started it unless no runner is free
            return ("queued", 0) if job.started_at is None else ("running", 0)
        phase, n = _timeline(job, job.steps)
        if job.started_at is None and self.no_free_runner:
            if phase == "queued":
                job.steps += 1
            return "queued", 0
        job.steps += 1
        if phase != "queued" and job.started_at is None:
            job.started_at = time.time()
        if phase == "done":
            self._finish(job)
        return phase, n

    def _is_queued(self, job: FakeJob) -> bool:
        """Whether the request is waiting in the queue now (never started, or requeued by a retry)."""
        if job.started_at is None:
            return True
        if job.generation_s is not None or job.steps == 0:
            return False
        return _timeline(job, job.steps - 1)[0] == "queued"

    def _finish(self, job: FakeJob, failure: Failure | None = None) -> None:
        """The request reaches its terminal state: COMPLETED, its answer stored, its bill decided."""
        if failure is not None:
            job.failure = failure
        outcome: Outcome = job.failure.outcome if job.failure is not None else "success"
        job.completed = True
        job.ended_at = time.time()
        if job.started_at is None and outcome not in NEVER_RAN:
            waited = (job.run_from or job.submitted_at) - job.submitted_at
            job.started_at = min(job.sent_at + max(waited, 0.0), job.ended_at)
        job.cancelled = outcome in ("cancelled_in_queue", "cancelled_running")
        self._bills[job.request_id] = self._bill(job, outcome)

    def _bill(self, job: FakeJob, outcome: Outcome) -> Bill:
        billed = (
            outcome == "success"
            or (outcome == "unprocessable" and self.bill_validation_errors)
            or (outcome == "cancelled_running" and self.bill_handled_cancel)
        )
        if not billed:
            return Bill(job.request_id, False, 0.0, 0.0, outcome)
        seconds = _requested_seconds(job.payload)
        rate = PRICE_PER_SECOND_USD.get(str(job.payload.get("resolution", "720p")), PRICE_PER_SECOND_USD["720p"])
        images = 1 if isinstance(job.payload.get("image_url"), str) else 0
        cost = Decimal(seconds) * rate + images * PRICE_PER_IMAGE_USD
        return Bill(job.request_id, True, float(seconds), float(cost), outcome)

    # -- status, result, cancel -------------------------------------------------------------------------

    def _status(self, job: FakeJob, with_logs: bool) -> Answer:
        with self._lock:
            self._settle(job)
            phase: Phase = "done"
            n = 0
            if not job.completed:
                job.polls += 1
                phase, n = self._advance(job)
            head = {"request_id": job.request_id, "response_url": self._urls(job)["response_url"]}
            fal_id = {"x-fal-request-id": job.request_id}
            if job.completed:
                return Answer(200, self._completed_body(job, head, with_logs), fal_id)
            if phase == "queued":
                return Answer(202, {"status": "IN_QUEUE", **head, "queue_position": n}, fal_id)
            revealed = 1 if job.generation_s is not None else min(n + 1, len(self.log_lines) - 1)
            logs = self._logs(revealed) if with_logs else None
            return Answer(202, {"status": "IN_PROGRESS", **head, "logs": logs}, fal_id)

    def _completed_body(self, job: FakeJob, head: dict[str, str], with_logs: bool) -> dict[str, Any]:
        ran = job.started_at is not None
        logs = (self._logs(len(self.log_lines)) if ran else []) if with_logs else None
        body: dict[str, Any] = {"status": "COMPLETED", **head, "logs": logs}
        failure = job.failure
        if failure is None:
            body["metrics"] = {"inference_time": self.inference_time}
        else:
            body["metrics"] = {}
            if failure.status_fields:
                body.update(error=failure.error, error_type=failure.error_type)
        return body

    def _logs(self, revealed: int) -> list[dict[str, str]]:
        first = max(0, revealed - self.log_window)
        return [
            {"message": self.log_lines[i], "timestamp": f"2026-01-01T00:00:{i:02d}.000Z", "level": "INFO"}
            for i in range(first, revealed)
        ]

    def _result(self, job: FakeJob) -> Answer:
        headers = {"x-fal-request-id": job.request_id}
        with self._lock:
            self._settle(job)
            if not job.completed:
                return Answer(400, {"detail": "Request is still in progress"}, headers)
            failure = job.failure
            units = self._bills[job.request_id].units if failure is None else 0.0
        if self.billable_units_header:
            headers["X-Fal-Billable-Units"] = f"{units:g}"
        if failure is not None:
            return Answer(failure.http_status, failure.body, _merge_headers(headers, failure.headers))
        return Answer(200, self._output(job), headers)

    def _output(self, job: FakeJob) -> dict[str, Any]:
        assert job.frame is not None
        width, height = job.frame
        frames = self._frames(job)
        file_name = f"{job.request_id[:8]}-output.mp4"
        base = f"{self.cdn_url}/files" if self.media_origin == "cdn" else f"{self.url}/media"
        video: dict[str, Any] = {
            "url": f"{base}/{job.request_id}/{file_name}",
            "content_type": "video/mp4",
            "file_name": file_name,
            "width": width,
            "height": height,
            "fps": FPS,
            "duration": round(frames / FPS, 6),
            "num_frames": frames,
        }
        if self.include_file_size:
            video["file_size"] = self.render_mp4(width, height, frames, audio=self.render_audio).stat().st_size
        video.update(self.video_overrides)
        return {"video": video}

    def _frames(self, job: FakeJob) -> int:
        return int(job.payload.get("duration", 6)) * FPS + 1 + self.frames_offset

    def _cancel(self, job: FakeJob | None) -> Answer:
        if job is None:
            return Answer(404, {"status": "NOT_FOUND"})
        fal_id = {"x-fal-request-id": job.request_id}
        with self._lock:
            self._settle(job)
            if job.completed:
                return Answer(400, {"status": "ALREADY_COMPLETED"}, fal_id)
            job.cancel_requested = True
            if self._is_queued(job):
                self._finish(job, _cancelled_failure("cancelled_in_queue"))
            elif self.cancel_mode == "handle":
                self._finish(job, _cancelled_failure("cancelled_running"))
            # else the app ignores the signal: the request runs to its end
        return Answer(202, {"status": "CANCELLATION_REQUESTED"}, fal_id)

    # -- media and storage ------------------------------------------------------------------------------

    def _serve(self, call: _Call) -> Answer:
        parts = [p for p in call.path.split("/") if p]
        if call.route == "asset":
            with self._lock:
                asset = self._assets.get(parts[1]) if len(parts) > 1 else None
            if asset is None:
                return Answer(404, {"detail": "Not Found"})
            return Answer(200, data=asset[0], content_type=asset[1])
        if call.route == "file":
            with self._lock:
                stored = self._files.get(parts[1])
            if stored is None or stored.expired or "/".join(parts[2:]) != stored.name:
                return Answer(404, {"detail": "Not Found"})
            return Answer(200, data=stored.data, content_type=stored.content_type)
        served_here = (call.origin == "cdn") == (self.media_origin == "cdn")
        media = self._media_file(parts[1]) if served_here and len(parts) > 2 else None
        if media is None:
            return Answer(404, {"detail": "Not Found"})
        return Answer(200, data=media.read_bytes(), content_type="video/mp4")

    def _media_file(self, request_id: str) -> Path | None:
        with self._lock:
            job = self.jobs.get(request_id)
            if job is not None:
                self._settle(job)
        if job is None or job.frame is None or not job.completed or job.failure is not None:
            return None
        return self.render_mp4(*job.frame, self._frames(job), audio=self.render_audio)

    def _take_token_failure(self) -> bool:
        with self._lock:
            if self.token_fails > 0:
                self.token_fails -= 1
                return True
        return False

    def _token(self) -> Answer:
        token = secrets.token_urlsafe(24)
        expires = time.time() + self.token_ttl_s
        with self._lock:
            self._tokens[token] = expires
        expires_at = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")
        body = {"token": token, "token_type": "Bearer", "base_url": self.cdn_url, "expires_at": expires_at}
        return Answer(200, body)

    def _bearer_upload(self, call: _Call) -> Answer:
        scheme, _, token = call.headers.get("authorization", "").partition(" ")
        with self._lock:
            expires = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if expires is None or time.time() >= expires:
            return Answer(401, {"detail": "Invalid or expired token"})
        content_type = call.headers.get("content-type") or "application/octet-stream"
        name = call.headers.get("x-fal-file-name") or _random_file_name(content_type)
        file_id = secrets.token_hex(16)
        return Answer(200, {"access_url": self._store_file(file_id, name, call.body, content_type, "token")})

    def _initiate(self, call: _Call) -> Answer:
        if self.locked:
            return Answer(403, {"detail": self.locked})
        storage_type = call.query.get("storage_type", ["gcs"])[-1]
        if storage_type not in ("gcs", "fal-cdn-v3"):
            problem = _query_problem("storage_type", "Input should be 'gcs' or 'fal-cdn-v3'", "enum", storage_type)
            return Answer(422, {"detail": [problem]})
        try:
            body = json.loads(call.body or b"null")
        except ValueError:
            body = None
        problems = [
            {"loc": ["body", name], "msg": "Field required", "type": "missing"}
            for name in ("file_name", "content_type")
            if not isinstance(body, dict) or not isinstance(body.get(name), str)
        ]
        if problems:
            return Answer(422, {"detail": problems})
        assert isinstance(body, dict)
        file_id, signature = secrets.token_hex(16), secrets.token_hex(32)
        name = quote(body["file_name"], safe="._-")
        with self._lock:
            self._pending_uploads[file_id] = _PendingUpload(name, signature, body["content_type"])
        return Answer(
            200,
            {
                "upload_url": f"{self.cdn_url}/upload/{file_id}?X-Goog-Signature={signature}",
                "file_url": f"{self.cdn_url}/files/{file_id}/{name}",
            },
        )

    def _signed_put(self, call: _Call) -> Answer:
        with self._lock:
            pending = self._pending_uploads.get(call.request_id or "")
        if pending is None or call.query.get("X-Goog-Signature", [""])[-1] != pending.signature:
            error = b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SignatureDoesNotMatch</Code></Error>"
            return Answer(403, data=error, content_type="application/xml")
        content_type = call.headers.get("content-type") or pending.content_type
        assert call.request_id is not None
        self._store_file(call.request_id, pending.name, call.body, content_type, "initiate", quoted=True)
        return Answer(200, data=b"", content_type="text/plain")

    def _store_file(
        self,
        file_id: str,
        name: str,
        data: bytes,
        content_type: str,
        via: Literal["token", "initiate"],
        *,
        quoted: bool = False,
    ) -> str:
        name = name if quoted else quote(name, safe="._-")
        url = f"{self.cdn_url}/files/{file_id}/{name}"
        with self._lock:
            self._files[file_id] = _StoredFile(name, data, content_type)
            self.uploads.append(Upload(url, hashlib.sha256(data).hexdigest(), content_type, via))
        return url

    # -- platform API: requests by endpoint -------------------------------------------------------------

    def _listing(self, query: dict[str, list[str]]) -> Answer:
        parsed, problems = _listing_query(query)
        if parsed is None:
            return Answer(422, {"detail": problems})
        with self._lock:
            self._settle_all()
            end = parsed.end if parsed.end is not None else time.time()
            jobs = [
                job
                for job in self.jobs.values()
                if self._listed(job, parsed, end) and job.request_id not in self._unlisted
            ]
        if parsed.sort_by == "duration":
            jobs.sort(key=lambda j: (j.ended_at is not None and j.started_at is not None, _duration(j) or 0.0))
        else:
            jobs.sort(key=lambda j: (j.ended_at is None, j.ended_at or 0.0, j.sent_at))
        jobs.reverse()
        page = jobs[parsed.offset : parsed.offset + parsed.limit]
        has_more = parsed.offset + parsed.limit < len(jobs)
        next_cursor = base64.b64encode(str(parsed.offset + parsed.limit).encode()).decode() if has_more else None
        items = [self._listing_item(job, parsed.payloads) for job in page]
        return Answer(200, {"items": items, "next_cursor": next_cursor, "has_more": has_more})

    def _listed(self, job: FakeJob, query: _ListingQuery, end: float) -> bool:
        if job.model not in query.endpoint_ids:
            return False
        if query.request_id is not None and job.request_id != query.request_id:
            return False
        if not job.completed and not self.list_unfinished:
            return False
        stamp = job.ended_at if job.ended_at is not None else job.sent_at
        if not query.start <= stamp < end:
            return False
        return query.status is None or _status_class(self._status_code(job)) == query.status

    def _status_code(self, job: FakeJob) -> int | None:
        if not job.completed:
            return None
        return 200 if job.failure is None else job.failure.http_status

    def _listing_item(self, job: FakeJob, payloads: bool) -> dict[str, Any]:
        item: dict[str, Any] = {
            "request_id": job.request_id,
            "endpoint_id": job.model,
            "started_at": _iso(job.started_at),
            "sent_at": _iso(job.sent_at),
            "ended_at": _iso(job.ended_at),
            "status_code": self._status_code(job),
            "duration": _duration(job),
        }
        if payloads:
            item["json_input"] = job.payload
            output = None
            if job.completed:
                output = self._output(job) if job.failure is None else job.failure.body
            item["json_output"] = output
        return item

    # -- media ------------------------------------------------------------------------------------------

    def render_mp4(self, width: int, height: int, frames: int, *, audio: bool = True) -> Path:
        """A real H.264 (+ AAC) mp4 at 24 fps, cached per (width, height, frames, audio) for this server."""
        key = (width, height, frames, audio)
        with self._media_lock:
            cached = self._media.get(key)
            if cached is not None:
                return cached
            out = self._tmp / f"{width}x{height}-{frames}{'' if audio else '-silent'}.mp4"
            seconds = f"{frames / FPS:.6f}"
            sound = ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
            subprocess.run(
                [
                    imageio_ffmpeg.get_ffmpeg_exe(),
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    f"testsrc2=size={width}x{height}:rate={FPS}",
                    *(sound if audio else []),
                    "-frames:v",
                    str(frames),
                    "-t",
                    seconds,
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-pix_fmt",
                    "yuv420p",
                    *(["-c:a", "aac", "-b:a", "64k"] if audio else ["-an"]),
                    "-movflags",
                    "+faststart",
                    str(out),
                ],
                check=True,
                capture_output=True,
            )
            self._media[key] = out
            return out


def _timeline(job: FakeJob, index: int) -> tuple[Phase, int]:
    """The poll-counted timeline at step `index`: ("queued", position), ("running", step) or ("done", 0)."""
    requeue = job.requeue_polls if job.requeue_after is not None else 0
    if index >= job.queue_polls + job.progress_polls + requeue:
        return "done", 0
    if index < job.queue_polls:
        return "queued", job.queue_polls - index - 1
    if requeue:
        assert job.requeue_after is not None
        back_at = job.queue_polls + job.requeue_after
        if back_at <= index < back_at + requeue:
            return "queued", back_at + requeue - index - 1
        if index >= back_at + requeue:
            index -= requeue
    return "running", index - job.queue_polls


def _image_failure(error_type: str, message: str) -> Failure:
    detail = [{"loc": ["body", "image_url"], "msg": message, "type": error_type}]
    return Failure(422, {"detail": detail}, message, error_type, "unprocessable")


def _cancelled_failure(outcome: Outcome) -> Failure:
    return Failure(499, {"detail": CANCELLED_DETAIL}, CANCELLED_DETAIL, "client_cancelled", outcome)


def _start_timeout_failure() -> Failure:
    return Failure(
        504,
        {"detail": TIMEOUT_DETAIL, "error_type": "request_timeout"},
        TIMEOUT_DETAIL,
        "request_timeout",
        "start_timeout",
        {"X-Fal-Request-Timeout-Type": "user", "X-Fal-Error-Type": "request_timeout"},
    )


def _requested_seconds(payload: dict[str, Any]) -> int:
    duration = payload.get("duration", 6)
    return duration if isinstance(duration, int) and not isinstance(duration, bool) and duration > 0 else 0


def _merge_headers(base: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """`base` with `extra` on top, header names compared case-insensitively."""
    merged = {k: v for k, v in base.items() if k.lower() not in {e.lower() for e in extra}}
    merged.update(extra)
    return merged


def _random_file_name(content_type: str) -> str:
    extension = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ".bin"
    return f"{secrets.token_hex(8)}{extension}"


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _duration(job: FakeJob) -> float | None:
    if job.started_at is None or job.ended_at is None:
        return None
    return round(job.ended_at - job.started_at, 3)


def _status_class(code: int | None) -> str | None:
    if code is None:
        return None
    if code < 400:
        return "success"
    return "user_error" if code < 500 else "error"


def _query_problem(name: str, msg: str, type_: str, value: Any = None) -> dict[str, Any]:
    return {"loc": ["query", name], "msg": msg, "type": type_, "input": value}


def _optional_int(query: dict[str, list[str]], name: str) -> tuple[int | None, list[dict[str, Any]]]:
    raw = query.get(name, [None])[-1]
    if raw is None:
        return None, []
    try:
        return int(raw), []
    except ValueError:
        return None, [_query_problem(name, "Input should be a valid integer", "int_parsing", raw)]


def _parse_time(raw: str) -> float:
    value = datetime.fromisoformat(raw.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _listing_query(query: dict[str, list[str]]) -> tuple[_ListingQuery | None, list[dict[str, Any]]]:
    """The parameters of GET /v1/models/requests/by-endpoint, or FastAPI-style 422 problems."""
    problems: list[dict[str, Any]] = []

    def one(name: str) -> str | None:
        return query.get(name, [None])[-1]

    endpoint_ids = [e.strip() for raw in query.get("endpoint_id", []) for e in raw.split(",") if e.strip()]
    if not endpoint_ids:
        problems.append({"loc": ["query", "endpoint_id"], "msg": "Field required", "type": "missing"})
    elif len(endpoint_ids) > 50:
        problems.append(_query_problem("endpoint_id", "List should have at most 50 items", "too_long"))
    limit, limit_problems = _optional_int(query, "limit")
    problems += limit_problems
    if limit is None:
        limit = 50
    elif not 1 <= limit <= 100:
        problems.append(_query_problem("limit", "Input should be between 1 and 100", "less_than_equal", limit))
    request_id = one("request_id")
    now = datetime.now(UTC)
    window = timedelta(days=90) if request_id else timedelta(hours=24)
    times: dict[str, float | None] = {"start": (now - window).timestamp(), "end": None}
    for name in times:
        raw = one(name)
        if raw is not None:
            try:
                times[name] = _parse_time(raw)
            except ValueError:
                problems.append(_query_problem(name, "Input should be a valid datetime", "datetime_parsing", raw))
    status, sort_by = one("status"), one("sort_by") or "ended_at"
    if status is not None and status not in ("success", "error", "user_error"):
        problems.append(_query_problem("status", "Input should be 'success', 'error' or 'user_error'", "enum", status))
    if sort_by not in ("ended_at", "duration"):
        problems.append(_query_problem("sort_by", "Input should be 'ended_at' or 'duration'", "enum", sort_by))
    offset = 0
    cursor = one("cursor")
    if cursor:
        try:
            offset = int(base64.b64decode(cursor, validate=True).decode())
        except (ValueError, binascii.Error):
            problems.append(_query_problem("cursor", "Invalid cursor", "value_error", cursor))
    expand = {e.strip() for raw in query.get("expand", []) for e in raw.split(",")}
    if problems:
        return None, problems
    start = times["start"]
    assert start is not None
    return (
        _ListingQuery(
            endpoint_ids, start, times["end"], status, request_id, limit, max(offset, 0), sort_by, "payloads" in expand
        ),
        [],
    )


def validate_input(payload: Any) -> list[dict[str, Any]]:
    """The Grok image-to-video input schema, with fal's (pydantic's) error shapes."""
    if not isinstance(payload, dict):
        return [
            {
                "loc": ["body"],
                "msg": "Input should be a valid dictionary",
                "type": "dict_type",
                "input": payload,
            }
        ]
    problems: list[dict[str, Any]] = []
    for name in ("prompt", "image_url"):
        if name not in payload:
            problems.append({"loc": ["body", name], "msg": "Field required", "type": "missing"})
        elif not isinstance(payload[name], str):
            problems.append(
                {
                    "loc": ["body", name],
                    "msg": "Input should be a valid string",
                    "type": "string_type",
                    "input": payload[name],
                }
            )
    duration = payload.get("duration", 6)
    if not isinstance(duration, int) or isinstance(duration, bool):
        problems.append(
            {
                "loc": ["body", "duration"],
                "msg": "Input should be a valid integer",
                "type": "int_type",
                "input": duration,
            }
        )
    elif duration < 1:
        problems.append(
            {
                "loc": ["body", "duration"],
                "msg": "Input should be greater than or equal to 1",
                "type": "greater_than_equal",
                "ctx": {"ge": 1},
                "input": duration,
            }
        )
    elif duration > 15:
        problems.append(
            {
                "loc": ["body", "duration"],
                "msg": "Input should be less than or equal to 15",
                "type": "less_than_equal",
                "ctx": {"le": 15},
                "input": duration,
            }
        )
    resolution = payload.get("resolution", "720p")
    if resolution not in RESOLUTIONS:
        expected = " or ".join(f"'{r}'" for r in RESOLUTIONS)
        problems.append(
            {
                "loc": ["body", "resolution"],
                "msg": f"Input should be {expected}",
                "type": "enum",
                "ctx": {"expected": expected},
                "input": resolution,
            }
        )
    return problems


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-fal/1.0"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes; without this, Nagle + delayed ACK add ~40 ms per request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def fake(self) -> FakeFal:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        origin: Origin = self.server.origin  # type: ignore[attr-defined]
        route, prefix, request_id = self.fake._route(origin, method, split.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = parse_qs(split.query, keep_blank_values=True)
        call = _Call(origin, method, split.path, query, headers, body, route, prefix, request_id)
        self.fake._record(call)

        fault = self.fake._take_fault(route)
        if fault is not None and fault.action != "accept_and_drop":
            self._apply(fault)
            return
        answer = self.fake._answer(call)
        if fault is not None:  # accept_and_drop: done, but the answer never leaves
            self._drop()
        elif isinstance(answer, _Stream):
            self._stream(answer)
        else:
            self._send(answer)

    def _stream(self, stream: _Stream) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("x-fal-request-id", stream.job.request_id)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        last: Any = None
        while not self.fake._release.is_set():
            body = self.fake._status(stream.job, stream.with_logs).body
            if body == last:  # nothing changed (a timeline in seconds, or no free runner): wait, do not spin
                time.sleep(0.02)
                continue
            last = body
            self.wfile.write(f"data: {json.dumps(body)}\n\n".encode())
            self.wfile.flush()
            if body["status"] == "COMPLETED":
                return

    def _apply(self, fault: Fault) -> None:
        if fault.action == "respond":
            headers = {k: v for k, v in fault.headers.items() if k.lower() != "content-type"}
            content_type = next(
                (v for k, v in fault.headers.items() if k.lower() == "content-type"),
                "application/octet-stream",
            )
            self._send(Answer(fault.status, headers=headers, data=fault.body, content_type=content_type))
        elif fault.action == "hang":
            self.fake._release.wait()
            self._drop()
        else:
            self._drop()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, answer: Answer) -> None:
        data = answer.encoded()
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _queue_route(method: str, path: str) -> tuple[Route, str, str | None]:
    """(route, the model or app prefix, request id) for a queue-origin path; trailing slashes are ignored."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["media"]:
        return "media", "", parts[1] if len(parts) > 1 else None
    if parts[:1] == ["assets"]:
        return "asset", "", None
    if "requests" in parts:
        at = parts.index("requests")
        prefix = "/".join(parts[:at])
        rest = parts[at + 1 :]
        if at < 2 or not rest:
            return "unknown", prefix, None
        request_id, tail = rest[0], "/".join(rest[1:])
        routes: dict[tuple[str, str], Route] = {
            ("GET", ""): "result",
            ("GET", "response"): "result",
            ("GET", "status"): "status",
            ("GET", "status/stream"): "stream",
            ("PUT", "cancel"): "cancel",
        }
        return routes.get((method, tail), "unknown"), prefix, request_id
    if method == "POST" and len(parts) >= 2:
        return "submit", "/".join(parts), None
    return "unknown", "", None


@pytest.fixture
def fake_fal() -> Iterator[FakeFal]:
    """A fresh fake fal (queue, CDN, REST and platform API origins on 127.0.0.1, random ports) for one test."""
    fake = FakeFal().start()
    try:
        yield fake
    finally:
        fake.stop()
