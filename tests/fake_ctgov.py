"""A fake ClinicalTrials.gov API v2 that speaks real HTTP on 127.0.0.1, for tests and benchmarks.

Serves a list of raw studies the way the registry does (API_NOTES §3-§6, §10, §12):

- `GET /version` → {"apiVersion", "dataTimestamp"} (timestamp settable);
- `GET /studies` with pageSize (default 10, cap 1000, 0 → 10), opaque URL-safe page tokens, totalCount
  only on page 1 and only with countTotal=true, the same-params rule, an optional false last token (a full
  last page gets a token that leads to an empty page), `fields` projection, filter.ids,
  filter.overallStatus (validated), query.cond (every word, case-insensitive, in conditions, keywords and
  titles), query.term (substring), the Essie subset AREA[LastUpdatePostDate]RANGE[a,b] with MIN/MAX, and
  400 "`X` is unknown parameter";
- `GET /studies/{id}` → the bare study; 301 for an alias, 404 / 400 as text/plain;
- scripted faults for the next requests (`inject`): 429 with Retry-After, 403, 500, 503, connection reset,
  truncated body, headers then close, invalid JSON, HTML with 200 (as text/html or mislabelled as JSON),
  expired page token (400/404/410), delay;
- a request log (path + params) so tests can count requests;
- the internal history API under /api/int (`set_history`, see `fake_history`), logged as "/int/studies/…",
  with the same scripted faults (give them `path="/int/studies"`).

Each study is serialized with orjson once, so serving full pages costs little more than a memory copy.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from fake_history import FakeHistory
from loopback import FakeHandler, LoopbackServer

API_PREFIX = "/api/v2"
HISTORY_PREFIX = "/api/int"
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
STATUSES = frozenset(
    [
        "ACTIVE_NOT_RECRUITING",
        "COMPLETED",
        "ENROLLING_BY_INVITATION",
        "NOT_YET_RECRUITING",
        "RECRUITING",
        "SUSPENDED",
        "TERMINATED",
        "WITHDRAWN",
        "AVAILABLE",
        "NO_LONGER_AVAILABLE",
        "TEMPORARILY_NOT_AVAILABLE",
        "APPROVED_FOR_MARKETING",
        "WITHHELD",
        "UNKNOWN",
    ]
)
KNOWN_PARAMS = frozenset(
    [
        "format",
        "markupFormat",
        "query.cond",
        "query.term",
        "query.locn",
        "query.titles",
        "query.intr",
        "query.outc",
        "query.spons",
        "query.lead",
        "query.id",
        "query.patient",
        "filter.overallStatus",
        "filter.geo",
        "filter.ids",
        "filter.advanced",
        "filter.synonyms",
        "postFilter.overallStatus",
        "postFilter.geo",
        "postFilter.ids",
        "postFilter.advanced",
        "postFilter.synonyms",
        "aggFilters",
        "geoDecay",
        "fields",
        "sort",
        "countTotal",
        "pageSize",
        "pageToken",
    ]
)
# Parameters that may differ between pages of one walk (API_NOTES §5.1).
PAGING_PARAMS = frozenset(["countTotal", "pageSize", "pageToken"])
UNSUPPORTED_QUERY_PARAMS = KNOWN_PARAMS - {
    "format",
    "markupFormat",
    "query.cond",
    "query.term",
    "filter.overallStatus",
    "filter.ids",
    "filter.advanced",
    "fields",
    "sort",
    *PAGING_PARAMS,
}
_NCT_PATTERN = re.compile(r"^[Nn][Cc][Tt]0*[1-9]\d{0,7}$")
_RANGE = re.compile(r"^\s*AREA\[LastUpdatePostDate\]\s*RANGE\[\s*([^,\]]+?)\s*,\s*([^\]]+?)\s*\]\s*$")

# `fields` pieces → path in the study; a module or section name copies the whole sub-object.
FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "NCTId": ("protocolSection", "identificationModule", "nctId"),
    "BriefTitle": ("protocolSection", "identificationModule", "briefTitle"),
    "OfficialTitle": ("protocolSection", "identificationModule", "officialTitle"),
    "Acronym": ("protocolSection", "identificationModule", "acronym"),
    "OverallStatus": ("protocolSection", "statusModule", "overallStatus"),
    "LastUpdatePostDate": ("protocolSection", "statusModule", "lastUpdatePostDateStruct", "date"),
    "StartDate": ("protocolSection", "statusModule", "startDateStruct", "date"),
    "CompletionDate": ("protocolSection", "statusModule", "completionDateStruct", "date"),
    "LeadSponsorName": ("protocolSection", "sponsorCollaboratorsModule", "leadSponsor", "name"),
    "Condition": ("protocolSection", "conditionsModule", "conditions"),
    "Keyword": ("protocolSection", "conditionsModule", "keywords"),
    "Phase": ("protocolSection", "designModule", "phases"),
    "StudyType": ("protocolSection", "designModule", "studyType"),
    "EnrollmentCount": ("protocolSection", "designModule", "enrollmentInfo", "count"),
    "HasResults": ("hasResults",),
    "ProtocolSection": ("protocolSection",),
    "DerivedSection": ("derivedSection",),
    "ResultsSection": ("resultsSection",),
    "IdentificationModule": ("protocolSection", "identificationModule"),
    "StatusModule": ("protocolSection", "statusModule"),
    "SponsorCollaboratorsModule": ("protocolSection", "sponsorCollaboratorsModule"),
    "ConditionsModule": ("protocolSection", "conditionsModule"),
    "DesignModule": ("protocolSection", "designModule"),
    "ArmsInterventionsModule": ("protocolSection", "armsInterventionsModule"),
    "ContactsLocationsModule": ("protocolSection", "contactsLocationsModule"),
}

FAULT_KINDS = frozenset(
    [
        "429",
        "403",
        "500",
        "503",
        "reset",
        "truncated",
        "invalid_json",
        "html",
        "html_as_json",
        "expired_token",
        "delay",
        "close_after_headers",
    ]
)


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, used by the next request whose path starts with `path`.

    `expired_token` waits for a request that carries a pageToken; `delay` sleeps `seconds`, then serves
    normally.
    """

    kind: str
    path: str = "/studies"
    retry_after: float | None = None
    seconds: float = 0.0
    status: int = 400  # for expired_token

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class LoggedRequest:
    path: str  # relative to the API base, e.g. "/studies"
    params: dict[str, str]
    received_at: datetime = field(default_factory=_utc_now)  # naive UTC, as the store records times


