"""Eligibility facets: whom a trial enrols, read from the structured fields and the criteria text.

Pure functions over a parsed study. Each facet keeps its evidence. The EDSS range is read from the
INCLUSION criteria only: an EDSS in the exclusion criteria describes who is kept out, and reading it as
the enrolled range would invert it. Prior-treatment flags are set only where the text is explicit.

Facet names: age_min, age_max (years), sex (all/female/male), healthy_volunteers (yes/no), edss_min,
edss_max (EDSS points, one decimal), prior_treatment (treatment_naive / prior_dmt_failure) and
excluded_therapy (one facet per named therapy the exclusion criteria rule out).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from tracker.classify.dictionary import normalise
from tracker.classify.model import Evidence, Facet
from tracker.classify.version import ELIGIBILITY_RULES_REVISION  # bumped there: a rule changed the output
from tracker.ctgov.parse import StudyRecord

FACET_NAMES = (
    "age_min",
    "age_max",
    "sex",
    "healthy_volunteers",
    "edss_min",
    "edss_max",
    "prior_treatment",
    "excluded_therapy",
)
PRIOR_TREATMENT_VALUES = ("treatment_naive", "prior_dmt_failure")
INCLUSION_FIELD = "eligibility_criteria.inclusion"
EXCLUSION_FIELD = "eligibility_criteria.exclusion"

_EXCLUSION_HEADER = re.compile(
    r"exclusion criteria|key exclusion|exclusion:|\bexclusions?\b\s*\n|non[- ]inclusion criteria",
    re.IGNORECASE,
)
_EDSS = re.compile(r"\bedss\b|expanded disability status scale|kurtzke", re.IGNORECASE)
_NUMBER = r"(\d{1,2}(?:[.,]\d)?)"
_DASHES = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2264": "≤", "\u2265": "≥"})
# The EDSS mention and the words after it, up to the end of the sentence or item.
_EDSS_CLAUSE = re.compile(
    r"(?:\bedss\b|expanded disability status scale|kurtzke)(?:[^.;\n]|\.(?=\d)){0,90}?(?=[;\n]|\.(?!\d)|$)",
    re.IGNORECASE,
)
_RANGE = re.compile(rf"{_NUMBER}\s*(?:-|to|and|through)\s*{_NUMBER}(?!\s*(?:years|months|weeks|days))")
_UPPER = re.compile(
    rf"(≤|<=|=<|<|up to(?: and including)?|no (?:more|greater|higher) than|not (?:more|greater|higher) than"
    rf"|maximum(?: of)?|at most|less than or equal to|lower than or equal to|less than|lower than|below"
    rf"|inferior to|under)\s*(?:a |an |score of |of )?{_NUMBER}",
    re.IGNORECASE,
)
_LOWER = re.compile(
    rf"(≥|>=|=>|>|at least|minimum(?: of)?|greater than or equal to|more than|greater than|higher than|above"
    rf"|superior to)\s*(?:a |an |score of |of )?{_NUMBER}",
    re.IGNORECASE,
)
_UPPER_AFTER = re.compile(rf"{_NUMBER}\s*(?:points? )?or (?:less|lower|below|under)", re.IGNORECASE)
_LOWER_AFTER = re.compile(rf"{_NUMBER}\s*(?:points? )?or (?:more|greater|higher|above)", re.IGNORECASE)
_STRICT_UPPER = ("<", "less than", "lower than", "below", "inferior to", "under")
_STRICT_LOWER = (">", "more than", "greater than", "higher than", "above", "superior to")

_NAIVE = re.compile(
    r"treatment[- ]na[iï]ve|therapy[- ]na[iï]ve|dmt[- ]na[iï]ve"
    r"|na[iï]ve to (?:any )?(?:\w+ )?(?:dmts?|disease[- ]"
    r"modifying|treatment|therap)|never (?:been )?(?:treated|received|exposed)\b[^.;\n]{0,40}"
    r"(?:dmt|disease[- ]modifying|immunomodulat|immunosuppress)|no (?:prior|previous) (?:\w+ )?"
    r"(?:dmts?|disease[- ]modifying|immunomodulatory|immunosuppressive) (?:therap|treatment|drug)"
    r"|not (?:been )?previously treated with (?:any )?(?:dmts?|disease[- ]modifying)",
    re.IGNORECASE,
)
_EXCLUDES_ANY_PRIOR_DMT = re.compile(
    r"(?:any )(?:prior|previous) (?:treatment with |use of |exposure to )?(?:any |an? )?"
    r"(?:dmts?|disease[- ]modifying (?:therap|treatment|drug))",
    re.IGNORECASE,
)
_WASHOUT = re.compile(
    r"\bwithin\b|in the (?:last|past|previous)|\bmonths?\b|\bweeks?\b|\bdays?\b", re.IGNORECASE
)
_FAILURE = re.compile(
    r"(?:inadequate|suboptimal|insufficient|incomplete|lack of|poor) (?:\w+ ){0,2}response"
    r"|\bfail(?:ed|ure|ing)\b|breakthrough (?:disease|activity|relapse)|despite (?:\w+ ){0,3}"
    r"(?:treatment|therapy|dmt)|refractory|non[- ]?respon|intoleran\w* (?:to|of)",
    re.IGNORECASE,
)
_THERAPY_CONTEXT = re.compile(
    r"dmts?\b|disease[- ]modifying|therap|treatment|interferon|glatiramer", re.IGNORECASE
)
_PRIOR_USE = re.compile(
    r"\b(?:prior|previous(?:ly)?|history of|ever (?:been )?(?:received|treated|used|exposed)|treated with"
    r"|exposure to|use of|received|treatment with)\b",
    re.IGNORECASE,
)
_DMT_MECHANISM_FAMILIES = ("Immunomodulatory DMT", "Cell therapy")


def split_criteria(criteria: str | None) -> tuple[str, str]:
    """(inclusion, exclusion) parts of the criteria text; everything is inclusion without a header."""
    if not criteria:
        return "", ""
    match = _EXCLUSION_HEADER.search(criteria)
    if match is None:
        return criteria, ""
    return criteria[: match.start()], criteria[match.start() :]


# ---------------------------------------------------------------------------------------------------------
# Entry point


def classify_eligibility(record: StudyRecord) -> tuple[Facet, ...]:
    """Every facet the record supports, in FACET_NAMES order."""
    # the registry escapes Markdown in criteria text: a backslash before > and <
    criteria = (record.eligibility_criteria or "").replace("\\", "")
    inclusion, exclusion = split_criteria(criteria)
    facets: list[Facet] = [*_structured_facets(record)]
    facets += edss_range(inclusion)
    facets += prior_treatment(inclusion, exclusion)
    order = {name: index for index, name in enumerate(FACET_NAMES)}
    return tuple(sorted(facets, key=lambda facet: order[facet.name]))


def _structured_facets(record: StudyRecord) -> Iterator[Facet]:
    if record.minimum_age_years is not None:
        yield _facet("age_min", _years(record.minimum_age_years), "eligibility.minimumAge")
    if record.maximum_age_years is not None:
        yield _facet("age_max", _years(record.maximum_age_years), "eligibility.maximumAge")
    if record.sex:
        yield _facet("sex", record.sex.lower(), "eligibility.sex", record.sex)
    if record.healthy_volunteers is not None:
        value = "yes" if record.healthy_volunteers else "no"
        yield _facet(
            "healthy_volunteers", value, "eligibility.healthyVolunteers", str(record.healthy_volunteers)
        )


def _years(value: float) -> str:
    return f"{value:g}"


def _facet(name: str, value: str, field: str, text: str | None = None) -> Facet:
    return Facet(name, value, (Evidence(field, text if text is not None else value),))


# ---------------------------------------------------------------------------------------------------------
# EDSS


def edss_range(inclusion: str) -> list[Facet]:
    """edss_min / edss_max from the inclusion text ("EDSS 0-5.5", "EDSS ≤ 6.0", "between 3.0 and 6.5")."""
    low: tuple[float, str] | None = None
    high: tuple[float, str] | None = None
    for clause in _EDSS_CLAUSE.finditer(inclusion.translate(_DASHES)):
        words = clause.group(0)
        after = _EDSS.split(words, maxsplit=1)[-1]
        found_low, found_high = _bounds(after)
        if found_low is not None and (low is None or found_low < low[0]):
            low = (found_low, words.strip())
        if found_high is not None and (high is None or found_high > high[0]):
            high = (found_high, words.strip())
    facets = []
    if low is not None:
        facets.append(Facet("edss_min", f"{low[0]:.1f}", (Evidence(INCLUSION_FIELD, low[1]),)))
    if high is not None:
        facets.append(Facet("edss_max", f"{high[0]:.1f}", (Evidence(INCLUSION_FIELD, high[1]),)))
    return facets


def _bounds(text: str) -> tuple[float | None, float | None]:
    """(lower, upper) EDSS bounds in the words after an EDSS mention; strict bounds move half a step."""
    match = _RANGE.search(text)
    if match:
        first, second = _score(match.group(1)), _score(match.group(2))
        if first is not None and second is not None and first <= second:
            return first, second
    low = high = None
    upper = _UPPER.search(text)
    if upper:
        high = _score(upper.group(2))
        if high is not None and upper.group(1).lower() in _STRICT_UPPER:
            high = max(0.0, high - 0.5)
    elif after := _UPPER_AFTER.search(text):
        high = _score(after.group(1))
    lower = _LOWER.search(text)
    if lower:
        low = _score(lower.group(2))
        if low is not None and lower.group(1).lower() in _STRICT_LOWER:
            low = min(10.0, low + 0.5)
    elif after := _LOWER_AFTER.search(text):
        low = _score(after.group(1))
    return low, high


def _score(text: str) -> float | None:
    value = float(text.replace(",", "."))
    return value if 0.0 <= value <= 10.0 else None


# ---------------------------------------------------------------------------------------------------------
# Prior treatment


def prior_treatment(inclusion: str, exclusion: str) -> list[Facet]:
    facets: list[Facet] = []
    naive = _NAIVE.search(inclusion)
    if naive:
        facets.append(
            Facet("prior_treatment", "treatment_naive", (Evidence(INCLUSION_FIELD, naive.group(0)),))
        )
    else:
        for line in _lines(exclusion):
            match = _EXCLUDES_ANY_PRIOR_DMT.search(line)
            if match and not _WASHOUT.search(line):
                facets.append(
                    Facet("prior_treatment", "treatment_naive", (Evidence(EXCLUSION_FIELD, line.strip()),))
                )
                break
    for line in _lines(inclusion):
        failure = _FAILURE.search(line)
        if failure and _THERAPY_CONTEXT.search(line):
            evidence = (Evidence(INCLUSION_FIELD, line.strip()[:200]),)
            facets.append(Facet("prior_treatment", "prior_dmt_failure", evidence))
            break
    facets += _excluded_therapies(exclusion)
    return facets


def _excluded_therapies(exclusion: str) -> list[Facet]:
    from tracker.classify.dictionary import load_dictionary
    from tracker.taxonomy import load_taxonomy

    dmt_keys = {item.key for item in load_taxonomy().mechanisms if item.family in _DMT_MECHANISM_FAMILIES}
    matcher = load_dictionary().specific_agents
    seen: dict[str, Facet] = {}
    for line in _lines(exclusion):
        if not _PRIOR_USE.search(line):
            continue
        for match in matcher.find(normalise(line)):
            name = match.agent.name
            if match.agent.mechanism in dmt_keys and name not in seen:
                seen[name] = Facet("excluded_therapy", name, (Evidence(EXCLUSION_FIELD, line.strip()[:200]),))
    return list(seen.values())


def _lines(text: str) -> Iterable[str]:
    return (line for line in re.split(r"\n|(?<=[a-z)])\.\s+(?=[A-Z])", text) if line.strip())


__all__ = [
    "ELIGIBILITY_RULES_REVISION",
    "FACET_NAMES",
    "PRIOR_TREATMENT_VALUES",
    "classify_eligibility",
    "edss_range",
    "prior_treatment",
    "split_criteria",
]
