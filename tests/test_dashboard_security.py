"""The dashboard's response headers and local map outlines (dashboard/security.py, dashboard/server.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import re

from dashboard.security import (
    GEO_FOLDER,
    TOPOJSON_URL,
    content_security_policy,
    inline_script_hashes,
    streamlit_index_html,
)


def test_inline_script_hashes_cover_exactly_the_inline_scripts() -> None:
    page = '<script>window.a = 1</script><script type="module" src="./x.js"></script><SCRIPT>b()</SCRIPT>'
    expected = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in ("window.a = 1", "b()")
    ]
    assert list(inline_script_hashes(page)) == expected


def test_streamlits_page_has_inline_scripts_that_the_policy_allows() -> None:
    hashes = inline_script_hashes(streamlit_index_html())
    assert hashes, "Streamlit's page has an inline script; without its hash the page would not start"
    policy = content_security_policy(hashes)
    assert all(value in policy for value in hashes)


def test_policy_names_no_other_host_and_allows_no_inline_script() -> None:
    policy = content_security_policy(("'sha256-abc'",))
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self' 'sha256-abc'"
    assert directives["object-src"] == "'none'"
    for name in ("connect-src", "img-src", "font-src", "frame-ancestors"):
        assert name in directives
    assert not re.search(r"https?:|\*|'unsafe-eval'", policy)
    assert "'unsafe-inline'" not in directives["script-src"]


def test_the_world_outlines_plotly_asks_for_are_shipped() -> None:
    assert TOPOJSON_URL.startswith("/") and TOPOJSON_URL.endswith("/")
    outlines = json.loads((GEO_FOLDER / "world_110m.json").read_text("utf-8"))
    assert outlines["type"] == "Topology"
    countries = {geometry.get("id") for geometry in outlines["objects"]["countries"]["geometries"]}
    assert {"FRA", "USA", "DEU", "CAN"} <= countries  # Plotly matches country names through ISO-3 ids
    assert {"land", "coastlines", "ocean"} <= set(outlines["objects"])
