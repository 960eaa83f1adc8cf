"""HTTP transport shared by the registry clients: rate cap, retries with backoff, error mapping.

`RegistryTransport` is the one place that talks HTTP to a registry; `tracker.ctgov.client.CtgovClient`
(ClinicalTrials.gov API v2), `tracker.ctgov.history.HistoryClient` (its internal history API) and
`tracker.ctis.client.CtisClient` (the EU CTIS public API) are thin layers over it, so every registry
fails the same way. It takes an `httpx.Client` from the caller (timeouts, redirects and headers are the
caller's choice), sends GET with query parameters or POST with a JSON body, and adds what the registries
need (ctgov API_NOTES §5, §10; ctis API_NOTES §1, §4):

- a request-rate cap (monotonic clock; 0 switches it off);
- retries with exponential backoff and jitter on 429 (honouring Retry-After), 403 (web application
  firewalls answer it to bursts), 408, 5xx, timeouts, connection errors, truncated bodies, invalid JSON
  and HTML served with 200;
- no retry on 400: the request itself is wrong (`ApiRequestError`, carrying the server's text);
- no retry when the very first request cannot connect at all (the name does not resolve, or the
  connection is refused): offline or a wrong base URL does not heal in a minute (`UnreachableError`);
- 404 raises `NotFoundError` (never retried: a missing record or version);
- a subclass may map a status to its own error first (`_registry_error`), e.g. a refused page token.

Errors:
    ApiError                 the registry is unreachable or keeps failing after the retries
     ├── ApiRequestError     400: never retried
     ├── UnreachableError    the first request could not connect: never retried
     └── NotFoundError       404 for a record or version the registry does not have
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from tracker.errors import ApiError, ApiRequestError, ConfigError

logger = logging.getLogger(__name__)

DEFAULT_BACKOFF_BASE = 1.0  # seconds before the first retry; doubles each time
DEFAULT_BACKOFF_MAX = 60.0
MAX_RETRY_AFTER = 300.0  # never sleep longer than this on a server's Retry-After
_ERROR_TEXT_LIMIT = 300


class NotFoundError(ApiError):
    """The registry answered 404 for this path."""


class UnreachableError(ApiError):
    """The registry could not be reached at all on the first request (no network, DNS, wrong URL)."""


class TransientError(Exception):
    """A failure worth retrying; `retry_after` is the server's requested wait in seconds, if any."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def validate_base_url(base_url: str, *, registry: str, example: str) -> str:
    """The base URL without a trailing slash; `ConfigError` unless it is an absolute http(s) URL."""
    try:
        url = httpx.URL(base_url.strip())
    except (httpx.InvalidURL, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"invalid {registry} base URL {base_url!r}: expected http(s)://host/path, e.g. {example}"
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
    """JSON over HTTP with one registry base URL: the rate cap, retries and error mapping described above."""

    registry_name = "the registry"  # how messages name the registry
    base_url_example = "https://registry.example/api"
    # The next step when the first request cannot connect: which setting to check, and what else to do.
    unreachable_hint = "check the network and the registry's base URL"

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
        self.base_url = validate_base_url(
            base_url, registry=self.registry_name, example=self.base_url_example
        )
        self.limiter = RateLimiter(requests_per_second)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.requests_made = 0
        self.answered = False  # has the server answered anything yet (then connection errors may heal)

    def get_json(self, path: str, params: Mapping[str, Any]) -> Any:
        """One GET of `base_url + path`, retried on transient failures; the decoded JSON body."""
        return self._request("GET", path, params, None)

    def post_json(self, path: str, body: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> Any:
        """One POST of `body` as JSON to `base_url + path`, retried exactly like a GET; the decoded JSON."""
        return self._request("POST", path, params or {}, body)

    # -- one request with retries ---------------------------------------------------------------------

    def _request(
        self, method: str, path: str, params: Mapping[str, Any], body: Mapping[str, Any] | None
    ) -> Any:
        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait_seconds,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._attempt, method, path, params, body)
        except TransientError as exc:
            attempts = self.max_retries + 1
            raise ApiError(
                f"{self.registry_name} at {self.base_url} failed after {attempts} attempt"
                f"{'s' if attempts != 1 else ''}: {exc}"
            ) from None

    def _attempt(
        self, method: str, path: str, params: Mapping[str, Any], body: Mapping[str, Any] | None
    ) -> Any:
        self.limiter.wait()
        self.requests_made += 1
        url = self.base_url + path
        try:
            response = self._send(method, url, params, body)
        except httpx.TimeoutException as exc:
            raise TransientError(f"timeout ({type(exc).__name__})") from None
        except httpx.ConnectError as exc:
            if not self.answered:
                raise UnreachableError(
                    f"cannot reach {self.registry_name} at {self.base_url} ({_connect_reason(exc)}); "
                    f"{self.unreachable_hint}"
                ) from None
            raise TransientError(f"{type(exc).__name__}: {exc or 'connection failed'}") from None
        except httpx.TransportError as exc:
            raise TransientError(f"{type(exc).__name__}: {exc or 'connection failed'}") from None
        self.answered = True
        status = response.status_code
        logger.debug("%s %s %s -> %s", method, path, self._loggable(params), status)
        if status == 200:
            return _decode_json(response)
        raise self._status_error(status, method, path, params, response)

    def _send(
        self, method: str, url: str, params: Mapping[str, Any], body: Mapping[str, Any] | None
    ) -> httpx.Response:
        if method == "POST":
            # orjson rather than httpx's json=: the same encoder the rest of the tracker uses.
            content = orjson.dumps(body)
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            return self.http.post(url, params=dict(params), content=content, headers=headers)
        return self.http.get(url, params=dict(params))

    def _status_error(
        self, status: int, method: str, path: str, params: Mapping[str, Any], response: httpx.Response
    ) -> Exception:
        """The exception for a non-200 answer: transient ones are retried by the caller."""
        text = _error_text(response)
        specific = self._registry_error(status, path, params, text)
        if specific is not None:
            return specific
        if status == 404:
            return NotFoundError(f"{self.registry_name} has no {path} (HTTP 404): {text}")
        if status == 400:
            return ApiRequestError(f"{self.registry_name} rejected the request (HTTP 400): {text}")
        if status == 429:
            return TransientError("HTTP 429 too many requests", _retry_after(response))
        if status == 403 or status == 408 or 500 <= status < 600:
            return TransientError(f"HTTP {status}: {text}", _retry_after(response))
        return ApiError(
            f"{self.registry_name} answered HTTP {status} for {method} {self.base_url + path}: {text}"
        )

    def _registry_error(
        self, status: int, path: str, params: Mapping[str, Any], text: str
    ) -> Exception | None:
        """A registry-specific error for this status, checked before the shared mapping; None for none."""
        return None

    def _loggable(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """The parameters as logged (a subclass shortens secrets or long tokens)."""
        return params

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
            "%s: retrying in %.2fs (attempt %d of %d): %s",
            self.registry_name,
            wait,
            state.attempt_number + 1,
            self.max_retries + 1,
            exc,
        )


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


def _decode_json(response: httpx.Response) -> Any:
    content = response.content
    content_type = response.headers.get("content-type", "")
    if "json" not in content_type.lower() or content.lstrip()[:1] == b"<":
        # Maintenance and firewall pages come as HTML with status 200 (ctgov API_NOTES §10).
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
