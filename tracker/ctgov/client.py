"""ClinicalTrials.gov API v2 client: fetches `/version` and pages of raw studies. No parsing of study content.

A thin layer over `tracker.transport.RegistryTransport` (rate cap, retries with backoff, error mapping;
API_NOTES §5, §10). What is particular to API v2 lives here: the `/studies` walk that follows
nextPageToken, and a page token the server refuses (400/404/410 while a pageToken is sent) raising
`PageTokenError`, so the caller can restart the walk from page 1.

Errors (beside the transport's ApiError family):
    ApiError
     └── PageTokenError      the page token was refused (expired at a data refresh, or unknown)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tracker import transport
from tracker.config import DEFAULT_CTGOV_BASE_URL
from tracker.errors import ApiError
from tracker.transport import RegistryTransport

TOKEN_FAILURE_STATUSES = frozenset({400, 404, 410})


class PageTokenError(ApiError):
    """The server refused a page token (the walk has to start again from page 1)."""


# Where a researcher without API access gets the same records (`tracker import` reads the zip).
BULK_DOWNLOAD_HINT = (
    "or load a bulk download with `tracker import FILE` (on ClinicalTrials.gov: search, then Download, "
    "format JSON; or the full AllPublicJSON.zip from the site's Data API / Download page)"
)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of `/studies`: raw study dicts, the token of the next page and (page 1 only) the total."""

    studies: list[Any]
    next_token: str | None
    total_count: int | None


def validate_base_url(base_url: str, example: str = DEFAULT_CTGOV_BASE_URL) -> str:
    """The API v2 base URL without a trailing slash; `ConfigError` naming ClinicalTrials.gov otherwise."""
    return transport.validate_base_url(base_url, registry="ClinicalTrials.gov", example=example)


class CtgovClient(RegistryTransport):
    """Talks to one API v2 base URL through the given `httpx.Client`."""

    registry_name = "ClinicalTrials.gov"
    base_url_example = DEFAULT_CTGOV_BASE_URL
    unreachable_hint = f"check the network or --base-url, {BULK_DOWNLOAD_HINT}"

    def version(self) -> dict[str, Any]:
        """`GET /version`: {"apiVersion": …, "dataTimestamp": …}."""
        body = self.get_json("/version", {})
        if not isinstance(body, dict):
            raise ApiError(f"unexpected /version answer from {self.base_url}: not a JSON object")
        return body

    def study(self, registration_id: str) -> dict[str, Any]:
        """`GET /studies/{registration_id}`: the bare study object."""
        body = self.get_json(f"/studies/{registration_id}", {})
        if not isinstance(body, dict):
            raise ApiError(f"unexpected answer for study {registration_id}: not a JSON object")
        return body

    def iter_pages(self, params: Mapping[str, Any]) -> Iterator[Page]:
        """Walk `/studies` with `params` (the same on every page), following nextPageToken to the end.

        An empty page is normal; a page with no token ends the walk (a false last token simply leads to one
        empty page). `countTotal` is sent on page 1 only, since the API ignores it later anyway.
        """
        first = {key: value for key, value in params.items() if key != "pageToken"}
        later = {key: value for key, value in first.items() if key != "countTotal"}
        token: str | None = None
        while True:
            request_params = first if token is None else {**later, "pageToken": token}
            body = self.get_json("/studies", request_params)
            page = _page_from_body(body)
            yield page
            if not page.next_token:
                return
            token = page.next_token

    def _registry_error(
        self, status: int, path: str, params: Mapping[str, Any], text: str
    ) -> Exception | None:
        if "pageToken" in params and status in TOKEN_FAILURE_STATUSES:
            return PageTokenError(f"page token refused (HTTP {status}): {text}")
        return None

    def _loggable(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        return {key: (f"{value[:8]}…" if key == "pageToken" else value) for key, value in params.items()}


def _page_from_body(body: Any) -> Page:
    if not isinstance(body, dict) or not isinstance(body.get("studies", []), list):
        raise ApiError("unexpected /studies answer: no 'studies' list")
    total = body.get("totalCount")
    token = body.get("nextPageToken")
    return Page(
        studies=body.get("studies", []),
        next_token=token if isinstance(token, str) and token else None,
        total_count=total if isinstance(total, int) else None,
    )
