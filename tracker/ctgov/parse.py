"""Pure parsing: one raw API v2 study dict in, one `StudyRecord` out.

Lenient by design (API_NOTES §12.8-9): every module may be missing, unknown keys are ignored and unknown
enum values are kept as they came. A record is rejected (`RecordError`) only when it cannot identify
itself or carries a value of the wrong shape where we must read it (a date that is not a date, a count
that is not a number).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any, Literal

import orjson

from tracker.errors import RecordError

Precision = Literal["year", "month", "day"]

NCT_ID_PATTERN = re.compile(r"^NCT\d{8}$")
_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")

# armGroups[].type → the role an intervention plays in that arm.
ARM_ROLES: dict[str, str] = {
    "EXPERIMENTAL": "experimental",
    "ACTIVE_COMPARATOR": "active_comparator",
    "PLACEBO_COMPARATOR": "placebo",
    "SHAM_COMPARATOR": "sham",
    "NO_INTERVENTION": "no_intervention",
    "OTHER": "other",
}
# When an intervention sits in several arms, the most investigational role names it.
_ROLE_RANK = ["experimental", "active_comparator", "other", "placebo", "sham", "no_intervention"]

STATUSES_ACTIVE = ("NOT_YET_RECRUITING", "RECRUITING", "ENROLLING_BY_INVITATION", "ACTIVE_NOT_RECRUITING")


@dataclass(frozen=True, slots=True)
class PartialDate:
    """A registry date that may be only a year or a month ("2020-05"); keeps its precision and type."""

    raw: str
    precision: Precision
    type: str | None  # ACTUAL / ESTIMATED, absent on older records
    first_day: date  # the earliest day the partial date can mean, for sorting and range filters


# The parts of a StudyRecord are read-only by convention, like the record itself (see there).


@dataclass(slots=True)
class ArmGroup:
    label: str
    type: str | None
    description: str | None
    intervention_names: tuple[str, ...]


@dataclass(slots=True)
class Intervention:
    type: str | None
    name: str
    description: str | None
    other_names: tuple[str, ...]
    arm_group_labels: tuple[str, ...]
    arm_roles: tuple[str, ...]  # roles of every arm the intervention is in, most investigational first

    @property
    def arm_role(self) -> str | None:
        return self.arm_roles[0] if self.arm_roles else None


@dataclass(slots=True)
class Organization:
    name: str
    agency_class: str | None


@dataclass(slots=True)
class Location:
    facility: str | None
    city: str | None
    state: str | None
    country: str | None
    status: str | None


@dataclass(slots=True)
class OutcomeMeasure:
    """One registered outcome measure; `order` is its position within its role, from 0."""

    role: str  # primary / secondary / other
    measure: str
    description: str | None
    time_frame: str | None
    order: int


@dataclass(slots=True)
class StudyDesign:
    allocation: str | None
    intervention_model: str | None
    masking: str | None
    primary_purpose: str | None


@dataclass(slots=True)
class SecondaryId:
    id: str
    type: str | None
    domain: str | None


@dataclass(slots=True)
class StudyRecord:
    """The normalised fields of one study, plus the raw JSON exactly as received.

    Read-only by convention, not frozen: a frozen dataclass of this width costs a tenth of the parse time.
    """

    registration_id: str
    brief_title: str | None
    official_title: str | None
    acronym: str | None
    overall_status: str | None
    last_known_status: str | None
    why_stopped: str | None
    phases: tuple[str, ...]
    study_type: str | None
    enrollment_count: int | None
    enrollment_type: str | None
    start_date: PartialDate | None
    primary_completion_date: PartialDate | None
    completion_date: PartialDate | None
    first_posted: date | None
    last_update_posted: date | None
    results_first_posted: date | None
    has_results: bool
    lead_sponsor: Organization | None
    collaborators: tuple[Organization, ...]
    conditions: tuple[str, ...]
    keywords: tuple[str, ...]
    arm_groups: tuple[ArmGroup, ...]
    interventions: tuple[Intervention, ...]
    locations: tuple[Location, ...]
    brief_summary: str | None
    detailed_description: str | None
    eligibility_criteria: str | None
    minimum_age: str | None
    maximum_age: str | None
    minimum_age_years: float | None
    maximum_age_years: float | None
    sex: str | None
    std_ages: tuple[str, ...]
    healthy_volunteers: bool | None
    condition_mesh_terms: tuple[str, ...]
    intervention_mesh_terms: tuple[str, ...]
    outcomes: tuple[OutcomeMeasure, ...]
    design: StudyDesign
    secondary_ids: tuple[SecondaryId, ...]
    content_hash: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)


def parse_study(raw: object) -> StudyRecord:
    """Parse one API v2 study. Raises `RecordError` for a record that cannot be used."""
    if not isinstance(raw, Mapping):
        raise RecordError(f"study is a {type(raw).__name__}, not an object")
    if "FullStudiesResponse" in raw or "ProtocolSection" in raw or "Study" in raw:
        raise RecordError("legacy API v1 record (PascalCase keys); only API v2 is supported")
    protocol = _module(raw, "protocolSection", None)
    ident = _module(protocol, "identificationModule", None)
    registration_id = ident.get("nctId")
    if not isinstance(registration_id, str) or not NCT_ID_PATTERN.match(registration_id.strip().upper()):
        raise RecordError(f"missing or malformed nctId {registration_id!r}")
    registration_id = registration_id.strip().upper()
    try:
        return _parse_protocol(raw, protocol, ident, registration_id)
    except (TypeError, ValueError, AttributeError) as exc:
        raise RecordError(str(exc), registration_id) from None


def _parse_protocol(
    raw: Mapping[str, Any], protocol: Mapping[str, Any], ident: Mapping[str, Any], registration_id: str
) -> StudyRecord:
    status = _module(protocol, "statusModule", registration_id)
    design = _module(protocol, "designModule", registration_id)
    sponsors = _module(protocol, "sponsorCollaboratorsModule", registration_id)
    conditions = _module(protocol, "conditionsModule", registration_id)
    arms_module = _module(protocol, "armsInterventionsModule", registration_id)
    description = _module(protocol, "descriptionModule", registration_id)
    eligibility = _module(protocol, "eligibilityModule", registration_id)
    contacts = _module(protocol, "contactsLocationsModule", registration_id)
    derived = _module(raw, "derivedSection", registration_id)
    outcomes = _module(protocol, "outcomesModule", registration_id)
    enrollment = _mapping(design.get("enrollmentInfo"))
    design_info = _mapping(design.get("designInfo"))
    minimum_age = _text(eligibility.get("minimumAge"))
    maximum_age = _text(eligibility.get("maximumAge"))

    arm_groups = tuple(_parse_arm_group(item) for item in _list(arms_module.get("armGroups")))
    return StudyRecord(
        registration_id=registration_id,
        brief_title=_text(ident.get("briefTitle")),
        official_title=_text(ident.get("officialTitle")),
        acronym=_text(ident.get("acronym")),
        overall_status=_text(status.get("overallStatus")),
        last_known_status=_text(status.get("lastKnownStatus")),
        why_stopped=_text(status.get("whyStopped")),
        phases=_strings(design.get("phases")),
        study_type=_text(design.get("studyType")),
        enrollment_count=_count(enrollment.get("count")),
        enrollment_type=_text(enrollment.get("type")),
        start_date=parse_partial_date(status.get("startDateStruct"), "startDateStruct"),
        primary_completion_date=parse_partial_date(
            status.get("primaryCompletionDateStruct"), "primaryCompletionDateStruct"
        ),
        completion_date=parse_partial_date(status.get("completionDateStruct"), "completionDateStruct"),
        first_posted=_full_date(status.get("studyFirstPostDateStruct"), "studyFirstPostDateStruct"),
        last_update_posted=_full_date(status.get("lastUpdatePostDateStruct"), "lastUpdatePostDateStruct"),
        results_first_posted=_full_date(
            status.get("resultsFirstPostDateStruct"), "resultsFirstPostDateStruct"
        ),
        has_results=bool(raw.get("hasResults", False)),
        lead_sponsor=_organization(sponsors.get("leadSponsor")),
        collaborators=tuple(
            org for org in map(_organization, _list(sponsors.get("collaborators"))) if org is not None
        ),
        conditions=_strings(conditions.get("conditions")),
        keywords=_strings(conditions.get("keywords")),
        arm_groups=arm_groups,
        interventions=tuple(
            _parse_intervention(item, arm_groups) for item in _list(arms_module.get("interventions"))
        ),
        locations=tuple(_parse_location(item) for item in _list(contacts.get("locations"))),
        brief_summary=_text(description.get("briefSummary")),
        detailed_description=_text(description.get("detailedDescription")),
        eligibility_criteria=_text(eligibility.get("eligibilityCriteria")),
        minimum_age=minimum_age,
        maximum_age=maximum_age,
        minimum_age_years=age_in_years(minimum_age),
        maximum_age_years=age_in_years(maximum_age),
        sex=_text(eligibility.get("sex")),
        std_ages=_strings(eligibility.get("stdAges")),
        healthy_volunteers=_bool_or_none(eligibility.get("healthyVolunteers")),
        condition_mesh_terms=_mesh_terms(derived.get("conditionBrowseModule")),
        intervention_mesh_terms=_mesh_terms(derived.get("interventionBrowseModule")),
        outcomes=_parse_outcomes(outcomes),
        design=StudyDesign(
            allocation=_text(design_info.get("allocation")),
            intervention_model=_text(design_info.get("interventionModel")),
            masking=_text(_mapping(design_info.get("maskingInfo")).get("masking")),
            primary_purpose=_text(design_info.get("primaryPurpose")),
        ),
        secondary_ids=tuple(
            sid for sid in map(_parse_secondary_id, _list(ident.get("secondaryIdInfos"))) if sid is not None
        ),
        content_hash=content_hash(raw),
        raw=raw,
    )


def content_hash(raw: Mapping[str, Any]) -> str:
    """A stable hash of the study content.

    `derivedSection.miscInfoModule.versionHolder` is the registry's data-refresh date, which moves every
    day for every record; hashing it would make each re-fetched study look changed.
    """
    derived = raw.get("derivedSection")
    if isinstance(derived, Mapping) and isinstance(derived.get("miscInfoModule"), Mapping):
        misc = {k: v for k, v in derived["miscInfoModule"].items() if k != "versionHolder"}
        raw = {**raw, "derivedSection": {**derived, "miscInfoModule": misc}}
    return hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()


def parse_partial_date(struct: object, name: str) -> PartialDate | None:
    """`{"date": "2020-05", "type": "ACTUAL"}` → PartialDate; None when absent."""
    if not isinstance(struct, dict):
        return None
    value = struct.get("date")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name}.date is not a string: {value!r}")
    try:
        return _partial_date(value, struct.get("type"))
    except ValueError:
        raise ValueError(f"{name}.date is not a valid yyyy, yyyy-MM or yyyy-MM-dd date: {value!r}") from None


@lru_cache(maxsize=65536)
def _partial_date(value: str, date_type: object) -> PartialDate:
    # Cached: a sync sees the same few thousand dates tens of thousands of times.
    value = value.strip()
    match = _PARTIAL_DATE.match(value)
    if match is None:
        raise ValueError(value)
    year, month, day = match.groups()
    precision: Precision = "day" if day else "month" if month else "year"
    # date() raises ValueError for impossible dates such as 2020-13, which rejects the record.
    first_day = date(int(year), int(month or 1), int(day or 1))
    return PartialDate(value, precision, _text(date_type), first_day)


def _full_date(struct: object, name: str) -> date | None:
    parsed = parse_partial_date(struct, name)
    return parsed.first_day if parsed else None


def _module(parent: Mapping[str, Any], key: str, registration_id: str | None) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):  # JSON objects are dicts; abc checks cost in this hot path
        raise RecordError(f"{key} is a {type(value).__name__}, not an object", registration_id)
    return value


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    if type(value) is str:  # the common case first: this runs ~30 times per study
        return value.strip() or None
    if value is None:
        return None
    return str(value).strip() or None


def _strings(value: object) -> tuple[str, ...]:
    # Hot path (tens of thousands of calls per sync): a plain loop beats nested generators.
    if not isinstance(value, list):
        return ()
    texts = []
    for item in value:
        if item is None:
            continue
        text = (item if isinstance(item, str) else str(item)).strip()
        if text:
            texts.append(text)
    return tuple(texts)


def _count(value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"enrollmentInfo.count is not a number: {value!r}")
    return int(value)


def _bool_or_none(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _organization(value: object) -> Organization | None:
    value = _mapping(value)
    name = _text(value.get("name"))
    return Organization(name, _text(value.get("class"))) if name else None


def _parse_arm_group(item: object) -> ArmGroup:
    item = _mapping(item)
    return ArmGroup(
        label=_text(item.get("label")) or "",
        type=_text(item.get("type")),
        description=_text(item.get("description")),
        intervention_names=_strings(item.get("interventionNames")),
    )


def _parse_intervention(item: object, arm_groups: Sequence[ArmGroup]) -> Intervention:
    item = _mapping(item)
    labels = _strings(item.get("armGroupLabels"))
    roles = {
        ARM_ROLES.get(group.type or "", "other")
        for group in arm_groups
        if group.label in labels and group.type is not None
    }
    return Intervention(
        type=_text(item.get("type")),
        name=_text(item.get("name")) or "",
        description=_text(item.get("description")),
        other_names=_strings(item.get("otherNames")),
        arm_group_labels=labels,
        arm_roles=tuple(sorted(roles, key=_ROLE_RANK.index)),
    )


def _parse_location(item: object) -> Location:
    item = _mapping(item)
    return Location(
        facility=_text(item.get("facility")),
        city=_text(item.get("city")),
        state=_text(item.get("state")),
        country=_text(item.get("country")),
        status=_text(item.get("status")),
    )


# outcomesModule list key → the role its measures play.
OUTCOME_ROLES = (
    ("primaryOutcomes", "primary"),
    ("secondaryOutcomes", "secondary"),
    ("otherOutcomes", "other"),
)


def _parse_outcomes(module: Mapping[str, Any]) -> tuple[OutcomeMeasure, ...]:
    measures: list[OutcomeMeasure] = []
    for key, role in OUTCOME_ROLES:
        order = 0
        for item in _list(module.get(key)):
            item = _mapping(item)
            measure = _text(item.get("measure"))
            if measure is None:  # a measure with no text names nothing; the registry requires one
                continue
            measures.append(
                OutcomeMeasure(
                    role, measure, _text(item.get("description")), _text(item.get("timeFrame")), order
                )
            )
            order += 1
    return tuple(measures)


def _parse_secondary_id(item: object) -> SecondaryId | None:
    item = _mapping(item)
    value = _text(item.get("id"))
    return SecondaryId(value, _text(item.get("type")), _text(item.get("domain"))) if value else None


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$")
# Registry age units → years. The API spells them "Years", "Months", "Weeks", "Days", "Hours", "Minutes".
_AGE_UNIT_YEARS = {
    "year": 1.0,
    "month": 1 / 12,
    "week": 7 / 365.25,
    "day": 1 / 365.25,
    "hour": 1 / 8766,
    "minute": 1 / 525960,
}


@lru_cache(maxsize=1024)
def age_in_years(value: str | None) -> float | None:
    """ "18 Years" → 18.0, "6 Months" → 0.5; None for an absent or unreadable age (kept as text anyway)."""
    if not value:
        return None
    match = _AGE.match(value)
    if match is None:
        return None
    unit = match.group(2).lower().rstrip("s")
    factor = _AGE_UNIT_YEARS.get(unit)
    return round(float(match.group(1)) * factor, 3) if factor is not None else None


def _mesh_terms(browse: object) -> tuple[str, ...]:
    return _strings([_mapping(mesh).get("term") for mesh in _list(_mapping(browse).get("meshes"))])
