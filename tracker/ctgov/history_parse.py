"""Pure parsing of the registry's version history (HISTORY_NOTES §1-§2, §4): raw JSON in, dataclasses out.

The internal API is undocumented, so every response is checked for the shape we rely on; a drifted shape
raises `HistoryShapeError` naming the missing or changed field. Its text comes as HTML (`<p>`, `<li>`,
entities, `<mark>` highlights); `html_to_text` turns it into plain text before anything is compared or
hashed, so a version that only re-wraps the same words in other markup is not a change.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson

from tracker.ctgov.parse import PartialDate, parse_partial_date
from tracker.errors import ApiError


class HistoryShapeError(ApiError):
    """A history response lacks a field we rely on, or has it in another shape: the API has drifted."""

    def __init__(self, registration_id: str, what: str) -> None:
        super().__init__(
            f"{registration_id}: the registry's history API changed shape ({what}); "
            "update tracker/ctgov/history_parse.py before backfilling again"
        )
        self.registration_id = registration_id
        self.what = what


_BLOCK_TAGS = re.compile(r"<\s*(?:br|/p|/li|/ul|/ol|/div|/h\d|/tr)\b[^>]*>", re.IGNORECASE)
_LIST_ITEM = re.compile(r"<\s*li\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_MARKDOWN_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>|~])")
_SPACE = re.compile(r"[ \t\r\f\v\u00a0]+")


def html_to_text(value: object) -> str | None:
    """HTML (internal API) or Markdown-escaped (API v2) text as plain text with single spaces; None if empty.

    Line structure is folded too: the two APIs break the same list in different places.
    """
    if not isinstance(value, str):
        return None if value is None else str(value)
    text = _LIST_ITEM.sub("\n- ", value)
    text = _BLOCK_TAGS.sub("\n", text)
    text = _TAG.sub("", text)
    text = html.unescape(text)
    text = _MARKDOWN_ESCAPE.sub(r"\1", text)
    text = " ".join(_SPACE.sub(" ", text).split())
    return text or None


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One version in the index: its number, the registry's date, the status then, the sections changed."""

    version: int
    date: date
    status: str | None
    module_labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A primary or secondary outcome measure as plain text."""

    measure: str
    time_frame: str | None
    description: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {"measure": self.measure, "time_frame": self.time_frame, "description": self.description}


@dataclass(frozen=True, slots=True)
class VersionIndex:
    """`GET /studies/{NCT}?history=true`: the version list and what the first version said."""

    registration_id: str
    entries: tuple[IndexEntry, ...]  # sorted by version
    original_enrollment_count: int | None
    original_enrollment_type: str | None
    original_primary_outcomes: tuple[Outcome, ...] | None  # None: the index did not say
    last_update_versions: dict[str, int]
    current_primary_outcomes: tuple[Outcome, ...]

    @property
    def last_version(self) -> int:
        return self.entries[-1].version

    def gaps(self) -> list[int]:
        """Version numbers missing from 0..last_version (a chain with a gap is never accepted)."""
        present = {entry.version for entry in self.entries}
        return [number for number in range(self.last_version + 1) if number not in present]


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """`GET /studies/{NCT}/history/{v}`: the fields of one version that the change trails need."""

    registration_id: str
    version: int
    overall_status: str | None
    start_date: PartialDate | None
    primary_completion_date: PartialDate | None
    completion_date: PartialDate | None
    enrollment_count: int | None
    enrollment_type: str | None
    primary_outcomes: tuple[Outcome, ...]
    secondary_outcomes: tuple[Outcome, ...]
    has_results: bool
    results_first_posted: date | None
    content_hash: str  # of the normalised fields, so markup-only edits hash alike


def _require(condition: bool, registration_id: str, what: str) -> None:
    if not condition:
        raise HistoryShapeError(registration_id, what)


def parse_index(registration_id: str, body: object) -> VersionIndex:
    """Check and parse a version index; `HistoryShapeError` names what drifted."""
    _require(isinstance(body, Mapping), registration_id, "the answer is not a JSON object")
    assert isinstance(body, Mapping)
    history = body.get("history")
    _require(isinstance(history, Mapping), registration_id, "no 'history' object")
    assert isinstance(history, Mapping)
    changes = history.get("changes")
    _require(
        isinstance(changes, list) and bool(changes),
        registration_id,
        "'history.changes' is not a non-empty list",
    )
    entries = [_index_entry(registration_id, position, item) for position, item in enumerate(changes)]
    entries.sort(key=lambda entry: entry.version)
    original = history.get("originalData")
    _require(
        original is None or isinstance(original, Mapping),
        registration_id,
        "'history.originalData' not an object",
    )
    original = original or {}
    enrollment = original.get("enrollmentInfo")
    _require(
        enrollment is None or isinstance(enrollment, Mapping),
        registration_id,
        "'history.originalData.enrollmentInfo' is not an object",
    )
    enrollment = enrollment or {}
    outcomes = original.get("primaryOutcomes")
    last_versions = history.get("lastUpdateVersions")
    protocol = body.get("protocolSection")
    return VersionIndex(
        registration_id=registration_id,
        entries=tuple(entries),
        original_enrollment_count=_count(
            registration_id, enrollment.get("count"), "originalData.enrollmentInfo.count"
        ),
        original_enrollment_type=_text(enrollment.get("type")),
        original_primary_outcomes=None
        if outcomes is None
        else _outcomes(registration_id, outcomes, "history.originalData.primaryOutcomes"),
        last_update_versions={
            str(key): value
            for key, value in (last_versions.items() if isinstance(last_versions, Mapping) else ())
            if isinstance(value, int) and not isinstance(value, bool)
        },
        current_primary_outcomes=_outcomes(
            registration_id,
            (_mapping(_mapping(protocol).get("outcomesModule"))).get("primaryOutcomes") or [],
            "protocolSection.outcomesModule.primaryOutcomes",
        ),
    )


def _index_entry(registration_id: str, position: int, item: object) -> IndexEntry:
    where = f"history.changes[{position}]"
    _require(isinstance(item, Mapping), registration_id, f"'{where}' is not an object")
    assert isinstance(item, Mapping)
    version = item.get("version")
    _require(
        isinstance(version, int) and not isinstance(version, bool) and version >= 0,
        registration_id,
        f"'{where}.version' is not a whole number",
    )
    raw_date = item.get("date")
    _require(isinstance(raw_date, str), registration_id, f"'{where}.date' is missing or not text")
    try:
        day = date.fromisoformat(str(raw_date)[:10])
    except ValueError:
        raise HistoryShapeError(registration_id, f"'{where}.date' is not YYYY-MM-DD: {raw_date!r}") from None
    labels = item.get("moduleLabels", [])
    _require(isinstance(labels, list), registration_id, f"'{where}.moduleLabels' is not a list")
    return IndexEntry(
        version=int(version),  # type: ignore[arg-type]
        date=day,
        status=_text(item.get("status")),
        module_labels=tuple(str(label) for label in labels),
    )


def parse_version(registration_id: str, version: int, body: object) -> VersionRecord:
    """Check and parse one version record (v2 module layout, HTML text)."""
    _require(
        isinstance(body, Mapping), registration_id, f"version {version}: the answer is not a JSON object"
    )
    assert isinstance(body, Mapping)
    number = body.get("studyVersion")
    _require(
        isinstance(number, int) and not isinstance(number, bool),
        registration_id,
        f"version {version}: 'studyVersion' is missing or not a whole number",
    )
    _require(number == version, registration_id, f"asked for version {version}, 'studyVersion' says {number}")
    study = body.get("study")
    _require(isinstance(study, Mapping), registration_id, f"version {version}: no 'study' object")
    assert isinstance(study, Mapping)
    protocol = study.get("protocolSection")
    _require(
        isinstance(protocol, Mapping),
        registration_id,
        f"version {version}: no 'study.protocolSection' object",
    )
    assert isinstance(protocol, Mapping)
    status = _mapping(protocol.get("statusModule"))
    design = _mapping(protocol.get("designModule"))
    outcomes = _mapping(protocol.get("outcomesModule"))
    enrollment = _mapping(design.get("enrollmentInfo"))
    where = f"version {version}: "
    try:
        start = parse_partial_date(status.get("startDateStruct"), "startDateStruct")
        primary = parse_partial_date(status.get("primaryCompletionDateStruct"), "primaryCompletionDateStruct")
        completion = parse_partial_date(status.get("completionDateStruct"), "completionDateStruct")
        results = parse_partial_date(status.get("resultsFirstPostDateStruct"), "resultsFirstPostDateStruct")
    except ValueError as exc:
        raise HistoryShapeError(registration_id, where + str(exc)) from None
    primary_outcomes = _outcomes(
        registration_id, outcomes.get("primaryOutcomes") or [], where + "primaryOutcomes"
    )
    secondary_outcomes = _outcomes(
        registration_id, outcomes.get("secondaryOutcomes") or [], where + "secondaryOutcomes"
    )
    overall_status = _text(status.get("overallStatus"))
    enrollment_count = _count(registration_id, enrollment.get("count"), where + "enrollmentInfo.count")
    enrollment_type = _text(enrollment.get("type"))
    has_results = bool(study.get("hasResults", False)) or results is not None
    normalised = {
        "status": overall_status,
        "dates": [_date_key(start), _date_key(primary), _date_key(completion)],
        "enrollment": [enrollment_count, enrollment_type],
        "primary": [o.as_dict() for o in primary_outcomes],
        "secondary": [o.as_dict() for o in secondary_outcomes],
        "results": [has_results, results.raw if results else None],
    }
    return VersionRecord(
        registration_id=registration_id,
        version=version,
        overall_status=overall_status,
        start_date=start,
        primary_completion_date=primary,
        completion_date=completion,
        enrollment_count=enrollment_count,
        enrollment_type=enrollment_type,
        primary_outcomes=primary_outcomes,
        secondary_outcomes=secondary_outcomes,
        has_results=has_results,
        results_first_posted=results.first_day if results else None,
        content_hash=hashlib.sha256(orjson.dumps(normalised, option=orjson.OPT_SORT_KEYS)).hexdigest(),
    )


def outcome_texts(outcomes: Sequence[Outcome]) -> tuple[str, ...]:
    """What 'the same primary outcome' means: the measure and its time frame, as plain text."""
    return tuple(f"{o.measure} [{o.time_frame}]" if o.time_frame else o.measure for o in outcomes)


def _outcomes(registration_id: str, value: object, where: str) -> tuple[Outcome, ...]:
    _require(isinstance(value, list), registration_id, f"'{where}' is not a list")
    assert isinstance(value, list)
    found = []
    for position, item in enumerate(value):
        _require(isinstance(item, Mapping), registration_id, f"'{where}[{position}]' is not an object")
        measure = html_to_text(item.get("measure"))
        if measure is None:
            continue
        found.append(
            Outcome(measure, html_to_text(item.get("timeFrame")), html_to_text(item.get("description")))
        )
    return tuple(found)


def _date_key(value: PartialDate | None) -> list[str | None] | None:
    return [value.raw, value.type] if value else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


def _count(registration_id: str, value: object, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise HistoryShapeError(registration_id, f"'{where}' is not a number: {value!r}")
    try:
        return int(value)
    except ValueError:
        raise HistoryShapeError(registration_id, f"'{where}' is not a number: {value!r}") from None
