"""SHOTLINE_BUDGET_USD: a daily (UTC) cap on generation spend, shared by every process using the store.

    records/budget/<YYYY-MM-DD>.json   {"committed": {id: {...}}, "reserved": {id: {...}}}, amounts as text
    records/budget/<YYYY-MM-DD>.lock   flock'd for every read-modify-write, so concurrent runs never overshoot

A paid submit first `reserve`s its estimated cost; afterwards the reservation is `settle`d (the request was
or may have been billed: it becomes committed spend at the actual cost) or `release`d (nothing was billed).
A reservation whose process died is neither: it keeps counting for its day, which errs on the side of the
cap, since such a request may well have been billed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from shotline.errors import BudgetExceeded
from shotline.fsutil import atomic_write_text
from shotline.pricing import to_cents
from shotline.store import WorkStore

BUDGET_KIND = "budget"


@dataclass(frozen=True)
class Reservation:
    id: str
    day: str
    clip_key: str
    amount: Decimal

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "day": self.day, "clip_key": self.clip_key, "amount": str(self.amount)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reservation:
        return cls(str(data["id"]), str(data["day"]), str(data["clip_key"]), Decimal(str(data["amount"])))


@dataclass(frozen=True)
class DaySpend:
    day: str
    committed: Decimal
    reserved: Decimal
    cap: Decimal | None

    @property
    def total(self) -> Decimal:
        return self.committed + self.reserved


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Budget:
    """The daily cap. `cap_usd=None` records spend but never refuses."""

    def __init__(
        self,
        store: WorkStore,
        cap_usd: Decimal | float | str | None,
        *,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.store = store
        self.cap = None if cap_usd is None else to_cents(cap_usd)
        if self.cap is not None and self.cap < 0:
            raise ValueError(f"SHOTLINE_BUDGET_USD must not be negative, not {cap_usd}")
        self._now = now

    def today(self) -> str:
        return self._now().astimezone(UTC).date().isoformat()

    def path(self, day: str | date) -> Path:
        return self.store.record_path(BUDGET_KIND, str(day))

    def spend(self, day: str | date | None = None) -> DaySpend:
        day = str(day or self.today())
        with self._locked(day) as ledger:
            return self._summary(day, ledger)

    def reserve(self, amount: Decimal | float, clip_key: str, *, label: str | None = None) -> Reservation:
        """Hold `amount` of today's budget for one paid submit, or raise BudgetExceeded."""
        amount = to_cents(amount)
        day = self.today()
        with self._locked(day) as ledger:
            spend = self._summary(day, ledger)
            if self.cap is not None and spend.total + amount > self.cap:
                what = f" for {label}" if label else ""
                raise BudgetExceeded(
                    f"generating clip {clip_key}{what} would cost ${amount} and take today's spend "
                    f"({day}, UTC) over SHOTLINE_BUDGET_USD=${self.cap}: ${spend.committed} spent and "
                    f"${spend.reserved} reserved by requests still running. Nothing was submitted. Raise "
                    f"SHOTLINE_BUDGET_USD or wait for the next UTC day ({self.path(day)})"
                )
            reservation = Reservation(uuid.uuid4().hex, day, clip_key, amount)
            ledger["reserved"][reservation.id] = {
                "clip_key": clip_key,
                "amount": str(amount),
                "at": self._now().isoformat(),
            }
            return reservation

    def settle(self, reservation: Reservation, actual: Decimal | float | None = None) -> None:
        """The request was (or may have been) billed: count `actual` (default: what was reserved) as spent."""
        amount = reservation.amount if actual is None else to_cents(actual)
        with self._locked(reservation.day) as ledger:
            ledger["reserved"].pop(reservation.id, None)
            ledger["committed"][reservation.id] = {
                "clip_key": reservation.clip_key,
                "amount": str(amount),
                "at": self._now().isoformat(),
            }

    def release(self, reservation: Reservation) -> None:
        """Nothing was billed: give the reserved amount back."""
        with self._locked(reservation.day) as ledger:
            ledger["reserved"].pop(reservation.id, None)

    def _summary(self, day: str, ledger: dict[str, Any]) -> DaySpend:
        committed = sum((Decimal(v["amount"]) for v in ledger["committed"].values()), Decimal("0"))
        reserved = sum((Decimal(v["amount"]) for v in ledger["reserved"].values()), Decimal("0"))
        return DaySpend(day, committed, reserved, self.cap)

    @contextlib.contextmanager
    def _locked(self, day: str) -> Iterator[dict[str, Any]]:
        """The day's ledger, read and written back under an exclusive flock."""
        path = self.path(day)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.with_suffix(".lock").open("a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                ledger: dict[str, Any] = {"day": day, "committed": {}, "reserved": {}}
                if path.is_file():
                    ledger.update(json.loads(path.read_text()))
                before = json.dumps(ledger, sort_keys=True)
                yield ledger
                if json.dumps(ledger, sort_keys=True) != before:
                    atomic_write_text(path, json.dumps(ledger, sort_keys=True, indent=2))
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
