"""Headline numbers for the filtered trials. Pure: frames and a date in, numbers out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd

RECENT_START_DAYS = 365
OVERDUE_AFTER_DAYS = 365
RECENT_CHANGE_DAYS = 7
# Trials that never started (or were withdrawn before enrolling) do not count as "started".
NOT_STARTED_STATUSES = ("NOT_YET_RECRUITING", "WITHDRAWN")


@dataclass(frozen=True, slots=True)
class HeadlineNumbers:
    """trials: in the selection; recruiting: status RECRUITING now; started_last_12_months: start date
    within the last 365 days and the trial under way; results_overdue: completed, primary completion more than
    365 days ago and no results posted; status_changes_last_7_days: status change events detected in the last
    7 days (baseline events of a first load excluded)."""

    trials: int
    recruiting: int
    started_last_12_months: int
    results_overdue: int
    status_changes_last_7_days: int


def headline_numbers(frame: pd.DataFrame, events: pd.DataFrame, today: date) -> HeadlineNumbers:
    """The five headline numbers; `events` should already be limited to the trials in `frame`."""
    if frame.empty:
        return HeadlineNumbers(0, 0, 0, 0, 0)
    today_ts = pd.Timestamp(today)
    status = frame["overall_status"]
    start = pd.to_datetime(frame["start_date"])
    started = has_started(frame, today) & (start > today_ts - pd.Timedelta(days=RECENT_START_DAYS))
    primary_completion = pd.to_datetime(frame["primary_completion_date"])
    overdue = (
        (status == "COMPLETED")
        & (primary_completion < today_ts - pd.Timedelta(days=OVERDUE_AFTER_DAYS))
        & ~frame["has_results"].astype(bool)
    )
    return HeadlineNumbers(
        trials=len(frame),
        recruiting=int((status == "RECRUITING").sum()),
        started_last_12_months=int(started.sum()),
        results_overdue=int(overdue.sum()),
        status_changes_last_7_days=recent_status_changes(events, today),
    )


def has_started(frame: pd.DataFrame, today: date) -> pd.Series:
    """True for trials that have started by `today` (the data's date): a start date on or before it and a
    status other than not yet recruiting or withdrawn (whose start dates are plans, often years out)."""
    start = pd.to_datetime(frame["start_date"])
    return (start <= pd.Timestamp(today)) & ~frame["overall_status"].isin(NOT_STARTED_STATUSES)


def recent_status_changes(events: pd.DataFrame, today: date) -> int:
    if events.empty:
        return 0
    since = datetime.combine(today, datetime.min.time()) - timedelta(days=RECENT_CHANGE_DAYS - 1)
    detected = pd.to_datetime(events["detected_at"])
    # Status events also carry a changed reason for stopping (field why_stopped): not a change of status.
    status_changed = (events["kind"] == "status") & (events["field"] == "overall_status")
    recent = status_changed & ~events["baseline"].astype(bool) & (detected >= since)
    return int(recent.sum())
