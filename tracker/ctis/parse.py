"""Pure parsing of CTIS records: one full record (with its search summary merged in) → one `StudyRecord`.

The record comes from `GET /retrieve/{ctNumber}`; the search summary of the same trial adds fields the full
record lacks or writes differently (the phase wording, the EEA enrolment, update dates). `merge_summary`
lays the summary over the full record's top level, as the registry-loading tool that stored the real
examples did, and `parse_ctis_record` reads either form (ctis API_NOTES, Examples):

- the public status comes from `ctPublicStatusCode` (retrieve) or the int `ctStatus` (search) only. A raw
  retrieve's `ctStatus` is the *application* status ("Authorised"), which says nothing about recruitment;
- dates are day-first in summary fields and ISO inside `authorizedApplication` (`tracker.ctis.dates`);
- every field is optional and every enum open: a status code outside the table becomes overall_status None
  with registry_status "unknown status code N", never a guess;
- `...Translations` siblings (the same text in other EU languages) are never read, and left out of the
  content hash.

Vocabulary: statuses, phases, sex and age groups are mapped to the ClinicalTrials.gov words the rest of
the tracker uses; the registry's own status wording is kept in `registry_status` and per member state in
`countries`. The EU CT number goes into the record's registration ID.

A record is rejected (`RecordError`) only when it cannot identify itself, is in the pre-June-2024 schema,
or carries a value of the wrong shape where we must read it (a date that is not a date).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

from tracker.ctgov.parse import (
    CountryStatus,
    Intervention,
    Location,
    Organization,
    OutcomeMeasure,
    PartialDate,
    SecondaryId,
    StudyDesign,
    StudyRecord,
    age_in_years,
)
from tracker.ctis.dates import any_date, day_first_date, iso_date
from tracker.errors import RecordError
from tracker.identifiers import registry_id

CT_NUMBER_PATTERN = re.compile(r"^\d{4}-\d{6}-\d{2}-\d{2}$")

# Public status codes (API_NOTES §3), at trial and member-state level.
STATUS_LABELS: dict[int, str] = {
    1: "Under evaluation",
    2: "Authorised, recruitment pending",
    3: "Authorised, recruiting",
    4: "Ongoing, recruiting",
    5: "Ongoing, recruitment ended",
    6: "Temporarily halted",
    7: "Suspended",
    8: "Ended",
    9: "Expired",
    10: "Revoked",
    11: "Not authorised",
    12: "Cancelled",
}
# The same codes in the ClinicalTrials.gov vocabulary. "Under evaluation" has not started recruiting;
# expired, not authorised and cancelled trials never ran (WITHDRAWN); a revoked one was stopped (TERMINATED).
OVERALL_STATUSES: dict[int, str] = {
    1: "NOT_YET_RECRUITING",
    2: "NOT_YET_RECRUITING",
    3: "RECRUITING",
    4: "RECRUITING",
    5: "ACTIVE_NOT_RECRUITING",
    6: "SUSPENDED",
    7: "SUSPENDED",
    8: "COMPLETED",
    9: "WITHDRAWN",
    10: "TERMINATED",
    11: "WITHDRAWN",
    12: "WITHDRAWN",
}

# part1MpRoleTypeCode → the product's role. "1" (Test) is confirmed by both real records, where
# productRoleGroupInfos names it; the others come from a public tool's table and are used only when the
# record carries no role name of its own.
PRODUCT_ROLE_CODES: dict[str, str] = {"1": "test", "2": "comparator", "3": "placebo", "4": "auxiliary"}
# A product's role → the arm role ClinicalTrials.gov would give its arm.
ARM_ROLES: dict[str, str] = {
    "test": "experimental",
    "comparator": "active_comparator",
    "placebo": "placebo",
    "auxiliary": "other",
}
_ARM_ROLE_ORDER = ("experimental", "active_comparator", "other", "placebo")
_PLACEBO = re.compile(r"\bplacebo\b", re.IGNORECASE)

# The EEA member states by the two-letter codes of the search's decisionDate ("IT: 24/06/2026"). Greece is
# written GR there; EU documents also use EL.
COUNTRY_NAMES: dict[str, str] = {
    "AT": "Austria",
    "BE": "Belgium",
    "BG": "Bulgaria",
    "HR": "Croatia",
    "CY": "Cyprus",
    "CZ": "Czechia",
    "DK": "Denmark",
    "EE": "Estonia",
    "FI": "Finland",
    "FR": "France",
    "DE": "Germany",
    "GR": "Greece",
    "EL": "Greece",
    "HU": "Hungary",
    "IS": "Iceland",
    "IE": "Ireland",
    "IT": "Italy",
    "LV": "Latvia",
    "LI": "Liechtenstein",
    "LT": "Lithuania",
    "LU": "Luxembourg",
    "MT": "Malta",
    "NL": "Netherlands",
    "NO": "Norway",
    "PL": "Poland",
    "PT": "Portugal",
    "RO": "Romania",
    "SK": "Slovakia",
    "SI": "Slovenia",
    "ES": "Spain",
    "SE": "Sweden",
}
_COUNTRY_DECISION = re.compile(r"([A-Za-z]{2})\s*:\s*(\S+?)\s*(?:,|$)")
_PHASE = re.compile(r"\bphase\s*(iv|iii|ii|i|[1-4])\b", re.IGNORECASE)
_PHASE_NUMBERS = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "1": 1, "2": 2, "3": 3, "4": 4}
_AGE_BAND = re.compile(r"(\d+)\s*(?:-\s*(\d+)|(\+))\s*years?", re.IGNORECASE)
# "A, B" joins in summary fields: a comma at bracket depth 0 before a capital letter starts a new item.
_JOINED_ITEM = re.compile(r",\s+(?=[A-Z])")
# Top-level fields that move when the portal republishes, not when the trial changes.
VOLATILE_KEYS = frozenset({"publishDate", "lastPublicationUpdate"})
_EMPTY_VALUES = (None, "", [], [""], {})
_PLACEHOLDERS = frozenset({"", "na", "n/a", "-", "none"})
# Where an endpoint's time frame would be; no real record seen so far has one.
_TIME_FRAME_KEYS = ("timeFrame", "timeframe", "timePoint", "timepoint")


def merge_summary(summary: Mapping[str, Any], full: Mapping[str, Any]) -> dict[str, Any]:
    """The full record with the search summary's non-empty fields laid over its top level.

    The summary wins where both have a key: its `ctStatus` is the public status code (the full record's is
    the application status) and its dates are the day-first form the parser reads first.
    """
    ct_summary, ct_full = summary.get("ctNumber"), full.get("ctNumber")
    if ct_summary != ct_full:
        raise RecordError(f"search summary of {ct_summary!r} merged into the record of {ct_full!r}", ct_full)
    merged = dict(full)
    merged.update((key, value) for key, value in summary.items() if value not in _EMPTY_VALUES)
    return merged


def parse_ctis_record(raw: object) -> StudyRecord:
    """Parse one CTIS record (full, summary-merged, or a bare summary). Raises `RecordError`."""
    if not isinstance(raw, Mapping):
        raise RecordError(f"CTIS record is a {type(raw).__name__}, not an object")
    ct_number = raw.get("ctNumber")
    if not isinstance(ct_number, str) or not CT_NUMBER_PATTERN.match(ct_number.strip()):
        raise RecordError(f"missing or malformed ctNumber {ct_number!r}")
    ct_number = ct_number.strip()
    if "authorizedPartI" in raw and "authorizedApplication" not in raw:
        raise RecordError("pre-June-2024 CTIS schema (top-level authorizedPartI); not supported", ct_number)
    try:
        return _parse(raw, ct_number)
    except (TypeError, ValueError, AttributeError) as exc:
        raise RecordError(str(exc), ct_number) from None


@dataclass(frozen=True, slots=True)
class _Sections:
    """The parts of a full record the fields are read from; empty where the record lacks them."""

    raw: Mapping[str, Any]
    application: Mapping[str, Any]
    part1: Mapping[str, Any]
    identifiers: Mapping[str, Any]
    information: Mapping[str, Any]
    parts2: Sequence[Mapping[str, Any]]


def _sections(raw: Mapping[str, Any]) -> _Sections:
    application = _mapping(raw.get("authorizedApplication"))
    part1 = _mapping(application.get("authorizedPartI"))
    details = _mapping(part1.get("trialDetails"))
    return _Sections(
        raw=raw,
        application=application,
        part1=part1,
        identifiers=_mapping(details.get("clinicalTrialIdentifiers")),
        information=_mapping(details.get("trialInformation")),
        parts2=[_mapping(part) for part in _list(application.get("authorizedPartsII"))],
    )


def _parse(raw: Mapping[str, Any], ct_number: str) -> StudyRecord:
    sections = _sections(raw)
    code = status_code(raw)
    countries = _country_codes(sections)
    decision = day_first_date(raw.get("decisionDateOverall")) or _earliest(d for _, _, d in countries)
    lead, collaborators = _sponsors(sections)
    minimum_age, maximum_age, std_ages = _ages(raw.get("ageGroup"))
    return StudyRecord(
        registration_id=ct_number,  # the registration's own ID: the EU CT number
        brief_title=_text(sections.identifiers.get("publicTitle")) or _text(raw.get("ctTitle")),
        official_title=_text(sections.identifiers.get("fullTitle")) or _text(raw.get("ctTitle")),
        acronym=_text(sections.identifiers.get("shortTitle")) or _text(raw.get("shortTitle")),
        overall_status=_tracker_status(code),
        last_known_status=None,
        why_stopped=None,
        phases=phases_from(raw.get("trialPhase")),
        study_type="INTERVENTIONAL",  # CTIS registers clinical trials of medicinal products only
        enrollment_count=_enrollment(sections),
        enrollment_type="ESTIMATED",  # the planned number of subjects
        start_date=_start_date(sections),
        primary_completion_date=None,  # CTIS has no primary completion date
        completion_date=_completion_date(sections),
        # publishDate is the latest publication (it equals lastPublicationUpdate in both real records); CTIS
        # first publishes a trial at its first decision, so the earlier of the two is the first posting.
        first_posted=_earliest([decision, iso_date(raw.get("publishDate"))]),
        last_update_posted=_latest(
            any_date(raw.get(name)) for name in ("lastUpdated", "lastPublicationUpdate")
        ),
        results_first_posted=None,
        has_results=raw.get("resultsFirstReceived") == "Yes" or bool(raw.get("results")),
        lead_sponsor=lead,
        collaborators=collaborators,
        conditions=_conditions(sections),
        keywords=(),
        arm_groups=(),
        interventions=_interventions(sections),
        locations=_locations(sections, {country: state_code for country, state_code, _ in countries}),
        brief_summary=_text(_mapping(sections.information.get("trialObjective")).get("mainObjective")),
        detailed_description=None,
        eligibility_criteria=eligibility_text(sections.information),
        minimum_age=minimum_age,
        maximum_age=maximum_age,
        minimum_age_years=age_in_years(minimum_age),
        maximum_age_years=age_in_years(maximum_age),
        sex=_sex(sections),
        std_ages=std_ages,
        healthy_volunteers=_healthy_volunteers(sections),
        condition_mesh_terms=(),
        intervention_mesh_terms=(),
        outcomes=_outcomes(sections),
        design=StudyDesign(allocation=None, intervention_model=None, masking=None, primary_purpose=None),
        secondary_ids=_secondary_ids(sections),
        content_hash=content_hash(raw),
        raw=raw,
        registry="ctis",
        registry_status=status_label(code),
        decision_date=decision,
        countries=tuple(CountryStatus(name, status_label(state), day) for name, state, day in countries),
    )


def content_hash(raw: Mapping[str, Any]) -> str:
    """A stable hash of the record content.

    Left out: the republication stamps (`publishDate` is a nightly batch timestamp, and equals
    `lastPublicationUpdate` in both real records), and the `...Translations` siblings, which the tracker
    never reads: a re-fetch that only republished or re-translated the trial is not a change.
    """
    kept = {key: _without_translations(value) for key, value in raw.items() if key not in VOLATILE_KEYS}
    return hashlib.sha256(orjson.dumps(_without_translations(kept), option=orjson.OPT_SORT_KEYS)).hexdigest()


def _without_translations(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_translations(v) for k, v in value.items() if not str(k).endswith("Translations")}
    if isinstance(value, list):
        return [_without_translations(item) for item in value]
    return value


# -- status ----------------------------------------------------------------------------------------------


def status_code(raw: Mapping[str, Any]) -> int | str | None:
    """The trial's public status: `ctPublicStatusCode`, else the search's int `ctStatus`.

    A text `ctStatus` is the application status of a raw retrieve ("Authorised") and is never taken.
    """
    code = _code(raw.get("ctPublicStatusCode"))
    if code is None and not isinstance(raw.get("ctStatus"), str):
        code = _code(raw.get("ctStatus"))
    return code


def status_label(code: int | str | None) -> str | None:
    """The registry's label for a public status code; a code outside the table is kept as unknown."""
    if code is None:
        return None
    if isinstance(code, str):
        return code  # the registry's own words (older records wrote text statuses)
    return STATUS_LABELS.get(code, f"unknown status code {code}")


