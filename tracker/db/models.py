"""The schema, as SQLAlchemy 2 models. Schema only: every change goes through an Alembic migration.

Dates the registry gives as partial dates ("2020-05") are kept three ways: the raw text, its precision
and the first day it can mean (for sorting and range filters).

No `from __future__ import annotations` here: with real annotations the declarative mapping need not
evaluate each `Mapped[...]` string again, a sixth of this module's import time, which every command pays.
"""

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RegistrationId = String(32)
# Registry enums stay unbounded text: unknown (or hostile) values must be stored, not refused.
Enum = Text
Key = String(40)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: DateTime(),
    }  # naive UTC everywhere: SQLite keeps no zone


def _unique(table: str, *columns: str) -> Index:
    """A unique index (not a constraint: SQLite adds those only by recreating the table)."""
    return Index(f"uq_{table}_{'_'.join(columns)}", *columns, unique=True)


def _study_fk() -> ForeignKey:
    """A child row's study. The column gets no index of its own: each child table has a unique index that
    starts with it, which serves every lookup and cascading delete by study (a second one was one more
    B-tree written for every row; `tests/test_migrations.py` checks each such table has its unique index)."""
    return ForeignKey("studies.registration_id", ondelete="CASCADE")


class Study(Base):
    """One registration of a trial in one registry (ClinicalTrials.gov or CTIS), keyed by that registry's ID.

    Registrations that name each other are one trial: `trial_id` is the registration that stands for it
    (`tracker.linking`), so the landscape counts rows where `trial_id == registration_id`.
    """

    __tablename__ = "studies"
    # `tracker status` counts registrations per registry and the trials from this index alone.
    __table_args__ = (
        Index("ix_studies_registry_trial_id_registration_id", "registry", "trial_id", "registration_id"),
    )

    registration_id: Mapped[str] = mapped_column(RegistrationId, primary_key=True)
    # "registry" is the declarative base's own attribute name, so the ORM calls the column registry_name.
    registry_name: Mapped[str] = mapped_column("registry", String(10), server_default="ctgov")  # ctgov/ctis
    trial_id: Mapped[str | None] = mapped_column(RegistrationId, index=True)  # set on every write
    registry_status: Mapped[str | None] = mapped_column(Text)  # the registry's own status label (CTIS)
    decision_date: Mapped[date | None] = mapped_column(Date)  # CTIS: the overall EU decision
    brief_title: Mapped[str | None] = mapped_column(Text)
    official_title: Mapped[str | None] = mapped_column(Text)
    acronym: Mapped[str | None] = mapped_column(Text)
    overall_status: Mapped[str | None] = mapped_column(Enum, index=True)
    last_known_status: Mapped[str | None] = mapped_column(Enum)
    why_stopped: Mapped[str | None] = mapped_column(Text)
    phases: Mapped[list[Any]] = mapped_column(default=list)
    study_type: Mapped[str | None] = mapped_column(Enum)
    enrollment_count: Mapped[int | None] = mapped_column(Integer)
    enrollment_type: Mapped[str | None] = mapped_column(Enum)

    start_date: Mapped[date | None] = mapped_column(Date)
    start_date_raw: Mapped[str | None] = mapped_column(String(10))
    start_date_precision: Mapped[str | None] = mapped_column(String(5))
    start_date_type: Mapped[str | None] = mapped_column(Enum)
    primary_completion_date: Mapped[date | None] = mapped_column(Date)
    primary_completion_date_raw: Mapped[str | None] = mapped_column(String(10))
    primary_completion_date_precision: Mapped[str | None] = mapped_column(String(5))
    primary_completion_date_type: Mapped[str | None] = mapped_column(Enum)
    completion_date: Mapped[date | None] = mapped_column(Date)
    completion_date_raw: Mapped[str | None] = mapped_column(String(10))
    completion_date_precision: Mapped[str | None] = mapped_column(String(5))
    completion_date_type: Mapped[str | None] = mapped_column(Enum)

    first_posted: Mapped[date | None] = mapped_column(Date)
    last_update_posted: Mapped[date | None] = mapped_column(Date, index=True)
    results_first_posted: Mapped[date | None] = mapped_column(Date)
    has_results: Mapped[bool] = mapped_column(Boolean, default=False)
    lead_sponsor_name: Mapped[str | None] = mapped_column(Text)
    lead_sponsor_class: Mapped[str | None] = mapped_column(Enum)
    brief_summary: Mapped[str | None] = mapped_column(Text)

    # designModule.designInfo
    allocation: Mapped[str | None] = mapped_column(Enum)
    intervention_model: Mapped[str | None] = mapped_column(Enum)
    masking: Mapped[str | None] = mapped_column(Enum)
    primary_purpose: Mapped[str | None] = mapped_column(Enum)

    # eligibilityModule: the registry's text kept beside the ages normalised to years
    eligibility_criteria: Mapped[str | None] = mapped_column(Text)
    minimum_age: Mapped[str | None] = mapped_column(Text)
    maximum_age: Mapped[str | None] = mapped_column(Text)
    minimum_age_years: Mapped[float | None] = mapped_column(Float)
    maximum_age_years: Mapped[float | None] = mapped_column(Float)
    sex: Mapped[str | None] = mapped_column(Enum)
    healthy_volunteers: Mapped[bool | None] = mapped_column(Boolean)
    std_ages: Mapped[list[Any] | None] = mapped_column(JSON)

    content_hash: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    # Set when a full pass no longer returns the study; the row is kept (data is never deleted).
    removed_at: Mapped[datetime | None] = mapped_column(index=True)  # `tracker status` counts them
    # Last in a new database's rows: SQLite reads a row up to the last column a query asks for, and the
    # raw JSON (~12 KB a study) spills into overflow pages that no other column should sit behind.
    raw: Mapped[dict[str, Any]] = mapped_column()


