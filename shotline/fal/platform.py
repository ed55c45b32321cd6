"""fal's platform API: the requests an endpoint received (https://fal.ai/docs/platform-apis/v1/models/requests/by-endpoint).

Used to recover a submit whose answer was lost: the ledger stores the canonical input (or its SHA-256) and
the send time before the POST, and `find_by_input` later looks for requests with that input sent since. The
listing shows finished requests (a queued or running one may be missing, so "no match" is not "never sent").

It needs a user or enterprise API key. GETs are retried on transport errors, 408, 429 and 5xx, a bounded
number of times, honouring a numeric `Retry-After`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from shotline.fal._http import FalHttpClient, Retry, detail_of
from shotline.fal.errors import FalAuthError, FalError
from shotline.fal.models import ResultAnswer, VideoResult
from shotline.fal.outcomes import classify_answer
from shotline.fal.retry import is_transient_status, retry_after_s

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=30.0)
DEFAULT_MAX_PAGES = 50
RequestOutcome = Literal["success", "error", "user_error"]
SleepFn = Callable[[float], None]


def canonical_json(obj: Any) -> str:
    """One spelling of a JSON value: sorted keys, no whitespace, UTF-8 kept (what the ledger hashes)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def input_sha256(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


class FalPlatformError(FalError):
    """The platform API failed or answered something unusable."""


class PlatformRequest(BaseModel):
    """One item of the by-endpoint listing. Only `request_id` is guaranteed; unknown fields are kept."""

    model_config = ConfigDict(extra="allow")

    request_id: str
    endpoint_id: str | None = None
    started_at: datetime | None = None
    sent_at: datetime | None = None
    ended_at: datetime | None = None
    status_code: int | None = None
    duration: float | None = None
    json_input: Any = None
    json_output: Any = None

    @field_validator("started_at", "sent_at", "ended_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # a timestamp without an offset is UTC; comparing it with an aware one would raise
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @property
    def sent_or_known_at(self) -> datetime | None:
        """`sent_at`, or the next best timestamp the item carries."""
        return self.sent_at or self.started_at or self.ended_at

    def answer(self) -> ResultAnswer | None:
        """The request's final answer as the listing keeps it (after the queue forgot it, about an hour on):
        classified like a result answer; None when unfinished, or a success without a usable video."""
        if self.status_code is None:
            return None
        outcome = classify_answer(int(self.status_code), {}, self.json_output)
        video = None
        if outcome.succeeded:
            try:
                video = VideoResult.model_validate(self.json_output).video
            except ValidationError:
                return None
        return ResultAnswer(outcome=outcome, video=video)


class _Page(BaseModel):
    model_config = ConfigDict(extra="allow")

    items: list[PlatformRequest] = []
    next_cursor: str | None = None
    has_more: bool = False


class FalPlatform(FalHttpClient):
    """fal's platform API host, over httpx. Use as a context manager (or call `close()`)."""

    logger = logging.getLogger("shotline.fal.platform")

    def __init__(
        self,
        api_url: str,
        key: SecretStr,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        max_attempts: int = 4,
        max_pages: int = DEFAULT_MAX_PAGES,
        backoff_base: float = 0.5,
        backoff_cap: float = 15.0,
        max_retry_after: float = 60.0,
        sleep: SleepFn = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
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
        self.api_url = api_url.rstrip("/")
        self.max_pages = max_pages

    def __repr__(self) -> str:
        return f"FalPlatform(api_url={self.api_url!r}, key=SecretStr('**********'))"

    # -- queries ----------------------------------------------------------------------------------------

    def list_requests(
        self,
        endpoint_id: str,
        *,
        start: datetime,
        end: datetime | None = None,
        request_id: str | None = None,
        status: RequestOutcome | None = None,
        with_payloads: bool = True,
        limit: int = 100,
    ) -> list[PlatformRequest]:
        """Every request of `endpoint_id` in [start, end), all pages. Raises FalPlatformError when there are
        more than `max_pages` pages (a partial list could hide the request being looked for)."""
        if not 1 <= limit <= 100:
            raise ValueError("limit must be between 1 and 100")
        params: dict[str, str | int] = {"endpoint_id": endpoint_id, "start": _utc_z(start, up=False), "limit": limit}
        if end is not None:
            params["end"] = _utc_z(end, up=True)
        if request_id is not None:
            params["request_id"] = request_id
        if status is not None:
            params["status"] = status
        if with_payloads:
            params["expand"] = "payloads"
        items: list[PlatformRequest] = []
        cursor: str | None = None
        for _ in range(self.max_pages):
            page = self._page({**params, "cursor": cursor} if cursor else params)
            items.extend(page.items)
            if not page.has_more:
                return items
            if not page.next_cursor or page.next_cursor == cursor:
                raise FalPlatformError(
                    f"fal platform: the listing of {endpoint_id} says there is more but gives no new cursor",
                    retryable=False,
                )
            cursor = page.next_cursor
        raise FalPlatformError(
            f"fal platform: the listing of {endpoint_id} since {params['start']} has more than {self.max_pages} "
            f"pages of {limit}; stopped reading (narrow the time window)",
            retryable=False,
        )

    def find_by_input(
        self, endpoint_id: str, canonical_input: dict[str, Any], *, sent_after: datetime, skew_s: float = 120
    ) -> list[PlatformRequest]:
        """The listed requests whose input is `canonical_input`, sent at or after `sent_after` minus the
        clock skew, oldest first. Several means duplicates (each billed); none means none has finished yet."""
        since = sent_after - timedelta(seconds=skew_s)
        wanted = canonical_json(canonical_input)
        matches = [
            item
            for item in self.list_requests(endpoint_id, start=since, with_payloads=True)
            if _same_json(item.json_input, wanted) and (item.sent_or_known_at is None or item.sent_or_known_at >= since)
        ]
        return sorted(matches, key=lambda item: item.sent_or_known_at or since)

    # -- plumbing ---------------------------------------------------------------------------------------

    def _page(self, params: dict[str, str | int]) -> _Page:
        url = f"{self.api_url}/v1/models/requests/by-endpoint"
        response = self._get(url, params)
        try:
            return _Page.model_validate(response.json())
        except (ValueError, ValidationError):
            raise FalPlatformError(
                f"fal platform: the requests listing is not the expected JSON (HTTP {response.status_code})",
                retryable=False,
                status_code=response.status_code,
            ) from None

    def _get(self, url: str, params: dict[str, str | int]) -> httpx.Response:
        def once() -> httpx.Response | Retry[httpx.Response]:
            response = self._http.get(url, params=params, headers=self._key_auth())
            if response.is_success:
                return response
            code = response.status_code
            detail = detail_of(response)
            if code in (401, 403):
                raise FalAuthError(
                    f"fal platform API refused the key (HTTP {code}): it requires an API key of scope user "
                    "or enterprise ('Requires API key (user or enterprise)'); an admin-only or app key will "
                    f"not do, check FAL_KEY{f' (fal said: {detail})' if detail else ''}",
                    status_code=code,
                    detail=detail,
                )
            problem = f"HTTP {code}" + (f": {detail}" if detail else "")
            if not is_transient_status(code):
                raise FalPlatformError(
                    f"fal platform: listing requests failed: {problem}",
                    retryable=False,
                    status_code=code,
                    detail=detail,
                )
            return Retry(problem, retry_after_s(response, self.max_retry_after))

        def failed(problem: str, tried: int) -> FalError:
            return FalPlatformError(
                f"fal platform: listing requests failed after {tried} attempts: {problem}", retryable=True
            )

        return self._retrying(once, what="fal platform listing", exhausted=failed)


def _same_json(value: Any, wanted: str) -> bool:
    try:
        return canonical_json(value) == wanted
    except (TypeError, ValueError):  # NaN or the like in someone else's input: not ours
        return False


def _utc_z(when: datetime, *, up: bool) -> str:
    """`when` in UTC as `YYYY-MM-DDTHH:MM:SSZ`. Whole seconds, rounded outwards (`up` for the exclusive end),
    so the window is never narrower than asked whatever fal does with fractions."""
    if when.tzinfo is None:
        raise ValueError(f"{when!r} has no timezone: pass an aware datetime (UTC)")
    when = when.astimezone(UTC)
    whole = when.replace(microsecond=0)
    if up and whole != when:
        whole += timedelta(seconds=1)
    return whole.strftime("%Y-%m-%dT%H:%M:%SZ")