def _code(value: object) -> int | str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    text = _text(value)
    return text


def _tracker_status(code: int | str | None) -> str | None:
    return OVERALL_STATUSES.get(code) if isinstance(code, int) else None


# -- member states ---------------------------------------------------------------------------------------


def _country_codes(sections: _Sections) -> list[tuple[str, int | str | None, date | None]]:
    """(country, public status code, first decision date) per member state, from every place that has them.

    In order of trust: memberStatesConcerned, the search's trialCountries ("Spain:4"), each part II's
    mscInfo, and the search's decisionDate ("IT: 24/06/2026, ES: 26/06/2026"). A later source only fills
    what an earlier one left empty.
    """
    found: dict[str, list[Any]] = {}

    def add(name: object, code: int | str | None, day: date | None) -> None:
        country = _text(name)
        if country is None:
            return
        entry = found.setdefault(country, [None, None])
        entry[0] = entry[0] if entry[0] is not None else code
        entry[1] = entry[1] or day

    for state in map(_mapping, _list(sections.application.get("memberStatesConcerned"))):
        add(
            state.get("mscName"),
            _code(state.get("mscPublicStatusCode")),
            iso_date(state.get("firstDecisionDate")),
        )
    for item in _strings(sections.raw.get("trialCountries")):
        name, _, code = item.rpartition(":")
        add(name if name else item, _code(code) if name else None, None)
    for part in sections.parts2:
        msc = _mapping(part.get("mscInfo"))
        day = iso_date(msc.get("firstDecisionDate")) or iso_date(msc.get("decisionDate"))
        add(msc.get("countryName") or msc.get("mscName"), None, day)
    for country_code, day in country_decisions(sections.raw.get("decisionDate")).items():
        add(COUNTRY_NAMES.get(country_code, country_code), None, day)
    return [(country, code, day) for country, (code, day) in found.items()]


