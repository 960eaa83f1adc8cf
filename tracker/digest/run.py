"""One digest round: for each subscription, build, render and deliver its digest, and keep the sent ledger.

Period: from `--since` or, by default, the end of the subscription's last digest (first time: when it
subscribed) up to `--until` or now. Baseline events (the first load of a fresh database) never count.
A trial belongs to a subscriber's digest when it matches their filter now or matched it when the period
began (rebuilt from the old values of the period's events), so a trial that leaves the filter by
completing, stopping or posting results is reported, not silently dropped.

The sent ledger (`digest_deliveries` + `digest_sent_events`) is written after a message has been handed to
the SMTP server, in one transaction with the subscription's new `last_digest_until`: an event that reached a
subscriber is never sent to them again, even when a period is re-run with explicit dates. A failed send
leaves the ledger alone, so the next round retries the same events.

Two rounds never send the same digest: a sending round holds the database's "digest" lease, and before
sending each digest it claims the subscription in `digest_claims` (one row per subscription, with the
period start and the database server's time), re-reads the subscription's period start, and drops the
claim in the transaction that records the outcome. A round that finds a live claim skips that
subscription. A claim whose round died is taken over after `CLAIM_TTL`: if the round died between the
SMTP server accepting the message and the ledger recording it, that digest is sent a second time.

A dry run (`EmlWriter`) writes messages to files and records nothing: it can be repeated freely and never
makes the real digest skip anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

import pandas as pd
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tracker import query
from tracker.config import Settings
from tracker.db.models import DigestClaim, DigestDelivery, DigestSentEvent, Subscription
from tracker.db.session import batched, transaction, utcnow
from tracker.digest.build import DigestContent, build_digest
from tracker.digest.render import render_message
from tracker.digest.send import Sender
from tracker.errors import ConfigError, TrackerError
from tracker.filters import apply_filter
from tracker.locks import DIGEST, Lease, default_owner, server_now
from tracker.subscriptions import SubscriptionError, SubscriptionInfo, list_subscriptions

log = logging.getLogger(__name__)

Status = Literal["sent", "dry_run", "empty", "skipped", "failed"]

# How long a claim protects a digest being sent; a round that died holding one is taken over after this.
CLAIM_TTL = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What happened for one subscription: sent, dry_run (written to a file), empty (nothing sent),
    skipped (a concurrent round is sending it), failed."""

    subscription_id: int
    email: str
    status: Status
    period_start: datetime
    period_end: datetime
    trial_count: int
    event_count: int
    detail: str | None = None  # message id, .eml path or error

    def line(self) -> str:
        period = f"{self.period_start:%Y-%m-%d %H:%M} to {self.period_end:%Y-%m-%d %H:%M}"
        counts = f"{self.trial_count} trials, {self.event_count} changes"
        detail = f": {self.detail}" if self.detail and self.status in ("failed", "dry_run", "skipped") else ""
        return f"#{self.subscription_id} {self.email} [{period}] {counts} -> {self.status}{detail}"


@dataclass(frozen=True, slots=True)
class DigestReport:
    outcomes: tuple[DeliveryOutcome, ...]

    @property
    def failed(self) -> tuple[DeliveryOutcome, ...]:
        return tuple(outcome for outcome in self.outcomes if outcome.status == "failed")

    def count(self, status: Status) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    def summary(self) -> str:
        statuses: tuple[Status, ...] = ("sent", "dry_run", "empty", "failed")
        if self.count("skipped"):
            statuses = ("sent", "dry_run", "empty", "skipped", "failed")
        parts = [f"{self.count(s)} {s.replace('_', ' ')}" for s in statuses]
        return f"digest: {len(self.outcomes)} subscriptions: " + ", ".join(parts)


def dashboard_link(settings: Settings, info: SubscriptionInfo) -> str | None:
    if not settings.public_url:
        return None
    params = info.trial_filter.to_query_params()
    return settings.public_url.rstrip("/") + "/" + (f"?{urlencode(params, doseq=True)}" if params else "")


def unsubscribe_hint(settings: Settings, info: SubscriptionInfo) -> str:
    # Replies reach no program: the person who runs this tracker removes subscriptions by hand.
    return (
        f"ask whoever runs this tracker (it sends from {settings.mail_from}) to run "
        f"`tracker subscribe remove {info.id}`; replies to this message are not read"
    )


def run_digests(
    engine: Engine,
    settings: Settings,
    sender: Sender,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    dry_run: bool = False,
    subscription_ids: Sequence[int] | None = None,
    now: datetime | None = None,
) -> DigestReport:
    """Build and deliver every subscription's digest; one failure does not stop the others.

    Datetimes are naive UTC. `dry_run` must go with a sender that does not send (`EmlWriter`); the
    ledger is then left untouched. A sending round holds the "digest" lease (`LeaseHeldError` when another
    round holds it).
    """
    if dry_run:
        return _run_digests(
            engine, settings, sender, since=since, until=until, dry_run=True, ids=subscription_ids, now=now
        )
    with Lease(engine, DIGEST, purpose="digest --send"):
        return _run_digests(
            engine, settings, sender, since=since, until=until, dry_run=False, ids=subscription_ids, now=now
        )


