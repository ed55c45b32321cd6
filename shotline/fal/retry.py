"""How the fal clients (queue, storage, platform) wait between attempts of a call worth repeating.

Exponential backoff with ±50 % jitter, capped; a `Retry-After` header (seconds or an HTTP date) wins when
an answer carries one (fal documents none, proxies in front of it may send it). Which answers are worth
another attempt is each client's call; `is_transient_status` is the common part: 408, 429 and 5xx.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx


def is_transient_status(code: int) -> bool:
    return code in (408, 429) or code >= 500


def retry_after_s(response: httpx.Response, cap: float) -> float | None:
    """The wait a `Retry-After` header asks for, at most `cap`; None when there is none (or it is unreadable)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), cap)


@dataclass
class Backoff:
    base: float
    cap: float
    max_retry_after: float = 120.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1`."""
        asked = retry_after_s(response, self.max_retry_after) if response is not None else None
        if asked is not None:
            return asked
        raw = min(self.cap, self.base * 2.0 ** (attempt - 1))
        return min(self.cap, raw * self.rng.uniform(0.5, 1.5))