def country_decisions(value: object) -> dict[str, date]:
    """`"IT: 24/06/2026, ES: 26/06/2026"` → {"IT": date(2026, 6, 24), …}; {} for a single or absent date."""
    if not isinstance(value, str) or not re.search(r"[A-Za-z]{2}\s*:", value):
        return {}  # absent, or one overall date (a raw retrieve may write it so)
    pairs = _COUNTRY_DECISION.findall(value)
    if not pairs:
        raise ValueError(f"decisionDate is not 'CC: DD/MM/YYYY, …': {value!r}")
    decisions: dict[str, date] = {}
    for code, text in pairs:
        day = day_first_date(text)
        if day is not None:
            decisions[code.upper()] = day
    return decisions


# -- titles, phases, conditions ---------------------------------------------------------------------------


def phases_from(text: object) -> tuple[str, ...]:
    """`"Therapeutic confirmatory  (Phase III)"` → ("PHASE3",); an integrated phase II/III gives both."""
    if not isinstance(text, str):
        return ()
    numbers = sorted({_PHASE_NUMBERS[match.lower()] for match in _PHASE.findall(text)})
    return tuple(f"PHASE{number}" for number in numbers)


def _conditions(sections: _Sections) -> tuple[str, ...]:
    listed = _list(sections.part1.get("medicalConditions")) or _list(
        _mapping(sections.information.get("medicalCondition")).get("partIMedicalConditions")
    )
    names = [_mapping(item).get("medicalCondition") for item in listed]
    # The summary joins names with ", " which also occurs inside names ("Influenza, Human"): kept whole.
    return _unique(names) or _unique([sections.raw.get("conditions")])