def _run_digests(
    engine: Engine,
    settings: Settings,
    sender: Sender,
    *,
    since: datetime | None,
    until: datetime | None,
    dry_run: bool,
    ids: Sequence[int] | None,
    now: datetime | None,
) -> DigestReport:
    subscription_ids = ids
    until = until or now or utcnow()
    if since is not None and since >= until:
        raise ConfigError(
            f"empty digest period: since {since:%Y-%m-%d %H:%M} is not before until {until:%Y-%m-%d %H:%M}"
        )
    subscriptions = list_subscriptions(engine, ids=list(subscription_ids) if subscription_ids else None)
    unknown = sorted(set(subscription_ids or ()) - {info.id for info in subscriptions})
    if unknown:
        raise SubscriptionError(
            f"no subscription with ID {', '.join(map(str, unknown))} (see `tracker subscribe list`)"
        )
    if not subscriptions:
        return DigestReport(())
    trials = query.load_trial_frame(engine)
    periods: dict[tuple[datetime, datetime], PeriodChanges] = {}
    outcomes = [
        _deliver_one(
            engine, settings, sender, info, trials, since=since, until=until, dry_run=dry_run, periods=periods
        )
        for info in subscriptions
    ]
    report = DigestReport(tuple(outcomes))
    log.info("%s", report.summary())
    return report


@dataclass(frozen=True, slots=True)
class PeriodChanges:
    """The change events of one period (baseline left out) and, for the trials those events moved, their
    rows as they were when the period began. Shared by every subscription with the same period."""

    events: pd.DataFrame
    before: pd.DataFrame
    # Registry change events found in the period: news (not baseline), and not already a polled event.
    registry: pd.DataFrame


def period_changes(engine: Engine, trials: pd.DataFrame, start: datetime, until: datetime) -> PeriodChanges:
    events = query.change_events_frame(engine, since=start, until=until, include_baseline=False)
    moves = events[events["kind"].isin(_OLD_VALUE_COLUMNS) & events["field"].isin(_REBUILT_FIELDS)]
    moved = trials[trials["registration_id"].isin(set(moves["registration_id"]))]
    registry = query.registry_events_frame(
        engine, found_since=start, found_until=until, include_baseline=False, include_polled=False
    )
    return PeriodChanges(events=events, before=_state_before(moved, moves), registry=registry)


def build_for_subscription(
    engine: Engine,
    settings: Settings,
    info: SubscriptionInfo,
    trials: pd.DataFrame,
    *,
    since: datetime | None,
    until: datetime,
    periods: dict[tuple[datetime, datetime], PeriodChanges] | None = None,
) -> DigestContent:
    """The digest content of one subscription for its period (reads the events and the ledger).

    A trial is in the digest when it matches the filter now or matched it when the period began: a
    subscriber to recruiting trials must hear that one completed or was terminated, although it no longer
    matches. `periods` caches the period's events across subscriptions.
    """
    start = since or info.digest_start
    periods = {} if periods is None else periods
    if (start, until) not in periods:
        periods[start, until] = period_changes(engine, trials, start, until)
    period = periods[start, until]
    # A trial the registry search stopped returning is news for its subscribers, not something to hide.
    trial_filter = info.trial_filter.with_changes(include_removed=True)
    wanted = set(apply_filter(trials, trial_filter)["registration_id"])
    wanted |= set(apply_filter(period.before, trial_filter)["registration_id"])
    events = period.events[period.events["registration_id"].isin(wanted)]
    registry = period.registry[period.registry["registration_id"].isin(wanted)]
    event_ids = [int(i) for i in events["id"]]
    # Only the rows of trials with events: converting every matching row costs more than the rest together.
    changed = trials[
        trials["registration_id"].isin(set(events["registration_id"]) | set(registry["registration_id"]))
    ]
    return build_digest(
        events=events.to_dict("records"),
        trials={row["registration_id"]: row for row in changed.to_dict("records")},
        recipient=info.email,
        period_start=start,
        period_end=until,
        filter_description=info.trial_filter.describe(),
        max_per_section=settings.digest_max_per_section,
        already_sent=_already_sent(engine, info.id, event_ids),
        subscription_id=info.id,
        subscription_name=info.name,
        dashboard_url=dashboard_link(settings, info),
        unsubscribe_hint=unsubscribe_hint(settings, info),
        registry_events=registry.to_dict("records"),
    )


