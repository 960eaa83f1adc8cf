"""Persisting classifications and manual overrides; the database side of the pure classifier.

`classifications` keeps the automatic result (with evidence) of each study, by classifier version and
content hash. `overrides` keeps manual corrections, one row per study, each dimension nullable (= not
overridden). `study_labels` holds the EFFECTIVE labels queries filter on: the automatic ones, replaced
dimension by dimension where an override exists (those rows carry source "manual"). Overrides are never
touched by a sync or a reclassification, so they survive both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.orm import Session

from tracker.classify.eligibility import FACET_NAMES, PRIOR_TREATMENT_VALUES
from tracker.classify.model import ClassificationResult
from tracker.classify.rules import CLASSIFIER_VERSION, classify_phenotypes, classify_study
from tracker.classify.version import pending_query
from tracker.ctgov.parse import StudyRecord
from tracker.db.models import Classification, Override, Study, StudyLabel
from tracker.db.session import batched, transaction, utcnow
from tracker.errors import FilterError, RecordError, TrackerError
from tracker.registries import parse_stored
from tracker.store import (
    JsonText,
    PageResult,
    Unreadable,
    gc_paused,
    insert_rows,
    interrupts_between_pages,
    parse_page,
)
from tracker.taxonomy import load_taxonomy

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
NUMERIC_FACETS = ("age_min", "age_max", "edss_min", "edss_max")
FACET_CHOICES = {
    "sex": ("all", "female", "male"),
    "healthy_volunteers": ("yes", "no"),
    "prior_treatment": PRIOR_TREATMENT_VALUES,
}
MS_RELEVANCE = ("ms", "ms_plus")


class OverrideError(TrackerError):
    """An override that cannot be applied: unknown study, nothing to change, no note."""

    exit_code = 2


ENDPOINT_ROLES = ("primary", "secondary")


@dataclass(frozen=True, slots=True)
class EffectiveLabel:
    dimension: str  # relevance / mechanism / phenotype / endpoint / an eligibility facet name
    key: str
    role: str | None
    source: str  # auto / manual


# ---------------------------------------------------------------------------------------------------------
# Classification


def classify_pending(
    engine: Engine,
    *,
    all_studies: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> int:
    """Classify studies never classified, changed since, or classified by another classifier version
    (or every study with `all_studies`). Returns how many were classified; `progress(done, total)` is
    called after each batch. With `workers` > 1 and enough pending, child processes read, parse and
    classify batches (the rules are pure CPU) while this process writes what they return."""
    with Session(engine) as session:
        pending = list(session.scalars(pending_query(all_studies)))
    batches = [pending[start : start + batch_size] for start in range(0, len(pending), batch_size)]
    if workers > 1 and len(batches) >= PARALLEL_MIN_BATCHES:
        rows = _rows_in_children(engine, batches, workers)
    else:
        rows = (_rows_of_batch(engine, batch) for batch in batches)
    done = 0
    for batch, (classified, labels) in zip(batches, rows, strict=True):
        with interrupts_between_pages(), transaction(engine) as session:
            _write_rows(session, classified, labels)
        done += len(batch)
        if progress is not None:
            progress(done, len(pending))
    if pending:
        logger.info("classified %d studies (classifier %s)", len(pending), CLASSIFIER_VERSION)
    return len(pending)


# Below this many batches a second process costs more to start than it saves.
PARALLEL_MIN_BATCHES = 4


def _rows_in_children(engine: Engine, batches: list[list[str]], workers: int) -> Iterator[_Rows]:
    """Each batch's rows, read, parsed and classified in forked child processes (`tracker.workers`), in
    batch order; each child opens its own engine."""
    from tracker.workers import ordered_map

    url = engine.url.render_as_string(hide_password=False)
    work = [(url, batch) for batch in batches]
    for _work, rows in ordered_map(_rows_in_child, work, workers=workers, engine=engine):
        yield rows


def _rows_in_child(work: tuple[str, list[str]]) -> _Rows:
    from tracker.workers import child_engine

    url, registration_ids = work
    return _rows_of_batch(child_engine(url), registration_ids)


def _rows_of_batch(engine: Engine, registration_ids: Sequence[str]) -> _Rows:
    # as a sync's page: the collector's passes over a batch's decoded JSON find nothing to free
    with gc_paused(), Session(engine) as session:
        records = _stored_records(session, registration_ids)
        return classification_rows(records, _overrides(session, [r.registration_id for r in records]))


def _stored_records(session: Session, registration_ids: Sequence[str]) -> list[StudyRecord]:
    rows = session.execute(
        select(Study.registration_id, Study.registry_name, Study.raw).where(
            Study.registration_id.in_(registration_ids)
        )
    )
    stored = {registration_id: (registry, raw) for registration_id, registry, raw in rows}
    return [
        record
        for registration_id in registration_ids
        if registration_id in stored
        and (record := _record(registration_id, *stored[registration_id])) is not None
    ]


def classify_records(
    session: Session,
    records: Sequence[StudyRecord],
    classified: Mapping[str, Classified] | None = None,
) -> int:
    """Classify parsed records and store their results and effective labels in `session`'s transaction.

    The sync and the import call it on each page they land (`store.ingest_page(on_landed=...)`), with the
    records the store has just parsed, so nothing is read or parsed twice here; `classified` holds what a
    worker process already classified (`classify_raw`). Returns how many it classified.
    """
    if not records:
        return 0
    overrides = _overrides(session, [record.registration_id for record in records])
    classification, labels = classification_rows(records, overrides, classified)
    _write_rows(session, classification, labels)
    return len(classification)


# An effective label as plain values: (dimension, key, role, source).
_LabelValues = tuple[str, str, str | None, str]


class Classified(NamedTuple):
    """One study's automatic classification as plain values: what a worker process sends back. Its result
    travels as JSON text, the form it is stored in: a string unpickles in the parent some thirty times
    faster than the nested dicts of evidence (and the parent need not encode it again)."""

    content_hash: str  # of the record classified: a result is used only for the same content
    relevance: str
    multi_disease: bool
    result: str  # ClassificationResult.to_dict() as JSON text
    labels: tuple[_LabelValues, ...]  # effective labels without an override


def classify_one(record: StudyRecord, override: Override | None = None) -> Classified:
    result = classify_study(record)
    return Classified(
        record.content_hash,
        result.relevance.key,
        result.multi_disease,
        orjson.dumps(result.to_dict()).decode(),
        tuple(map(_label_values, effective_labels(result, override, record))),
    )


def raw_payload(raw_studies: list[Any]) -> bytes | list[Any]:
    """A part of raw studies as a worker process receives it (`classify_raw`): JSON bytes, which a child
    decodes four times faster than it unpickles the same dicts. Undecodable items are left out (the
    parent's store rejects them); a part JSON cannot encode travels as it is."""
    readable = [raw for raw in raw_studies if not isinstance(raw, Unreadable)]
    try:
        return orjson.dumps(readable)
    except orjson.JSONEncodeError:
        return readable


def classify_raw(payload: bytes | list[Any]) -> dict[str, Classified]:
    """Pure CPU, run in a worker process by the import and the sync: a part of raw ClinicalTrials.gov
    studies (`raw_payload`) parsed (what cannot be parsed is left to the parent's store to reject) and
    classified."""
    with gc_paused():
        raw_studies = orjson.loads(payload) if isinstance(payload, bytes) else payload
        return {
            record.registration_id: classify_one(record) for record in parse_page(raw_studies, PageResult())
        }


# (classification rows, effective label rows) of some records, ready to insert.
_Rows = tuple[list[dict[str, Any]], list[dict[str, Any]]]


def classification_rows(
    records: Sequence[StudyRecord],
    overrides: Mapping[str, Override],
    classified: Mapping[str, Classified] | None = None,
) -> _Rows:
    """The `classifications` and `study_labels` rows of parsed records (pure, given their overrides and
    what was `classified` elsewhere: used for a record of the same content and without an override)."""
    now = utcnow()
    classification: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for record in records:
        registration_id = record.registration_id
        override = overrides.get(registration_id)
        done = classified.get(registration_id) if classified else None
        if done is None or done.content_hash != record.content_hash or override is not None:
            done = classify_one(record, override)
        classification.append(
            {
                "registration_id": registration_id,
                "taxonomy_version": CLASSIFIER_VERSION,
                "classified_at": now,
                "content_hash": record.content_hash,
                "relevance": done.relevance,
                "multi_disease": done.multi_disease,
                "result": JsonText(done.result),
            }
        )
        labels.extend(_label_row(registration_id, label) for label in done.labels)
    return classification, labels


def _write_rows(session: Session, classification: list[dict[str, Any]], labels: list[dict[str, Any]]) -> None:
    """Replace the stored results and labels of the classified studies.

    Labels are only ever written with their study's classification, so only the studies that had one can
    have labels to delete: a new study (every study of a first import) costs no delete of labels. Postgres,
    with no statistics yet for a table that a bulk import is filling, planned that delete as a read of every
    label row, once a page (100k import: 94 → 153 s once the single-column index was gone)."""
    if not classification:
        return
    reclassified: list[str] = []
    for chunk in batched([row["registration_id"] for row in classification]):
        dropped = delete(Classification).where(Classification.registration_id.in_(chunk))
        reclassified += session.scalars(dropped.returning(Classification.registration_id))
    for chunk in batched(reclassified):
        session.execute(delete(StudyLabel).where(StudyLabel.registration_id.in_(chunk)))
    # The store's bulk insert: COPY on Postgres, and a concurrent writer's rows are kept, not duplicated.
    insert_rows(session, Classification, classification)
    if labels:
        insert_rows(session, StudyLabel, labels)


def _record(registration_id: str, registry: str, raw: Any) -> StudyRecord | None:
    if raw is None:
        return None
    try:
        return parse_stored(registry, raw)
    except RecordError as exc:  # stored before a parser change; keep its old labels rather than fail the run
        logger.warning("cannot classify %s: %s", registration_id, exc)
        return None


# ---------------------------------------------------------------------------------------------------------
# Effective labels


def effective_labels(
    result: ClassificationResult, override: Override | None, record: StudyRecord | None = None
) -> list[EffectiveLabel]:
    """The labels a study shows: automatic, replaced per dimension by its override (source "manual").

    Phenotypes apply only to MS trials: an override to not_ms drops them; an override from not_ms to
    ms/ms_plus brings in the phenotypes the rules find (when the record is at hand)."""
    labels: list[EffectiveLabel] = []
    relevance = override.relevance if override is not None and override.relevance else None
    effective_relevance = relevance or result.relevance.key
    labels.append(EffectiveLabel("relevance", effective_relevance, None, "manual" if relevance else "auto"))

    if override is not None and override.mechanisms is not None:
        auto_roles = {label.key: label.role for label in result.mechanisms}
        labels += [
            EffectiveLabel("mechanism", key, auto_roles.get(key), "manual") for key in override.mechanisms
        ]
    else:
        labels += [EffectiveLabel("mechanism", m.key, m.role, "auto") for m in result.mechanisms]

    if override is not None and override.phenotypes is not None:
        labels += [EffectiveLabel("phenotype", key, None, "manual") for key in override.phenotypes]
    elif effective_relevance in MS_RELEVANCE:
        phenotypes = result.phenotypes
        if not phenotypes and record is not None:
            phenotypes = classify_phenotypes(record)
        labels += [EffectiveLabel("phenotype", p.key, None, "auto") for p in phenotypes]
    labels += _endpoint_labels(result, override)
    labels += _facet_labels(result, override)
    return labels


def _endpoint_labels(result: ClassificationResult, override: Override | None) -> list[EffectiveLabel]:
    """Endpoint keys per role; an override of one role leaves the other automatic."""
    labels: list[EffectiveLabel] = []
    for role in ENDPOINT_ROLES:
        manual = getattr(override, f"endpoints_{role}", None) if override is not None else None
        if manual is not None:
            labels += [EffectiveLabel("endpoint", key, role, "manual") for key in manual]
        else:
            labels += [EffectiveLabel("endpoint", key, role, "auto") for key in result.endpoint_keys(role)]
    return labels


def _facet_labels(result: ClassificationResult, override: Override | None) -> list[EffectiveLabel]:
    """Eligibility facets as labels (dimension = facet name, key = value), overridden facet by facet."""
    manual: dict[str, Any] = (override.eligibility or {}) if override is not None else {}
    labels = [
        EffectiveLabel(facet.name, facet.value[:40], None, "auto")
        for facet in result.eligibility
        if facet.name not in manual
    ]
    for name, values in manual.items():
        labels += [EffectiveLabel(name, str(value)[:40], None, "manual") for value in values]
    return labels


def _label_values(label: EffectiveLabel) -> _LabelValues:
    return (label.dimension, label.key, label.role, label.source)


def _label_row(registration_id: str, label: _LabelValues) -> dict[str, Any]:
    """A `study_labels` row of an effective label's plain values."""
    dimension, key, role, source = label
    return {
        "registration_id": registration_id,
        "dimension": dimension,
        "key": key,
        "role": role,
        "source": source,
    }


def _overrides(session: Session, registration_ids: Sequence[str]) -> dict[str, Override]:
    found: dict[str, Override] = {}
    for chunk in batched(registration_ids):
        found.update(
            (row.registration_id, row)
            for row in session.scalars(select(Override).where(Override.registration_id.in_(chunk)))
        )
    return found


# ---------------------------------------------------------------------------------------------------------
# Overrides


def set_override(
    engine: Engine,
    registration_id: str,
    *,
    mechanisms: Sequence[str] | None = None,
    phenotypes: Sequence[str] | None = None,
    relevance: str | None = None,
    endpoints_primary: Sequence[str] | None = None,
    endpoints_secondary: Sequence[str] | None = None,
    eligibility: Mapping[str, Sequence[str]] | None = None,
    note: str,
) -> Override:
    """Record a manual correction and re-materialise the study's labels at once.

    Only the dimensions given change; an earlier override of another dimension stays. Unknown keys are
    refused with the list of valid ones (`tracker.errors.FilterError`, from `Taxonomy.validate`)."""
    registration_id = registration_id.strip().upper()
    taxonomy = load_taxonomy()
    mechanisms = _dedupe(taxonomy.validate("mechanism", mechanisms)) if mechanisms is not None else None
    phenotypes = _dedupe(taxonomy.validate("phenotype", phenotypes)) if phenotypes is not None else None
    if relevance is not None:
        taxonomy.validate("relevance", [relevance])
    endpoints = {
        role: _dedupe(taxonomy.validate("endpoint", keys)) if keys is not None else None
        for role, keys in (("primary", endpoints_primary), ("secondary", endpoints_secondary))
    }
    facets = validate_facets(eligibility) if eligibility else None
    if (
        mechanisms is None
        and phenotypes is None
        and relevance is None
        and all(keys is None for keys in endpoints.values())
        and not facets
    ):
        raise OverrideError(
            "nothing to override: give --mechanism, --phenotype, --relevance, --endpoint-primary, "
            "--endpoint-secondary or --facet (or --clear)"
        )
    if not note or not note.strip():
        raise OverrideError("an override needs a --note saying why")
    now = utcnow()
    with transaction(engine) as session:
        _require_study(session, registration_id)
        override = session.get(Override, registration_id)
        if override is None:
            override = Override(
                registration_id=registration_id, note=note.strip(), created_at=now, updated_at=now
            )
            session.add(override)
        override.note = note.strip()
        override.updated_at = now
        if mechanisms is not None:
            override.mechanisms = list(mechanisms)
        if phenotypes is not None:
            override.phenotypes = list(phenotypes)
        if relevance is not None:
            override.relevance = relevance
        if endpoints["primary"] is not None:
            override.endpoints_primary = list(endpoints["primary"])
        if endpoints["secondary"] is not None:
            override.endpoints_secondary = list(endpoints["secondary"])
        if facets:
            override.eligibility = {**(override.eligibility or {}), **facets}
        session.flush()
        _rematerialise(session, registration_id, override)
        return override


def clear_override(engine: Engine, registration_id: str) -> bool:
    """Remove a study's override and restore its automatic labels. False when there was none."""
    registration_id = registration_id.strip().upper()
    with transaction(engine) as session:
        _require_study(session, registration_id)
        override = session.get(Override, registration_id)
        if override is None:
            return False
        session.delete(override)
        session.flush()
        _rematerialise(session, registration_id, None)
        return True


def get_override(engine: Engine, registration_id: str) -> Override | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Override, registration_id.strip().upper())


