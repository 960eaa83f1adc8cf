"""What the dashboard's HTTP responses carry beyond Streamlit's own: a strict Content-Security-Policy and
friends, and the local map outlines. Pure except `streamlit_index_html` (reads the installed page)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

GEO_ROUTE = "/geo"
GEO_FOLDER = Path(__file__).with_name("geo")
# Plotly appends "<scope>_<resolution>m.json"; a path from the origin root works on every page (/, /trial).
TOPOJSON_URL = GEO_ROUTE + "/"

_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def inline_script_hashes(html: str) -> tuple[str, ...]:
    """CSP source expressions ('sha256-…') for the inline scripts of a page, so they run and nothing else
    inline does."""
    return tuple(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii") + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )


def content_security_policy(script_hashes: tuple[str, ...] = ()) -> str:
    """Everything from the dashboard's own origin only. Inline styles stay allowed: Streamlit and Plotly
    style their elements at run time (style attributes cannot be hashed), and styles cannot fetch from
    elsewhere with img-src, font-src and connect-src closed. `data:`/`blob:` images are Plotly's own
    renderings (the camera button, legend swatches)."""
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],  # includes the same-origin websocket (ws:/wss:) in CSP level 3
        "worker-src": ["'self'", "blob:"],
        "frame-src": ["'self'"],
        "frame-ancestors": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def security_headers(policy: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", policy.encode("ascii")),
        (b"x-content-type-options", b"nosniff"),
        # Links out (a trial on ClinicalTrials.gov) do not tell the registry which dashboard view was open.
        (b"referrer-policy", b"no-referrer"),
    ]


class SecurityHeadersMiddleware:
    """ASGI middleware adding `security_headers` to every HTTP response (websocket frames carry none)."""

    def __init__(self, app: ASGIApp, policy: str) -> None:
        self.app = app
        self.headers = security_headers(policy)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        names = {name for name, _value in self.headers}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(n, v) for n, v in message.get("headers", []) if n.lower() not in names]
                message["headers"] = kept + self.headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def streamlit_index_html() -> str:
    """The page Streamlit serves at every app URL (its inline scripts need CSP hashes)."""
    import streamlit

    return (Path(streamlit.__file__).parent / "static" / "index.html").read_text("utf-8")
