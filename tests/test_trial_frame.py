"""The trial frame from the one aggregated query equals the frame built table by table, as it was first
built: same rows, columns, order, dtypes and values, on SQLite and Postgres."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from tracker import store
from tracker.classify.store import classify_records, set_override
from tracker.db.models import (
    Classification,
    Condition,
    Intervention,
    Location,
    Override,
    StudyLabel,
)
from tracker.db.session import transaction
from tracker.filters import sponsor_category
from tracker.query import (
    _STUDY_COLUMNS,
    DATE_COLUMNS,
    TRIAL_FRAME_COLUMNS,
    highest_phase,
    load_trial_frame,
    phase_label,
    study_url,
)

FIXTURES = Path(__file__).parent / "fixtures"


def _grouped(rows: Iterable[tuple[str, Any]]) -> dict[str, tuple[Any, ...]]:
    grouped: dict[str, list[Any]] = defaultdict(list)
    for nct_id, value in rows:
        if value is not None and value not in grouped[nct_id]:
            grouped[nct_id].append(value)
    return {nct_id: tuple(values) for nct_id, values in grouped.items()}


def reference_trial_frame(engine: Engine) -> pd.DataFrame:
    """The trial frame as it was first built: one query per table, folded in Python dictionaries."""
    with transaction(engine) as session:
        studies = session.execute(select(*_STUDY_COLUMNS)).all()
        conditions = _grouped(
            session.execute(select(Condition.nct_id, Condition.name).order_by(Condition.position))
        )
        interventions = _grouped(
            session.execute(select(Intervention.nct_id, Intervention.name).order_by(Intervention.position))
        )
        countries = _grouped(
            session.execute(select(Location.nct_id, Location.country).order_by(Location.position))
        )
        labels = session.execute(
            select(StudyLabel.nct_id, StudyLabel.dimension, StudyLabel.key, StudyLabel.role).order_by(
                StudyLabel.id
            )
        ).all()
        classifications = {
            row.nct_id: row
            for row in session.execute(
                select(Classification.nct_id, Classification.multi_disease, Classification.taxonomy_version)
            )
        }
        overridden = set(session.scalars(select(Override.nct_id)))

    relevance: dict[str, str] = {}
    mechanisms: dict[str, list[str]] = defaultdict(list)
    roles: dict[str, list[str]] = defaultdict(list)
    phenotypes: dict[str, list[str]] = defaultdict(list)
    for nct_id, dimension, key, role in labels:
        if dimension == "relevance":
            relevance[nct_id] = key
        elif dimension == "mechanism":
            if key not in mechanisms[nct_id]:
                mechanisms[nct_id].append(key)
            roles[nct_id].append(f"{key}:{role}" if role else key)
        elif dimension == "phenotype" and key not in phenotypes[nct_id]:
            phenotypes[nct_id].append(key)

    frame = pd.DataFrame.from_records(studies, columns=[c.key for c in _STUDY_COLUMNS])
    ids = frame["nct_id"]
    frame["phases"] = frame["phases"].map(lambda value: tuple(value or ()))
    frame["phase_label"] = frame["phases"].map(phase_label)
    frame["highest_phase"] = frame["phases"].map(highest_phase)
    for column in DATE_COLUMNS:
        frame[column] = pd.to_datetime(frame[column], errors="coerce")
    frame["start_year"] = frame["start_date"].dt.year.astype("Int64")
    frame["sponsor_category"] = frame["lead_sponsor_class"].map(sponsor_category)
    frame["conditions"] = ids.map(lambda i: conditions.get(i, ()))
    frame["interventions"] = ids.map(lambda i: interventions.get(i, ()))
    frame["countries"] = ids.map(lambda i: countries.get(i, ()))
    frame["relevance"] = ids.map(lambda i: relevance.get(i, "unclassified"))
    frame["mechanisms"] = ids.map(lambda i: tuple(mechanisms.get(i, ())))
    frame["mechanism_roles"] = ids.map(lambda i: tuple(roles.get(i, ())))
    frame["phenotypes"] = ids.map(lambda i: tuple(phenotypes.get(i, ())))
    frame["multi_disease"] = ids.map(
        lambda i: bool(classifications[i].multi_disease) if i in classifications else False
    )
    frame["manual"] = ids.isin(overridden)
    frame["taxonomy_version"] = ids.map(
        lambda i: classifications[i].taxonomy_version if i in classifications else None
    )
    frame["removed"] = frame.pop("removed_at").notna()
    frame["has_results"] = frame["has_results"].astype(bool)
    frame["url"] = ids.map(study_url)
    frame["search_text"] = (
        ids
        + " "
        + frame["brief_title"].fillna("")
        + " "
        + frame["official_title"].fillna("")
        + " "
        + frame["acronym"].fillna("")
        + " "
        + frame["interventions"].map(" ".join)
        + " "
        + frame["lead_sponsor_name"].fillna("")
    ).str.lower()
    return frame.sort_values("nct_id", ignore_index=True)[list(TRIAL_FRAME_COLUMNS)]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_aggregated_frame_equals_the_table_by_table_frame(engine: Engine) -> None:
    gold = read_jsonl(FIXTURES / "gold_dev_studies.jsonl")
    gold_ids = {raw["protocolSection"]["identificationModule"]["nctId"] for raw in gold}
    unclassified = [
        raw
        for raw in read_jsonl(FIXTURES / "ms_sample.jsonl")
        if raw["protocolSection"]["identificationModule"]["nctId"] not in gold_ids
    ][:30]
    run = store.begin_run(engine, mode="import", query=None, source="test", data_timestamp=None)
    store.ingest_page(engine, run, gold, on_landed=classify_records)
    store.ingest_page(engine, run, unclassified)
    store.finish_run(engine, run, outcome="success")
    first, second = sorted(gold_ids)[:2]
    set_override(engine, first, mechanisms=["anti_cd20", "btk_inhibitor"], relevance="ms_plus", note="t")
    every_id = gold_ids | {raw["protocolSection"]["identificationModule"]["nctId"] for raw in unclassified}
    store.flag_removed(engine, run, every_id - {second})

    frame = load_trial_frame(engine)
    assert len(frame) == len(gold) + len(unclassified)
    assert frame["removed"].sum() == 1 and frame["manual"].sum() == 1
    assert (frame["relevance"] == "unclassified").sum() == len(unclassified)
    assert frame["mechanism_roles"].map(len).sum() > 0 and frame["countries"].map(len).sum() > 0
    pd.testing.assert_frame_equal(frame, reference_trial_frame(engine), check_exact=True)