class Condition(Base):
    __tablename__ = "conditions"
    __table_args__ = (_unique("conditions", "registration_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)


class Keyword(Base):
    __tablename__ = "keywords"
    __table_args__ = (_unique("keywords", "registration_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)


class Intervention(Base):
    __tablename__ = "interventions"
    __table_args__ = (_unique("interventions", "registration_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    position: Mapped[int] = mapped_column(Integer)
    type: Mapped[str | None] = mapped_column(Enum)
    name: Mapped[str] = mapped_column(Text)
    other_names: Mapped[list[Any]] = mapped_column(default=list)
    description: Mapped[str | None] = mapped_column(Text)
    arm_group_labels: Mapped[list[Any]] = mapped_column(default=list)
    # experimental / active_comparator / placebo / sham / no_intervention / other (most investigational)
    arm_role: Mapped[str | None] = mapped_column(String(20))


class Collaborator(Base):
    __tablename__ = "collaborators"
    __table_args__ = (_unique("collaborators", "registration_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    agency_class: Mapped[str | None] = mapped_column(Enum)


class Location(Base):
    __tablename__ = "locations"
    __table_args__ = (_unique("locations", "registration_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    position: Mapped[int] = mapped_column(Integer)
    facility: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(Text, index=True)
    status: Mapped[str | None] = mapped_column(Enum)


class OutcomeMeasure(Base):
    """One registered outcome measure; `position` counts within its role, from 0, as registered."""

    __tablename__ = "outcome_measures"
    __table_args__ = (_unique("outcome_measures", "registration_id", "role", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    role: Mapped[str] = mapped_column(String(20))  # primary / secondary / other
    position: Mapped[int] = mapped_column(Integer)
    measure: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    time_frame: Mapped[str | None] = mapped_column(Text)


class ArmGroup(Base):
    __tablename__ = "arm_groups"
    __table_args__ = (_unique("arm_groups", "registration_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(Enum)  # EXPERIMENTAL, ACTIVE_COMPARATOR, PLACEBO_COMPARATOR…
    description: Mapped[str | None] = mapped_column(Text)
    intervention_names: Mapped[list[Any]] = mapped_column(default=list)


class SecondaryId(Base):
    """Other identifiers of the study: EudraCT/CTIS numbers, sponsor codes, grant numbers."""

    __tablename__ = "secondary_ids"
    __table_args__ = (_unique("secondary_ids", "registration_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    position: Mapped[int] = mapped_column(Integer)
    identifier: Mapped[str] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(Enum)  # registry enum, e.g. EUDRACT_NUMBER, OTHER_GRANT
    domain: Mapped[str | None] = mapped_column(Text)


class RegistrationIdentifier(Base):
    """A normalised registry identifier a registration carries (its own ID included): what links it."""

    __tablename__ = "registration_identifiers"
    __table_args__ = (_unique("registration_identifiers", "registration_id", "scheme", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    scheme: Mapped[str] = mapped_column(String(10))  # nct / euct / eudract
    value: Mapped[str] = mapped_column(RegistrationId, index=True)


class RegistrationCountry(Base):
    """One country of a registration with its own status and decision date (CTIS member states)."""

    __tablename__ = "registration_countries"
    __table_args__ = (_unique("registration_countries", "registration_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    position: Mapped[int] = mapped_column(Integer)
    country: Mapped[str] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)
    decision_date: Mapped[date | None] = mapped_column(Date)


class RegistrationLink(Base):
    """A manual decision that two registrations are (`link`) or are not (`unlink`) the same trial.

    No foreign keys: a decision may name a registration before it is stored, and outlives every re-sync.
    """

    __tablename__ = "registration_links"
    __table_args__ = (_unique("registration_links", "registration_a", "registration_b"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_a: Mapped[str] = mapped_column(RegistrationId)
    registration_b: Mapped[str] = mapped_column(RegistrationId)
    action: Mapped[str] = mapped_column(String(10))  # link / unlink
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()


class SyncRun(Base):
    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    registry_name: Mapped[str] = mapped_column("registry", String(10), server_default="ctgov")  # ctgov/ctis
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime | None] = mapped_column()
    mode: Mapped[str] = mapped_column(String(20))  # full / incremental / import
    query: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(Text)  # API base URL or imported path
    # The registry's own clock (GET /version dataTimestamp), e.g. "2025-09-25T09:00:05".
    data_timestamp: Mapped[str | None] = mapped_column(String(32))
    # True for the first load into an empty database: its events are a baseline, not news.
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    total_count: Mapped[int | None] = mapped_column(Integer)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    studies_seen: Mapped[int] = mapped_column(Integer, default=0)
    studies_inserted: Mapped[int] = mapped_column(Integer, default=0)
    studies_updated: Mapped[int] = mapped_column(Integer, default=0)
    studies_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    studies_rejected: Mapped[int] = mapped_column(Integer, default=0)
    studies_removed: Mapped[int] = mapped_column(Integer, default=0)
    rejections: Mapped[list[Any]] = mapped_column(default=list)  # [{"registration_id", "reason"}]
    outcome: Mapped[str] = mapped_column(String(20), default="running")  # running/success/partial/failed
    error: Mapped[str | None] = mapped_column(Text)


class StudyVersion(Base):
    __tablename__ = "study_versions"
    # Re-landing the same content (a restarted walk, two writers at once) adds no version.
    __table_args__ = (_unique("study_versions", "registration_id", "content_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    seen_at: Mapped[datetime] = mapped_column()
    last_update_posted: Mapped[date | None] = mapped_column(Date)
    content_hash: Mapped[str] = mapped_column(String(64))
    raw: Mapped[dict[str, Any]] = mapped_column()
    sync_run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id"))


class ChangeEvent(Base):
    """One detected difference between the stored and the received version of a study.

    kind: new, status, phase, start_date, primary_completion_date, completion_date, enrollment,
    results_posted, primary_outcome, removed, other. `field` names the normalised field; old/new are
    display strings.
    """

    __tablename__ = "change_events"
    __table_args__ = (
        Index("ix_change_events_registration_id_detected_at", "registration_id", "detected_at"),
        # `tracker changes` (the baseline hidden) walks this to the newest events
        Index("ix_change_events_baseline_detected_at", "baseline", "detected_at"),
        _unique("change_events", "registration_id", "event_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    detected_at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(30), index=True)
    field: Mapped[str | None] = mapped_column(String(60))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    sync_run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id"))
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    # What makes the event unique for its study (the content that produced it, kind, field), so the same
    # difference detected twice is stored once; NULL on events recorded before keys existed.
    event_key: Mapped[str | None] = mapped_column(String(200))


class Classification(Base):
    """The automatic classification of one study (labels with evidence), by taxonomy version."""

    __tablename__ = "classifications"

    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk(), primary_key=True)
    taxonomy_version: Mapped[str] = mapped_column(String(20))
    classified_at: Mapped[datetime] = mapped_column(index=True)  # its max is part of the data version
    content_hash: Mapped[str] = mapped_column(String(64))  # the study content that was classified
    relevance: Mapped[str] = mapped_column(Key)
    multi_disease: Mapped[bool] = mapped_column(Boolean, default=False)
    result: Mapped[dict[str, Any]] = mapped_column()  # mechanisms/phenotypes/relevance with evidence


class Override(Base):
    """A manual correction; wins over the automatic labels and survives re-sync and reclassification."""

    __tablename__ = "overrides"

    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk(), primary_key=True)
    relevance: Mapped[str | None] = mapped_column(Key)
    mechanisms: Mapped[list[Any] | None] = mapped_column(JSON)
    phenotypes: Mapped[list[Any] | None] = mapped_column(JSON)
    endpoints_primary: Mapped[list[Any] | None] = mapped_column(JSON)
    endpoints_secondary: Mapped[list[Any] | None] = mapped_column(JSON)
    # facet name → its values (an empty list clears the facet); facets not named keep their automatic values
    eligibility: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class StudyLabel(Base):
    """The effective labels of a study (automatic, or manual where overridden): what queries filter on."""

    __tablename__ = "study_labels"
    __table_args__ = (
        Index("ix_study_labels_dimension_key", "dimension", "key"),
        _unique("study_labels", "registration_id", "dimension", "key", "role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    # relevance / mechanism / phenotype / endpoint / an eligibility facet (age_min, edss_max, sex...)
    dimension: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(Key)
    # investigational / comparator (mechanisms), primary / secondary (endpoints)
    role: Mapped[str | None] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(10))  # auto / manual


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column()
    # End of the period covered by the last digest sent; the next digest starts here.
    last_digest_until: Mapped[datetime | None] = mapped_column()


class DigestDelivery(Base):
    """The sent ledger: one row per digest sent (or written) to one subscription for one period."""

    __tablename__ = "digest_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True
    )
    period_start: Mapped[datetime] = mapped_column()
    period_end: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime] = mapped_column()
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    trial_count: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20))  # sent / dry_run / failed / empty
    error: Mapped[str | None] = mapped_column(Text)


class DigestSentEvent(Base):
    """Which change events reached which subscription, so no event is ever sent twice."""

    __tablename__ = "digest_sent_events"
    __table_args__ = (UniqueConstraint("subscription_id", "change_event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    change_event_id: Mapped[int] = mapped_column(ForeignKey("change_events.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(ForeignKey("digest_deliveries.id", ondelete="CASCADE"))


class Lock(Base):
    """A named lease (e.g. the single scheduler allowed per database), renewed by heartbeat."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column()  # the database server's clock, as is heartbeat_at
    heartbeat_at: Mapped[datetime] = mapped_column()
    purpose: Mapped[str | None] = mapped_column(String(40))  # what the holder is doing, e.g. "sync"


class DigestClaim(Base):
    """A digest round's claim on one subscription's period, taken before sending and dropped once the
    ledger records the outcome: a concurrent round skips a claimed subscription."""

    __tablename__ = "digest_claims"

    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True
    )
    period_start: Mapped[datetime] = mapped_column()
    owner: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[datetime] = mapped_column()  # the database server's clock


class RegistryHistory(Base):
    """What the registry's own version history says about one trial, and how far its backfill got.

    `study_last_update_posted` is the study's lastUpdatePostDate when the index was last read: a later run
    re-reads the history only when the stored study has moved since. `versions_through` is the last version
    of the gap-free chain of fetched version records (None: none accepted yet). The summary columns are
    derived from the versions and events whenever they change.
    """

    __tablename__ = "registry_histories"

    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk(), primary_key=True)
    version_count: Mapped[int] = mapped_column(Integer)
    last_version: Mapped[int] = mapped_column(Integer)
    index_read_at: Mapped[datetime] = mapped_column(index=True)  # its max is part of the data version
    study_last_update_posted: Mapped[date | None] = mapped_column(Date)
    versions_through: Mapped[int | None] = mapped_column(Integer)
    # The last version posted when the history was first read: changes up to it are history, not news.
    baseline_through: Mapped[int] = mapped_column(Integer)
    versions_accepted_at: Mapped[datetime | None] = mapped_column(index=True)  # as index_read_at
    original_enrollment_count: Mapped[int | None] = mapped_column(Integer)
    original_enrollment_type: Mapped[str | None] = mapped_column(Enum)
    original_primary_outcomes: Mapped[list[Any] | None] = mapped_column(JSON)
    last_update_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pcd_changes: Mapped[int | None] = mapped_column(Integer)
    pcd_total_slip_days: Mapped[int | None] = mapped_column(Integer)
    primary_outcome_changed_after_start: Mapped[bool | None] = mapped_column(Boolean)
    primary_outcome_changed_on: Mapped[date | None] = mapped_column(Date)
    error: Mapped[str | None] = mapped_column(Text)  # why the last attempt did not complete


class RegistryVersion(Base):
    """One version of a trial's registration: from the index always, its fields once the record is fetched."""

    __tablename__ = "registry_versions"
    __table_args__ = (UniqueConstraint("registration_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    version: Mapped[int] = mapped_column(Integer)
    version_date: Mapped[date] = mapped_column(Date)
    overall_status: Mapped[str | None] = mapped_column(Enum)
    module_labels: Mapped[list[Any]] = mapped_column(default=list)
    fetched_at: Mapped[datetime | None] = mapped_column()
    start_date_raw: Mapped[str | None] = mapped_column(String(10))
    start_date_type: Mapped[str | None] = mapped_column(Enum)
    primary_completion_date_raw: Mapped[str | None] = mapped_column(String(10))
    primary_completion_date_type: Mapped[str | None] = mapped_column(Enum)
    completion_date_raw: Mapped[str | None] = mapped_column(String(10))
    completion_date_type: Mapped[str | None] = mapped_column(Enum)
    enrollment_count: Mapped[int | None] = mapped_column(Integer)
    enrollment_type: Mapped[str | None] = mapped_column(Enum)
    primary_outcomes: Mapped[list[Any] | None] = mapped_column(JSON)
    secondary_outcomes: Mapped[list[Any] | None] = mapped_column(JSON)
    has_results: Mapped[bool | None] = mapped_column(Boolean)
    results_first_posted: Mapped[date | None] = mapped_column(Date)
    content_hash: Mapped[str | None] = mapped_column(String(64))  # of the normalised (plain-text) fields


class RegistryChangeEvent(Base):
    """A change between two consecutive registry versions, dated by the registry (`effective_date`).

    Distinct from `change_events` (what polling detected, dated by detection). `change_event_id` links the
    polled event that saw the same change, so one change is never counted twice. Baseline events come from
    versions that were already posted when the trial's history was first read: history, not news.
    """

    __tablename__ = "registry_change_events"
    __table_args__ = (UniqueConstraint("registration_id", "version", "kind", "field"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[str] = mapped_column(RegistrationId, _study_fk())
    version: Mapped[int] = mapped_column(Integer)
    effective_date: Mapped[date] = mapped_column(Date, index=True)
    kind: Mapped[str] = mapped_column(String(40))
    field: Mapped[str] = mapped_column(String(60))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    days: Mapped[int | None] = mapped_column(Integer)  # primary completion date moves: + later, - earlier
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    found_at: Mapped[datetime] = mapped_column(index=True)
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)
    change_event_id: Mapped[int | None] = mapped_column(ForeignKey("change_events.id", ondelete="SET NULL"))


class FrameSnapshot(Base):
    """A read model the query layer built, stored so a new dashboard process need not rebuild it.

    `payload` is the frame as Apache Parquet (data only: never pickle, which would let whoever can write
    this table run code in the dashboard). It stands for the data only while `data_version` equals
    `tracker.query.data_version` serialised, and `frame_format` the running code's
    (`tracker.frame_snapshot.frame_format`); otherwise it is rebuilt and overwritten.
    """

    __tablename__ = "frame_snapshots"

    name: Mapped[str] = mapped_column(Text, primary_key=True)  # e.g. "trial_frame"
    data_version: Mapped[str] = mapped_column(Text)
    frame_format: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column()
    payload: Mapped[bytes] = mapped_column(LargeBinary)
