"""Test data for exports and digests: real MS studies loaded through the real store, then a week of edits.

`load_week` lands modified copies of real records at a chosen time, so the store itself writes the change
events (status changes, a reason for stopping, a slipped date, posted results, new trials). Also a real
SMTP server on loopback (aiosmtpd) that keeps what it receives.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from conftest import FIXTURES
from sqlalchemy import Engine
from support import free_port

from tracker import store

SAMPLE: list[dict[str, Any]] = [
    json.loads(line) for line in (FIXTURES / "ms_sample.jsonl").read_text().splitlines()
]
T0 = datetime(2025, 9, 1, 6, 0)  # the baseline load
SUBSCRIBED = T0 + timedelta(hours=1)
WEEK1 = T0 + timedelta(days=1)  # the first week's changes
DIGEST1 = T0 + timedelta(days=7)
WEEK2 = T0 + timedelta(days=8)
DIGEST2 = T0 + timedelta(days=14)
SCRIPT_TITLE = "<script>alert('x')</script> Remyelination & repair trial"
WHY_STOPPED = "Sponsor decision <b>bold</b>"
NEW_TRIAL_COUNT = 5


def registration_id(raw: dict[str, Any]) -> str:
    return raw["protocolSection"]["identificationModule"]["nctId"]


def status_module(raw: dict[str, Any]) -> dict[str, Any]:
    return raw["protocolSection"]["statusModule"]


def with_status(status: str) -> list[dict[str, Any]]:
    return [raw for raw in SAMPLE if status_module(raw)["overallStatus"] == status]


def load(engine: Engine, studies: list[dict[str, Any]], *, seen_at: datetime, stamp: str) -> int:
    run = store.begin_run(
        engine, mode="full", query="multiple sclerosis", source="test", data_timestamp=stamp
    )
    outcome = store.ingest_page(engine, run, studies, seen_at=seen_at)
    store.finish_run(engine, run, outcome="partial" if outcome.rejected else "success")
    return run


@dataclass
class Scenario:
    """Which trials the first week changed, by section key, and the held-back new trials."""

    baseline: list[dict[str, Any]]
    held_back: list[dict[str, Any]]
    changed: dict[str, list[str]] = field(default_factory=dict)


def scenario() -> Scenario:
    """The sample studies as a baseline, minus NEW_TRIAL_COUNT held back to appear in week 1."""
    held_back = [copy.deepcopy(raw) for raw in with_status("RECRUITING")[-NEW_TRIAL_COUNT:]]
    held_ids = {registration_id(raw) for raw in held_back}
    baseline = [raw for raw in SAMPLE if registration_id(raw) not in held_ids]
    # The newest NCT ID: listed first in its section, so shown even under a small per-section cap.
    held_back[-1]["protocolSection"]["identificationModule"]["briefTitle"] = SCRIPT_TITLE
    return Scenario(baseline=baseline, held_back=held_back)


def load_baseline(engine: Engine, world: Scenario) -> None:
    load(engine, world.baseline, seen_at=T0, stamp="2025-09-01T05:00:00")


def _edit(raw: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    edited = copy.deepcopy(raw)
    change(edited)
    return edited


def week1_edits(world: Scenario) -> list[dict[str, Any]]:
    """Modified copies of baseline studies, one or two per digest section, plus the new trials."""
    in_baseline = {registration_id(raw) for raw in world.baseline}

    taken: set[str] = set()

    def pick(status: str, count: int = 1, *, no_results: bool = False) -> list[dict[str, Any]]:
        candidates = [
            raw
            for raw in with_status(status)
            if registration_id(raw) in in_baseline
            and registration_id(raw) not in taken
            and not (no_results and raw.get("hasResults"))
        ][:count]
        taken.update(registration_id(raw) for raw in candidates)
        return candidates

    edits: list[dict[str, Any]] = []

    def record(section: str, raws: list[dict[str, Any]], change: Callable[[dict[str, Any]], None]) -> None:
        world.changed.setdefault(section, []).extend(registration_id(raw) for raw in raws)
        edits.extend(_edit(raw, change) for raw in raws)

    def opened(raw: dict[str, Any]) -> None:
        status_module(raw)["overallStatus"] = "RECRUITING"

    def closed(raw: dict[str, Any]) -> None:
        status_module(raw)["overallStatus"] = "COMPLETED"

    def stopped(raw: dict[str, Any]) -> None:
        status_module(raw)["overallStatus"] = "TERMINATED"
        status_module(raw)["whyStopped"] = WHY_STOPPED

    def results(raw: dict[str, Any]) -> None:
        raw["hasResults"] = True
        status_module(raw)["resultsFirstPostDateStruct"] = {"date": "2025-08-28", "type": "ACTUAL"}

    def slipped(raw: dict[str, Any]) -> None:
        status_module(raw)["primaryCompletionDateStruct"] = {"date": "2031-06", "type": "ESTIMATED"}

    def enrollment(raw: dict[str, Any]) -> None:
        raw["protocolSection"].setdefault("designModule", {})["enrollmentInfo"] = {
            "count": 4321,
            "type": "ACTUAL",
        }

    record("opened", pick("NOT_YET_RECRUITING", 2), opened)
    record("closed", pick("RECRUITING", 1), closed)
    record("stopped", pick("RECRUITING", 1), stopped)
    record("results", pick("COMPLETED", 1, no_results=True), results)
    record("primary_completion", pick("ACTIVE_NOT_RECRUITING", 1), slipped)
    record("other", pick("COMPLETED", 1), enrollment)
    world.changed["new"] = [registration_id(raw) for raw in world.held_back]
    return edits + world.held_back


def load_week1(engine: Engine, world: Scenario) -> None:
    load(engine, week1_edits(world), seen_at=WEEK1, stamp="2025-09-02T05:00:00")


def load_week2(engine: Engine, world: Scenario) -> str:
    """One more change a week later: a new trial posts results. Returns its NCT ID."""
    raw = copy.deepcopy(world.held_back[1])
    raw["hasResults"] = True
    status_module(raw)["resultsFirstPostDateStruct"] = {"date": "2025-09-05", "type": "ACTUAL"}
    load(engine, [raw], seen_at=WEEK2, stamp="2025-09-09T05:00:00")
    return registration_id(raw)


class MailSink:
    """aiosmtpd handler: keeps every message; refuses recipients listed in `refuse`."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(  # noqa: N802 (aiosmtpd hook name)
        self, server: Any, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for message in self.messages if message["To"] == address]


class Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password

    def __call__(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            self.user,
            self.password,
        )
        return AuthResult(success=ok, handled=False)


def start_smtp(sink: MailSink, *, auth: Authenticator | None = None) -> Controller:
    extra: dict[str, Any] = {}
    if auth is not None:
        extra = {"authenticator": auth, "auth_require_tls": False}
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(), **extra)
    controller.start()
    return controller


def parts(message: EmailMessage) -> tuple[str, str]:
    """(plain text, html) of a digest message."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()
