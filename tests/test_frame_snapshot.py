"""The stored trial frame (`tracker.frame_snapshot`, `query.load_trial_frame_snapshot`) on SQLite and
Postgres: it loads equal to the built frame, and anything that changes the frame makes it a miss."""

from __future__ import annotations

import logging
from datetime import date, datetime

import pandas as pd
import pytest
from sqlalchemy import Engine, select, update
from test_query import loaded
from test_trials import EUCT_TWIN, SAMPLE, alone, land, twin

from tracker import frame_snapshot, query
from tracker.classify.store import classify_pending, set_override
from tracker.db.models import FrameSnapshot, RegistryHistory
from tracker.db.session import make_engine, transaction
from tracker.demo import load_demo
from tracker.history_store import accept_versions
from tracker.link_store import record_decision
from tracker.query import TRIAL_FRAME_SNAPSHOT, data_version, load_trial_frame, load_trial_frame_snapshot


def history(registration_id: str, **fields: object) -> RegistryHistory:
    return RegistryHistory(
        registration_id=registration_id,
        version_count=3,
        last_version=2,
        index_read_at=datetime(2026, 12, 1, 9),
        baseline_through=2,
        last_update_versions={},
        **fields,
    )


@pytest.fixture
def rich(engine: Engine) -> Engine:
    """A store whose frame has every kind of column filled: the demo sample (classified: mechanisms,
    endpoints, eligibility facets), hand labels, a CTIS twin and a lone CTIS trial (EU countries and
    decision dates), an override, and registry histories (nullable numbers and booleans, both values)."""
    load_demo(engine)
    loaded(engine)
    land(engine, *SAMPLE, twin(), alone())
    first, second = SAMPLE[2].registration_id, SAMPLE[3].registration_id
    with transaction(engine) as session:
        session.add(
            history(
                first,
                pcd_changes=2,
                pcd_total_slip_days=-30,
                original_enrollment_count=120,
                primary_outcome_changed_after_start=True,
                primary_outcome_changed_on=date(2024, 3, 1),
            )
        )
        session.add(history(second, pcd_changes=0, primary_outcome_changed_after_start=False))
    set_override(engine, first, mechanisms=["anti_cd20"], phenotypes=["rms"], note="checked by hand")
    return engine


def assert_same_frame(built: pd.DataFrame, stored: pd.DataFrame) -> None:
    """Equal, and tuples where the built frame has tuples (assert_frame_equal would pass a list)."""
    pd.testing.assert_frame_equal(built, stored)
    for column in [name for name in built.columns if pd.api.types.is_object_dtype(built[name].dtype)]:
        kinds = {(type(a), type(b)) for a, b in zip(built[column], stored[column], strict=True)}
        assert all(a is b for a, b in kinds), (column, kinds)


