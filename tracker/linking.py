"""Which registrations are one trial (pure): registrations in, registration → trial ID out.

Two registrations are the same trial when one names the other (a CTIS record's NCT twin; a
ClinicalTrials.gov record's CTIS number), or when both carry the same EudraCT number (a trial that moved
from EudraCT to CTIS, registered on ClinicalTrials.gov under its EudraCT number). A link is never made
from titles, and never across conflicting identifiers: two registrations of one registry never become one
trial, nor do two sides that carry different numbers of the same scheme (a CTIS record naming NCT-A whose
EudraCT number differs from NCT-A's). Manual decisions win: `link` joins whatever the identifiers say,
`unlink` keeps two registrations apart whatever they say.

The result depends only on the registrations and decisions given, never on the order they arrived in, so
syncing ClinicalTrials.gov then CTIS or CTIS then ClinicalTrials.gov gives the same store. A trial's ID is
its ClinicalTrials.gov registration's ID when it has one (the lowest, after a manual link of two), else
its EU CT number.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from tracker.identifiers import OWN_SCHEME, RegistryId

# Registries in the order their registration stands for a linked trial.
REGISTRY_ORDER = ("ctgov", "ctis")


@dataclass(frozen=True, slots=True)
class RegistrationIds:
    """A registration and the identifiers it carries (its own included)."""

    registration_id: str
    registry: str
    identifiers: frozenset[RegistryId]

    @property
    def own(self) -> RegistryId:
        return RegistryId(OWN_SCHEME.get(self.registry, "nct"), self.registration_id)


@dataclass(frozen=True, slots=True)
class LinkDecision:
    registration_a: str
    registration_b: str
    action: Literal["link", "unlink"]


@dataclass(slots=True)
class _Component:
    members: set[str] = field(default_factory=set)
    registries: set[str] = field(default_factory=set)
    carried: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def absorb(self, other: _Component) -> None:
        self.members |= other.members
        self.registries |= other.registries
        for scheme, values in other.carried.items():
            self.carried[scheme] |= values


def trial_sort_key(registration_id: str, registry: str) -> tuple[int, str]:
    rank = REGISTRY_ORDER.index(registry) if registry in REGISTRY_ORDER else len(REGISTRY_ORDER)
    return rank, registration_id


def link_trials(
    registrations: Iterable[RegistrationIds], decisions: Iterable[LinkDecision] = ()
) -> dict[str, str]:
    """registration ID → trial ID for every registration given."""
    by_id = {item.registration_id: item for item in registrations}
    decisions = [d for d in decisions if d.registration_a in by_id and d.registration_b in by_id]
    kept_apart = {frozenset((d.registration_a, d.registration_b)) for d in decisions if d.action == "unlink"}
    components = {rid: _component(item) for rid, item in by_id.items()}
    parent = {rid: rid for rid in by_id}

    def root(rid: str) -> str:
        while parent[rid] != rid:
            parent[rid] = parent[parent[rid]]
            rid = parent[rid]
        return rid

    def join(a: str, b: str, *, manual: bool) -> None:
        root_a, root_b = root(a), root(b)
        if root_a == root_b:
            return
        first, second = components[root_a], components[root_b]
        if any(frozenset((x, y)) in kept_apart for x in first.members for y in second.members):
            return
        if not manual and _conflict(first, second):
            return
        parent[root_b] = root_a
        first.absorb(second)

    for decision in sorted(decisions, key=lambda d: (d.registration_a, d.registration_b)):
        if decision.action == "link":
            join(decision.registration_a, decision.registration_b, manual=True)
    for a, b in candidate_pairs(by_id.values()):
        join(a, b, manual=False)

    groups: dict[str, list[str]] = defaultdict(list)
    for rid in by_id:
        groups[root(rid)].append(rid)
    trial_of: dict[str, str] = {}
    for members in groups.values():
        trial = min(members, key=lambda rid: trial_sort_key(rid, by_id[rid].registry))
        trial_of.update(dict.fromkeys(members, trial))
    return trial_of


def candidate_pairs(registrations: Iterable[RegistrationIds]) -> list[tuple[str, str]]:
    """Pairs that share an identifier: those where one names the other's own ID first, then the rest;
    each group sorted, so the outcome never depends on input order."""
    items = list(registrations)
    owner = {item.own: item.registration_id for item in items}
    carriers: Mapping[RegistryId, list[str]] = _carriers(items)
    direct: set[tuple[str, str]] = set()
    shared: set[tuple[str, str]] = set()
    for identifier, holders in carriers.items():
        named = owner.get(identifier)
        for i, a in enumerate(holders):
            for b in holders[i + 1 :]:
                pair = (min(a, b), max(a, b))
                (direct if named in pair else shared).add(pair)
    return sorted(direct) + sorted(shared - direct)


def _carriers(items: Iterable[RegistrationIds]) -> dict[RegistryId, list[str]]:
    carriers: dict[RegistryId, list[str]] = defaultdict(list)
    for item in sorted(items, key=lambda i: i.registration_id):
        for identifier in item.identifiers | {item.own}:
            carriers[identifier].append(item.registration_id)
    return carriers


def _component(item: RegistrationIds) -> _Component:
    component = _Component(members={item.registration_id}, registries={item.registry})
    for identifier in item.identifiers | {item.own}:
        component.carried[identifier.scheme].add(identifier.value)
    return component


def _conflict(first: _Component, second: _Component) -> bool:
    """Two registrations of one registry, or different numbers of one scheme on the two sides."""
    if first.registries & second.registries:
        return True
    return any(
        first.carried.get(scheme)
        and second.carried.get(scheme)
        and not first.carried[scheme] & second.carried[scheme]
        for scheme in set(first.carried) | set(second.carried)
    )
