"""The registries a trial can be registered in: each one's parser of stored records and its public page.

Everything after the store is registry-neutral; this is the one place that says which parser reads a
stored registration's raw JSON and where the registry shows it.
"""

from __future__ import annotations

from typing import Any

from tracker.ctgov.parse import StudyRecord, parse_study

REGISTRIES = ("ctgov", "ctis")
REGISTRY_LABELS = {"ctgov": "ClinicalTrials.gov", "ctis": "EU CTIS"}
_PAGE_URLS = {
    "ctgov": "https://clinicaltrials.gov/study/{id}",
    "ctis": "https://euclinicaltrials.eu/search-for-clinical-trials/?lang=en&EUCT={id}",
}


def parse_stored(registry: str, raw: Any) -> StudyRecord:
    """Parse a stored registration's raw JSON with its own registry's parser (raises RecordError)."""
    if registry == "ctis":
        from tracker.ctis.parse import parse_ctis_record  # only stores holding CTIS records need it

        return parse_ctis_record(raw)
    return parse_study(raw)


def registration_url(registry: str, registration_id: str) -> str:
    return _PAGE_URLS.get(registry, _PAGE_URLS["ctgov"]).format(id=registration_id)