# -- products, endpoints, eligibility ---------------------------------------------------------------------


def _interventions(sections: _Sections) -> tuple[Intervention, ...]:
    products = [_mapping(item) for item in _list(sections.part1.get("products"))]
    if not products:
        names = _split_joined(sections.raw.get("product"))
        return tuple(Intervention("DRUG", name, None, (), (), ()) for name in names)
    role_names = _product_role_names(sections.part1)
    merged: dict[str, Intervention] = {}
    for product in products:
        item = _intervention(product, role_names)
        if item is None:
            continue
        key = item.name.casefold()
        merged[key] = _merge_interventions(merged[key], item) if key in merged else item
    return tuple(merged.values())


def _intervention(product: Mapping[str, Any], role_names: Mapping[Any, str]) -> Intervention | None:
    info = _mapping(product.get("productDictionaryInfo"))
    candidates = [
        product.get("productName"),
        info.get("prodName"),
        info.get("activeSubstanceName"),
        product.get("jsonActiveSubstanceNames"),
        info.get("sponsorProductCode"),
        product.get("sponsorProductCodeEdit"),
        info.get("activeSubstanceOtherDescriptiveName"),
    ]
    names = [name for name in _unique(candidates) if name.casefold() not in _PLACEHOLDERS]
    if not names:
        return None
    role = role_names.get(product.get("id")) or PRODUCT_ROLE_CODES.get(
        str(product.get("part1MpRoleTypeCode"))
    )
    arm_role = ARM_ROLES.get(role) if role else None
    if arm_role == "active_comparator" and any(_PLACEBO.search(name) for name in names):
        arm_role = "placebo"
    return Intervention(
        type="DRUG",
        name=names[0],
        description=_product_description(product),
        other_names=tuple(names[1:]),
        arm_group_labels=(),
        arm_roles=(arm_role,) if arm_role else (),
    )


