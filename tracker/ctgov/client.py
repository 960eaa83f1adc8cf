"""ClinicalTrials.gov API v2 client: fetches `/version` and pages of raw studies. No parsing of study content.

`RegistryTransport` is the one place that talks HTTP to the registry; `CtgovClient` (API v2) and
`tracker.ctgov.history.HistoryClient` (the internal history API) are thin layers over it. It takes an
`httpx.Client` from the caller (timeouts, redirects and headers are the caller's choice) and adds what the
registry needs (API_NOTES §5, §10):

- a request-rate cap (monotonic clock; 0 switches it off);
- retries with exponential backoff and jitter on 429 (honouring Retry-After), 403, 5xx, timeouts, connection
  errors, truncated bodies, invalid JSON and HTML served with 200;
- no retry on 400: the request itself is wrong (`ApiRequestError`, carrying the server's text);
- no retry when the very first request cannot connect at all (the name does not resolve, or the
  connection is refused): offline or a wrong base URL does not heal in a minute (`UnreachableError`);
- a page token the server refuses (400/404/410 while a pageToken is sent) raises `PageTokenError`, so the
  caller can restart the walk from page 1;
- 404 otherwise raises `NotFoundError` (never retried: a missing record or version).

Errors:
    ApiError                 the API is unreachable or keeps failing after the retries
     ├── ApiRequestError     400 without a page token: never retried
     ├── UnreachableError    the first request could not connect: never retried
     ├── PageTokenError      the page token was refused (expired at a data refresh, or unknown)
     └── NotFoundError       404 for a record or version the registry does not have
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from tracker.errors import ApiError, ApiRequestError, ConfigError

logger = logging.getLogger(__name__)

DEFAULT_BACKOFF_BASE = 1.0  # seconds before the first retry; doubles each time
DEFAULT_BACKOFF_MAX = 60.0
MAX_RETRY_AFTER = 300.0  # never sleep longer than this on a server's Retry-After
TOKEN_FAILURE_STATUSES = frozenset({400, 404, 410})
_ERROR_TEXT_LIMIT = 300


class PageTokenError(ApiError):
    """The server refused a page token (the walk has to start again from page 1)."""


class NotFoundError(ApiError):
    """The registry answered 404 for this path (no page token involved)."""


class UnreachableError(ApiError):
    """The registry could not be reached at all on the first request (no network, DNS, wrong URL)."""


# Where a researcher without API access gets the same records (`tracker import` reads the zip).
BULK_DOWNLOAD_HINT = (
    "or load a bulk download with `tracker import FILE` (on ClinicalTrials.gov: search, then Download, "
    "format JSON; or the full AllPublicJSON.zip from the site's Data API / Download page)"
)


class TransientError(Exception):
    """A failure worth retrying; `retry_after` is the server's requested wait in seconds, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Page:
    """One page of `/studies`: raw study dicts, the token of the next page and (page 1 only) the total."""

    studies: list[Any]
    next_token: str | None
    total_count: int | None


def validate_base_url(base_url: str, example: str = "https://clinicaltrials.gov/api/v2") -> str:
    """The base URL without a trailing slash; `ConfigError` unless it is an absolute http(s) URL."""
    try:
        url = httpx.URL(base_url.strip())
    except (httpx.InvalidURL, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"invalid ClinicalTrials.gov base URL {base_url!r}: expected http(s)://host/path, e.g. {example}"
        )
    return str(url).rstrip("/")


