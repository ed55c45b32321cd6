"""Leases on clip keys: across every host sharing the database, one worker at a time per clip.

A lease is a row (clip key, owner, expires_at). Taking it is one transaction that inserts the row, or takes
it over once it has expired; its holder renews it from a background thread every third of its length. A
worker that dies stops renewing, and after at most one lease length another host takes the clip over and
resumes its fal request from the ledger. Before anything is paid for, the ledger re-checks the lease in the
same transaction that records the submit (`holds`), so a worker that lost its lease (a long pause, a
partition) can never submit. Lease times are the hosts' clocks: keep them in sync (NTP), as Dagster's own
heartbeats also assume.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shotline.db.engine import Database
from shotline.db.tables import clip_leases
from shotline.errors import GenerationError

DEFAULT_LEASE_S = 60.0
_WAIT_POLL_S = 0.5


class LeaseLost(GenerationError):
    """Another worker took this clip over: this one must stop before paying for anything."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class Lease:
    def __init__(self, clip_key: str, owner: str) -> None:
        self.clip_key = clip_key
        self.owner = owner
        self.lost = threading.Event()

    def holds(self, conn: Connection) -> None:
        """Raise LeaseLost unless this lease is still ours; call inside the transaction that spends money."""
        query = sa.select(clip_leases.c.owner).where(clip_leases.c.clip_key == self.clip_key)
        owner = conn.execute(query.with_for_update()).scalar()
        if owner != self.owner or self.lost.is_set():
            self.lost.set()
            raise LeaseLost(
                f"clip {self.clip_key}: another worker took this clip over (this one was too slow to renew "
                "its lease); stopping before anything is submitted"
            )


class ClipLeases:
    def __init__(
        self, db: Database, *, lease_s: float = DEFAULT_LEASE_S, clock: Callable[[], float] = time.time
    ) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self.db = db
        self.lease_s = lease_s
        self._clock = clock

    @contextlib.contextmanager
    def hold(self, clip_key: str, *, on_wait: Callable[[str], None] | None = None) -> Iterator[Lease]:
        """Hold the clip's lease for the block, waiting while another live worker holds it."""
        lease = Lease(clip_key, uuid.uuid4().hex)
        told = False
        while not self._try_take(lease):
            if on_wait is not None and not told:
                on_wait(f"another worker ({self.holder(clip_key)}) is generating clip {clip_key}; waiting for it")
                told = True
            time.sleep(_WAIT_POLL_S)
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew, args=(lease, stop), name=f"lease-{clip_key[:8]}", daemon=True)
        renewer.start()
        try:
            yield lease
        finally:
            stop.set()
            renewer.join(timeout=5)
            with self.db.begin() as conn:
                conn.execute(
                    sa.delete(clip_leases).where(clip_leases.c.clip_key == clip_key, clip_leases.c.owner == lease.owner)
                )

    def holder(self, clip_key: str) -> str:
        with self.db.begin() as conn:
            row = conn.execute(sa.select(clip_leases).where(clip_leases.c.clip_key == clip_key)).first()
        if row is None:
            return "nobody"
        return f"host {row.host}, pid {row.pid}, since {row.acquired_at}"

    def _try_take(self, lease: Lease) -> bool:
        now = self._clock()
        values = {
            "clip_key": lease.clip_key,
            "owner": lease.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "expires_at": now + self.lease_s,
        }
        with self.db.begin() as conn:
            if self.db.insert_ignoring_duplicates(conn, clip_leases, values):
                return True
            taken = conn.execute(
                sa.update(clip_leases)
                .where(clip_leases.c.clip_key == lease.clip_key, clip_leases.c.expires_at < now)
                .values(**values)
            )
            return bool(taken.rowcount)

    def _renew(self, lease: Lease, stop: threading.Event) -> None:
        while not stop.wait(self.lease_s / 3):
            try:
                with self.db.begin() as conn:
                    renewed = conn.execute(
                        sa.update(clip_leases)
                        .where(clip_leases.c.clip_key == lease.clip_key, clip_leases.c.owner == lease.owner)
                        .values(expires_at=self._clock() + self.lease_s)
                    )
                if not renewed.rowcount:
                    lease.lost.set()
                    return
            except sa.exc.SQLAlchemyError:
                continue  # the database is briefly unreachable: try again; `holds` fences the money anyway