# Event kind → the trial-frame column its old value restores, and how.
_OLD_VALUE_COLUMNS: dict[str, tuple[str, Callable[[pd.Series], pd.Series]]] = {
    "status": ("overall_status", lambda old: old.where(old.notna() & (old != ""), None)),
    "phase": ("phases", lambda old: old.map(lambda text: tuple(text.split(", ")) if text else ())),
    "start_date": ("start_year", lambda old: pd.to_numeric(old.str[:4], errors="coerce").astype("Int64")),
    "results_posted": ("has_results", lambda old: pd.Series(False, index=old.index)),
}
_REBUILT_FIELDS = ("overall_status", "phases", "start_date", "results_first_posted")


def _state_before(trials: pd.DataFrame, moves: pd.DataFrame) -> pd.DataFrame:
    """The trial rows as they were before the period's `moves` (the old value of each trial's first event
    of a kind). A trial first seen in the period has no old values and keeps its current state."""
    earliest = moves.sort_values(["detected_at", "id"]).drop_duplicates(["registration_id", "kind"])
    before = trials.copy()
    for kind, (column, restore) in _OLD_VALUE_COLUMNS.items():
        old = earliest.loc[earliest["kind"] == kind].set_index("registration_id")["old_value"]
        if old.empty:
            continue
        restored = restore(old)
        hit = before["registration_id"].isin(restored.index)
        values = before.loc[hit, "registration_id"].map(restored)
        before.loc[hit, column] = values
    return before


def _deliver_one(
    engine: Engine,
    settings: Settings,
    sender: Sender,
    info: SubscriptionInfo,
    trials: pd.DataFrame,
    *,
    since: datetime | None,
    until: datetime,
    dry_run: bool,
    periods: dict[tuple[datetime, datetime], PeriodChanges],
) -> DeliveryOutcome:
    start = since or info.digest_start

    def outcome(
        status: Status,
        content: DigestContent | None = None,
        detail: str | None = None,
        *,
        period_start: datetime | None = None,
    ) -> DeliveryOutcome:
        return DeliveryOutcome(
            subscription_id=info.id,
            email=info.email,
            status=status,
            period_start=period_start or start,
            period_end=until,
            trial_count=content.trial_count if content else 0,
            event_count=content.event_count if content else 0,
            detail=detail,
        )

    if info.filter_problems:
        problem = f"outdated filter ({'; '.join(info.filter_problems)}); subscribe again with a valid filter"
        log.error("digest for subscription %d (%s) skipped: %s", info.id, info.email, problem)
        return outcome("failed", detail=problem)
    if dry_run:
        return _build_and_send(engine, settings, sender, info, trials, start, until, True, periods, outcome)
    holder = _claim(engine, info.id, start)
    if holder is not None:
        log.warning("digest for subscription %d skipped: claimed by %s", info.id, holder)
        return outcome("skipped", detail=f"a concurrent digest round is sending it ({holder})")
    sent = False  # once the message is out, only the ledger's transaction may drop the claim
    try:
        if since is None:
            # Re-read after claiming: a round that finished just before us has moved the period on.
            start = _digest_start(engine, info.id) or start
        sent, result = _build_and_send(
            engine, settings, sender, info, trials, start, until, False, periods, outcome
        )
        return result
    finally:
        if not sent:
            _release_claim(engine, info.id)


def _build_and_send(
    engine: Engine,
    settings: Settings,
    sender: Sender,
    info: SubscriptionInfo,
    trials: pd.DataFrame,
    start: datetime,
    until: datetime,
    dry_run: bool,
    periods: dict[tuple[datetime, datetime], PeriodChanges],
    outcome: Callable[..., DeliveryOutcome],
) -> Any:
    """Build, render and deliver one digest. A sending round gets (whether it reached the server and the
    ledger recorded it, outcome); a dry run gets the outcome alone."""

    def done(result: DeliveryOutcome, recorded: bool = False) -> Any:
        return result if dry_run else (recorded, result)

    if start >= until:
        # Already covered up to `until` (e.g. run twice in a row): nothing new can be in the period.
        return done(outcome("empty", period_start=start))
    content: DigestContent | None = None
    try:
        content = build_for_subscription(
            engine, settings, info, trials, since=start, until=until, periods=periods
        )
        if content.is_empty and not settings.digest_send_empty:
            if not dry_run:
                _record(engine, info, content, status="empty", message_ref=None)
            return done(outcome("empty", content, period_start=start), recorded=True)
        message = render_message(content, sender=settings.mail_from)
        reference = sender.send(message, key=f"subscription-{info.id}")
    except (TrackerError, ValueError, UnicodeError) as exc:
        # ValueError/UnicodeError: text one message cannot carry (e.g. in a header) fails that digest only.
        log.error("digest for subscription %d (%s) failed: %s", info.id, info.email, exc)
        if not dry_run:
            _record_failure(engine, info, start, until, str(exc))
        # The counts of `content` (when it was built) say what did not reach them.
        return done(outcome("failed", content, detail=str(exc), period_start=start), recorded=True)
    if dry_run:
        return outcome("dry_run", content, reference, period_start=start)
    # From here on the message is out: the claim stays until the ledger says so (see the module docstring).
    _record(engine, info, content, status="sent", message_ref=reference)
    return True, outcome("sent", content, reference, period_start=start)