class RateLimiter:
    """At most `per_second` request starts per second (monotonic clock); 0 or less disables it."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._next_start = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            delay = self._next_start - now
            self._next_start = max(now, self._next_start) + self.interval
        if delay > 0:
            time.sleep(delay)


class RegistryTransport:
    """GET JSON from one registry base URL with the rate cap, retries and error mapping described above."""

    base_url_example = "https://clinicaltrials.gov/api/v2"
    # The next step when the first request cannot connect: which setting to check, and what else to do.
    unreachable_hint = f"check the network or --base-url, {BULK_DOWNLOAD_HINT}"

    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str,
        requests_per_second: float = 1.0,
        max_retries: int = 5,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
    ) -> None:
        self.http = http
        self.base_url = validate_base_url(base_url, self.base_url_example)
        self.limiter = RateLimiter(requests_per_second)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.requests_made = 0
        self.answered = False  # has the server answered anything yet (then connection errors may heal)

    def get_json(self, path: str, params: Mapping[str, Any]) -> Any:
        """One GET of `base_url + path`, retried on transient failures; the decoded JSON body."""
        return self._get_json(path, params)

    # -- one request with retries ---------------------------------------------------------------------

    def _get_json(self, path: str, params: Mapping[str, Any]) -> Any:
        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait_seconds,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._attempt, path, params)
        except TransientError as exc:
            attempts = self.max_retries + 1
            raise ApiError(
                f"ClinicalTrials.gov at {self.base_url} failed after {attempts} attempt"
                f"{'s' if attempts != 1 else ''}: {exc}"
            ) from None

    def _attempt(self, path: str, params: Mapping[str, Any]) -> Any:
        self.limiter.wait()
        self.requests_made += 1
        url = self.base_url + path
        try:
            response = self.http.get(url, params=dict(params))
        except httpx.TimeoutException as exc:
            raise TransientError(f"timeout ({type(exc).__name__})") from None
        except httpx.ConnectError as exc:
            if not self.answered:
                raise UnreachableError(
                    f"cannot reach ClinicalTrials.gov at {self.base_url} ({_connect_reason(exc)}); "
                    f"{self.unreachable_hint}"
                ) from None
            raise TransientError(f"{type(exc).__name__}: {exc or 'connection failed'}") from None
        except httpx.TransportError as exc:
            raise TransientError(f"{type(exc).__name__}: {exc or 'connection failed'}") from None
        self.answered = True
        status = response.status_code
        logger.debug("GET %s %s -> %s", path, _loggable(params), status)
        if status == 200:
            return _decode_json(response)
        text = _error_text(response)
        if "pageToken" in params and status in TOKEN_FAILURE_STATUSES:
            raise PageTokenError(f"page token refused (HTTP {status}): {text}")
        if status == 404:
            raise NotFoundError(f"ClinicalTrials.gov has no {path} (HTTP 404): {text}")
        if status == 400:
            raise ApiRequestError(f"ClinicalTrials.gov rejected the request (HTTP 400): {text}")
        if status == 429:
            raise TransientError("HTTP 429 too many requests", _retry_after(response))
        if status == 403 or status == 408 or 500 <= status < 600:
            raise TransientError(f"HTTP {status}: {text}", _retry_after(response))
        raise ApiError(f"ClinicalTrials.gov answered HTTP {status} for {url}: {text}")

    def _wait_seconds(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return min(exc.retry_after, MAX_RETRY_AFTER)
        exponential = self.backoff_base * 2 ** (state.attempt_number - 1)
        return min(self.backoff_max, exponential) * random.uniform(0.75, 1.25)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "retrying in %.2fs (attempt %d of %d): %s",
            wait,
            state.attempt_number + 1,
            self.max_retries + 1,
            exc,
        )


class CtgovClient(RegistryTransport):
    """Talks to one API v2 base URL through the given `httpx.Client`."""

    def version(self) -> dict[str, Any]:
        """`GET /version`: {"apiVersion": …, "dataTimestamp": …}."""
        body = self._get_json("/version", {})
        if not isinstance(body, dict):
            raise ApiError(f"unexpected /version answer from {self.base_url}: not a JSON object")
        return body

    def study(self, registration_id: str) -> dict[str, Any]:
        """`GET /studies/{registration_id}`: the bare study object."""
        body = self._get_json(f"/studies/{registration_id}", {})
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
            body = self._get_json("/studies", request_params)
            page = _page_from_body(body)
            yield page
            if not page.next_token:
                return
            token = page.next_token


def _connect_reason(exc: httpx.ConnectError) -> str:
    """'name does not resolve' / 'connection refused' rather than the socket module's wording."""
    text = str(exc)
    lowered = text.lower()
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "-2]" in text:
        return "the host name does not resolve"
    if "temporary failure in name resolution" in lowered or "-3]" in text:
        return "the host name does not resolve (no DNS)"
    if "refused" in lowered:
        return "connection refused"
    return " ".join(text.split()) or "connection failed"


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


def _decode_json(response: httpx.Response) -> Any:
    content = response.content
    content_type = response.headers.get("content-type", "")
    if "json" not in content_type.lower() or content.lstrip()[:1] == b"<":
        # Maintenance and firewall pages come as HTML with status 200 (API_NOTES §10).
        raise TransientError(f"non-JSON answer ({content_type or 'no content-type'}) with status 200")
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise TransientError(f"invalid JSON in answer ({exc})") from None


def _error_text(response: httpx.Response) -> str:
    try:
        text = response.text.strip()
    except (httpx.HTTPError, UnicodeDecodeError):
        return "<unreadable body>"
    text = " ".join(text.split())
    return text[:_ERROR_TEXT_LIMIT] if text else "<empty body>"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _loggable(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key: (f"{value[:8]}…" if key == "pageToken" else value) for key, value in params.items()}
