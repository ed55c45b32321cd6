"""A fake fal queue server on loopback, following the checklist of reference/fal-queue-api.md §13.

It speaks fal's HTTP queue protocol for one image-to-video model: submit (auth, 403 lock, 422 validation in
fal's `{"detail": [{loc, msg, type, ctx}]}` shape), status (202 IN_QUEUE with a falling queue position, 202
IN_PROGRESS with a sliding window of logs, 200 COMPLETED with metrics), the SSE status stream, result (both
`/requests/{id}` and `/requests/{id}/response`), cancel, and a media route serving a real H.264/AAC mp4 at
the frame size the model would return for the submitted image.

Progress is counted in status polls, not seconds, so tests never depend on timing (`requeue()` adds fal's
server-side retry, IN_PROGRESS falling back to IN_QUEUE). Every request the server saw is recorded; scripted
faults (`fail_next`) can answer the next N requests of a route instead of the protocol, and a few knobs make
the model get its output wrong (`frames_offset`, `render_audio`, `video_overrides`).

The `fake_fal` fixture (function-scoped) is registered by tests/conftest.py as a pytest plugin.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import imageio_ffmpeg
import pytest
from PIL import Image

from shotline.generators.base import output_frame

MODEL = "xai/grok-imagine-video/v1.5/image-to-video"
TEST_KEY = "fake-key-id:fake-key-secret-7d3e9a"
FPS = 24
RESOLUTIONS = ("480p", "720p")
LOCKED_DETAIL = "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."
UNKNOWN_KEY_DETAIL = "No user found for Key ID and Secret"
CONTENT_POLICY_MSG = (
    "The content could not be processed because it was flagged by the partner's content checker "
    "(xAI moderation: depiction of a real person)."
)
DEFAULT_LOG_LINES = (
    "Loading model weights...",
    "Encoding input image...",
    "Generating frames...",
    "Generating audio...",
    "Done.",
)

Route = Literal["submit", "status", "stream", "result", "cancel", "media", "asset", "unknown"]
FaultAction = Literal["respond", "drop", "accept_and_drop", "hang"]


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
    """How a request fails once it runs: the result endpoint's answer and the status body's error fields."""

    http_status: int
    body: dict[str, Any]
    error: str
    error_type: str


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
    submitted_at: float = 0.0
    polls: int = 0
    completed: bool = False
    cancelled: bool = False
    failure: Failure | None = None
    frame: tuple[int, int] | None = None

    @property
    def app_id(self) -> str:
        return "/".join(self.model.split("/")[:2])


class FakeFal:
    """The server and its knobs. Change knobs before the requests they should affect."""

    def __init__(self, *, key: str = TEST_KEY, model: str = MODEL) -> None:
        self.key = key
        self.model = model
        # timeline, in status polls per request
        self.queue_polls = 2
        self.progress_polls = 3
        # or a timeline in seconds: when set, a request runs (IN_PROGRESS) for this long after its submit,
        # however often it is polled, then completes; for benchmarks that need a fixed generation latency
        self.generation_s: float | None = None
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
        # outcomes
        self.failure: Failure | None = None
        self.include_file_size = False
        # a model that gets it wrong: frames more (or fewer) than asked, no audio track, and output metadata
        # that says something else than the file (merged into the result's `video`)
        self.frames_offset = 0
        self.render_audio = True
        self.video_overrides: dict[str, Any] = {}

        self.requests: list[SeenRequest] = []
        self.jobs: dict[str, FakeJob] = {}
        self._faults: list[Fault] = []
        self._assets: dict[str, tuple[bytes, str]] = {}
        self._media: dict[tuple[int, int, int, bool], Path] = {}
        self._lock = threading.RLock()
        self._media_lock = threading.Lock()
        self._release = threading.Event()
        self._tmp = Path(tempfile.mkdtemp(prefix="fake-fal-"))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> FakeFal:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- what tests look at -----------------------------------------------------------------------------

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
            return self.jobs[request_id]

    # -- knobs ------------------------------------------------------------------------------------------

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
        accept_and_drop (submit only: queue the request, then close without answering), hang (never answer
        until the server stops)."""
        headers = dict(headers or {})
        if isinstance(body, dict):
            raw = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            raw = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._faults.append(Fault(route, status, raw, headers, action, times))

    def fail_requests(self, http_status: int, error_type: str, message: str) -> None:
        """Every request submitted from now on fails when it runs, with fal's flat error shape."""
        self.failure = Failure(
            http_status, {"detail": message, "error_type": error_type}, message, error_type
        )

    def content_policy(self) -> None:
        """Every request submitted from now on is refused by the partner's moderation (422 list detail)."""
        detail = [
            {
                "loc": ["body", "image_url"],
                "msg": CONTENT_POLICY_MSG,
                "type": "content_policy_violation",
                "url": "https://docs.fal.ai/errors#content_policy_violation",
            }
        ]
        self.failure = Failure(422, {"detail": detail}, CONTENT_POLICY_MSG, "content_policy_violation")

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

    # -- protocol ---------------------------------------------------------------------------------------

    def _take_fault(self, route: Route) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.route == route and fault.remaining > 0:
                    fault.remaining -= 1
                    return fault
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

    def _submit(self, model: str, body: bytes) -> tuple[int, dict[str, Any], FakeJob | None]:
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            payload = None
        problems = validate_input(payload)
        if problems and self.validate == "submit":
            return 422, {"detail": problems}, None
        job = FakeJob(
            request_id=str(uuid.uuid4()),
            model=model,
            payload=payload if isinstance(payload, dict) else {},
            queue_polls=self.queue_polls,
            progress_polls=self.progress_polls,
            requeue_after=self.requeue_after,
            requeue_polls=self.requeue_polls,
            generation_s=self.generation_s,
            submitted_at=time.monotonic(),
        )
        if problems:
            job.failure = Failure(422, {"detail": problems}, "Unprocessable input", problems[0]["type"])
        elif self.failure is not None:
            job.failure = self.failure
        else:
            job.failure = self._load_image(job)
        with self._lock:
            self.jobs[job.request_id] = job
        answer = {"request_id": job.request_id, "status": "IN_QUEUE", "queue_position": job.queue_polls}
        if not self.omit_urls:
            answer.update(self._urls(job))
        return 200, answer, job

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

    def _status(self, job: FakeJob, with_logs: bool) -> tuple[int, dict[str, Any]]:
        """The status for this poll; each poll moves the request one step along its timeline."""
        with self._lock:
            index = job.polls
            job.polls += 1
            urls = {"response_url": self._urls(job)["response_url"]}
            requeue = job.requeue_polls if job.requeue_after is not None else 0
            if job.generation_s is not None:
                done = time.monotonic() - job.submitted_at >= job.generation_s
            else:
                done = index >= job.queue_polls + job.progress_polls + requeue
            if job.cancelled or job.completed or done:
                job.completed = True
                body: dict[str, Any] = {"status": "COMPLETED", "request_id": job.request_id, **urls}
                body["logs"] = self._logs(len(self.log_lines)) if with_logs else None
                failure = self._failure(job)
                if failure is None:
                    body["metrics"] = {"inference_time": self.inference_time}
                else:
                    body.update(metrics={}, error=failure.error, error_type=failure.error_type)
                return 200, body
            if job.generation_s is not None:
                logs = self._logs(1) if with_logs else None
                return 202, {"status": "IN_PROGRESS", "request_id": job.request_id, "logs": logs, **urls}
            queued_for = None
            if index < job.queue_polls:
                queued_for = job.queue_polls - index
            elif requeue:
                assert job.requeue_after is not None
                back_at = job.queue_polls + job.requeue_after
                if back_at <= index < back_at + requeue:
                    queued_for = back_at + requeue - index
                elif index >= back_at + requeue:
                    index -= requeue
            if queued_for is not None:
                return 202, {
                    "status": "IN_QUEUE",
                    "request_id": job.request_id,
                    "queue_position": queued_for - 1,
                    **urls,
                }
            step = index - job.queue_polls
            logs = self._logs(min(step + 1, len(self.log_lines) - 1)) if with_logs else None
            return 202, {"status": "IN_PROGRESS", "request_id": job.request_id, "logs": logs, **urls}

    def _logs(self, revealed: int) -> list[dict[str, str]]:
        first = max(0, revealed - self.log_window)
        return [
            {"message": self.log_lines[i], "timestamp": f"2026-01-01T00:00:{i:02d}.000Z", "level": "INFO"}
            for i in range(first, revealed)
        ]

    def _failure(self, job: FakeJob) -> Failure | None:
        if job.cancelled:
            message = "Request was cancelled by the client"
            return Failure(
                499, {"detail": message, "error_type": "client_cancelled"}, message, "client_cancelled"
            )
        return job.failure

    def _result(self, job: FakeJob) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            completed = job.completed
        if not completed:
            return 400, {"detail": "Request is still in progress"}, {}
        failure = self._failure(job)
        if failure is not None:
            headers = {"X-Fal-Error-Type": failure.error_type} if failure.http_status >= 500 else {}
            return failure.http_status, failure.body, headers
        assert job.frame is not None
        width, height = job.frame
        frames = self._frames(job)
        file_name = f"{job.request_id[:8]}-output.mp4"
        video: dict[str, Any] = {
            "url": f"{self.url}/media/{job.request_id}/{file_name}",
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
        return 200, {"video": video}, {}

    def _frames(self, job: FakeJob) -> int:
        return int(job.payload.get("duration", 6)) * FPS + 1 + self.frames_offset

    def _cancel(self, job: FakeJob | None) -> tuple[int, dict[str, Any]]:
        if job is None:
            return 404, {"status": "NOT_FOUND"}
        with self._lock:
            if job.completed:
                return 400, {"status": "ALREADY_COMPLETED"}
            job.cancelled = True
        return 202, {"status": "CANCELLATION_REQUESTED"}

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

    def _media_file(self, request_id: str) -> Path | None:
        with self._lock:
            job = self.jobs.get(request_id)
        if job is None or job.frame is None or not job.completed or self._failure(job) is not None:
            return None
        return self.render_mp4(*job.frame, self._frames(job), audio=self.render_audio)


def _image_failure(error_type: str, message: str) -> Failure:
    detail = [{"loc": ["body", "image_url"], "msg": message, "type": error_type}]
    return Failure(422, {"detail": detail}, message, error_type)


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
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        route, prefix, request_id = _parse_route(method, path)
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}
        with self.fake._lock:
            self.fake.requests.append(SeenRequest(method, path, query, headers, body, route, request_id))

        fault = self.fake._take_fault(route)
        if fault is not None and fault.action != "accept_and_drop":
            self._apply(fault)
            return
        if route in ("media", "asset"):
            self._serve_file(route, path)
            return
        if route == "unknown":
            self._send_json(404, {"detail": f"Path {path} not found"})
            return
        if self.headers.get("Authorization") != f"Key {self.fake.key}":
            self._send_json(401, {"detail": UNKNOWN_KEY_DETAIL})
            return
        if route == "submit":
            if self.fake.locked:
                self._send_json(403, {"detail": self.fake.locked})
                return
            status, answer, job = self.fake._submit(prefix, body)
            if fault is not None:  # accept_and_drop: queued, but the answer never leaves
                self._drop()
                return
            extra = {"x-fal-request-id": job.request_id} if job else {}
            self._send_json(status, answer, extra)
            return

        with self.fake._lock:
            job = self.fake.jobs.get(request_id or "")
        if job is not None and prefix not in (job.app_id, job.model):
            job = None  # fal answers 404 for a path that is neither owner/app nor the full model id
        if route == "cancel":
            self._send_json(*self.fake._cancel(job))
            return
        if job is None:
            self._send_json(404, {"detail": f"Request {request_id} not found"})
            return
        fal_id = {"x-fal-request-id": job.request_id}
        if route == "status":
            with_logs = query.get("logs", ["0"])[-1].lower() in ("1", "true")
            status, answer = self.fake._status(job, with_logs)
            self._send_json(status, answer, fal_id)
        elif route == "stream":
            self._stream(job, query.get("logs", ["0"])[-1].lower() in ("1", "true"))
        elif route == "result":
            status, answer, extra = self.fake._result(job)
            self._send_json(status, answer, {**fal_id, **extra})
        else:
            self._send_json(404, {"detail": f"Path {path} not found"}, fal_id)

    def _stream(self, job: FakeJob, with_logs: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        while True:
            _, body = self.fake._status(job, with_logs)
            self.wfile.write(f"data: {json.dumps(body)}\n\n".encode())
            self.wfile.flush()
            if body["status"] == "COMPLETED":
                return

    def _serve_file(self, route: Route, path: str) -> None:
        parts = path.strip("/").split("/")
        if route == "asset":
            with self.fake._lock:
                asset = self.fake._assets.get(parts[1]) if len(parts) > 1 else None
            if asset is None:
                self._send_json(404, {"detail": "Not Found"})
                return
            self._send_bytes(200, asset[0], asset[1])
            return
        media = self.fake._media_file(parts[1]) if len(parts) > 2 else None
        if media is None:
            self._send_json(404, {"detail": "Not Found"})
            return
        self._send_bytes(200, media.read_bytes(), "video/mp4")

    def _apply(self, fault: Fault) -> None:
        if fault.action == "respond":
            headers = {k: v for k, v in fault.headers.items() if k.lower() != "content-type"}
            content_type = next(
                (v for k, v in fault.headers.items() if k.lower() == "content-type"),
                "application/octet-stream",
            )
            self._send_bytes(fault.status, fault.body, content_type, headers)
        elif fault.action == "hang":
            self.fake._release.wait()
            self._drop()
        else:
            self._drop()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(body).encode(), "application/json", headers)

    def _send_bytes(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _parse_route(method: str, path: str) -> tuple[Route, str, str | None]:
    """(route, the model or app prefix, request id) for a request path; trailing slashes are ignored."""
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
    """A fresh fake fal server on 127.0.0.1 (random port) for one test."""
    fake = FakeFal().start()
    try:
        yield fake
    finally:
        fake.stop()
