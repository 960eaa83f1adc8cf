"""Weekly digests: built from real change events, rendered, sent to a real SMTP server on loopback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from digest_scenario import (
    DIGEST1,
    DIGEST2,
    NEW_TRIAL_COUNT,
    SCRIPT_TITLE,
    SUBSCRIBED,
    T0,
    WHY_STOPPED,
    Authenticator,
    MailSink,
    load_baseline,
    load_week1,
    load_week2,
    parts,
    scenario,
    start_smtp,
)
from sqlalchemy import Engine
from support import count_rows, free_port

from tracker import query
from tracker.cli import main
from tracker.config import load_settings
from tracker.db.migrate import upgrade_to_head
from tracker.db.models import DigestDelivery, DigestSentEvent, Subscription
from tracker.db.session import make_engine, transaction
from tracker.digest.build import build_digest, describe_date_move, section_of
from tracker.digest.run import build_for_subscription
from tracker.filters import TrialFilter
from tracker.subscriptions import add_subscription, list_subscriptions

EVERYTHING = TrialFilter(relevance=())  # the test database is not classified: no relevance restriction
WEEK1_EVENTS = (
    NEW_TRIAL_COUNT + 2 + 1 + 2 + 1 + 1 + 1
)  # new, opened, closed, stopped (+why), results, date, other
WEEK1_TRIALS = NEW_TRIAL_COUNT + 2 + 1 + 1 + 1 + 1 + 1


@pytest.fixture
def sink() -> Iterator[MailSink]:
    mail = MailSink()
    controller = start_smtp(mail)
    mail.port = controller.port  # type: ignore[attr-defined]
    yield mail
    controller.stop()


@pytest.fixture
def reader_week1(sqlite_url: str) -> Iterator[Engine]:
    """A SQLite store after the baseline and one week of changes, with one subscriber to everything."""
    engine = make_engine(sqlite_url)
    upgrade_to_head(engine)
    world = scenario()
    load_baseline(engine, world)
    add_subscription(engine, "reader@example.org", EVERYTHING, now=SUBSCRIBED)
    load_week1(engine, world)
    yield engine
    engine.dispose()


def smtp_env(port: int, **extra: str) -> dict[str, str]:
    return {
        "TRACKER_SMTP_HOST": "127.0.0.1",
        "TRACKER_SMTP_PORT": str(port),
        "TRACKER_MAIL_FROM": "MS trials <digest@tracker.example>",
        **extra,
    }


def invoke(url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["--database-url", url, *args], env=env, catch_exceptions=False)


def last_until(engine: Engine, subscription_id: int) -> datetime | None:
    with transaction(engine) as session:
        return session.get(Subscription, subscription_id).last_digest_until


def test_weekly_digest_over_smtp(engine: Engine, db_url: str, sink: MailSink) -> None:
    world = scenario()
    load_baseline(engine, world)
    sub = add_subscription(
        engine, "reader@example.org", EVERYTHING, name="All MS", now=SUBSCRIBED
    ).subscription
    load_week1(engine, world)
    env = smtp_env(sink.port, TRACKER_DIGEST_MAX_PER_SECTION="3")  # type: ignore[attr-defined]

    result = invoke(db_url, "digest", "--send", "--until", DIGEST1.isoformat(), env=env)

    assert result.exit_code == 0, result.output
    assert "1 sent" in result.output
    [message] = sink.messages
    assert message["To"] == "reader@example.org"
    assert message["Subject"] == (f"MS trials digest (All MS): {WEEK1_TRIALS} trials changed, 1–8 Sep 2025")
    assert message["List-Unsubscribe"] is None  # nothing reads mail sent back to the digest's address
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)

    # Header with counts, in section order.
    assert f"{WEEK1_TRIALS} trials with {WEEK1_EVENTS} changes" in text
    header = [line.strip() for line in text.splitlines() if line.startswith("  ") and ": " in line][:7]
    assert header == [
        f"New trials: {NEW_TRIAL_COUNT}",
        "Recruitment opened: 2",
        "Recruitment closed or completed: 1",
        "Terminated, suspended or withdrawn: 1",
        "Results posted: 1",
        "Primary completion date moved: 1",
        "Other changes: 1",
    ]
    # Per-section cap: the 3 newest new trials are listed, then "and 2 more".
    new_ids = sorted(world.changed["new"], reverse=True)
    for shown in new_ids[:3]:
        assert f"https://clinicaltrials.gov/study/{shown}" in text
        assert f'href="https://clinicaltrials.gov/study/{shown}"' in html
    for hidden in new_ids[3:]:
        assert hidden not in text and hidden not in html
    assert f"... and {NEW_TRIAL_COUNT - 3} more" in text
    assert f"… and {NEW_TRIAL_COUNT - 3} more" in html
    # Every other changed trial is linked from both parts.
    for section in ("opened", "closed", "stopped", "results", "primary_completion", "other"):
        for trial in world.changed[section]:
            assert f"https://clinicaltrials.gov/study/{trial}" in text
            assert f'href="https://clinicaltrials.gov/study/{trial}"' in html
    # Registry text is escaped in HTML and left as written in plain text.
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Remyelination &amp; repair trial" in html
    assert "Sponsor decision &lt;b&gt;bold&lt;/b&gt;" in html
    assert SCRIPT_TITLE in text
    assert f"Why stopped: {WHY_STOPPED}" in text
    assert "Status: Recruiting → Terminated" in text
    assert "Status: Not yet recruiting → Recruiting" in text
    assert "Enrollment:" in text and "→ 4321 (ACTUAL)" in text
    assert "6 years 7 months later (2024-11 (ESTIMATED) → 2031-06 (ESTIMATED))" in text
    # Footer: the filter and how to unsubscribe.
    assert "Filter: relevance any" in text and "Filter: relevance any" in html
    assert f"tracker subscribe remove {sub.id}" in text and f"tracker subscribe remove {sub.id}" in html
    assert "replies to this message are not read" in text

    # The ledger: every event of the period, one delivery, and the next period starts at DIGEST1.
    assert count_rows(engine, DigestSentEvent) == WEEK1_EVENTS
    assert count_rows(engine, DigestDelivery, DigestDelivery.status == "sent") == 1
    assert last_until(engine, sub.id) == DIGEST1

    # Running the same digest again sends nothing, by default period or by explicit dates.
    again = invoke(db_url, "digest", "--send", "--until", DIGEST1.isoformat(), env=env)
    explicit = invoke(
        db_url, "digest", "--send", "--since", SUBSCRIBED.isoformat(), "--until", DIGEST1.isoformat(), env=env
    )
    assert again.exit_code == 0 and explicit.exit_code == 0, again.output + explicit.output
    assert "-> empty" in again.output and "-> empty" in explicit.output
    assert len(sink.messages) == 1
    assert count_rows(engine, DigestSentEvent) == WEEK1_EVENTS

    # The next week holds only what happened since.
    posted = load_week2(engine, world)
    week2 = invoke(db_url, "digest", "--send", "--until", DIGEST2.isoformat(), env=env)
    assert week2.exit_code == 0, week2.output
    assert len(sink.messages) == 2
    text2, _ = parts(sink.messages[1])
    assert "1 trial with 1 change" in text2
    assert "Results posted: 1" in text2 and "New trials" not in text2
    assert f"https://clinicaltrials.gov/study/{posted}" in text2
    assert "Results first posted 2025-09-05" in text2
    assert last_until(engine, sub.id) == DIGEST2


def test_first_load_is_a_baseline_not_news(engine: Engine, db_url: str, sink: MailSink) -> None:
    sub = add_subscription(engine, "early@example.org", EVERYTHING, now=T0 - timedelta(days=1)).subscription
    load_baseline(engine, scenario())

    quiet = invoke(db_url, "digest", "--send", env=smtp_env(sink.port))  # type: ignore[attr-defined]
    assert quiet.exit_code == 0, quiet.output
    assert "-> empty" in quiet.output and sink.messages == []
    assert count_rows(engine, DigestDelivery, DigestDelivery.status == "empty") == 1
    assert last_until(engine, sub.id) is not None

    # With digest_send_empty the subscriber hears that nothing happened, still without a flood.
    add_subscription(engine, "always@example.org", EVERYTHING, now=T0 - timedelta(days=1))
    env = smtp_env(sink.port, TRACKER_DIGEST_SEND_EMPTY="true")  # type: ignore[attr-defined]
    loud = invoke(db_url, "digest", "--send", "--subscription", "2", env=env)
    assert loud.exit_code == 0, loud.output
    [message] = sink.messages
    text, html = parts(message)
    assert "0 trials with 0 changes: nothing matched your filter in this period." in text
    assert "nothing matched your filter" in html


def test_dry_run_writes_eml_files_and_records_nothing(
    engine: Engine, db_url: str, sink: MailSink, tmp_path: Path
) -> None:
    world = scenario()
    load_baseline(engine, world)
    add_subscription(engine, "reader@example.org", EVERYTHING, now=SUBSCRIBED)
    add_subscription(
        engine, "stopped@example.org", EVERYTHING.with_changes(statuses=("TERMINATED",)), now=SUBSCRIBED
    )
    load_week1(engine, world)
    out = tmp_path / "outbox"

    result = invoke(db_url, "digest", "--dry-run", "--out", str(out), "--until", DIGEST1.isoformat())

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["subscription-1.eml", "subscription-2.eml"]
    from email import message_from_bytes, policy

    narrow = message_from_bytes((out / "subscription-2.eml").read_bytes(), policy=policy.default)
    text, _ = parts(narrow)  # type: ignore[arg-type]
    assert "Terminated, suspended or withdrawn: 1" in text and "New trials" not in text
    assert "Filter: relevance any; status TERMINATED" in text
    assert count_rows(engine, DigestDelivery) == 0 and count_rows(engine, DigestSentEvent) == 0
    assert last_until(engine, 1) is None

    # Printing a preview (no flag) records nothing either; then the real send still covers everything.
    preview = invoke(db_url, "digest", "--until", DIGEST1.isoformat())
    assert "=== subscription-2: To stopped@example.org" in preview.output
    sent = invoke(db_url, "digest", "--send", "--until", DIGEST1.isoformat(), env=smtp_env(sink.port))  # type: ignore[attr-defined]
    assert sent.exit_code == 0, sent.output
    assert len(sink.messages) == 2


def test_one_failed_recipient_does_not_stop_the_others(engine: Engine, db_url: str, sink: MailSink) -> None:
    world = scenario()
    load_baseline(engine, world)
    bounce = add_subscription(engine, "bounce@example.org", EVERYTHING, now=SUBSCRIBED).subscription
    good = add_subscription(engine, "good@example.org", EVERYTHING, now=SUBSCRIBED).subscription
    load_week1(engine, world)
    sink.refuse.add("bounce@example.org")
    env = smtp_env(sink.port)  # type: ignore[attr-defined]

    result = invoke(db_url, "digest", "--send", env=env)

    assert result.exit_code == 1
    assert "Error: 1 of 2 digests could not be sent" in result.stderr
    assert "bounce@example.org" in result.stderr and "recipient refused: 550" in result.stderr
    # The failure says what did not reach them, not "0 trials, 0 changes".
    assert f"{WEEK1_TRIALS} trials, {WEEK1_EVENTS} changes -> failed" in result.stderr
    assert [m["To"] for m in sink.messages] == ["good@example.org"]
    assert count_rows(engine, DigestSentEvent, DigestSentEvent.subscription_id == bounce.id) == 0
    assert count_rows(engine, DigestDelivery, DigestDelivery.status == "failed") == 1
    assert last_until(engine, bounce.id) is None and last_until(engine, good.id) is not None

    # Once the mailbox accepts mail, the next round delivers the missed digest, and only that one.
    sink.refuse.clear()
    retry = invoke(db_url, "digest", "--send", env=env)
    assert retry.exit_code == 0, retry.output
    assert [m["To"] for m in sink.messages] == ["good@example.org", "bounce@example.org"]
    assert count_rows(engine, DigestSentEvent, DigestSentEvent.subscription_id == bounce.id) == WEEK1_EVENTS


def test_smtp_login_and_the_password_stays_secret(
    sqlite_url: str, reader_week1: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    mail = MailSink()
    controller = start_smtp(mail, auth=Authenticator("digest", "right-pass-9f3a"))
    try:
        env = smtp_env(controller.port, TRACKER_SMTP_USER="digest", TRACKER_SMTP_PASSWORD="wrong-pass-77c1")
        with caplog.at_level(logging.DEBUG):
            wrong = invoke(sqlite_url, "-v", "digest", "--send", env=env)
        assert wrong.exit_code == 1
        assert "authentication failed for user digest (535)" in wrong.stderr
        assert "wrong-pass-77c1" not in wrong.output + wrong.stderr + caplog.text
        assert mail.messages == []

        env["TRACKER_SMTP_PASSWORD"] = "right-pass-9f3a"
        right = invoke(sqlite_url, "digest", "--send", env=env)
        assert right.exit_code == 0, right.output
        assert len(mail.messages) == 1
        assert "right-pass-9f3a" not in right.output + caplog.text
    finally:
        controller.stop()


def test_unreachable_server_fails_every_digest_clearly(sqlite_url: str, reader_week1: Engine) -> None:
    port = free_port()  # nothing listens here

    result = invoke(sqlite_url, "digest", "--send", env=smtp_env(port))

    assert result.exit_code == 1
    assert f"cannot send to reader@example.org via 127.0.0.1:{port}: ConnectionRefusedError" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_bad_options_give_one_line(sqlite_url: str) -> None:
    both = invoke(sqlite_url, "digest", "--send", "--dry-run")
    assert both.exit_code == 2
    assert both.stderr.strip() == "Error: --send cannot be combined with --dry-run or --out"
    bad_date = invoke(sqlite_url, "digest", "--since", "last week")
    assert bad_date.exit_code == 2
    assert "invalid date for --since: 'last week'" in bad_date.stderr
    empty = invoke(sqlite_url, "digest", "--since", "2025-09-10", "--until", "2025-09-01")
    assert empty.exit_code == 2 and "empty digest period" in empty.stderr
    unknown = invoke(sqlite_url, "digest", "--subscription", "77")
    assert unknown.exit_code == 2
    assert unknown.stderr.strip() == "Error: no subscription with ID 77 (see `tracker subscribe list`)"


# --- pure building ---------------------------------------------------------------------------------


def event(
    event_id: int,
    registration_id: str,
    kind: str,
    field: str | None,
    old: str | None,
    new: str | None,
    **extra,
):  # type: ignore[no-untyped-def]
    return {
        "id": event_id,
        "registration_id": registration_id,
        "kind": kind,
        "field": field,
        "old_value": old,
        "new_value": new,
        "detected_at": datetime(2025, 9, 2),
        "baseline": False,
        **extra,
    }


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "2025-06 (ESTIMATED)",
            "2025-09 (ESTIMATED)",
            "3 months later (2025-06 (ESTIMATED) → 2025-09 (ESTIMATED))",
        ),
        (
            "2025-06-15 (ESTIMATED)",
            "2025-06-03 (ACTUAL)",
            "12 days earlier (2025-06-15 (ESTIMATED) → 2025-06-03 (ACTUAL))",
        ),
        ("2025-01-01", "2025-07-01", "6 months later (2025-01-01 → 2025-07-01)"),
        ("2025-01", "2026-02", "1 year 1 month later (2025-01 → 2026-02)"),
        ("2025", "2027", "2 years later (2025 → 2027)"),
        ("2025-06", "2025-06-30", "2025-06 → 2025-06-30 (same month)"),
        (None, "2026-01 (ESTIMATED)", "set to 2026-01 (ESTIMATED)"),
        ("2026-01", None, "removed (was 2026-01)"),
        ("soon", "later", "soon → later"),
    ],
)
def test_date_moves_are_described(old: str | None, new: str | None, expected: str) -> None:
    assert describe_date_move(old, new) == expected


@pytest.mark.parametrize(
    ("kind", "field", "old", "new", "section"),
    [
        ("new", None, None, "RECRUITING", "new"),
        ("status", "overall_status", "NOT_YET_RECRUITING", "RECRUITING", "opened"),
        ("status", "overall_status", "SUSPENDED", "ENROLLING_BY_INVITATION", "opened"),
        ("status", "overall_status", "RECRUITING", "ACTIVE_NOT_RECRUITING", "closed"),
        ("status", "overall_status", "ACTIVE_NOT_RECRUITING", "COMPLETED", "closed"),
        ("status", "overall_status", "RECRUITING", "WITHDRAWN", "stopped"),
        ("status", "overall_status", "RECRUITING", "UNKNOWN", "other"),
        ("status", "why_stopped", None, "funding", "other"),
        ("results_posted", "results_first_posted", None, "2025-09-01", "results"),
        ("primary_completion_date", "primary_completion_date", "2025", "2026", "primary_completion"),
        ("completion_date", "completion_date", "2025", "2026", "other"),
        ("phase", "phases", "PHASE2", "PHASE3", "other"),
        ("removed", None, None, None, "other"),
    ],
)
def test_events_fall_into_sections(
    kind: str, field: str | None, old: str | None, new: str | None, section: str
) -> None:
    assert section_of(event(1, "NCT00000001", kind, field, old, new)) == section


def test_build_leaves_out_baseline_sent_and_unfiltered_events_and_caps_sections() -> None:
    trials = {
        f"NCT0000000{i}": {"registration_id": f"NCT0000000{i}", "brief_title": f"Trial {i}", "acronym": "ACR"}
        for i in range(6)
    }
    events = [event(i + 1, f"NCT0000000{i}", "new", None, None, "RECRUITING") for i in range(6)]
    events += [
        event(10, "NCT00000001", "status", "overall_status", "RECRUITING", "TERMINATED"),
        event(11, "NCT00000001", "status", "why_stopped", None, "funding"),
        event(12, "NCT00000002", "new", None, None, "RECRUITING", baseline=True),
        event(13, "NCT09999999", "new", None, None, "RECRUITING"),  # not in the subscriber's trials
    ]

    content = build_digest(
        events=events,
        trials=trials,
        recipient="a@example.org",
        period_start=datetime(2025, 9, 1),
        period_end=datetime(2025, 9, 8),
        filter_description="all MS trials",
        max_per_section=4,
        already_sent={6},  # NCT00000005's "new" went out last week
    )

    new, stopped = content.sections
    assert (new.key, new.total, new.more) == ("new", 5, 1)
    assert [item.registration_id for item in new.items] == [
        "NCT00000004",
        "NCT00000003",
        "NCT00000002",
        "NCT00000001",
    ]
    assert new.items[0].title == "Trial 4 (ACR)"
    assert (stopped.key, stopped.total) == ("stopped", 1)
    assert stopped.items[0].changes == ("Status: Recruiting → Terminated",)
    assert content.event_ids == (1, 2, 3, 4, 5, 10, 11)
    assert content.trial_count == 5
    assert content.counts == {"new": 5, "stopped": 1}


@pytest.mark.parametrize(
    ("trial_filter", "sections"),
    [
        # Recruiting trials that completed or were terminated no longer match, but that is the news.
        (
            TrialFilter(relevance=(), statuses=("RECRUITING",)),
            {"new", "opened", "closed", "stopped"},
        ),
        # A trial without results that posted them has left the filter by doing so.
        (
            TrialFilter(relevance=(), has_results=False),
            {"new", "opened", "closed", "stopped", "results", "primary_completion", "other"},
        ),
        (TrialFilter(relevance=(), statuses=("NOT_YET_RECRUITING",)), {"opened"}),
    ],
)
def test_a_trial_the_period_moved_out_of_the_filter_is_still_reported(
    engine: Engine, db_url: str, trial_filter: TrialFilter, sections: set[str]
) -> None:
    world = scenario()
    load_baseline(engine, world)
    sub = add_subscription(engine, "reader@example.org", trial_filter, now=SUBSCRIBED).subscription
    load_week1(engine, world)
    settings = load_settings(database_url=db_url)

    content = build_for_subscription(
        engine,
        settings,
        list_subscriptions(engine, ids=[sub.id])[0],
        query.load_trial_frame(engine),
        since=None,
        until=DIGEST1,
    )

    reported = {section.key: {item.registration_id for item in section.items} for section in content.sections}
    # The new trials are recruiting and have no results yet, so they match each filter but the last.
    expected = {key: set(world.changed[key]) for key in sections}
    assert reported == expected


def test_a_trial_that_never_matched_the_filter_is_not_reported(engine: Engine) -> None:
    world = scenario()
    load_baseline(engine, world)
    sub = add_subscription(
        engine, "reader@example.org", TrialFilter(relevance=(), statuses=("WITHDRAWN",)), now=SUBSCRIBED
    ).subscription
    load_week1(engine, world)
    content = build_for_subscription(
        engine,
        load_settings(),
        list_subscriptions(engine, ids=[sub.id])[0],
        query.load_trial_frame(engine),
        since=None,
        until=DIGEST1,
    )
    assert content.is_empty


def test_a_name_with_a_line_break_cannot_break_the_subject_header(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    world = scenario()
    load_baseline(engine, world)
    sub = add_subscription(
        engine, "reader@example.org", EVERYTHING, name="Weekly\r\nBcc: someone@example.net", now=SUBSCRIBED
    ).subscription
    load_week1(engine, world)
    assert sub.name == "Weekly Bcc: someone@example.net"

    result = invoke(db_url, "digest", "--dry-run", "--out", str(tmp_path), "--until", DIGEST1.isoformat())

    assert result.exit_code == 0, result.output
    message = (tmp_path / f"subscription-{sub.id}.eml").read_bytes()
    assert b"\nBcc:" not in message
    assert b"Subject: MS trials digest (Weekly Bcc: someone@example.net)" in message