def _require_study(session: Session, registration_id: str) -> None:
    if session.get(Study, registration_id) is None:
        raise OverrideError(f"{registration_id} is not in the database (sync or import it first)")


def _rematerialise(session: Session, registration_id: str, override: Override | None) -> None:
    """Rewrite one study's effective labels, classifying it first when it never was (or is stale)."""
    study = session.get(Study, registration_id)
    assert study is not None  # checked by the caller
    classification = session.get(Classification, registration_id)
    record = _record(registration_id, study.registry_name, study.raw)
    if (
        classification is None
        or classification.content_hash != study.content_hash
        or classification.taxonomy_version != CLASSIFIER_VERSION
    ):
        classify_records(session, [record] if record is not None else [])
        return
    result = ClassificationResult.from_dict(classification.result)
    session.execute(delete(StudyLabel).where(StudyLabel.registration_id == registration_id))
    rows = [
        _label_row(registration_id, _label_values(label))
        for label in effective_labels(result, override, record)
    ]
    session.execute(insert(StudyLabel), rows)


def validate_facets(facets: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Facet overrides checked: known facet names, numbers where numbers belong, known flag values."""
    checked: dict[str, list[str]] = {}
    for name, values in facets.items():
        if name not in FACET_NAMES:
            raise FilterError(f"unknown eligibility facet {name!r}; valid facets: {', '.join(FACET_NAMES)}")
        values = [str(value).strip() for value in values if str(value).strip()]
        if name in NUMERIC_FACETS:
            for value in values:
                try:
                    float(value)
                except ValueError:
                    raise FilterError(f"facet {name} takes a number, not {value!r}") from None
            values = [
                f"{float(value):.1f}" if name.startswith("edss") else f"{float(value):g}" for value in values
            ]
        choices = FACET_CHOICES.get(name)
        if choices is not None:
            unknown = [value for value in values if value not in choices]
            if unknown:
                raise FilterError(f"facet {name} takes {', '.join(choices)}, not {', '.join(unknown)}")
        checked[name] = values
    return checked


def parse_facets(items: Iterable[str]) -> dict[str, list[str]]:
    """ "edss_max=6.5", "prior_treatment=treatment_naive,prior_dmt_failure", "sex=" (clears) → a dict."""
    facets: dict[str, list[str]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise FilterError(f"a facet override is NAME=VALUE[,VALUE…], not {item!r}")
        facets[name.strip()] = parse_key_list(value) or []
    return facets


def _dedupe(keys: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(keys))


def parse_key_list(value: str | None) -> list[str] | None:
    """ "a,b , c" → ["a", "b", "c"]; None stays None; "" means an empty list (override to no labels)."""
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


__all__ = [
    "BATCH_SIZE",
    "EffectiveLabel",
    "OverrideError",
    "classify_pending",
    "classify_records",
    "clear_override",
    "effective_labels",
    "get_override",
    "parse_facets",
    "parse_key_list",
    "set_override",
    "validate_facets",
]
