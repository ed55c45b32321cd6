"""A small typed client for fal's HTTP queue API (submit, status, result, cancel) and media downloads.

Retries: GETs and the cancel PUT are retried on transport errors, timeouts, 408, 429 and 5xx (nginx pages
included), with exponential backoff and jitter, honouring `Retry-After`, for a bounded number of attempts.
A submit is never retried: fal has no idempotency key, so a second POST is a second, separately billed
request. When a submit's answer is lost after its body went out, `SubmitOutcomeUnknown` says so.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import SecretStr, ValidationError

from shotline.errors import UrlRefused
from shotline.fal._http import FalHttpClient, Retry
from shotline.fal.errors import (
    FalAuthError,
    FalDeadlineExceeded,
    FalError,
    FalMediaError,
    FalProtocolError,
    FalUnavailable,
    FalValidationError,
    SubmitNotSent,
    SubmitOutcomeUnknown,
    format_detail,
)
from shotline.fal.models import (
    LogEntry,
    QueueStatus,
    RequestHandle,
    ResultAnswer,
    SubmitPayload,
    SubmitResponse,
    VideoResult,
)
from shotline.fal.outcomes import classify, is_final_answer
from shotline.fal.retry import is_transient_status, retry_after_s
from shotline.fsutil import atomic_path
from shotline.netguard import UrlPolicy, guarded_stream

DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=30.0)
# A status answer is a few hundred bytes: one that takes longer than this is a hung call, retried.
DEFAULT_STATUS_TIMEOUT = httpx.Timeout(30.0, connect=30.0)
DEFAULT_MAX_VIDEO_BYTES = 2 << 30
_NAMESPACES = frozenset({"workflows", "comfy"})
_MEDIA_TYPES_ACCEPTED = ("video/", "application/octet-stream", "binary/octet-stream")

SleepFn = Callable[[float], None]
ClockFn = Callable[[], float]


class LogWindow:
    """fal returns the log entries of a moving time window on every poll; this yields each entry once."""

    def __init__(self) -> None:
        self._seen: set[tuple[str | None, str]] = set()

    def new(self, entries: Iterable[LogEntry] | None) -> list[LogEntry]:
        fresh = []
        for entry in entries or ():
            key = (entry.timestamp, entry.message)
            if key not in self._seen:
                self._seen.add(key)
                fresh.append(entry)
        return fresh


class FalQueueClient(FalHttpClient):
    """One fal model's queue, over httpx. Use as a context manager (or call `close()`)."""

    def __init__(
        self,
        base_url: str,
        key: SecretStr,
        *,
        model: str,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        status_timeout: httpx.Timeout | float = DEFAULT_STATUS_TIMEOUT,
        poll_interval: float = 0.5,
        max_poll_interval: float = 5.0,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_retry_after: float = 120.0,
        media_origins: Iterable[str] = (),
        sleep: SleepFn = time.sleep,
        clock: ClockFn = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        segments = [s for s in model.strip("/").split("/") if s]
        owner_len = 3 if segments and segments[0] in _NAMESPACES else 2
        if len(segments) < owner_len:
            raise ValueError(f"fal model id {model!r} is not of the form owner/app[/path]")
        super().__init__(
            key,
            transport=transport,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            max_retry_after=max_retry_after,
            sleep=sleep,
            rng=rng,
            headers={"Accept": "application/json"},
        )
        self.base_url = base_url.rstrip("/")
        self.model = "/".join(segments)
        self.app_id = "/".join(segments[:owner_len])
        self.status_timeout = status_timeout
        self.poll_interval = poll_interval
        self.max_poll_interval = max(max_poll_interval, poll_interval)
        self.media_origins = tuple(media_origins)
        self._clock = clock

    def __repr__(self) -> str:
        return f"FalQueueClient(base_url={self.base_url!r}, model={self.model!r}, key=SecretStr('**********'))"

    # -- URLs -------------------------------------------------------------------------------------------

    def handle(self, request_id: str) -> RequestHandle:
        """URLs for a request id built the way fal's SDKs do when they have nothing better: owner/app only."""
        base = f"{self.base_url}/{self.app_id}/requests/{request_id}"
        return RequestHandle(
            request_id=request_id, status_url=f"{base}/status", response_url=base, cancel_url=f"{base}/cancel"
        )

    def handle_for(self, submitted: SubmitResponse) -> RequestHandle:
        """The URLs fal returned on submit, re-pointed at the configured base URL (a proxy, a fake)."""
        fallback = self.handle(submitted.request_id)
        return RequestHandle(
            request_id=submitted.request_id,
            status_url=self._rebase(submitted.status_url) or fallback.status_url,
            response_url=self._rebase(submitted.response_url) or fallback.response_url,
            cancel_url=self._rebase(submitted.cancel_url) or fallback.cancel_url,
        )

    def _rebase(self, url: str | None) -> str | None:
        if not url:
            return None
        base = urlsplit(self.base_url)
        parts = urlsplit(url)
        prefix = base.path.rstrip("/")
        path = parts.path
        if prefix and not (path == prefix or path.startswith(prefix + "/")):
            path = prefix + path
        return urlunsplit((base.scheme, base.netloc, path, parts.query, ""))

    # -- queue operations -------------------------------------------------------------------------------

    def submit(
        self, payload: SubmitPayload | Mapping[str, Any], *, start_timeout_s: float | None = None
    ) -> SubmitResponse:
        """POST the model input once. Never retried (see the module docstring)."""
        body = payload.model_dump() if isinstance(payload, SubmitPayload) else dict(payload)
        url = f"{self.base_url}/{self.model}"
        headers = self._key_auth()
        if start_timeout_s is not None:
            # the start timeout, in the header name fal's SDKs send: on expiry fal answers 504 + "user"
            headers["X-Fal-Request-Timeout"] = f"{start_timeout_s:g}"
        # the clip key names this model: fal must not reroute to another endpoint (both documented spellings)
        headers["x-app-fal-disable-fallback"] = "true"
        headers["x-fal-disable-fallbacks"] = "true"
        try:
            response = self._http.post(url, json=body, headers=headers)
        except (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.PoolTimeout,
            httpx.UnsupportedProtocol,
            httpx.LocalProtocolError,
            httpx.ProxyError,
        ) as exc:
            raise SubmitNotSent(
                f"fal submit to {url} failed before anything was sent ({type(exc).__name__}: {exc}); "
                "nothing was queued or billed, submitting again is safe"
            ) from exc
        except httpx.TransportError as exc:
            raise SubmitOutcomeUnknown(
                f"fal submit to {url}: the request body was sent but no answer came back "
                f"({type(exc).__name__}: {exc}). fal may have accepted and billed it. It was not retried; "
                "check the requests list on fal's dashboard before submitting again deliberately"
            ) from exc
        if response.status_code in (200, 201, 202):
            try:
                return SubmitResponse.model_validate(response.json())
            except (ValueError, ValidationError) as exc:
                raise SubmitOutcomeUnknown(
                    f"fal accepted the submit to {url} (HTTP {response.status_code}) but its answer has no "
                    f"request id: {_snippet(response)}. fal may have queued and billed it; check fal's "
                    "dashboard before submitting again deliberately"
                ) from exc
        raise self._submit_error(url, response)

    def status(self, handle: RequestHandle, *, logs: bool = True) -> QueueStatus:
        what = f"status of request {handle.request_id}"
        response = self._request(
            "GET",
            handle.status_url,
            what=what,
            params={"logs": "1" if logs else "0"},
            timeout=self.status_timeout,
        )
        if response.status_code in (200, 202):
            try:
                return QueueStatus.model_validate(response.json())
            except (ValueError, ValidationError) as exc:
                raise FalProtocolError(
                    f"fal {what}: unexpected answer {_snippet(response)}",
                    retryable=True,
                    request_id=handle.request_id,
                    status_code=response.status_code,
                ) from exc
        raise self._answer_error(what, response, handle.request_id)

    def result(self, handle: RequestHandle) -> ResultAnswer:
        """The final answer of a COMPLETED request, classified once (see `shotline.fal.outcomes`).

        Only transport errors, gateway pages without x-fal-request-id and 429 repeat the GET (bounded); an
        answer fal gave about the request is the stored one and is never fetched again."""
        what = f"result of request {handle.request_id}"
        response = self._request("GET", handle.response_url, what=what, final=is_final_answer)
        if not is_final_answer(response) and not response.is_success:
            raise self._answer_error(what, response, handle.request_id)
        outcome = classify(response)
        if not outcome.succeeded:
            return ResultAnswer(outcome=outcome)
        try:
            data = response.json()
        except ValueError as exc:  # a garbled answer (cut short, a proxy's page): the stored result may be fine
            raise FalProtocolError(
                f"fal result of request {handle.request_id} has no usable video: {_snippet(response)} (not JSON)",
                retryable=True,
                request_id=handle.request_id,
                status_code=response.status_code,
            ) from exc
        try:
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            video = VideoResult.model_validate(data).video
        except (ValueError, ValidationError) as exc:
            why = "" if isinstance(exc, ValidationError) else f" ({exc})"
            raise FalProtocolError(
                f"fal result of request {handle.request_id} (HTTP {response.status_code}, billed) has no "
                f"usable video{why}: {_snippet(response, 300)}",
                retryable=False,
                billed=True,
                request_id=handle.request_id,
            ) from exc
        return ResultAnswer(outcome=outcome, video=video)

    def cancel(self, handle: RequestHandle, *, attempts: int | None = None) -> bool:
        """Ask fal to cancel. True if accepted; False if there was nothing to cancel (done or unknown).

        `attempts` bounds the retries below `max_attempts`, for a quick best-effort cancel on the way out."""
        what = f"cancel of request {handle.request_id}"
        response = self._request("PUT", handle.cancel_url, what=what, attempts=attempts)
        if response.is_success:
            return True
        if response.status_code in (400, 404):
            return False
        raise self._answer_error(what, response, handle.request_id)

    def wait(
        self,
        handle: RequestHandle,
        *,
        timeout_s: float | None = None,
        on_status: Callable[[QueueStatus], None] | None = None,
        on_log: Callable[[LogEntry], None] | None = None,
    ) -> QueueStatus:
        """Poll until COMPLETED (failed or not) and return that status; new log lines go to `on_log` once.

        The poll interval grows from `poll_interval` to `max_poll_interval`. Raises FalDeadlineExceeded
        when `timeout_s` passes first (the request is left running: cancelling is the caller's call)."""
        deadline = None if timeout_s is None else self._clock() + timeout_s
        window = LogWindow()
        interval = self.poll_interval
        while True:
            status = self.status(handle, logs=True)
            if on_log is not None:
                for entry in window.new(status.logs):
                    on_log(entry)
            if on_status is not None:
                on_status(status)
            if status.completed:
                return status
            delay = interval
            if deadline is not None:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise FalDeadlineExceeded(
                        f"fal request {handle.request_id} still {status.status} after {timeout_s:g} s",
                        retryable=True,
                        request_id=handle.request_id,
                    )
                delay = min(delay, remaining)
            self._sleep(delay)
            interval = min(interval * 1.5, self.max_poll_interval)

    # -- media ------------------------------------------------------------------------------------------

    def download(
        self,
        url: str,
        dest_path: str | Path,
        *,
        expected_size: int | None = None,
        max_bytes: int = DEFAULT_MAX_VIDEO_BYTES,
    ) -> tuple[int, str]:
        """Stream `url` into `dest_path` (atomically: a temp file renamed at the end); return (size, sha256).

        Media URLs are public CDN links, so the fal key is not sent. Transient failures, including a body cut
        short, restart the download, within the bounded attempts."""
        dest = Path(dest_path)

        def once() -> tuple[int, str] | Retry[tuple[int, str]]:
            try:
                # netguard: every hop must be public, or the configured queue origin, or allow-listed
                policy = UrlPolicy.from_env().trusting(self.base_url)
                for origin in self.media_origins:
                    policy = policy.trusting(origin)
                with guarded_stream(url, policy, timeout=self._http.timeout) as response:
                    if response.status_code == 200:
                        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                        if content_type.startswith(_MEDIA_TYPES_ACCEPTED):
                            return self._save(response, dest, url, content_type, expected_size, max_bytes)
                        return Retry(f"content type {content_type or 'missing'!r} is not a video")
                    response.read()
                    if _is_transient(response):
                        return Retry(_describe(response), retry_after_s(response, self.max_retry_after))
                    raise FalMediaError(
                        f"fal video {url} could not be downloaded: {_describe(response)} "
                        "(fal keeps generated media for at least 7 days; it may have expired)",
                        retryable=False,
                        billed=True,
                        status_code=response.status_code,
                    )
            except UrlRefused as exc:
                raise FalMediaError(f"fal video URL refused: {exc}", retryable=False, billed=True) from None

        def failed(problem: str, tried: int) -> FalError:
            return FalMediaError(
                f"fal video {url} could not be downloaded after {tried} attempts: {problem}",
                retryable=True,
                billed=True,
            )

        return self._retrying(once, what=f"fal download of {url}", exhausted=failed)

    def _save(
        self,
        response: httpx.Response,
        dest: Path,
        url: str,
        content_type: str,
        expected_size: int | None,
        max_bytes: int,
    ) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        head = b""
        with atomic_path(dest) as tmp, tmp.open("wb") as out:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FalMediaError(
                        f"fal video {url} is larger than {max_bytes} bytes", retryable=False, billed=True
                    )
                if len(head) < 12:
                    head += chunk[: 12 - len(head)]
                digest.update(chunk)
                out.write(chunk)
            if expected_size is not None and size != expected_size:
                raise FalMediaError(
                    f"fal video {url}: got {size} bytes, fal said {expected_size}",
                    retryable=True,
                    billed=True,
                )
            if content_type == "video/mp4" and head[4:8] != b"ftyp":
                raise FalMediaError(
                    f"fal video {url} is labelled video/mp4 but is not an mp4 file",
                    retryable=True,
                    billed=True,
                )
        return size, digest.hexdigest()

    # -- plumbing ---------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        final: Callable[[httpx.Response], bool] | None = None,
        attempts: int | None = None,
        timeout: httpx.Timeout | float | None = None,
    ) -> httpx.Response:
        """Send with retries. Returns the last response (which may still be an error once retries are spent);
        raises FalUnavailable if the last attempt failed in transport, FalAuthError on 401/403."""

        def once() -> httpx.Response | Retry[httpx.Response]:
            response = self._http.request(
                method,
                url,
                params=params,
                headers=self._key_auth(),
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            if response.status_code in (401, 403):
                raise _auth_error(response, f"fal {what}")
            if not _is_transient(response) or (final is not None and final(response)):
                return response
            return Retry(_describe(response), retry_after_s(response, self.max_retry_after), fallback=response)

        def unavailable(problem: str, tried: int) -> FalError:
            return FalUnavailable(f"fal {what} failed after {tried} attempts: {problem}", retryable=True)

        return self._retrying(once, what=f"fal {what}", exhausted=unavailable, attempts=attempts)

    def _submit_error(self, url: str, response: httpx.Response) -> FalError:
        code = response.status_code
        if code in (401, 403):
            return _auth_error(response, f"fal submit to {url}")
        detail, error_type = _explain(response)
        if code == 422:
            problems = _detail_list(response)
            return FalValidationError(
                f"fal refused the input (HTTP 422): {detail or 'no explanation given'}",
                problems=problems,
                detail=detail,
            )
        if code in (502, 504) and "x-fal-request-id" not in response.headers:
            return SubmitOutcomeUnknown(
                f"fal submit to {url}: the gateway answered {_describe(response)}, so the request may or may "
                "not have reached fal's queue (and been billed). It was not retried; check the requests list "
                "on fal's dashboard before submitting again deliberately"
            )
        if code == 429 or code >= 500:
            return FalUnavailable(
                f"fal refused the submit for now ({_describe(response)}); nothing was queued",
                retryable=True,
                status_code=code,
                error_type=error_type,
                detail=detail,
            )
        return FalError(
            f"fal refused the submit (HTTP {code}): {detail or _snippet(response)}",
            retryable=False,
            status_code=code,
            error_type=error_type,
            detail=detail,
        )

    def _answer_error(self, what: str, response: httpx.Response, request_id: str) -> FalError:
        detail, error_type = _explain(response)
        code = response.status_code
        if _is_transient(response):
            return FalUnavailable(
                f"fal {what} failed after {self.max_attempts} attempts: {_describe(response)}",
                retryable=True,
                request_id=request_id,
                status_code=code,
                error_type=error_type,
                detail=detail,
            )
        hint = " (unknown request id: expired, or the wrong URL)" if code == 404 else ""
        return FalError(
            f"fal {what}: HTTP {code}{hint}: {detail or _snippet(response)}",
            retryable=False,
            request_id=request_id,
            status_code=code,
            error_type=error_type,
            detail=detail,
        )


def _auth_error(response: httpx.Response, what: str) -> FalAuthError:
    detail, _ = _explain(response)
    if response.status_code == 401:
        message = f"fal rejected the key: check FAL_KEY ({what}: HTTP 401: {detail or 'unauthorized'})"
    else:
        message = (
            f"fal refused the request with HTTP 403: the fal account is locked or not allowed to use this "
            f"model; a human has to sort it out on fal's dashboard (billing) before anything is retried. "
            f"fal said: {detail or 'forbidden'} ({what})"
        )
    return FalAuthError(message, status_code=response.status_code, detail=detail)


def _is_transient(response: httpx.Response) -> bool:
    return is_transient_status(response.status_code)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _explain(response: httpx.Response) -> tuple[str, str | None]:
    """fal's explanation and error type from an error answer (JSON `detail`, or the first line of a page)."""
    body = _json(response)
    error_type = response.headers.get("x-fal-error-type")
    if isinstance(body, dict):
        detail = format_detail(body.get("detail", body.get("error") or body.get("message")))
        error_type = body.get("error_type") or error_type
        if not error_type and isinstance(body.get("detail"), list) and body["detail"]:
            first = body["detail"][0]
            if isinstance(first, dict) and first.get("type"):
                error_type = str(first["type"])
        return detail, error_type
    return "", error_type


def _detail_list(response: httpx.Response) -> list[dict[str, Any]]:
    body = _json(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        return [d for d in detail if isinstance(d, dict)]
    return [{"msg": format_detail(detail)}] if detail else []


def _describe(response: httpx.Response) -> str:
    detail, error_type = _explain(response)
    text = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    if "x-fal-request-id" not in response.headers and "html" in response.headers.get("content-type", ""):
        text += " (gateway error page)"
    if detail:
        text += f": {detail}"
    if error_type:
        text += f" [{error_type}]"
    return text


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    try:
        text = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return f"HTTP {response.status_code}"
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")
