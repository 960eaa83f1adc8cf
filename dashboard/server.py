"""ASGI launcher run by `tracker dashboard`: the Streamlit app in app.py, plus the local map outlines under
/geo and the security headers on every response (Streamlit's own server has no option for either)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from dashboard.security import (
    GEO_FOLDER,
    GEO_ROUTE,
    SecurityHeadersMiddleware,
    content_security_policy,
    inline_script_hashes,
    streamlit_index_html,
)

app = st.App(
    Path(__file__).with_name("app.py"),
    routes=[Mount(GEO_ROUTE, app=StaticFiles(directory=GEO_FOLDER), name="geo")],
    middleware=[
        Middleware(
            SecurityHeadersMiddleware,
            policy=content_security_policy(inline_script_hashes(streamlit_index_html())),
        )
    ],
)