def _product_role_names(part1: Mapping[str, Any]) -> dict[Any, str]:
    """Product id → role word, from productRoleGroupInfos ("Test", "Comparator", "Auxiliary", …)."""
    roles: dict[Any, str] = {}
    for group in map(_mapping, _list(part1.get("productRoleGroupInfos"))):
        name = (_text(group.get("productRoleName")) or "").lower()
        role = next((word for word in ARM_ROLES if word in name), None)
        for product in map(_mapping, _list(group.get("products"))):
            if role and product.get("id") is not None:
                roles[product["id"]] = role
    return roles


def _product_description(product: Mapping[str, Any]) -> str | None:
    form = _text(product.get("pharmaceuticalFormDisplay"))
    routes = ", ".join(_strings(product.get("routes")))
    return "; ".join(part for part in (form, routes) if part) or None


def _merge_interventions(first: Intervention, second: Intervention) -> Intervention:
    """One intervention for two products of the same name (e.g. two formulations of one substance)."""
    other_names = _unique([*first.other_names, *second.other_names])
    roles = sorted({*first.arm_roles, *second.arm_roles}, key=_ARM_ROLE_ORDER.index)
    return Intervention(
        type=first.type,
        name=first.name,
        description=first.description if first.description == second.description else None,
        other_names=tuple(name for name in other_names if name.casefold() != first.name.casefold()),
        arm_group_labels=(),
        arm_roles=tuple(roles),
    )


def _outcomes(sections: _Sections) -> tuple[OutcomeMeasure, ...]:
    endpoints = _mapping(sections.information.get("endPoint"))
    measures: list[OutcomeMeasure] = []
    for key, role in (("primaryEndPoints", "primary"), ("secondaryEndPoints", "secondary")):
        items = _numbered(endpoints.get(key))
        for order, item in enumerate(item for item in items if _text(item.get("endPoint"))):
            time_frame = next((_text(item.get(k)) for k in _TIME_FRAME_KEYS if _text(item.get(k))), None)
            measures.append(OutcomeMeasure(role, _text(item.get("endPoint")) or "", None, time_frame, order))
    if measures:
        return tuple(measures)
    return _summary_outcomes(sections.raw)


def _summary_outcomes(raw: Mapping[str, Any]) -> tuple[OutcomeMeasure, ...]:
    """Endpoints from the search summary, for a record without its full part I."""
    measures: list[OutcomeMeasure] = []
    for key, role in (("primaryEndPoint", "primary"), ("endPoint", "secondary")):
        for order, text in enumerate(_split_joined(raw.get(key))):
            measures.append(OutcomeMeasure(role, text, None, None, order))
    return tuple(measures)


