"""Keeps `studies.trial_id` right: finds the registrations around the ones that landed, links them
(`tracker.linking`, pure) and writes the trial IDs that moved. Runs in the caller's transaction, so a
page lands already linked; manual decisions live in `registration_links`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from typing import Any, Literal

from sqlalchemy import Engine, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from tracker.db.models import RegistrationIdentifier, RegistrationLink, Study
from tracker.db.session import batched, transaction, utcnow
from tracker.identifiers import RegistryId
from tracker.linking import LinkDecision, RegistrationIds, link_trials


def relink(session: Session, registration_ids: Collection[str]) -> int:
    """Re-link every trial the given registrations belong to; returns how many rows changed trial."""
    if not registration_ids:
        return 0
    members, identifiers = _neighbourhood(session, registration_ids)
    registries = _registries(session, members)
    registrations = [
        RegistrationIds(rid, registries[rid], frozenset(identifiers.get(rid, ()))) for rid in registries
    ]
    decisions = _decisions(session, members)
    trial_of = link_trials(registrations, decisions)
    current = _current_trials(session, trial_of)
    moved = [{"b_id": rid, "trial_id": trial} for rid, trial in trial_of.items() if current.get(rid) != trial]
    if moved:
        statement = update(Study.__table__).where(Study.__table__.c.registration_id == bindparam("b_id"))
        session.connection().execute(statement.values(trial_id=bindparam("trial_id")), moved)
    return len(moved)


def record_decision(
    engine: Engine, registration_a: str, registration_b: str, action: Literal["link", "unlink"], note: str
) -> dict[str, str]:
    """Store a manual link or unlink (replacing an earlier decision on the pair) and re-link around it.

    Returns the trial ID of each of the two that is stored (a decision may name one not stored yet).
    """
    a, b = sorted((registration_a, registration_b))
    with transaction(engine) as session:
        session.execute(
            delete(RegistrationLink).where(
                RegistrationLink.registration_a == a, RegistrationLink.registration_b == b
            )
        )
        session.add(
            RegistrationLink(
                registration_a=a, registration_b=b, action=action, note=note, created_at=utcnow()
            )
        )
        session.flush()
        relink(session, [a, b])
        rows = session.execute(
            select(Study.registration_id, Study.trial_id).where(Study.registration_id.in_([a, b]))
        )
        return {rid: trial or rid for rid, trial in rows}


def _neighbourhood(session: Session, seeds: Iterable[str]) -> tuple[set[str], dict[str, set[RegistryId]]]:
    """The registrations reachable from `seeds` through shared identifiers or manual decisions, and the
    identifiers of each: linking is decided over this closed set, so the result never depends on which
    registration of a trial happened to land last."""
    members: set[str] = set()
    identifiers: dict[str, set[RegistryId]] = defaultdict(set)
    looked_up: set[str] = set()
    frontier = set(seeds)
    while frontier:
        members |= frontier
        values: set[str] = set()
        for chunk in batched(sorted(frontier)):
            rows = session.execute(
                select(
                    RegistrationIdentifier.registration_id,
                    RegistrationIdentifier.scheme,
                    RegistrationIdentifier.value,
                ).where(RegistrationIdentifier.registration_id.in_(chunk))
            )
            for rid, scheme, value in rows:
                identifiers[rid].add(RegistryId(scheme, value))
                values.add(value)
        reached: set[str] = set()
        for chunk in batched(sorted(values - looked_up)):
            reached.update(
                session.scalars(
                    select(RegistrationIdentifier.registration_id).where(
                        RegistrationIdentifier.value.in_(chunk)
                    )
                )
            )
        looked_up |= values
        reached.update(_decision_partners(session, frontier))
        frontier = reached - members
    return members, identifiers


def _decision_partners(session: Session, ids: Collection[str]) -> set[str]:
    partners: set[str] = set()
    for chunk in batched(sorted(ids)):
        rows = session.execute(
            select(RegistrationLink.registration_a, RegistrationLink.registration_b).where(
                or_(RegistrationLink.registration_a.in_(chunk), RegistrationLink.registration_b.in_(chunk))
            )
        )
        for a, b in rows:
            partners.update((a, b))
    return partners


def _decisions(session: Session, members: Collection[str]) -> list[LinkDecision]:
    decisions: list[LinkDecision] = []
    for chunk in batched(sorted(members)):
        rows = session.execute(
            select(
                RegistrationLink.registration_a, RegistrationLink.registration_b, RegistrationLink.action
            ).where(RegistrationLink.registration_a.in_(chunk))
        )
        decisions.extend(LinkDecision(a, b, action) for a, b, action in rows)  # type: ignore[arg-type]
    return decisions


def _registries(session: Session, ids: Collection[str]) -> dict[str, str]:
    """Registry of each stored registration among `ids` (a decision may name one not stored yet)."""
    return study_values(session, ids, Study.registry_name)


def _current_trials(session: Session, ids: Collection[str]) -> dict[str, str | None]:
    return study_values(session, ids, Study.trial_id)


def study_values(session: Session, ids: Collection[str], column: Any) -> dict[str, Any]:
    """registration ID → `column` of `studies`, for the stored registrations among `ids`."""
    found: dict[str, Any] = {}
    for chunk in batched(sorted(ids)):
        rows = session.execute(select(Study.registration_id, column).where(Study.registration_id.in_(chunk)))
        found.update((registration_id, value) for registration_id, value in rows)
    return found
