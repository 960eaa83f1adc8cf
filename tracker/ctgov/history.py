"""Client of the registry's internal history API (HISTORY_NOTES §1-§3): the version index and single versions.

It shares the API v2 client's transport (`RegistryTransport`: rate cap, retries with backoff, error
mapping), so both registries' clients fail the same way. Responses are returned parsed and shape-checked
(`tracker.ctgov.history_parse`); no search parameter is ever sent, since the API would then wrap matches
in highlight markup.
"""

from __future__ import annotations

from tracker.config import DEFAULT_CTGOV_HISTORY_URL
from tracker.ctgov.client import RegistryTransport
from tracker.ctgov.history_parse import VersionIndex, VersionRecord, parse_index, parse_version


class HistoryClient(RegistryTransport):
    """Talks to one internal-API base URL (e.g. https://clinicaltrials.gov/api/int)."""

    base_url_example = DEFAULT_CTGOV_HISTORY_URL
    unreachable_hint = "check the network or TRACKER_CTGOV_HISTORY_URL; what is stored is kept"

    def index(self, registration_id: str) -> VersionIndex:
        """`GET /studies/{nct}?history=true`. Raises NotFoundError, ApiError or HistoryShapeError."""
        return parse_index(registration_id, self.get_json(f"/studies/{registration_id}", {"history": "true"}))

    def version(self, registration_id: str, version: int) -> VersionRecord:
        """`GET /studies/{registration_id}/history/{version}`: the record as it stood at that version."""
        return parse_version(
            registration_id, version, self.get_json(f"/studies/{registration_id}/history/{version}", {})
        )
