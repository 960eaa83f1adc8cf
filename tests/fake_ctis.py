"""A fake EU CTIS public API that speaks real HTTP on 127.0.0.1, for tests.

Serves trials the way the registry does (ctis API_NOTES §1-§4):

- `POST /search` with the JSON body {searchCriteria, pagination, sort}: 1-based pages, the observed envelope
  {showWarning, pagination: {totalRecords, currentPage, totalPages, nextPage, prevPage}, data}, sorting by
  lastUpdated / lastPublicationUpdate / decisionDate (day-first dates compared as dates), and the
  searchCriteria `medicalCondition` (every word, case-insensitive, in the summary's conditions), `number`
  and `status`; 400 as text for a malformed body, an unknown sort or criterion;
- `GET /search` → 403, as the portal's firewall answers it;
- `GET /retrieve/{ctNumber}` → the full record as a raw retrieve writes it (`ctStatus` is the application
  status text, top-level dates ISO, no summary-only fields); 400 for a malformed number, 404 for an unknown;
- scripted faults for the next requests (`inject`): 403 from the firewall, 429 with Retry-After, 500, 503,
  HTML with 200, invalid JSON, connection reset, and shape drift: `old_schema` (a retrieve in the
  pre-June-2024 schema) and `no_data` (a search page whose list is no longer called `data`);
- a non-monotonic sort: `displace(ct_number, position)` puts one trial out of order in every sorted list;
- a request log (method, path, JSON body) so tests can count requests.

Each trial is given in the merged form of the real examples (`tests/fixtures/ctis/retrieve_*.json`: the full
record with the search summary's fields at its top level); the fake splits it into the search summary and
the raw retrieve. `make_trial` builds small ones for tests that need many.
"""

from __future__ import annotations

import copy
import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import orjson
from loopback import FakeHandler, LoopbackServer

