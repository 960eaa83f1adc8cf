"""Streamlit entry point: page config → navigation → the chosen page.

Run with `tracker dashboard` (or `streamlit run dashboard/app.py`); the database comes from
TRACKER_DATABASE_URL.
"""

from __future__ import annotations

import logging
import time

import streamlit as st

from dashboard import data
from dashboard.landscape import landscape_page
from dashboard.trial_view import show_trial

TRIAL_PARAM = "nct"
RUN_SECONDS = "_run_seconds"
SIDEBAR_PIXELS = 380  # wide enough for a long sponsor or country name in a filter chip
logger = logging.getLogger("dashboard")


def trial_page() -> None:
    """One trial by NCT ID, from the `?nct=` link parameter or typed in."""
    st.title("Trial detail")
    url = data.database_url()
    try:
        version = data.current_version(url)
    except data.DataUnavailable as exc:
        st.warning(str(exc))
        return
    registration_id = st.text_input(
        "NCT ID", value=st.query_params.get(TRIAL_PARAM, ""), placeholder="NCT01234567"
    )
    registration_id = registration_id.strip().upper()
    if not registration_id:
        return
    st.query_params[TRIAL_PARAM] = registration_id
    show_trial(
        data.trial_detail(url, version, registration_id),
        registration_id,
        data.trial_registry_history(url, version, registration_id),
    )


def main() -> None:
    started = time.perf_counter()
    # An emoji favicon, and no page icons: Streamlit draws an emoji favicon itself, but fetches a Material
    # icon's favicon from Google's servers, and a page's icon becomes the favicon.
    st.set_page_config(
        page_title="MS trial tracker", page_icon="🧭", layout="wide", initial_sidebar_state=SIDEBAR_PIXELS
    )
    page = st.navigation(
        [
            st.Page(landscape_page, title="Landscape", default=True),
            st.Page(trial_page, title="Trial detail", url_path="trial"),
        ]
    )
    page.run()
    # Server time of this run, for benchmarks/bench_dashboard.py and the debug log.
    st.session_state[RUN_SECONDS] = elapsed = time.perf_counter() - started
    logger.debug("page %s rendered in %.3f s", page.title, elapsed)


main()
