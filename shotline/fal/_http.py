"""What the fal HTTP clients (queue, storage, platform) share: the key, one httpx client, and the retry loop.

Each client keeps what differs: its hosts, which answers are worth another attempt, and the errors it raises.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Generic, Self, TypeVar

import httpx
from pydantic import SecretStr

from shotline.fal.errors import format_detail
from shotline.fal.retry import Backoff

USER_AGENT = f"shotline/0.1 httpx/{httpx.__version__}"

SleepFn = Callable[[float], None]
T = TypeVar("T")


@dataclass(frozen=True)
class Retry(Generic[T]):
    """An attempt worth repeating: what went wrong and, when the answer asked for one, how long to wait.
    `fallback` is what the call returns once no attempt is left (else it raises)."""

    problem: str
    delay: float | None = None
    fallback: T | None = None


class FalHttpClient:
    """One fal host over httpx, authenticated with the fal key. Use as a context manager (or call `close()`)."""

    logger: ClassVar[logging.Logger] = logging.getLogger("shotline.fal")

    def __init__(
        self,
        key: SecretStr,
        *,
        transport: httpx.BaseTransport | None,
        timeout: httpx.Timeout | float,
        max_attempts: int,
        backoff_base: float,
        backoff_cap: float,
        max_retry_after: float = 120.0,
        sleep: SleepFn = time.sleep,
        rng: random.Random | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not key.get_secret_value().strip():
            raise ValueError("the fal key is empty: set FAL_KEY")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._key = key
        self._sleep = sleep
        self._waits = Backoff(backoff_base, backoff_cap, max_retry_after, rng or random.Random())
        self._http = httpx.Client(
            transport=transport, timeout=timeout, headers={"User-Agent": USER_AGENT, **(headers or {})}
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _key_auth(self) -> dict[str, str]:
        return {"Authorization": f"Key {self._key.get_secret_value()}"}

    def _retrying(
        self,
        once: Callable[[], T | Retry[T]],
        *,
        what: str,
        exhausted: Callable[[str, int], Exception],
        attempts: int | None = None,
    ) -> T:
        """Call `once` until it returns something other than a Retry, at most `attempts` (and `max_attempts`)
        times; a transport error is a Retry. Between attempts: the wait the answer asked for, else backoff.
        Once no attempt is left: the last Retry's fallback, or `exhausted(problem, attempts)` raised."""
        limit = min(attempts or self.max_attempts, self.max_attempts)
        for attempt in range(1, limit + 1):
            try:
                outcome = once()
            except httpx.TransportError as exc:
                outcome = Retry(f"{type(exc).__name__}: {exc}")
            if not isinstance(outcome, Retry):
                return outcome
            if attempt == limit:
                if outcome.fallback is not None:
                    return outcome.fallback
                raise exhausted(outcome.problem, limit)
            delay = self._waits.delay(attempt) if outcome.delay is None else outcome.delay
            self.logger.info(
                "%s: %s; retrying in %.2f s (attempt %d of %d)", what, outcome.problem, delay, attempt + 1, limit
            )
            self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


def detail_of(response: httpx.Response) -> str:
    """fal's explanation in an error answer (`detail`, `error` or `message`), at most 300 characters."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        return format_detail(body.get("detail") or body.get("error") or body.get("message"))[:300]
    return ""