def eligibility_text(information: Mapping[str, Any]) -> str | None:
    """The principal criteria laid out as ClinicalTrials.gov writes them, so `split_criteria` finds the
    exclusion header: "Inclusion Criteria:\\n\\n* …\\n\\nExclusion Criteria:\\n\\n* …"."""
    criteria = _mapping(information.get("eligibilityCriteria"))
    sections = []
    for header, key in (
        ("Inclusion Criteria", "principalInclusionCriteria"),
        ("Exclusion Criteria", "principalExclusionCriteria"),
    ):
        items = [_criterion_text(item, key) for item in _numbered(criteria.get(key))]
        bullets = "\n".join(f"* {text}" for text in items if text)
        if bullets:
            sections.append(f"{header}:\n\n{bullets}")
    return "\n\n".join(sections) or None


def _criterion_text(item: Mapping[str, Any], key: str) -> str | None:
    text = _text(item.get(key))
    # A criterion written over several lines stays one bullet: continuation lines are indented.
    return "\n  ".join(line.strip() for line in text.splitlines() if line.strip()) if text else None


# -- population --------------------------------------------------------------------------------------------


def _ages(value: object) -> tuple[str | None, str | None, tuple[str, ...]]:
    """`"18-64 years, 65+ years"` → ("18 Years", None, ("ADULT", "OLDER_ADULT")).

    CTIS gives age groups, not the protocol's limits: the bounds are those of the groups ticked.
    """
    bands = [
        (int(low), None if plus else int(high))
        for low, high, plus in _AGE_BAND.findall(value if isinstance(value, str) else "")
    ]
    if not bands:
        return None, None, ()
    low = min(band[0] for band in bands)
    highs = [band[1] for band in bands]
    high = None if None in highs else max(h for h in highs if h is not None)
    groups = []
    if any(band[0] < 18 for band in bands):
        groups.append("CHILD")
    if any(band[0] <= 64 and (band[1] is None or band[1] >= 18) for band in bands):
        groups.append("ADULT")
    if any(band[1] is None or band[1] >= 65 for band in bands):
        groups.append("OLDER_ADULT")
    return f"{low} Years", f"{high} Years" if high is not None else None, tuple(groups)


def _sex(sections: _Sections) -> str | None:
    population = _mapping(sections.information.get("populationOfTrialSubjects"))
    female, male = population.get("isFemaleSubjects"), population.get("isMaleSubjects")
    if not isinstance(female, bool) or not isinstance(male, bool):
        words = (_text(sections.raw.get("gender")) or "").lower()
        female, male = "female" in words, bool(re.search(r"\bmale\b", words))
    if female and male:
        return "ALL"
    return "FEMALE" if female else "MALE" if male else None


def _healthy_volunteers(sections: _Sections) -> bool | None:
    population = _mapping(sections.information.get("populationOfTrialSubjects"))
    groups = [
        _text(_mapping(group).get("name")) or "" for group in _list(population.get("clinicalTrialGroups"))
    ]
    if not groups:
        return None
    return any("healthy" in group.lower() for group in groups)


# -- sponsors and sites ------------------------------------------------------------------------------------


def _sponsors(sections: _Sections) -> tuple[Organization | None, tuple[Organization, ...]]:
    """The primary sponsor leads; co-sponsors and the other funders are collaborators."""
    sponsors = [_mapping(item) for item in _list(sections.part1.get("sponsors"))]
    primary = next((s for s in sponsors if s.get("primary") is True), sponsors[0] if sponsors else None)
    lead = _sponsor_organization(primary) if primary is not None else _summary_sponsor(sections.raw)
    others = [_sponsor_organization(s) for s in sponsors if s is not primary]
    funders = [
        Organization(name, None)
        for name in _unique(
            _mapping(item).get("organisationName")
            for item in _list(sections.information.get("sourceOfMonetarySupport"))
        )
    ]
    seen = {lead.name.casefold()} if lead else set()
    collaborators = []
    for organization in [*others, *funders]:
        if organization is not None and organization.name.casefold() not in seen:
            seen.add(organization.name.casefold())
            collaborators.append(organization)
    return lead, tuple(collaborators)


