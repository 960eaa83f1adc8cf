"""The Streamlit dashboard: `tracker dashboard` runs `dashboard/app.py`.

charts, metrics, table and labels are pure (frames in, figures or numbers out); data caches the reads
from `tracker.query`; sidebar maps the filter widgets to `tracker.filters.TrialFilter` and the URL.
"""
