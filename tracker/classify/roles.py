"""Arm roles where the registry gives no arm groups: read from the titles and the interventions' own words.

Pure. The registry's arm groups (EXPERIMENTAL / ACTIVE_COMPARATOR) settle the role when present; without
them, a title that compares ("fenebrutinib compared with ocrelizumab", "X versus Y", "X vs. Y",
"an interferon beta-1a-controlled study") names the comparator after the comparison word or before
"-controlled", and an intervention named or described as the comparator ("Active comparator:
teriflunomide", "reference product") is one. A placebo-controlled title names what is investigational.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from tracker.classify.dictionary import Dictionary, normalise
from tracker.classify.model import Evidence, Role
from tracker.ctgov.parse import Intervention

TITLE_FIELDS = ("brief_title", "official_title")

# "X versus Y", "X vs. Y", "X compared with/to Y", "X in comparison with Y", "X against Y", "X or Y?" is
# left out: it names alternatives, not a comparator.
_COMPARISON = re.compile(
    r"\b(?:(?<!comparing )(?<!compare )versus|vs\.?|v\.|compared (?:with|to)|in comparison (?:with|to)"
    r"|head[\s-]to[\s-]head (?:with|against)|against)\s+"
)
# "comparing X with Y", "to compare X to Y", "X and Y compared" is left out (no side named first)
# A cheap first look: most titles compare nothing.
_ANY_CUE = re.compile(r"versus|\bvs?\.|\bvs\b|compar|against|controlled")
_NOT_A_TREATMENT_COMPARISON = re.compile(r"\b(?:patients|participants|subjects|people|from|between)\b")
_COMPARING = re.compile(r"\bcompar(?:e|es|ing)\s+(?:the\s+)?(.{1,80}?)\s+(?:with|to|versus|vs\.?)\s+")
# What ends the compared name: the population, the purpose, a subtitle.
_SEGMENT_END = re.compile(
    r"\s(?:in|for|among|on|at|during|as|after|when|from|with|to|study|trial|evaluating)\b|[:;(\[]|\s-\s"
    r"|,\s(?:a|an|the)\s|$"
)
# What starts the investigational name, scanning back from the comparison word.
_SEGMENT_START = re.compile(r"[:;(\[]|\s(?:of|using|study|trial)\s")
_CONTROLLED = re.compile(r"[\s-]controlled\b")
_PLACEBO_CONTROLLED = re.compile(r"\b(?:placebo|sham|vehicle)[\s-]+controlled\b")
# "Active comparator: teriflunomide", "Avonex (comparator)", "reference product", "active control"
_MARKED_COMPARATOR = re.compile(
    r"\b(?:active[\s-]+comparator|(?<!placebo )(?<!sham )comparators?|comparison (?:drug|treatment|arm)"
    r"|active[\s-]+control"
    r"|reference (?:product|drug|medicinal product|treatment|therapy)|control (?:drug|treatment|arm))\b"
)


@dataclass(frozen=True, slots=True)
class RoleCue:
    """A role and the words that gave it."""

    role: Role
    evidence: Evidence


def arm_group_role(intervention: Intervention) -> Role | None:
    """The registry's own role: EXPERIMENTAL → investigational, ACTIVE_COMPARATOR → comparator."""
    roles = intervention.arm_roles
    if "experimental" in roles:
        return "investigational"
    if "active_comparator" in roles:
        return "comparator"
    return None


def marked_comparator(index: int, intervention: Intervention) -> RoleCue | None:
    """An intervention whose name or description says it is the comparator."""
    texts = [(f"interventions[{index}].name", intervention.name)]
    if intervention.description:
        texts.append((f"interventions[{index}].description", intervention.description))
    for field, text in texts:
        match = _MARKED_COMPARATOR.search(normalise(text))
        if match:
            return RoleCue("comparator", Evidence(field, match.group(0)))
    return None


def title_roles(dictionary: Dictionary, titles: Iterable[tuple[str, str]]) -> dict[str, RoleCue]:
    """Mechanism key → role named by the titles ((field, text) pairs).

    A key named after a comparison word (or before "-controlled") and not before it is a comparator; a
    key named before a comparison word, or in a placebo-controlled title, is investigational. The first
    title that decides a key wins (brief title, then official title)."""
    found: dict[str, RoleCue] = {}
    for field, text in titles:
        norm = normalise(text)
        if not _ANY_CUE.search(norm):
            continue
        for key, cue in _title_cues(dictionary, field, norm).items():
            found.setdefault(key, cue)
    return found


def _title_cues(dictionary: Dictionary, field: str, norm: str) -> dict[str, RoleCue]:
    investigational: dict[str, str] = {}
    comparator: dict[str, str] = {}
    sides = [  # (investigational side, comparator side, the words that say so)
        (before, after, f"{before} {m.group(0).strip()} {after}")
        for m in _COMPARISON.finditer(norm)
        for before, after in [(_segment_before(norm[: m.start()]), _segment_after(norm[m.end() :]))]
    ]
    sides += [
        (m.group(1), after, f"{m.group(0).strip()} {after}")
        for m in _COMPARING.finditer(norm)
        if not _NOT_A_TREATMENT_COMPARISON.search(m.group(1))
        for after in [_segment_after(norm[m.end() :])]
    ]
    for before, after, phrase in sides:
        for key in _keys(dictionary, before):
            investigational.setdefault(key, phrase)
        for key in _keys(dictionary, after):
            comparator.setdefault(key, phrase)
    for match in _CONTROLLED.finditer(norm):
        # the words just before "-controlled", back to a comma or a subtitle mark
        before = norm[max(0, match.start() - 40) : match.start()]
        before = re.split(r"[,;:(\[]", before)[-1].strip()
        for key in _keys(dictionary, before):
            comparator.setdefault(key, f"{before}{match.group(0)}")
    placebo = _PLACEBO_CONTROLLED.search(norm)
    if placebo:
        for key in _keys(dictionary, norm):
            investigational.setdefault(key, placebo.group(0))
    # "rituximab versus ocrelizumab": one class on both sides is under study
    cues = {key: RoleCue("comparator", Evidence(field, words)) for key, words in comparator.items()}
    cues.update(
        {key: RoleCue("investigational", Evidence(field, words)) for key, words in investigational.items()}
    )
    return cues


def _segment_before(text: str) -> str:
    """The compared name before the comparison word: back to "of", "with", "using" or a subtitle mark."""
    starts = [m.end() for m in _SEGMENT_START.finditer(text)]
    return text[max(starts, default=0) :].strip()


def _segment_after(text: str) -> str:
    end = _SEGMENT_END.search(text)
    return text[: end.start()].strip() if end else text.strip()


def _keys(dictionary: Dictionary, text: str) -> set[str]:
    if not text:
        return set()
    keys = {m.agent.mechanism for m in dictionary.specific_agents.find(text)}
    return keys or {m.agent.mechanism for m in dictionary.generic_agents.find(text)}
