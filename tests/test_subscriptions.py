"""Subscriptions: add, list, remove through the CLI; addresses validated; the ledger goes with them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, func, select

from tracker.cli import main
from tracker.db.models import DigestDelivery, Subscription
from tracker.db.session import transaction, utcnow
from tracker.filters import TrialFilter
from tracker.subscriptions import SubscriptionError, list_subscriptions, normalise_email


def invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--database-url", url, *args], catch_exceptions=False)


def test_add_list_remove(engine: Engine, db_url: str) -> None:
    added = invoke(
        db_url,
        "subscribe",
        "add",
        "Ana@Example.ORG",
        "--mechanism",
        "btk_inhibitor",
        "--phase",
        "PHASE3",
        "--name",
        "BTK phase 3",
    )
    assert added.exit_code == 0, added.output
    assert added.output.startswith("Subscribed: #1 Ana@example.org (mechanism ")

    second = invoke(db_url, "subscribe", "add", "ana@example.org", "--status", "active")
    again = invoke(db_url, "subscribe", "add", "ana@example.org", "--status", "active")
    other = invoke(db_url, "subscribe", "add", "ben@example.org")
    assert second.exit_code == again.exit_code == other.exit_code == 0
    assert again.output.startswith("Already subscribed: #2")

    [first, by_status, ben] = list_subscriptions(engine)
    assert first.trial_filter == TrialFilter(mechanisms=("btk_inhibitor",), phases=("PHASE3",))
    assert first.name == "BTK phase 3"
    assert by_status.trial_filter.statuses == ("active",)
    assert ben.trial_filter == TrialFilter()
    assert first.last_digest_until is None and first.digest_start == first.created_at

    listing = invoke(db_url, "subscribe", "list")
    assert listing.output.splitlines()[0].startswith("#1 Ana@example.org [BTK phase 3]: mechanism ")
    assert "#3 ben@example.org: all MS trials; next digest from" in listing.output
    as_json = json.loads(invoke(db_url, "subscribe", "list", "--json").output)
    assert [row["id"] for row in as_json] == [1, 2, 3]
    assert as_json[0]["filters"] == {"mechanisms": ["btk_inhibitor"], "phases": ["PHASE3"]}

    removed = invoke(db_url, "subscribe", "remove", "ANA@example.org")  # every subscription of the address
    assert removed.exit_code == 0
    assert [line.split()[1] for line in removed.output.splitlines()] == ["#1", "#2"]
    by_id = invoke(db_url, "subscribe", "remove", "3")
    assert by_id.output.startswith("Removed #3 ben@example.org")
    assert invoke(db_url, "subscribe", "list").output.strip() == "No subscriptions."


def test_a_primary_endpoint_family_is_stored_with_the_subscription(engine: Engine, db_url: str) -> None:
    added = invoke(
        db_url, "subscribe", "add", "ana@example.org", "--primary-endpoint", "imaging,Clinical disability"
    )
    assert added.exit_code == 0, added.output
    assert added.output.startswith(
        "Subscribed: #1 ana@example.org (primary endpoint Imaging, Clinical disability"
    )
    [stored] = list_subscriptions(engine)
    assert stored.trial_filter == TrialFilter(primary_endpoint_families=("imaging", "clinical_disability"))
    as_json = json.loads(invoke(db_url, "subscribe", "list", "--json").output)
    assert as_json[0]["filters"] == {"primary_endpoint_families": ["imaging", "clinical_disability"]}
    bad = invoke(db_url, "subscribe", "add", "ben@example.org", "--primary-endpoint", "lesions")
    assert bad.exit_code == 2
    assert bad.output.startswith("Error: unknown primary endpoint family value(s): lesions; valid: ")
    assert len(list_subscriptions(engine)) == 1


def test_the_same_filter_in_another_order_is_the_same_subscription(engine: Engine, db_url: str) -> None:
    first = invoke(
        db_url, "subscribe", "add", "ana@example.org", "--phase", "PHASE2,PHASE3", "--status", "active"
    )
    again = invoke(
        db_url, "subscribe", "add", "ana@example.org", "--status", "active", "--phase", "PHASE3,PHASE2"
    )
    assert first.output.startswith("Subscribed: #1")
    assert again.output.startswith("Already subscribed: #1")
    other = invoke(db_url, "subscribe", "add", "ana@example.org", "--phase", "PHASE3")
    assert other.output.startswith("Subscribed: #2")
    assert len(list_subscriptions(engine)) == 2


def test_removing_a_subscription_removes_its_ledger(engine: Engine, db_url: str) -> None:
    invoke(db_url, "subscribe", "add", "ana@example.org")
    now = utcnow()
    with transaction(engine) as session:
        session.add(
            DigestDelivery(subscription_id=1, period_start=now, period_end=now, sent_at=now, status="sent")
        )
    assert invoke(db_url, "subscribe", "remove", "1").exit_code == 0
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(DigestDelivery)) == 0
        assert session.scalar(select(func.count()).select_from(Subscription)) == 0


@pytest.mark.parametrize("address", ["not-an-address", "a@b", "two@@example.org", "space in@example.org"])
def test_invalid_addresses_are_refused(sqlite_url: str, address: str) -> None:
    result = invoke(sqlite_url, "subscribe", "add", address)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: invalid email address {address!r}: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_filter_and_unknown_subscription(sqlite_url: str) -> None:
    bad = invoke(sqlite_url, "subscribe", "add", "ana@example.org", "--mechanism", "magic")
    assert bad.exit_code == 2 and bad.stderr.startswith("Error: unknown mechanism key(s): magic")
    missing = invoke(sqlite_url, "subscribe", "remove", "42")
    assert missing.exit_code == 2
    assert missing.stderr.strip() == "Error: no subscription matches '42' (see `tracker subscribe list`)"


def test_normalise_email_needs_no_network() -> None:
    assert normalise_email("  someone@no-such-domain-a8f3.org ") == "someone@no-such-domain-a8f3.org"
    with pytest.raises(SubscriptionError):
        normalise_email("nobody")


def test_a_stored_filter_the_taxonomy_no_longer_knows(engine: Engine, db_url: str) -> None:
    invoke(db_url, "subscribe", "add", "ana@example.org", "--phase", "PHASE3")
    invoke(db_url, "subscribe", "add", "ben@example.org")
    with transaction(engine) as session:  # as if a mechanism key had been renamed since
        session.get(Subscription, 1).filters = {"phases": ["PHASE3"], "mechanisms": ["retired_key"]}

    listing = invoke(db_url, "subscribe", "list")
    assert listing.exit_code == 0
    assert "  outdated filter, no digest until renewed: ignored mechanisms=['retired_key']" in listing.output

    digest = invoke(db_url, "digest")
    assert digest.exit_code == 1
    assert "#1 ana@example.org" in digest.stderr and "-> failed: outdated filter" in digest.stderr
    assert "#2 ben@example.org" in digest.output and "-> empty" in digest.output
