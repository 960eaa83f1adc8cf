"""EU CTIS public API client: pages of search summaries and single full records. No parsing of content.

A thin layer over `tracker.transport.RegistryTransport` (rate cap, retries on 429/403/5xx, error mapping).
The API is undocumented (ctis API_NOTES); what this client relies on:

- `POST /search` with a JSON body (a GET answers 403, which would look like the firewall and be retried);
  pages are 1-based and the answer says whether a next page exists (§1);
- `GET /retrieve/{ctNumber}` returns the full record (§2);
- the June 2024 relaunch changed endpoints and schema without notice (§4): every answer is checked for
  the shape we rely on, and a drifted one raises `ShapeError` naming what changed, so a sync stops
  loudly instead of storing hollow records.

Errors (beside the transport's ApiError family):
    ApiError
     └── ShapeError          an answer lacks what we rely on, or has it in another shape
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from tracker.config import DEFAULT_CTIS_BASE_URL
from tracker.ctis.dates import day_first_date
from tracker.errors import ApiError
from tracker.transport import RegistryTransport

logger = logging.getLogger(__name__)

CT_NUMBER_PATTERN = re.compile(r"^\d{4}-\d{6}-\d{2}-\d{2}$")
DEFAULT_PAGE_SIZE = 100  # the largest size observed to work (§1)
DEFAULT_OVERLAP_DAYS = 2
RESULT_CAP = 10_000  # the search silently stops here (§1)
# Public status codes of trials that never had an authorised application, so may lack one (§3).
_NEVER_AUTHORISED = frozenset({1, 11, 12})
# The dates the incremental walk compares; either moving means the trial changed (§1).
UPDATE_DATES = ("lastUpdated", "lastPublicationUpdate")

SortProperty = Literal["decisionDate", "lastUpdated", "lastPublicationUpdate"]
Direction = Literal["ASC", "DESC"]


class ShapeError(ApiError):
    """A CTIS answer lacks a field we rely on, or has it in another shape: the API has drifted."""

    def __init__(self, what: str, change: str) -> None:
        super().__init__(
            f"CTIS {what} shape changed: {change}; update tracker/ctis before syncing CTIS again"
        )
        self.what = what
        self.change = change


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of `POST /search`: raw search summaries (checked for shape) and where the walk stands."""

    records: list[dict[str, Any]]
    page: int  # 1-based
    total_records: int | None
    total_pages: int | None
    next_page: bool


class CtisClient(RegistryTransport):
    """Talks to one CTIS public API base URL through the given `httpx.Client`."""

    registry_name = "CTIS"
    base_url_example = DEFAULT_CTIS_BASE_URL
    unreachable_hint = "check the network or TRACKER_CTIS_BASE_URL"

    def search_page(
        self,
        condition: str,
        page: int,
        size: int = DEFAULT_PAGE_SIZE,
        sort_property: SortProperty = "lastUpdated",
        direction: Direction = "DESC",
    ) -> SearchPage:
        """One page of the trials whose medical condition matches `condition`."""
        body = {
            "searchCriteria": {"medicalCondition": condition},
            "pagination": {"page": page, "size": size},
            "sort": {"property": sort_property, "direction": direction},
        }
        return _search_page(self.post_json("/search", body), page)

    def iter_updated(
        self, condition: str, since: date | None, overlap_days: int = DEFAULT_OVERLAP_DAYS
    ) -> Iterator[SearchPage]:
        """Pages newest-updated first: all of them when `since` is None, else until they are all older.

        The sort was observed not to be strictly monotonic, so the walk does not stop at the first old
        record: it stops after a page on which every record is older than `since - overlap_days` on both
        `lastUpdated` and `lastPublicationUpdate`. The overlap re-reads a trailing window; the caller
        removes the duplicates by CT number.
        """
        cutoff = since - timedelta(days=overlap_days) if since is not None else None
        page = 1
        while True:
            result = self.search_page(condition, page)
            _warn_if_capped(result)
            yield result
            if _walk_ends(result, cutoff):
                return
            page += 1

    def retrieve(self, ct_number: str) -> dict[str, Any]:
        """`GET /retrieve/{ct_number}`: the full record, checked for shape."""
        if not CT_NUMBER_PATTERN.match(ct_number):
            raise ValueError(f"not an EU CT number: {ct_number!r}")
        return _full_record(ct_number, self.get_json(f"/retrieve/{ct_number}", {}))


