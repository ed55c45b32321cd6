"""SHOTLINE_BUDGET_USD: a daily (UTC) cap on generation spend, shared by every host using the database.

A paid submit first reserves its estimated cost (in the same transaction that records the submit); its
reservation is later settled (the request was, or may have been, billed: committed at the billed cost) or
released (fal did not bill it). Reserving locks the day's row (`SELECT ... FOR UPDATE` on Postgres,
SQLite's write lock), so concurrent reservations from any number of hosts are serialised and never
overshoot. A reservation whose worker died is neither settled nor released: it keeps counting until its
request is followed to its end by another run, which errs on the side of the cap.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shotline.db.engine import Database
from shotline.db.tables import budget_days, budget_entries
from shotline.errors import BudgetExceeded
from shotline.fal.pricing import to_cents


@dataclass(frozen=True)
class Reservation:
    id: str
    day: str
    clip_key: str
    amount: Decimal


@dataclass(frozen=True)
class DaySpend:
    day: str
    committed: Decimal
    reserved: Decimal
    cap: Decimal | None

    @property
    def total(self) -> Decimal:
        return self.committed + self.reserved

    @property
    def left(self) -> Decimal | None:
        return None if self.cap is None else max(Decimal("0.00"), self.cap - self.total)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Budget:
    """The daily cap. `cap_usd=None` records spend but never refuses."""

    def __init__(
        self,
        db: Database,
        cap_usd: Decimal | float | str | None,
        *,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.db = db
        self.cap = None if cap_usd is None else to_cents(cap_usd)
        if self.cap is not None and self.cap < 0:
            raise ValueError(f"SHOTLINE_BUDGET_USD must not be negative, not {cap_usd}")
        self._now = now

    def today(self) -> str:
        return self._now().astimezone(UTC).date().isoformat()

    def spend(self, day: str | date | None = None) -> DaySpend:
        day = str(day or self.today())
        with self.db.begin() as conn:
            return self._summary(conn, day)

    def check(self, amount: Decimal | float, clip_key: str, *, label: str | None = None) -> None:
        """Raise BudgetExceeded now if `amount` would not fit today (before work that would be wasted; the
        reservation itself decides, atomically)."""
        with self.db.begin() as conn:
            self._refuse_over_cap(conn, self.today(), to_cents(amount), clip_key, label)

    def reserve(
        self,
        amount: Decimal | float,
        clip_key: str,
        *,
        label: str | None = None,
        conn: Connection | None = None,
        enforce: bool = True,
    ) -> Reservation:
        """Hold `amount` of today's budget for one paid submit, or raise BudgetExceeded. `enforce=False`
        records spend fal incurs whatever the cap says (a duplicate request found for a lost submit)."""
        amount = to_cents(amount)
        day = self.today()
        with self._transaction(conn) as tx:
            self.db.insert_ignoring_duplicates(tx, budget_days, {"day": day})
            tx.execute(sa.select(budget_days.c.day).where(budget_days.c.day == day).with_for_update())
            if enforce:
                self._refuse_over_cap(tx, day, amount, clip_key, label)
            reservation = Reservation(uuid.uuid4().hex, day, clip_key, amount)
            tx.execute(
                sa.insert(budget_entries).values(
                    id=reservation.id,
                    day=day,
                    clip_key=clip_key,
                    amount_cents=_cents(amount),
                    state="reserved",
                    at=self._now().isoformat(),
                )
            )
            return reservation

    def settle(
        self, reservation: Reservation | str, actual: Decimal | float | None = None, *, conn: Connection | None = None
    ) -> None:
        """The request was (or may have been) billed: count `actual` (default: what was reserved) as spent."""
        rid = reservation.id if isinstance(reservation, Reservation) else reservation
        values: dict[str, object] = {"state": "committed", "at": self._now().isoformat()}
        if actual is not None:
            values["amount_cents"] = _cents(to_cents(actual))
        with self._transaction(conn) as tx:
            tx.execute(sa.update(budget_entries).where(budget_entries.c.id == rid).values(**values))

    def release(self, reservation: Reservation | str, *, conn: Connection | None = None) -> None:
        """Nothing was billed: give the reserved amount back."""
        rid = reservation.id if isinstance(reservation, Reservation) else reservation
        with self._transaction(conn) as tx:
            tx.execute(
                sa.update(budget_entries)
                .where(budget_entries.c.id == rid)
                .values(state="released", amount_cents=0, at=self._now().isoformat())
            )

    def _refuse_over_cap(self, conn: Connection, day: str, amount: Decimal, clip_key: str, label: str | None) -> None:
        spend = self._summary(conn, day)
        if self.cap is None or spend.total + amount <= self.cap:
            return
        what = f" for {label}" if label else ""
        raise BudgetExceeded(
            f"generating clip {clip_key}{what} would cost ${amount} and take today's spend "
            f"({day}, UTC) over SHOTLINE_BUDGET_USD=${self.cap}: ${spend.committed} spent and "
            f"${spend.reserved} reserved by requests still running, on every host. Nothing was "
            "submitted. Raise SHOTLINE_BUDGET_USD or wait for the next UTC day"
        )

    def _summary(self, conn: Connection, day: str) -> DaySpend:
        totals = dict(
            conn.execute(
                sa.select(budget_entries.c.state, sa.func.coalesce(sa.func.sum(budget_entries.c.amount_cents), 0))
                .where(budget_entries.c.day == day)
                .group_by(budget_entries.c.state)
            ).all()
        )
        return DaySpend(
            day,
            Decimal(int(totals.get("committed", 0))).scaleb(-2),  # whole cents: 1.70, not 1.7
            Decimal(int(totals.get("reserved", 0))).scaleb(-2),
            self.cap,
        )

    @contextmanager
    def _transaction(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
            return
        with self.db.begin() as tx:
            yield tx


def _cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())