def _sponsor_organization(sponsor: Mapping[str, Any]) -> Organization | None:
    organisation = _mapping(sponsor.get("organisation"))
    name = _text(organisation.get("name"))
    if name is None:
        return None
    commercial = (
        organisation.get("commercial") is True
        or sponsor.get("isCommercial") is True
        or sponsor.get("commercial") == "Commercial"
    )
    return Organization(name, "INDUSTRY" if commercial else "OTHER")


def _summary_sponsor(raw: Mapping[str, Any]) -> Organization | None:
    name = _text(raw.get("sponsor"))
    if name is None:
        return None
    kinds = {kind.strip() for kind in (_text(raw.get("sponsorType")) or "").split(",")}
    return Organization(name, "INDUSTRY" if "Pharmaceutical company" in kinds else "OTHER")


def _locations(sections: _Sections, country_codes: Mapping[str, int | str | None]) -> tuple[Location, ...]:
    """Every site of every member state, once; its status is the status of the trial in that state."""
    found: dict[tuple[str | None, str | None, str | None], Location] = {}
    for part in sections.parts2:
        msc = _mapping(part.get("mscInfo"))
        part_country = _text(msc.get("countryName")) or _text(msc.get("mscName"))
        for site in map(_mapping, _list(part.get("trialSites"))):
            info = _mapping(site.get("organisationAddressInfo"))
            address = _mapping(info.get("address"))
            facility = _text(_mapping(info.get("organisation")).get("name"))
            city = _text(address.get("city"))
            country = _text(address.get("countryName")) or part_country
            status = _tracker_status(
                country_codes.get(country or "") or country_codes.get(part_country or "")
            )
            found.setdefault((facility, city, country), Location(facility, city, None, country, status))
    return tuple(found.values())


def _enrollment(sections: _Sections) -> int | None:
    """Subjects planned worldwide: the member states' counts plus the rest of the world's.

    The summary's totalNumberEnrolled counts the EEA only (11 = 7 + 4 and 13 = 6 + 3 + 4 in the real
    records, the second with 19 more elsewhere); it is the fallback.
    """
    counts = [_count(part.get("recruitmentSubjectCount")) for part in sections.parts2]
    known = [count for count in counts if count is not None]
    if known:
        return sum(known) + (_count(sections.part1.get("rowSubjectCount")) or 0)
    return _count(sections.raw.get("totalNumberEnrolled"))


# -- dates -------------------------------------------------------------------------------------------------


def _start_date(sections: _Sections) -> PartialDate | None:
    """Recruitment start: the first member state's actual one, else the planned one, else the EU start."""
    actual = _earliest(_recruitment_starts(sections))
    if actual is not None:
        return _day(actual, "ACTUAL")
    duration = _mapping(sections.information.get("trialDuration"))
    planned = iso_date(duration.get("estimatedRecruitmentStartDate"))
    if planned is not None:
        return _day(planned, "ESTIMATED")
    started = any_date(sections.raw.get("startDateEU"))  # the trial's start, which may precede recruitment
    return _day(started, None) if started is not None else None


def _recruitment_starts(sections: _Sections) -> list[date | None]:
    """Each member state's current recruitment start, and the START_OF_RECRUITMENT notifications.

    A state's trialRecruitmentPeriod list keeps superseded entries (Belgium lists 2021-10-31 while its
    active period and its notification say 2022-10-31), so the active period is preferred.
    """
    starts: list[date | None] = []
    for part in sections.parts2:
        msc = _mapping(part.get("mscInfo"))
        if msc.get("hasRecruitmentStarted") is False:
            continue
        active = iso_date(_mapping(msc.get("activeTrialRecruitmentPeriod")).get("recruitmentStartDate"))
        periods = [
            iso_date(_mapping(p).get("recruitmentStartDate"))
            for p in _list(msc.get("trialRecruitmentPeriod"))
        ]
        starts.append(active or _earliest(periods))
    for country in map(_mapping, _list(_mapping(sections.raw.get("events")).get("trialEvents"))):
        for event in map(_mapping, _list(country.get("events"))):
            if event.get("notificationType") == "START_OF_RECRUITMENT":
                starts.append(iso_date(event.get("date")))
    return starts