def _walk_ends(result: SearchPage, cutoff: date | None) -> bool:
    if not result.next_page or not result.records:
        return True
    if result.total_pages is not None and result.page >= result.total_pages:
        return True  # a nextPage flag that never turns false must not walk forever
    return cutoff is not None and all(older_than(record, cutoff) for record in result.records)


def older_than(record: Mapping[str, Any], cutoff: date) -> bool:
    """Both update dates known and before `cutoff`; a missing date counts as recent (read it again)."""
    dates = [day_first_date(record.get(name)) for name in UPDATE_DATES]
    return all(value is not None and value < cutoff for value in dates)


def _warn_if_capped(result: SearchPage) -> None:
    if result.page == 1 and result.total_records is not None and result.total_records >= RESULT_CAP:
        logger.warning(
            "CTIS matched %d trials; its search returns at most %d per query, so some are missing",
            result.total_records,
            RESULT_CAP,
        )


# -- shape checks ----------------------------------------------------------------------------------------


def _search_page(body: Any, page: int) -> SearchPage:
    if not isinstance(body, dict):
        raise ShapeError("search page", f"not a JSON object but a {type(body).__name__}")
    data = body.get("data")
    if not isinstance(data, list):
        raise ShapeError("search page", f"no 'data' list (keys: {_keys(body)})")
    pagination = body.get("pagination")
    if not isinstance(pagination, dict):
        raise ShapeError("search page", f"no 'pagination' object (keys: {_keys(body)})")
    for position, record in enumerate(data):
        _check_summary(position, record)
    return SearchPage(
        records=data,
        page=_int_or(pagination.get("currentPage"), page),
        total_records=_int_or(pagination.get("totalRecords"), None),
        total_pages=_int_or(pagination.get("totalPages"), None),
        next_page=pagination.get("nextPage") is True,
    )


def _check_summary(position: int, record: object) -> None:
    if not isinstance(record, dict):
        raise ShapeError("search page", f"data[{position}] is a {type(record).__name__}, not an object")
    ct_number = record.get("ctNumber")
    if not isinstance(ct_number, str) or not CT_NUMBER_PATTERN.match(ct_number):
        raise ShapeError("search page", f"data[{position}] has no EU CT number (keys: {_keys(record)})")
    status = record.get("ctStatus")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        # The pre-June-2024 search wrote text statuses; the public status code is an int.
        raise ShapeError("search page", f"'ctStatus' of {ct_number} is {status!r}, not a public status code")
    for name in UPDATE_DATES:
        try:
            day_first_date(record.get(name))
        except ValueError:
            raise ShapeError(
                "search page", f"'{name}' of {ct_number} is {record.get(name)!r}, not DD/MM/YYYY"
            ) from None


def _full_record(ct_number: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ShapeError("record", f"{ct_number} is not a JSON object but a {type(body).__name__}")
    if "authorizedPartI" in body and "authorizedApplication" not in body:
        raise ShapeError(
            "record",
            "top-level 'authorizedPartI' (the pre-June-2024 schema) instead of "
            f"authorizedApplication.authorizedPartI in {ct_number}",
        )
    if body.get("ctNumber") != ct_number:
        raise ShapeError("record", f"asked for {ct_number}, got ctNumber {body.get('ctNumber')!r}")
    _check_application(ct_number, body)
    return body


def _check_application(ct_number: str, body: Mapping[str, Any]) -> None:
    application = body.get("authorizedApplication")
    if application is None and body.get("ctPublicStatusCode") in _NEVER_AUTHORISED:
        return  # under evaluation, not authorised or cancelled before a decision: nothing authorised yet
    if not isinstance(application, dict):
        raise ShapeError("record", f"no 'authorizedApplication' object in {ct_number} (keys: {_keys(body)})")
    if not isinstance(application.get("authorizedPartI"), dict):
        raise ShapeError(
            "record",
            f"no authorizedApplication.authorizedPartI object in {ct_number} "
            f"(keys of authorizedApplication: {_keys(application)})",
        )


def _keys(mapping: Mapping[str, Any]) -> str:
    names = sorted(str(key) for key in mapping)
    return ", ".join(names[:15]) + (", …" if len(names) > 15 else "") if names else "none"


def _int_or(value: object, default: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
