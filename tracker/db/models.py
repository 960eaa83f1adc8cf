"""The schema, as SQLAlchemy 2 models. Schema only: every change goes through an Alembic migration.

Dates the registry gives as partial dates ("2020-05") are kept three ways: the raw text, its precision
and the first day it can mean (for sorting and range filters).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
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

NctId = String(16)
Enum = String(40)  # registry enums stay strings: unknown values must be stored, not refused
Key = String(40)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: DateTime(),
    }  # naive UTC everywhere: SQLite keeps no zone


def _study_fk() -> ForeignKey:
    return ForeignKey("studies.nct_id", ondelete="CASCADE")


class Study(Base):
    __tablename__ = "studies"

    nct_id: Mapped[str] = mapped_column(NctId, primary_key=True)
    brief_title: Mapped[str | None] = mapped_column(Text)
    official_title: Mapped[str | None] = mapped_column(Text)
    acronym: Mapped[str | None] = mapped_column(String(200))
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

    content_hash: Mapped[str] = mapped_column(String(64))
    raw: Mapped[dict[str, Any]] = mapped_column()
    first_seen_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    # Set when a full pass no longer returns the study; the row is kept (data is never deleted).
    removed_at: Mapped[datetime | None] = mapped_column()


class Condition(Base):
    __tablename__ = "conditions"

    id: Mapped[int] = mapped_column(primary_key=True)
    nct_id: Mapped[str] = mapped_column(NctId, _study_fk(), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)


class Keyword(Base):
    __tablename__ = "keywords"

    id: Mapped[int] = mapped_column(primary_key=True)
    nct_id: Mapped[str] = mapped_column(NctId, _study_fk(), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)


class Intervention(Base):
    __tablename__ = "interventions"

    id: Mapped[int] = mapped_column(primary_key=True)
    nct_id: Mapped[str] = mapped_column(NctId, _study_fk(), index=True)
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

    id: Mapped[int] = mapped_column(primary_key=True)
    nct_id: Mapped[str] = mapped_column(NctId, _study_fk(), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    agency_class: Mapped[str | None] = mapped_column(Enum)


class Location(Base):
    __tablename__ = "locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    nct_id: Mapped[str] = mapped_column(NctId, _study_fk(), index=True)
    position: Mapped[int] = mapped_column(Integer)
    facility: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(100), index=True)
    status: Mapped[str | None] = mapped_column(Enum)


class SyncRun(Base):
    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
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
    rejections: Mapped[list[Any]] = mapped_column(default=list)  # [{"nct_id", "reason"}]
    outcome: Mapped[str] = mapped_column(String(20), default="running")  # running/success/partial/failed
    error: Mapped[str | None] = mapped_column(Text)


class StudyVersion(Base):
    __tablename__ = "study_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    nct_id: Mapped[str] = mapped_column(NctId, _study_fk(), index=True)
    seen_at: Mapped[datetime] = mapped_column()
    last_update_posted: Mapped[date | None] = mapped_column(Date)
    content_hash: Mapped[str] = mapped_column(String(64))
    raw: Mapped[dict[str, Any]] = mapped_column()
    sync_run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id"))


class ChangeEvent(Base):
    """One detected difference between the stored and the received version of a study.

    kind: new, status, phase, start_date, primary_completion_date, completion_date, enrollment,
    results_posted, removed, other. `field` names the normalised field; old/new are display strings.
    """

    __tablename__ = "change_events"
    __table_args__ = (Index("ix_change_events_nct_id_detected_at", "nct_id", "detected_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    nct_id: Mapped[str] = mapped_column(NctId, _study_fk())
    detected_at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(30), index=True)
    field: Mapped[str | None] = mapped_column(String(60))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    sync_run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id"))
    baseline: Mapped[bool] = mapped_column(Boolean, default=False)


class Classification(Base):
    """The automatic classification of one study (labels with evidence), by taxonomy version."""

    __tablename__ = "classifications"

    nct_id: Mapped[str] = mapped_column(NctId, _study_fk(), primary_key=True)
    taxonomy_version: Mapped[str] = mapped_column(String(20))
    classified_at: Mapped[datetime] = mapped_column()
    content_hash: Mapped[str] = mapped_column(String(64))  # the study content that was classified
    relevance: Mapped[str] = mapped_column(Key)
    multi_disease: Mapped[bool] = mapped_column(Boolean, default=False)
    result: Mapped[dict[str, Any]] = mapped_column()  # mechanisms/phenotypes/relevance with evidence


class Override(Base):
    """A manual correction; wins over the automatic labels and survives re-sync and reclassification."""

    __tablename__ = "overrides"

    nct_id: Mapped[str] = mapped_column(NctId, _study_fk(), primary_key=True)
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
    __table_args__ = (Index("ix_study_labels_dimension_key", "dimension", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    nct_id: Mapped[str] = mapped_column(NctId, _study_fk(), index=True)
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
    acquired_at: Mapped[datetime] = mapped_column()
    heartbeat_at: Mapped[datetime] = mapped_column()