@dataclass
class _Walk:
    """The state behind a page token: the query it belongs to and the next offset into the matches."""

    key: tuple[tuple[str, str], ...]
    matches: list[_Indexed]  # a snapshot: data changing mid-walk does not shift offsets
    offset: int
    generation: int


@dataclass
class _Indexed:
    registration_id: str
    raw: dict[str, Any]
    blob: bytes  # compact JSON, serialized once
    search_text: str  # conditions, titles, keywords (lower case) for query.cond
    status: str | None
    last_update: str | None
    aliases: tuple[str, ...] = field(default_factory=tuple)


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _get(raw: Mapping[str, Any], *path: str) -> Any:
    node: Any = raw
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _index(raw: dict[str, Any]) -> _Indexed:
    ident = _get(raw, "protocolSection", "identificationModule") or {}
    conditions = _get(raw, "protocolSection", "conditionsModule") or {}
    parts = [
        *(conditions.get("conditions") or []),
        *(conditions.get("keywords") or []),
        ident.get("briefTitle") or "",
        ident.get("officialTitle") or "",
        ident.get("acronym") or "",
    ]
    return _Indexed(
        registration_id=str(ident.get("nctId") or ""),
        raw=raw,
        blob=orjson.dumps(raw),
        search_text="\n".join(str(part) for part in parts).lower(),
        status=_get(raw, "protocolSection", "statusModule", "overallStatus"),
        last_update=_get(raw, "protocolSection", "statusModule", "lastUpdatePostDateStruct", "date"),
        aliases=tuple(ident.get("nctIdAliases") or ()),
    )


