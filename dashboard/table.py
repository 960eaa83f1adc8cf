"""The trial table shown under the charts. Pure: a filtered trial frame in, a display frame out."""

from __future__ import annotations

import pandas as pd

from dashboard import labels
from tracker.query import study_url

TABLE_ROW_CAP = 1000
MANUAL_MARK = "✎ "  # marks labels set by a manual override
COMPARATOR_MARK = " (comparator)"


def table_rows(frame: pd.DataFrame, cap: int = TABLE_ROW_CAP) -> pd.DataFrame:
    """The `cap` most recently started trials (undated last) as display columns; only these rows are
    formatted, so the cost does not grow with the selection."""
    # Order only the sort key, then copy just the rows shown (sorting all 40 columns is slow at 100k);
    # the stable sort keeps the frame's NCT ID order among trials that started on the same day.
    order = frame["start_date"].sort_values(ascending=False, kind="stable", na_position="last")
    shown = frame.loc[order.index[:cap]]
    mark = shown["manual"].astype(bool).map({True: MANUAL_MARK, False: ""})
    mechanism_names = labels.mechanism_labels()
    phenotype_names = labels.phenotype_labels()
    return pd.DataFrame(
        {
            "NCT ID": shown["nct_id"].map(study_url),
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
            "nct_id": shown["nct_id"],
        }
    ).reset_index(drop=True)