def _claim(engine: Engine, subscription_id: int, period_start: datetime) -> str | None:
    """Claim a subscription for this round; None when claimed, else who holds the live claim."""
    owner = default_owner()
    try:
        with transaction(engine) as session:
            now = server_now(session)
            session.add(
                DigestClaim(
                    subscription_id=subscription_id, period_start=period_start, owner=owner, claimed_at=now
                )
            )
        return None
    except IntegrityError:
        pass
    with transaction(engine) as session:
        row = session.get(DigestClaim, subscription_id)
        if row is None:  # released meanwhile
            return _claim(engine, subscription_id, period_start)
        now = server_now(session)
        if row.claimed_at > now - CLAIM_TTL:
            return f"{row.owner} since {row.claimed_at:%Y-%m-%d %H:%M:%S} UTC"
        log.warning(
            "subscription %d: taking over the claim %s left at %s; if that round died after sending, "
            "this digest reaches the subscriber twice",
            subscription_id,
            row.owner,
            row.claimed_at,
        )
        taken = session.execute(
            update(DigestClaim)
            .where(DigestClaim.subscription_id == subscription_id, DigestClaim.claimed_at == row.claimed_at)
            .values(owner=owner, claimed_at=now, period_start=period_start)
            .execution_options(synchronize_session=False)
        ).rowcount
        return None if taken == 1 else "another digest round"


def _release_claim(engine: Engine, subscription_id: int, session: Session | None = None) -> None:
    statement = delete(DigestClaim).where(DigestClaim.subscription_id == subscription_id)
    if session is not None:
        session.execute(statement)
        return
    with transaction(engine) as own:
        own.execute(statement)


def _digest_start(engine: Engine, subscription_id: int) -> datetime | None:
    with transaction(engine) as session:
        row = session.get(Subscription, subscription_id)
        return None if row is None else (row.last_digest_until or row.created_at)


def _already_sent(engine: Engine, subscription_id: int, event_ids: Collection[int]) -> set[int]:
    sent: set[int] = set()
    with transaction(engine) as session:
        for chunk in batched(sorted(event_ids)):
            sent.update(
                session.scalars(
                    select(DigestSentEvent.change_event_id).where(
                        DigestSentEvent.subscription_id == subscription_id,
                        DigestSentEvent.change_event_id.in_(chunk),
                    )
                )
            )
    return sent


def _record(
    engine: Engine, info: SubscriptionInfo, content: DigestContent, *, status: Status, message_ref: str | None
) -> None:
    """The ledger entry, the events it covered and the subscription's new period start, in one transaction."""
    try:
        with transaction(engine) as session:
            delivery = DigestDelivery(
                subscription_id=info.id,
                period_start=content.period_start,
                period_end=content.period_end,
                sent_at=utcnow(),
                event_count=content.event_count,
                trial_count=content.trial_count,
                message_id=(message_ref or None) and message_ref[:300],
                status=status,
            )
            session.add(delivery)
            session.flush()
            rows: list[dict[str, Any]] = [
                {"subscription_id": info.id, "change_event_id": event_id, "delivery_id": delivery.id}
                for event_id in content.event_ids
            ]
            if rows:
                session.execute(insert(DigestSentEvent), rows)
            _advance(session, info, content.period_end)
            _release_claim(engine, info.id, session)
    except IntegrityError:
        # Another digest round recorded the same events first (two rounds at once): theirs stands.
        log.warning("subscription %d: events already in the ledger; recorded by a concurrent round", info.id)
        _release_claim(engine, info.id)


def _record_failure(
    engine: Engine, info: SubscriptionInfo, start: datetime, end: datetime, error: str
) -> None:
    with transaction(engine) as session:
        session.add(
            DigestDelivery(
                subscription_id=info.id,
                period_start=start,
                period_end=end,
                sent_at=utcnow(),
                status="failed",
                error=error,
            )
        )
        _release_claim(engine, info.id, session)


def _advance(session: Any, info: SubscriptionInfo, until: datetime) -> None:
    """Move the subscription's period start forward (never back, even after a re-run of an old period)."""
    session.execute(
        update(Subscription)
        .where(
            Subscription.id == info.id,
            (Subscription.last_digest_until.is_(None)) | (Subscription.last_digest_until < until),
        )
        .values(last_digest_until=until)
    )