API_PREFIX = "/ctis-public-api"
SORT_PROPERTIES = frozenset({"decisionDate", "lastUpdated", "lastPublicationUpdate"})
CRITERIA = frozenset({"medicalCondition", "number", "sponsor", "containAll", "status"})
# Summary fields a raw retrieve does not carry (the merged examples got them from the search).
SUMMARY_ONLY = frozenset(
    {
        "ctTitle",
        "conditions",
        "sponsor",
        "sponsorType",
        "product",
        "endPoint",
        "primaryEndPoint",
        "trialCountries",
        "decisionDateOverall",
        "therapeuticAreas",
        "trialPhase",
        "ageRangeSecondary",
        "ageGroup",
        "gender",
        "totalNumberEnrolled",
        "resultsFirstReceived",
        "lastPublicationUpdate",
        "endDateEU",
        "endDate",
    }
)
# The search summary's fields, in the order of the real search example.
SUMMARY_KEYS = (
    "ctNumber",
    "ctStatus",
    "ctTitle",
    "shortTitle",
    "startDateEU",
    "conditions",
    "trialCountries",
    "decisionDateOverall",
    "decisionDate",
    "therapeuticAreas",
    "sponsor",
    "sponsorType",
    "trialPhase",
    "endPoint",
    "product",
    "ageRangeSecondary",
    "ageGroup",
    "gender",
    "trialRegion",
    "totalNumberEnrolled",
    "primaryEndPoint",
    "resultsFirstReceived",
    "lastUpdated",
    "lastPublicationUpdate",
    "endDateEU",
    "endDate",
)
FAULT_KINDS = frozenset(
    {"403", "429", "500", "503", "html", "invalid_json", "reset", "old_schema", "no_data"}
)
_CT_NUMBER = re.compile(r"^\d{4}-\d{6}-\d{2}-\d{2}$")
_DAY_FIRST = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, used by the next request whose path starts with `path`."""

    kind: str
    path: str = "/search"
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # relative to the API base, e.g. "/search"
    body: Any = None  # the decoded JSON body of a POST


@dataclass
class _Trial:
    ct_number: str
    summary: dict[str, Any]
    retrieve: dict[str, Any]
    conditions: str = field(default="")  # lower case, for medicalCondition


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def day_first(value: object) -> date | None:
    match = _DAY_FIRST.match(value) if isinstance(value, str) else None
    return date(int(match[3]), int(match[2]), int(match[1])) if match else None


def _iso(value: object) -> object:
    parsed = day_first(value)
    return parsed.isoformat() if parsed else value


def _get(node: Any, *path: str) -> Any:
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def summary_of(merged: Mapping[str, Any]) -> dict[str, Any]:
    """The search summary of a merged record; fields the stored record lacks are derived from its part I."""
    part1 = _get(merged, "authorizedApplication", "authorizedPartI") or {}
    identifiers = _get(part1, "trialDetails", "clinicalTrialIdentifiers") or {}
    endpoints = _get(part1, "trialDetails", "trialInformation", "endPoint") or {}
    primary = next((s for s in part1.get("sponsors", []) if s.get("primary")), None)
    derived = {
        "ctTitle": identifiers.get("fullTitle"),
        "conditions": ", ".join(c["medicalCondition"] for c in part1.get("medicalConditions", [])),
        "sponsor": _get(primary, "organisation", "name"),
        "product": ", ".join(p.get("productName", "") for p in part1.get("products", [])),
        "primaryEndPoint": ", ".join(e["endPoint"] for e in endpoints.get("primaryEndPoints", [])),
        "endPoint": ", ".join(e["endPoint"] for e in endpoints.get("secondaryEndPoints", [])),
    }
    summary = {}
    for key in SUMMARY_KEYS:
        value = merged.get(key, derived.get(key))
        if value not in (None, ""):
            summary[key] = value
    return summary


def retrieve_of(merged: Mapping[str, Any]) -> dict[str, Any]:
    """The raw retrieve of a merged record: application status text, ISO dates, no summary-only fields."""
    raw = {key: copy.deepcopy(value) for key, value in merged.items() if key not in SUMMARY_ONLY}
    raw["ctStatus"] = "Authorised"  # the application status, never the recruitment status
    raw["lastUpdated"] = _iso(merged.get("lastUpdated"))
    raw["startDateEU"] = _iso(merged.get("startDateEU"))
    overall = merged.get("decisionDateOverall")
    raw["decisionDate"] = _iso(overall) if overall else merged.get("decisionDate")
    if "authorizedApplication" not in raw:  # a summary-only trial: a minimal part I from the summary
        identifiers = {"fullTitle": merged.get("ctTitle"), "shortTitle": merged.get("shortTitle")}
        raw["authorizedApplication"] = {
            "authorizedPartI": {"trialDetails": {"clinicalTrialIdentifiers": identifiers}}
        }
    return raw


def old_schema_of(retrieve: Mapping[str, Any]) -> dict[str, Any]:
    """The record as the pre-June-2024 API wrote it: part I at top level, text statuses."""
    application = retrieve.get("authorizedApplication") or {}
    old = {
        key: value
        for key, value in retrieve.items()
        if key not in ("authorizedApplication", "ctPublicStatusCode")
    }
    old["authorizedPartI"] = application.get("authorizedPartI")
    old["authorizedPartsII"] = application.get("authorizedPartsII", [])
    old["ctStatus"] = "Ongoing"
    return old


def make_trial(
    ct_number: str,
    *,
    last_updated: date,
    last_publication: date | None = None,
    condition: str = "Multiple Sclerosis",
    status: int = 4,
    title: str | None = None,
) -> dict[str, Any]:
    """A small merged-form trial for tests that need many, with chosen update dates."""
    published = last_publication or last_updated
    return {
        "ctNumber": ct_number,
        "ctStatus": status,
        "ctPublicStatusCode": status,
        "decisionDateOverall": "01/03/2024",
        "decisionDate": "DE: 01/03/2024",
        "publishDate": f"{published.isoformat()}T03:40:00.000000000",
        "authorizedApplication": {
            "authorizedPartI": {
                "trialDetails": {
                    "clinicalTrialIdentifiers": {
                        "fullTitle": title or f"Trial {ct_number}",
                        "publicTitle": title or f"Trial {ct_number}",
                    }
                },
                "medicalConditions": [{"medicalCondition": condition}],
            },
            "memberStatesConcerned": [{"mscName": "Germany", "mscPublicStatusCode": status}],
        },
        "trialCountries": [f"Germany:{status}"],
        "trialPhase": "Therapeutic exploratory (Phase II)",
        "lastUpdated": last_updated.strftime("%d/%m/%Y"),
        "lastPublicationUpdate": published.strftime("%d/%m/%Y"),
    }


class FakeCtis(LoopbackServer):
    """The fake registry. Start with `start()` (or use as a context manager); `url` is the API base URL."""

    def __init__(self, trials: Iterable[Mapping[str, Any]] = ()) -> None:
        super().__init__(_Handler, "fake-ctis")
        self._lock = threading.Lock()
        self._trials: list[_Trial] = []
        self._faults: deque[Fault] = deque()
        self._displaced: dict[str, int] = {}
        self.requests: list[LoggedRequest] = []
        self.set_trials(trials)

    # -- data ----------------------------------------------------------------------------------------

    def set_trials(self, trials: Iterable[Mapping[str, Any]]) -> None:
        """Serve these trials (merged form), replacing any served before."""
        indexed = [self._index(merged) for merged in trials]
        with self._lock:
            self._trials = indexed

    def set_retrieve(self, ct_number: str, body: Any) -> None:
        """Answer `GET /retrieve/{ct_number}` with exactly `body` (drifted or broken records)."""
        with self._lock:
            trial = next(t for t in self._trials if t.ct_number == ct_number)
            trial.retrieve = body

    def displace(self, ct_number: str, position: int) -> None:
        """Put this trial at `position` (0-based) of every sorted result: a non-monotonic sort."""
        with self._lock:
            self._displaced[ct_number] = position

    @staticmethod
    def _index(merged: Mapping[str, Any]) -> _Trial:
        summary = summary_of(merged)
        return _Trial(
            ct_number=str(merged["ctNumber"]),
            summary=summary,
            retrieve=retrieve_of(merged),
            conditions=str(summary.get("conditions", "")).lower(),
        )

    # -- faults and the request log ------------------------------------------------------------------

    def inject(self, *faults: Fault | str) -> None:
        with self._lock:
            self._faults.extend(fault if isinstance(fault, Fault) else Fault(fault) for fault in faults)

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def requests_to(self, path: str, method: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            return [
                r for r in self.requests if r.path.startswith(path) and (method is None or r.method == method)
            ]

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            if self._faults and path.startswith(self._faults[0].path):
                return self._faults.popleft()
            return None

    def _log(self, method: str, path: str, body: Any) -> None:
        with self._lock:
            self.requests.append(LoggedRequest(method, path, body))

    # -- server lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    # -- API logic -----------------------------------------------------------------------------------

    def search_body(self, request: object) -> dict[str, Any]:
        if not isinstance(request, dict):
            raise BadRequest("Request body must be a JSON object")
        page, size = self._pagination(request.get("pagination"))
        matches = self._sorted(self._matches(request.get("searchCriteria") or {}), request.get("sort"))
        total = len(matches)
        total_pages = -(-total // size)
        chosen = matches[(page - 1) * size : page * size]
        return {
            "showWarning": False,
            "pagination": {
                "totalRecords": total,
                "currentPage": page,
                "totalPages": total_pages,
                "nextPage": page < total_pages,
                "prevPage": page > 1,
            },
            "data": [copy.deepcopy(trial.summary) for trial in chosen],
        }

    def retrieve_body(self, ct_number: str) -> dict[str, Any]:
        if not _CT_NUMBER.match(ct_number):
            raise BadRequest(f"Invalid CT number: {ct_number}")
        with self._lock:
            found = next((t for t in self._trials if t.ct_number == ct_number), None)
        if found is None:
            raise BadRequest(f"Clinical trial {ct_number} not found", status=404)
        return copy.deepcopy(found.retrieve)

    @staticmethod
    def _pagination(value: object) -> tuple[int, int]:
        pagination = value if isinstance(value, dict) else {}
        page, size = pagination.get("page", 1), pagination.get("size", 20)
        if not isinstance(page, int) or page < 1:
            raise BadRequest(f"pagination.page must be a positive integer, got {page!r}")
        if not isinstance(size, int) or size < 1:
            raise BadRequest(f"pagination.size must be a positive integer, got {size!r}")
        return page, size

    def _matches(self, criteria: Mapping[str, Any]) -> list[_Trial]:
        unknown = set(criteria) - CRITERIA
        if unknown:
            raise BadRequest(f"Unknown search criterion: {sorted(unknown)[0]}")
        words = str(criteria.get("medicalCondition") or "").lower().split()
        number = criteria.get("number")
        statuses = criteria.get("status")
        with self._lock:
            trials = list(self._trials)
        return [
            trial
            for trial in trials
            if all(word in trial.conditions for word in words)
            and (not number or trial.ct_number == number)
            and (not statuses or trial.summary.get("ctStatus") in statuses)
        ]

    def _sorted(self, trials: list[_Trial], sort: object) -> list[_Trial]:
        if sort is None:
            return trials
        if not isinstance(sort, dict) or sort.get("property") not in SORT_PROPERTIES:
            name = sort.get("property") if isinstance(sort, dict) else sort
            raise BadRequest(f"Unknown sort property: {name}")
        if sort.get("direction", "ASC") not in ("ASC", "DESC"):
            raise BadRequest(f"Unknown sort direction: {sort.get('direction')!r}")
        name = "decisionDateOverall" if sort["property"] == "decisionDate" else sort["property"]
        descending = sort.get("direction") == "DESC"
        # Dates compare as dates (a string sort of DD/MM/YYYY would be wrong); undated trials go last.
        dated = sorted(
            (t for t in trials if day_first(t.summary.get(name))),
            key=lambda t: (day_first(t.summary.get(name)), t.ct_number),
            reverse=descending,
        )
        ordered = dated + [t for t in trials if not day_first(t.summary.get(name))]
        with self._lock:
            displaced = dict(self._displaced)
        for ct_number, position in displaced.items():
            trial = next((t for t in ordered if t.ct_number == ct_number), None)
            if trial is not None:
                ordered.remove(trial)
                ordered.insert(position, trial)
        return ordered


class _Handler(FakeHandler):
    fake: FakeCtis

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        path = urlsplit(self.path).path.removeprefix(API_PREFIX)
        self.fake._log("GET", path, None)
        if path == "/search":  # the firewall refuses a GET on the search
            self._send(403, b"<html><body><h1>403 Forbidden</h1></body></html>", content_type="text/html")
            return
        fault = self.fake._take_fault(path)
        if fault is not None and fault.kind != "old_schema" and self._serve_fault(fault):
            return
        try:
            if not path.startswith("/retrieve/"):
                raise BadRequest("Not found", status=404)
            body = self.fake.retrieve_body(path.removeprefix("/retrieve/"))
            if fault is not None and fault.kind == "old_schema":
                body = old_schema_of(body)
            self._send(200, orjson.dumps(body))
        except BadRequest as exc:
            self._send(exc.status, str(exc).encode(), content_type="text/plain")

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path.removeprefix(API_PREFIX)
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length)
        try:
            request = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            request = payload.decode(errors="replace")
        self.fake._log("POST", path, request)
        fault = self.fake._take_fault(path)
        if fault is not None and fault.kind not in ("no_data", "old_schema") and self._serve_fault(fault):
            return
        try:
            if path != "/search":
                raise BadRequest("Not found", status=404)
            if isinstance(request, str):
                raise BadRequest("Malformed JSON request body")
            body = self.fake.search_body(request)
            if fault is not None and fault.kind == "no_data":
                body["content"] = body.pop("data")  # the list renamed: shape drift
            self._send(200, orjson.dumps(body))
        except BadRequest as exc:
            self._send(exc.status, str(exc).encode(), content_type="text/plain")

    def _serve_fault(self, fault: Fault) -> bool:
        """Serve a transport fault; False for a shape fault the caller serves itself."""
        kind = fault.kind
        if kind == "429":
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            self._send(429, b"Too Many Requests", content_type="text/plain", headers=headers)
        elif kind == "403":
            page = (
                b"<html><head><title>Request Rejected</title></head><body>The URL was rejected.</body></html>"
            )
            self._send(403, page, content_type="text/html")
        elif kind in ("500", "503"):
            self._send(int(kind), b"Service Unavailable", content_type="text/plain")
        elif kind == "html":
            self._send(200, b"<!DOCTYPE html><html><body>Maintenance</body></html>", content_type="text/html")
        elif kind == "invalid_json":
            self._send(200, b'{"showWarning": false, "data": [')
        elif kind == "reset":
            self._reset()
        else:
            return False
        return True