def stored_row(engine: Engine) -> FrameSnapshot | None:
    with transaction(engine) as session:
        return session.get(FrameSnapshot, TRIAL_FRAME_SNAPSHOT)


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the frames `load_trial_frame_snapshot` builds rather than loads."""
    counted: list[int] = []
    real = query.load_trial_frame

    def counting(engine: Engine) -> pd.DataFrame:
        counted.append(1)
        return real(engine)

    monkeypatch.setattr(query, "load_trial_frame", counting)
    return counted


def test_the_stored_frame_loads_equal_to_the_built_one(rich: Engine, builds: list[int]) -> None:
    built = load_trial_frame(rich)
    assert {"ctgov", "ctis"} <= set(built["registries"].explode())
    assert built["primary_outcome_changed_after_start"].isna().any()
    assert built["eu_decision_date"].notna().any() and built["manual"].any()

    first = load_trial_frame_snapshot(rich)
    assert len(builds) == 1 and stored_row(rich) is not None
    second = load_trial_frame_snapshot(rich)
    assert len(builds) == 1  # loaded, not built
    assert_same_frame(built, first)
    assert_same_frame(built, second)
    columns = ["search_text", "registration_id", "phases", "start_date", "versions"]
    assert_same_frame(built[columns], load_trial_frame_snapshot(rich, columns=columns))


def test_parquet_round_trip_of_an_empty_frame_and_of_a_column_of_null_lists() -> None:
    empty = pd.DataFrame(columns=list(query.TRIAL_FRAME_COLUMNS))
    assert_same_frame(empty, frame_snapshot.frame_from_parquet(frame_snapshot.frame_to_parquet(empty)))
    odd = pd.DataFrame(
        {
            "keys": pd.Series([("a", "b"), None, (), ("",), ("a\x1fb",)], dtype=object),
            "n": pd.array([1, None, 3, 4, 5], dtype="Int64"),
        }
    )
    assert_same_frame(odd, frame_snapshot.frame_from_parquet(frame_snapshot.frame_to_parquet(odd)))


def test_equal_tuples_are_shared_between_rows(engine: Engine) -> None:
    loaded(engine)
    stored = frame_snapshot.frame_from_parquet(frame_snapshot.frame_to_parquet(load_trial_frame(engine)))
    registries = stored["registries"]
    assert registries.iloc[0] == ("ctgov",) and all(value is registries.iloc[0] for value in registries)


def test_a_new_classification_override_or_link_rebuilds_the_stored_frame(
    rich: Engine, builds: list[int]
) -> None:
    load_trial_frame_snapshot(rich)
    nct = SAMPLE[0].registration_id
    changes = [
        lambda: set_override(rich, nct, relevance="not_ms", note="not an MS trial"),
        lambda: record_decision(rich, nct, EUCT_TWIN, "unlink", "different trials"),
        lambda: classify_pending(rich),  # the hand-labelled fixture studies, classified
    ]
    for number, change in enumerate(changes, start=2):
        version = data_version(rich)
        change()
        assert data_version(rich) != version
        frame = load_trial_frame_snapshot(rich)
        assert len(builds) == number
        assert_same_frame(load_trial_frame(rich), frame)
        assert stored_row(rich).data_version == frame_snapshot.version_text(data_version(rich))
    assert EUCT_TWIN in set(frame["registration_id"])  # unlinked: a trial of its own
    assert frame.set_index("registration_id").loc[nct, "relevance"] == "not_ms"


def test_an_accepted_history_chain_moves_the_data_version(rich: Engine) -> None:
    version = data_version(rich)
    accept_versions(rich, SAMPLE[2].registration_id, 2)
    assert data_version(rich) != version


def test_a_corrupt_payload_is_rebuilt_and_overwritten(
    rich: Engine, builds: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    built = load_trial_frame_snapshot(rich)
    for garbage in (b"not parquet", bytes(frame_snapshot.frame_to_parquet(built))[:-100]):
        with transaction(rich) as session:
            session.execute(update(FrameSnapshot).values(payload=garbage))
        builds.clear()
        with caplog.at_level(logging.WARNING, logger="tracker.frame_snapshot"):
            frame = load_trial_frame_snapshot(rich)
        assert len(builds) == 1 and "unreadable" in caplog.text
        assert_same_frame(built, frame)
        assert stored_row(rich).payload != garbage
        assert_same_frame(built, load_trial_frame_snapshot(rich))
        assert len(builds) == 1
        caplog.clear()


def test_a_snapshot_of_other_code_is_not_loaded(
    rich: Engine, builds: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    load_trial_frame_snapshot(rich)
    monkeypatch.setattr(query, "trial_frame_format", lambda: 12345)
    load_trial_frame_snapshot(rich)
    assert len(builds) == 2 and stored_row(rich).frame_format == 12345


def test_a_read_only_database_still_gets_its_frame(
    rich: Engine, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    reader = make_engine(db_url, read_only=True)
    try:
        with caplog.at_level(logging.WARNING, logger="tracker.query"):
            frame = load_trial_frame_snapshot(reader)
    finally:
        reader.dispose()
    assert_same_frame(load_trial_frame(rich), frame)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "could not store the trial frame snapshot" in warnings[0].getMessage()
    assert stored_row(rich) is None


def test_a_frame_built_while_the_data_moved_is_not_stored(
    rich: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = query.load_trial_frame

    def building_while_a_link_lands(engine: Engine) -> pd.DataFrame:
        frame = real(engine)
        record_decision(engine, SAMPLE[0].registration_id, EUCT_TWIN, "unlink", "landed meanwhile")
        return frame

    monkeypatch.setattr(query, "load_trial_frame", building_while_a_link_lands)
    load_trial_frame_snapshot(rich)
    assert stored_row(rich) is None


def test_refresh_stores_once_and_then_reports_current(rich: Engine) -> None:
    assert query.refresh_trial_frame_snapshot(rich).startswith("trial frame snapshot stored (")
    assert query.refresh_trial_frame_snapshot(rich) == "trial frame snapshot already current"
    with transaction(rich) as session:
        names = session.scalars(select(FrameSnapshot.name)).all()
    assert names == [TRIAL_FRAME_SNAPSHOT]
