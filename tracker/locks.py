"""Named leases in the `locks` table: at most one holder per name per database, on SQLite and Postgres alike.

A holder renews its lease by heartbeat. A lease whose heartbeat is older than its time-to-live belongs to
a holder that crashed or hung, and the next process may take it over; so a killed scheduler never blocks
the database for longer than the time-to-live.

Taking a lease is one of two atomic statements: an INSERT (the primary key refuses a second row) or,
for an expired lease, an UPDATE guarded by the heartbeat it read (so two takers cannot both win).

Every time a lease stores or compares is the database server's clock (Postgres `clock_timestamp()`,
SQLite the clock of the one host its file lives on), never the caller's: a host whose clock runs ahead
can neither take a live lease over nor, once dead, block a takeover past the time-to-live.

Writers take the lease "ingest" (sync, import, classify --all) or "digest" (digest --send) for the length
of the command, with `purpose` saying which, so a second writer is told what it waits for.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy import Engine, delete, insert, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tracker.db.models import Lock
from tracker.db.session import transaction
from tracker.errors import TrackerError

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 90.0
INGEST = "ingest"  # sync, import, classify --all: one writer of studies, events and labels at a time
DIGEST = "digest"  # digest --send
HISTORY = "history"  # history backfills: one walk of the registry's version history at a time


class LeaseHeldError(TrackerError):
    """Another live process holds the lease."""


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    name: str
    owner: str
    acquired_at: datetime
    heartbeat_at: datetime
    purpose: str | None = None


def server_now(session: Session) -> datetime:
    """The database server's clock, as naive UTC like every stored time."""
    if session.get_bind().dialect.name == "postgresql":
        return session.scalar(text("SELECT CAST(timezone('UTC', clock_timestamp()) AS timestamp)"))
    return datetime.fromisoformat(session.scalar(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")))


def died_here(owner: str) -> bool:
    """True when `owner` names a process on this host that no longer exists (e.g. a killed sync), so its
    lease need not wait out the time-to-live."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, but not ours to signal
        return False
    return False


def default_owner() -> str:
    """host:pid, so the message names the process to look for."""
    return f"{socket.gethostname()}:{os.getpid()}"


def current_holder(engine: Engine, name: str) -> LeaseHolder | None:
    with transaction(engine) as session:
        row = session.get(Lock, name)
        if row is None:
            return None
        return LeaseHolder(row.name, row.owner, row.acquired_at, row.heartbeat_at, row.purpose)


def try_acquire(
    engine: Engine, name: str, owner: str, *, ttl_seconds: float, purpose: str | None = None
) -> LeaseHolder | None:
    """Take the lease and return None, or return the live holder that keeps us from taking it."""
    try:
        with transaction(engine) as session:
            now = server_now(session)
            session.execute(
                insert(Lock).values(
                    name=name, owner=owner, acquired_at=now, heartbeat_at=now, purpose=purpose
                )
            )
        return None
    except IntegrityError:
        pass  # a row exists: it is ours, stale, or live
    with transaction(engine) as session:
        row = session.get(Lock, name)
        if row is None:  # released between our two statements: try once more
            return try_acquire(engine, name, owner, ttl_seconds=ttl_seconds, purpose=purpose)
        holder = LeaseHolder(row.name, row.owner, row.acquired_at, row.heartbeat_at, row.purpose)
        now = server_now(session)
        live = holder.heartbeat_at > now - timedelta(seconds=ttl_seconds) and not died_here(holder.owner)
        if holder.owner != owner and live:
            return holder
        taken = session.execute(
            update(Lock)
            .where(Lock.name == name, Lock.owner == holder.owner, Lock.heartbeat_at == holder.heartbeat_at)
            .values(owner=owner, acquired_at=now, heartbeat_at=now, purpose=purpose)
            .execution_options(synchronize_session=False)
        ).rowcount
    if taken == 1:
        if holder.owner != owner:
            log.warning(
                "took over lease %r from %s (no heartbeat since %s)", name, holder.owner, holder.heartbeat_at
            )
        return None
    return current_holder(engine, name) or holder


def heartbeat_age(engine: Engine, holder: LeaseHolder) -> float:
    """Seconds since the holder's last heartbeat, by the database server's clock."""
    with transaction(engine) as session:
        return max(0.0, (server_now(session) - holder.heartbeat_at).total_seconds())


def renew(engine: Engine, name: str, owner: str) -> bool:
    """Refresh the heartbeat; False when the lease is no longer ours (it expired and was taken over)."""
    with transaction(engine) as session:
        result = session.execute(
            update(Lock)
            .where(Lock.name == name, Lock.owner == owner)
            .values(heartbeat_at=server_now(session))
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


def release(engine: Engine, name: str, owner: str) -> None:
    with transaction(engine) as session:
        session.execute(delete(Lock).where(Lock.name == name, Lock.owner == owner))


class Lease:
    """Hold a named lease for the life of a `with` block, renewing it from a background thread.

    `lost` is set when a heartbeat finds the lease taken over (this process was stalled past the TTL);
    the holder should then stop what it is doing.
    """

    def __init__(
        self,
        engine: Engine,
        name: str,
        *,
        purpose: str | None = None,
        owner: str | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        heartbeat_seconds: float | None = None,
    ) -> None:
        self.engine = engine
        self.name = name
        self.purpose = purpose or name
        self.owner = owner or default_owner()
        self.ttl_seconds = ttl_seconds
        self.heartbeat_seconds = heartbeat_seconds or ttl_seconds / 3
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        holder = try_acquire(
            self.engine, self.name, self.owner, ttl_seconds=self.ttl_seconds, purpose=self.purpose
        )
        if holder is not None:
            age = int(heartbeat_age(self.engine, holder))
            raise LeaseHeldError(
                f"another {holder.purpose or holder.name} is running (owner {holder.owner} since "
                f"{holder.acquired_at:%Y-%m-%d %H:%M:%S} UTC, last heartbeat {age}s ago); wait for it to "
                f"finish, or {int(self.ttl_seconds)}s after it died for its lease to expire"
            )
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.name}", daemon=True)
        self._thread.start()
        log.debug("holding lease %r as %s", self.name, self.owner)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                still_ours = renew(self.engine, self.name, self.owner)
            except TrackerError as exc:  # a database hiccup: try again at the next beat
                log.warning("lease %r heartbeat failed: %s", self.name, exc)
                continue
            if not still_ours:
                log.error("lease %r was taken over by another process", self.name)
                self.lost.set()
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if not self.lost.is_set():
            release(self.engine, self.name, self.owner)
            log.debug("released lease %r", self.name)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