def _completion_date(sections: _Sections) -> PartialDate | None:
    """The end of the trial: worldwide when known, else in the EU; actual before estimated."""
    duration = _mapping(sections.information.get("trialDuration"))
    candidates = (
        (any_date(sections.raw.get("endDate")), "ACTUAL"),
        (iso_date(duration.get("estimatedGlobalEndDate")), "ESTIMATED"),
        (any_date(sections.raw.get("endDateEU")), "ACTUAL"),
        (iso_date(duration.get("estimatedEndDate")), "ESTIMATED"),
    )
    return next((_day(day, kind) for day, kind in candidates if day is not None), None)


def _day(day: date, kind: str | None) -> PartialDate:
    return PartialDate(day.isoformat(), "day", kind, day)


# -- identifiers -------------------------------------------------------------------------------------------


def _secondary_ids(sections: _Sections) -> tuple[SecondaryId, ...]:
    """The numbers that link this registration to others: its ClinicalTrials.gov twin, its EudraCT number
    (a trial moved over from EudraCT) and any other registry's number."""
    numbers = _mapping(sections.identifiers.get("secondaryIdentifyingNumbers"))
    found: list[SecondaryId] = []
    nct_twin = _text(_mapping(numbers.get("nctNumber")).get("number"))
    if nct_twin:
        found.append(_typed_id(nct_twin, "nct", "NCT_ID", "ClinicalTrials.gov"))
    eudract = _text(_mapping(sections.application.get("eudraCt")).get("eudraCtCode"))
    if eudract:
        found.append(_typed_id(eudract, "eudract", "EUDRACT_NUMBER", "EudraCT"))
    for registry in map(_mapping, _list(numbers.get("additionalRegistries"))):
        number = _text(registry.get("number"))
        if number:
            name = _text(registry.get("otherRegistryName")) or _text(registry.get("registryName"))
            found.append(SecondaryId(number, "OTHER", name))
    for key, value in numbers.items():
        number = _text(_mapping(value).get("number"))
        if key not in ("nctNumber", "additionalRegistries") and number:
            found.append(SecondaryId(number, "OTHER", key.removesuffix("Number") or key))
    return tuple(found)


def _typed_id(text: str, scheme: str, kind: str, domain: str) -> SecondaryId:
    """The identifier in canonical form under its type, or as written (type OTHER) when it is not one."""
    found = registry_id(text)
    if found is not None and found.scheme == scheme:
        return SecondaryId(found.value, kind, domain)
    return SecondaryId(text, "OTHER", domain)


# -- small readers -----------------------------------------------------------------------------------------


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value).strip() or None


def _strings(value: object) -> list[str]:
    return [text for text in map(_text, _list(value)) if text]


def _unique(values: Iterable[object]) -> tuple[str, ...]:
    """Texts in order, each once (case-insensitively), empty ones left out."""
    seen: dict[str, str] = {}
    for value in values:
        text = _text(value)
        if text and text.casefold() not in seen:
            seen[text.casefold()] = text
    return tuple(seen.values())


def _numbered(value: object) -> list[Mapping[str, Any]]:
    """Items of a numbered list, by their `number` (unnumbered ones last, in their order)."""
    items = [_mapping(item) for item in _list(value)]
    return sorted(items, key=lambda item: (not isinstance(item.get("number"), int), item.get("number") or 0))


def _split_joined(value: object) -> tuple[str, ...]:
    """A summary's comma-joined list, split only at top-level commas that start a capitalised item."""
    text = _text(value)
    if text is None:
        return ()
    items, depth, start = [], 0, 0
    for match in re.finditer(r"[()\[\]]|" + _JOINED_ITEM.pattern, text):
        token = match.group()
        if token in "([":
            depth += 1
        elif token in ")]":
            depth = max(0, depth - 1)
        elif depth == 0:
            items.append(text[start : match.start()])
            start = match.end()
    items.append(text[start:])
    return _unique(items)


def _count(value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValueError(f"subject count is not a number: {value!r}")


def _earliest(days: Iterable[date | None]) -> date | None:
    return min((day for day in days if day is not None), default=None)


def _latest(days: Iterable[date | None]) -> date | None:
    return max((day for day in days if day is not None), default=None)
