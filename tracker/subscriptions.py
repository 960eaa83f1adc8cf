"""Digest subscriptions: an email address, a trial filter (stored as `TrialFilter.to_dict()`) and a name.

A subscription's digest period starts where its last digest ended (`last_digest_until`), or, the first
time, when it subscribed: so nobody misses or repeats a week, and nobody gets the history before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import ColumnElement, Engine, delete, func, select

from tracker.db.models import Subscription
from tracker.db.session import one_line, transaction, utcnow
from tracker.errors import FilterError, TrackerError
from tracker.filters import TrialFilter


class SubscriptionError(TrackerError):
    """A bad address, or a subscription that does not exist."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    id: int
    email: str
    name: str | None
    trial_filter: TrialFilter
    created_at: datetime
    last_digest_until: datetime | None
    # Stored filter values the current taxonomy no longer knows (e.g. a renamed key); such a subscription
    # gets no digest until it is renewed, rather than a digest for a wider filter than was asked for.
    filter_problems: tuple[str, ...] = ()

    @property
    def digest_start(self) -> datetime:
        """Where the next digest's period starts by default."""
        return self.last_digest_until or self.created_at


@dataclass(frozen=True, slots=True)
class AddOutcome:
    subscription: SubscriptionInfo
    created: bool  # False: the same address already had the same filter


def normalise_email(address: str) -> str:
    """The normalised address, or SubscriptionError saying what is wrong with it (no DNS lookups)."""
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise SubscriptionError(f"invalid email address {address!r}: {exc}") from None


def _same_address(address: str) -> ColumnElement[bool]:
    """Addresses match ignoring case: mail systems treat Ana@ and ana@ as one mailbox in practice."""
    return func.lower(Subscription.email) == address.lower()


def _info(row: Subscription) -> SubscriptionInfo:
    stored = row.filters or {}
    try:
        trial_filter, problems = TrialFilter.from_dict(stored), []
    except FilterError:
        trial_filter, problems = TrialFilter.from_query_params(stored)
    return SubscriptionInfo(
        id=row.id,
        email=row.email,
        name=row.name,
        trial_filter=trial_filter,
        created_at=row.created_at,
        last_digest_until=row.last_digest_until,
        filter_problems=tuple(problems),
    )


def _header_safe(name: str | None) -> str | None:
    # The name goes into the digest's Subject header, where a line break is refused.
    return (one_line(name) or None) if name else None


def add_subscription(
    engine: Engine,
    email: str,
    trial_filter: TrialFilter,
    *,
    name: str | None = None,
    now: datetime | None = None,
) -> AddOutcome:
    """Subscribe an address to a filter; subscribing again to the same filter changes nothing."""
    address = normalise_email(email)
    filters: dict[str, Any] = trial_filter.validate().to_dict()
    with transaction(engine) as session:
        for row in session.scalars(select(Subscription).where(_same_address(address))):
            if _same_filter(row.filters or {}, filters):
                return AddOutcome(_info(row), created=False)
        row = Subscription(
            email=address, name=_header_safe(name), filters=filters, created_at=now or utcnow()
        )
        session.add(row)
        session.flush()
        return AddOutcome(_info(row), created=True)


def _same_filter(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Equal filters, whatever the order of the values in a field (`--phase PHASE2,PHASE3` is
    `--phase PHASE3,PHASE2`) or repeats in it."""

    def canonical(filters: dict[str, Any]) -> dict[str, Any]:
        return {
            name: sorted(set(value)) if isinstance(value, list) else value for name, value in filters.items()
        }

    return canonical(stored) == canonical(wanted)


def list_subscriptions(engine: Engine, *, ids: list[int] | None = None) -> list[SubscriptionInfo]:
    statement = select(Subscription).order_by(Subscription.id)
    if ids is not None:
        statement = statement.where(Subscription.id.in_(ids))
    with transaction(engine) as session:
        return [_info(row) for row in session.scalars(statement)]


def remove_subscriptions(engine: Engine, email_or_id: str) -> list[SubscriptionInfo]:
    """Remove one subscription by ID, or every subscription of an address; the ledger rows go with them."""
    target = email_or_id.strip()
    with transaction(engine) as session:
        if target.isdigit():
            condition = Subscription.id == int(target)
        else:
            condition = _same_address(normalise_email(target))
        rows = [_info(row) for row in session.scalars(select(Subscription).where(condition))]
        if not rows:
            raise SubscriptionError(f"no subscription matches {target!r} (see `tracker subscribe list`)")
        session.execute(delete(Subscription).where(condition))
    return rows
