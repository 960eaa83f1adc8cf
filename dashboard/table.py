"""The trial table shown under the charts. Pure: a filtered trial frame in, a display frame out."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from dashboard import labels
from dashboard.metrics import has_started
from tracker.query import study_url

TABLE_ROW_CAP = 1000
MANUAL_MARK = "✎ "  # marks labels set by a manual override
COMPARATOR_MARK = " (comparator)"


def table_order(frame: pd.DataFrame, today: date) -> np.ndarray:
    """Row positions in the timeline's order: trials started by `today` (the data's date), most recent
    first; then those not started yet (planned starts, withdrawn trials), soonest first; undated last.
    Within a day the frame's NCT ID order stays (stable sort)."""
    started = has_started(frame, today).to_numpy()
    start = pd.to_datetime(frame["start_date"])
    dated = start.notna().to_numpy()
    start_days = start.to_numpy(dtype="datetime64[D]").astype("int64").astype("float64")
    group = np.where(started, 0, np.where(dated, 1, 2))
    # One key: descending dates in group 0, ascending in group 1 (lexsort takes the last key first).
    within = np.where(started, -start_days, np.where(dated, start_days, 0.0))
    return np.lexsort((within, group))


def table_rows(frame: pd.DataFrame, today: date, cap: int = TABLE_ROW_CAP) -> pd.DataFrame:
    """The first `cap` trials in `table_order` as display columns; only these rows are formatted, so the
    cost does not grow with the selection."""
    # Order only the sort key, then copy just the rows shown (sorting all 40 columns is slow at 100k).
    shown = frame.iloc[table_order(frame, today)[:cap]]
    mark = shown["manual"].astype(bool).map({True: MANUAL_MARK, False: ""})
    mechanism_names = labels.mechanism_labels()
    phenotype_names = labels.phenotype_labels()
    return pd.DataFrame(
        {
            "NCT ID": shown["registration_id"].map(study_url),
            "Title": shown["brief_title"].fillna(""),
            "Status": shown["overall_status"].map(labels.status_label),
            "Phase": shown["phases"].map(labels.phases_text),
            "Mechanisms": mark
            + pd.Series(
                [
                    ", ".join(
                        mechanism_names.get(k, k) + (COMPARATOR_MARK if k in (comparators or ()) else "")
                        for k in keys or ()
                    )
                    for keys, comparators in zip(
                        shown["mechanisms"], shown["comparator_mechanisms"], strict=True
                    )
                ],
                index=shown.index,
            ),
            "Phenotypes": mark
            + shown["phenotypes"].map(lambda keys: ", ".join(phenotype_names.get(k, k) for k in keys or ())),
            "Lead sponsor": shown["lead_sponsor_name"].fillna(""),
            "Start": shown["start_date_raw"].fillna(""),
            "Primary completion": shown["primary_completion_date_raw"].fillna(""),
            "Results": shown["has_results"].astype(bool),
            "registration_id": shown["registration_id"],
        }
    ).reset_index(drop=True)