def _project(raw: Mapping[str, Any], pieces: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for piece in pieces:
        path = FIELD_PATHS[piece]
        value = _get(raw, *path)
        if value is None:
            continue
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out


def _parse_bound(text: str, open_value: str) -> str:
    if text.upper() in ("MIN", "MAX"):
        return open_value
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise BadRequest(f"Error parsing query in advanced filter: invalid date '{text}'") from None


class FakeCtgov(LoopbackServer):
    """The fake registry. Start with `start()` (or use as a context manager); `url` is the API base URL."""

    def __init__(
        self,
        studies: Iterable[dict[str, Any]] = (),
        *,
        data_timestamp: str = "2025-09-25T09:00:05",
        false_last_token: bool = False,
        api_version: str = "2.0.5",
        total_count_bias: int = 0,
    ) -> None:
        super().__init__(_Handler, "fake-ctgov")
        self.data_timestamp = data_timestamp
        # Added to every totalCount: a registry that promises more than it delivers (completeness tests).
        self.total_count_bias = total_count_bias
        self.api_version = api_version
        self.false_last_token = false_last_token
        self._lock = threading.Lock()
        self._studies: list[_Indexed] = []
        self._walks: dict[str, _Walk] = {}
        self._generation = 0
        self._faults: deque[Fault] = deque()
        self.requests: list[LoggedRequest] = []
        self.histories: dict[str, FakeHistory] = {}
        self.set_studies(studies)

    # -- data ----------------------------------------------------------------------------------------

    def set_studies(self, studies: Iterable[dict[str, Any]]) -> None:
        indexed = [_index(raw) for raw in studies]
        with self._lock:
            self._studies = indexed

    def upsert_study(self, raw: dict[str, Any]) -> None:
        item = _index(raw)
        with self._lock:
            for position, existing in enumerate(self._studies):
                if existing.registration_id == item.registration_id:
                    self._studies[position] = item
                    return
            self._studies.append(item)

    def remove_study(self, registration_id: str) -> None:
        with self._lock:
            self._studies = [item for item in self._studies if item.registration_id != registration_id]

    def set_history(self, registration_id: str, history: FakeHistory) -> None:
        """Serve `history` for the trial under /api/int (its last version is the current study)."""
        with self._lock:
            self.histories[registration_id] = history

    def history_requests(self) -> list[LoggedRequest]:
        with self._lock:
            return [request for request in self.requests if request.path.startswith("/int/")]

    @property
    def history_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{HISTORY_PREFIX}"

    def history_body(self, api_path: str, params: Mapping[str, str]) -> bytes:
        """Answer /studies/{NCT}?history=true or /studies/{NCT}/history/{v} (BadRequest carries 404s)."""
        parts = api_path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "studies":
            raise BadRequest("Not found", status=404)
        with self._lock:
            history = self.histories.get(parts[1].upper())
            if history is None:
                raise BadRequest(f"Study {parts[1]} not found", status=404)
            if len(parts) == 2 and params.get("history") == "true":
                return history.index_body()
            if len(parts) == 4 and parts[2] == "history" and parts[3].isdigit():
                history.note_version_request()
                body = history.version_body(int(parts[3]))
                if body is None:
                    raise BadRequest(f"Version {parts[3]} of {parts[1]} not found", status=404)
                return body
        raise BadRequest("Not found", status=404)

    def expire_tokens(self) -> None:
        """A data refresh: every page token issued so far stops working."""
        with self._lock:
            self._walks.clear()

    # -- faults and the request log ------------------------------------------------------------------

    def inject(self, *faults: Fault | str) -> None:
        with self._lock:
            self._faults.extend(fault if isinstance(fault, Fault) else Fault(fault) for fault in faults)

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def requests_to(self, path: str) -> list[LoggedRequest]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def _take_fault(self, path: str, params: Mapping[str, str]) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            if not path.startswith(fault.path):
                return None
            if fault.kind == "expired_token" and "pageToken" not in params:
                return None
            return self._faults.popleft()

    def _log(self, path: str, params: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(LoggedRequest(path, params))

    # -- server lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v2"

    # -- API logic (pure apart from the token table) -------------------------------------------------

    def version_body(self) -> bytes:
        return orjson.dumps({"apiVersion": self.api_version, "dataTimestamp": self.data_timestamp})

    def study_body(self, registration_id: str) -> tuple[int, bytes, dict[str, str]]:
        if not _NCT_PATTERN.match(registration_id):
            raise BadRequest(f"Invalid NCT ID format: {registration_id}")
        wanted = registration_id.upper()
        with self._lock:
            studies = list(self._studies)
        for item in studies:
            if item.registration_id == wanted:
                return 200, item.blob, {}
        for item in studies:
            if wanted in item.aliases:
                return 301, b"", {"Location": f"{API_PREFIX}/studies/{item.registration_id}"}
        raise BadRequest(f"Study {wanted} not found", status=404)

    def studies_body(self, params: dict[str, str]) -> bytes:
        for name in params:
            if name not in KNOWN_PARAMS:
                raise BadRequest(f"`{name}` is unknown parameter")
            if name in UNSUPPORTED_QUERY_PARAMS:
                raise BadRequest(f"`{name}` is not supported by the fake server")
        if params.get("format", "json") != "json":
            raise BadRequest("only format=json is supported by the fake server")
        page_size = self._page_size(params.get("pageSize"))
        pieces = self._fields(params.get("fields"))
        key = tuple(sorted((k, v) for k, v in params.items() if k not in PAGING_PARAMS))
        token = params.get("pageToken")
        with self._lock:
            if token is None:
                walk = _Walk(key, self._matches(params), 0, self._generation)
                first_page = True
            else:
                found = self._walks.pop(token, None)
                if found is None:
                    raise BadRequest("pageToken is invalid or has expired")
                if found.key != key:
                    raise BadRequest("parameters must be the same as for the first page")
                walk = found
                first_page = False
            chosen = walk.matches[walk.offset : walk.offset + page_size]
            blobs = [item.blob for item in chosen] if pieces is None else None
            projected = [_project(item.raw, pieces) for item in chosen] if pieces else None
            walk.offset += len(chosen)
            remaining = len(walk.matches) - walk.offset
            next_token = None
            if remaining > 0 or (self.false_last_token and chosen and len(chosen) == page_size):
                next_token = secrets.token_urlsafe(36)  # 48 characters
                self._walks[next_token] = walk
        if projected is not None:
            blobs = [orjson.dumps(item) for item in projected]
        assert blobs is not None
        head = b"{"
        if first_page and params.get("countTotal", "").lower() == "true":
            head += b'"totalCount":%d,' % (len(walk.matches) + self.total_count_bias)
        head += b'"studies":['
        body = [head]
        if blobs:
            body.append(b"\n" + b",\n".join(blobs) + b"\n")
        body.append(b"]")
        if next_token:
            body.append(b',"nextPageToken":"' + next_token.encode() + b'"')
        body.append(b"}")
        return b"".join(body)

    def _page_size(self, value: str | None) -> int:
        if value is None:
            return DEFAULT_PAGE_SIZE
        try:
            size = int(value)
        except ValueError:
            raise BadRequest(f"Invalid value for pageSize: {value}") from None
        if size < 0:
            raise BadRequest(f"Invalid value for pageSize: {value}")
        return min(size, MAX_PAGE_SIZE) or DEFAULT_PAGE_SIZE

    def _fields(self, value: str | None) -> list[str] | None:
        if not value:
            return None
        pieces = [piece.strip() for piece in re.split(r"[,|]", value) if piece.strip()]
        for piece in pieces:
            if piece not in FIELD_PATHS:
                raise BadRequest(f"Parameter 'fields' contains invalid field name: '{piece}'")
        return pieces

    def _matches(self, params: Mapping[str, str]) -> list[_Indexed]:
        """The matching studies (called under the lock)."""
        # Essie ANDs the words of a query; each word as a substring is close enough here.
        cond_words = params.get("query.cond", "").lower().split()
        term = params.get("query.term", "").strip().lower()
        statuses: set[str] | None = None
        if params.get("filter.overallStatus"):
            statuses = {s.strip() for s in re.split(r"[,|]", params["filter.overallStatus"]) if s.strip()}
            bad = statuses - STATUSES
            if bad:
                raise BadRequest(f"Invalid value in parameter overallStatus: {sorted(bad)[0]}")
        ids: set[str] | None = None
        if params.get("filter.ids"):
            ids = {s.strip().upper() for s in re.split(r"[,|]", params["filter.ids"]) if s.strip()}
            for registration_id in ids:
                if not _NCT_PATTERN.match(registration_id):
                    raise BadRequest(f"filter.ids has incorrect format for value {registration_id}")
        low, high = "0000-00-00", "9999-99-99"
        if params.get("filter.advanced"):
            match = _RANGE.match(params["filter.advanced"])
            if not match:
                raise BadRequest("Error parsing query in advanced filter (the fake server knows one form)")
            low = _parse_bound(match.group(1), low)
            high = _parse_bound(match.group(2), high)
        chosen = []
        for item in self._studies:
            if cond_words and not all(word in item.search_text for word in cond_words):
                continue
            if term and term not in item.blob.decode().lower():
                continue
            if statuses is not None and item.status not in statuses:
                continue
            if ids is not None and item.registration_id not in ids and not ids.intersection(item.aliases):
                continue
            if params.get("filter.advanced") and not (
                item.last_update is not None and low <= item.last_update <= high
            ):
                continue
            chosen.append(item)
        if params.get("sort", "").startswith("LastUpdatePostDate"):
            descending = not params["sort"].endswith(":asc")
            chosen.sort(key=lambda item: item.last_update or "", reverse=descending)
        return chosen


class _Handler(FakeHandler):
    fake: FakeCtgov

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        split = urlsplit(self.path)
        path = split.path
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        if path.startswith(HISTORY_PREFIX):
            self._serve_history(path.removeprefix(HISTORY_PREFIX), params)
            return
        api_path = path.removeprefix(API_PREFIX)
        self.fake._log(api_path, params)
        fault = self.fake._take_fault(api_path, params)
        if fault is not None and self._serve_fault(fault):
            return
        try:
            if api_path == "/version":
                self._send(200, self.fake.version_body())
            elif api_path == "/studies":
                self._send(200, self.fake.studies_body(params))
            elif api_path.startswith("/studies/") and path.startswith(API_PREFIX):
                status, body, headers = self.fake.study_body(api_path.rsplit("/", 1)[1])
                self._send(status, body, headers=headers)
            else:
                self._send(404, b"Not found", content_type="text/plain")
        except BadRequest as exc:
            self._send(exc.status, str(exc).encode(), content_type="text/plain")

    def _serve_history(self, api_path: str, params: dict[str, str]) -> None:
        logged = "/int" + api_path
        self.fake._log(logged, params)
        fault = self.fake._take_fault(logged, params)
        if fault is not None and self._serve_fault(fault):
            return
        try:
            self._send(200, self.fake.history_body(api_path, params))
        except BadRequest as exc:
            self._send(exc.status, str(exc).encode(), content_type="text/plain")

    def _serve_fault(self, fault: Fault) -> bool:
        """Serve the fault; False means 'now answer normally' (a delay)."""
        kind = fault.kind
        if kind == "delay":
            time.sleep(fault.seconds)
            return False
        if kind == "429":
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            self._send(429, b"Too Many Requests", content_type="text/plain", headers=headers)
        elif kind in ("403", "500", "503"):
            body = b"<html><body>Forbidden</body></html>" if kind == "403" else b"Service Unavailable"
            self._send(int(kind), body, content_type="text/html" if kind == "403" else "text/plain")
        elif kind == "reset":
            self._reset()
        elif kind == "truncated":
            body = b'{"studies":[{"protocolSection":{"identificationModule":{"nctId":"NCT0'
            self._send(200, body, declared_length=len(body) * 10)
            self.close_connection = True
        elif kind == "close_after_headers":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.close_connection = True
        elif kind == "invalid_json":
            self._send(200, b'{"studies": [ {"protocolSection": ]')
        elif kind == "html":
            page = b"<!DOCTYPE html><html><body>Down for maintenance</body></html>"
            self._send(200, page, content_type="text/html")
        elif kind == "html_as_json":
            self._send(200, b"<html><body>Maintenance</body></html>")
        elif kind == "expired_token":
            self._send(fault.status, b"pageToken has expired", content_type="text/plain")
        return True


def make_study(
    registration_id: str,
    *,
    title: str | None = None,
    status: str = "RECRUITING",
    last_update: str = "2025-09-20",
    conditions: Iterable[str] = ("Multiple Sclerosis",),
    phases: Iterable[str] = ("PHASE2",),
    enrollment: int = 100,
) -> dict[str, Any]:
    """A small, valid API v2 study for tests that need many studies with chosen values."""
    return {
        "protocolSection": {
            "identificationModule": {
                "nctId": registration_id,
                "briefTitle": title or f"Study {registration_id}",
            },
            "statusModule": {
                "overallStatus": status,
                "startDateStruct": {"date": "2024-01", "type": "ACTUAL"},
                "studyFirstPostDateStruct": {"date": "2023-12-01", "type": "ACTUAL"},
                "lastUpdatePostDateStruct": {"date": last_update, "type": "ACTUAL"},
            },
            "sponsorCollaboratorsModule": {"leadSponsor": {"name": "Example University", "class": "OTHER"}},
            "conditionsModule": {"conditions": list(conditions)},
            "designModule": {
                "studyType": "INTERVENTIONAL",
                "phases": list(phases),
                "enrollmentInfo": {"count": enrollment, "type": "ESTIMATED"},
            },
        },
        "hasResults": False,
    }
