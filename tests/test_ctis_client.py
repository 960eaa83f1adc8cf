"""The CTIS client against the fake CTIS over real HTTP: search paging, the incremental stop rule, retries,
errors and shape checks; the whole search → retrieve → merge → parse path; and the fake itself."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_ctis import FakeCtis, Fault, make_trial, summary_of

from tracker.config import DEFAULT_CTIS_BASE_URL, load_settings
from tracker.ctis import client as ctis_client
from tracker.ctis.client import CtisClient, SearchPage, ShapeError
from tracker.ctis.parse import merge_summary, parse_ctis_record
from tracker.errors import ApiError, ApiRequestError, ConfigError
from tracker.transport import NotFoundError, UnreachableError

CTIS = Path(__file__).parent / "fixtures" / "ctis"
MS = "Multiple Sclerosis"
NEWEST = date(2026, 7, 1)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def fake() -> Iterator[FakeCtis]:
    with FakeCtis() as server:
        yield server


def client_for(fake: FakeCtis, http: httpx.Client, **kwargs: object) -> CtisClient:
    options: dict = {"requests_per_second": 0, "max_retries": 3, "backoff_base": 0.01, **kwargs}
    return CtisClient(http, base_url=fake.url, **options)


def ct(number: int) -> str:
    return f"2025-{500000 + number:06d}-{number % 100:02d}-00"


def trials_by_age(count: int, **kwargs: Any) -> list[dict[str, Any]]:
    """Trial i was last updated i days before NEWEST (so the newest first is trial 0, 1, 2, …)."""
    return [make_trial(ct(i), last_updated=NEWEST - timedelta(days=i), **kwargs) for i in range(count)]


def numbers(pages: list[SearchPage]) -> list[str]:
    return [record["ctNumber"] for page in pages for record in page.records]


def fixture_trials() -> list[dict[str, Any]]:
    merged = [json.loads(path.read_text()) for path in sorted(CTIS.glob("retrieve_*.json"))]
    summary = json.loads((CTIS / "search_page_ms_1record.json").read_text())["data"][0]
    return [*merged, summary]


# --- search -----------------------------------------------------------------------------------------------


def test_search_posts_the_observed_body_and_reads_the_envelope(fake: FakeCtis, http: httpx.Client) -> None:
    fake.set_trials(trials_by_age(3))
    page = client_for(fake, http).search_page(MS, 1)

    assert numbers([page]) == [ct(0), ct(1), ct(2)]
    assert (page.page, page.total_records, page.total_pages, page.next_page) == (1, 3, 1, False)
    [request] = fake.requests_to("/search")
    assert request.method == "POST"
    assert request.body == {
        "searchCriteria": {"medicalCondition": MS},
        "pagination": {"page": 1, "size": 100},
        "sort": {"property": "lastUpdated", "direction": "DESC"},
    }


def test_pages_are_one_based_and_a_full_walk_reads_every_trial_once(
    fake: FakeCtis, http: httpx.Client
) -> None:
    fake.set_trials(trials_by_age(250))
    pages = list(client_for(fake, http).iter_updated(MS, since=None))

    assert [len(page.records) for page in pages] == [100, 100, 50]
    assert [page.page for page in pages] == [1, 2, 3]
    assert [page.next_page for page in pages] == [True, True, False]
    assert {page.total_records for page in pages} == {250}
    assert numbers(pages) == [ct(i) for i in range(250)]  # newest first, each once
    assert [r.body["pagination"]["page"] for r in fake.requests_to("/search")] == [1, 2, 3]


def test_a_search_matching_nothing_is_one_empty_page(fake: FakeCtis, http: httpx.Client) -> None:
    fake.set_trials(trials_by_age(5, condition="Influenza"))
    pages = list(client_for(fake, http).iter_updated(MS, since=None))
    assert [(page.records, page.total_records, page.next_page) for page in pages] == [([], 0, False)]


def test_search_page_passes_the_sort_through(fake: FakeCtis, http: httpx.Client) -> None:
    fake.set_trials(trials_by_age(4))
    page = client_for(fake, http).search_page(
        MS, 2, size=2, sort_property="lastPublicationUpdate", direction="ASC"
    )
    assert numbers([page]) == [ct(1), ct(0)]  # oldest first, second page of two
    assert fake.requests_to("/search")[0].body["sort"] == {
        "property": "lastPublicationUpdate",
        "direction": "ASC",
    }


# --- the incremental walk ----------------------------------------------------------------------------------


def test_incremental_walk_stops_after_the_first_page_that_is_all_older(
    fake: FakeCtis, http: httpx.Client
) -> None:
    fake.set_trials(trials_by_age(350))
    since = NEWEST - timedelta(days=60)  # with the 2-day overlap, trials 0…62 are in the window
    pages = list(client_for(fake, http).iter_updated(MS, since=since))

    # Page 1 holds the window and older trials: not all older, so page 2 is read; it is, so the walk ends
    # there, without reading pages 3 and 4.
    assert [page.page for page in pages] == [1, 2]
    found = numbers(pages)
    assert set(ct(i) for i in range(63)) <= set(found)
    assert len(fake.requests_to("/search")) == 2


def test_incremental_walk_with_nothing_new_reads_one_page(fake: FakeCtis, http: httpx.Client) -> None:
    fake.set_trials(trials_by_age(350))
    pages = list(client_for(fake, http).iter_updated(MS, since=NEWEST + timedelta(days=30)))
    assert [page.page for page in pages] == [1]


def test_overlap_days_widen_the_window(fake: FakeCtis, http: httpx.Client) -> None:
    fake.set_trials(trials_by_age(350))
    since = NEWEST - timedelta(days=99)
    walk = client_for(fake, http).iter_updated(MS, since=since, overlap_days=0)
    assert [page.page for page in walk] == [1, 2]  # trial 99, the last on page 1, is the oldest in the window
    fake.requests.clear()
    walk = client_for(fake, http).iter_updated(MS, since=since, overlap_days=2)
    assert [page.page for page in walk] == [1, 2, 3]  # trials 100 and 101 on page 2 are in the window now


def test_a_record_out_of_order_on_a_later_page_is_still_found(fake: FakeCtis, http: httpx.Client) -> None:
    """The sort is not strictly monotonic: a walk that stopped at the first old record would miss one."""
    trials = trials_by_age(350)
    late = make_trial("2026-512345-67-00", last_updated=NEWEST - timedelta(days=3))
    fake.set_trials([*trials, late])
    fake.displace("2026-512345-67-00", 150)  # among old trials, in the middle of page 2
    since = NEWEST - timedelta(days=40)
    cutoff = since - timedelta(days=2)
    pages = list(client_for(fake, http).iter_updated(MS, since=since))

    assert "2026-512345-67-00" in numbers(pages)
    assert [page.page for page in pages] == [1, 2, 3]  # page 2 is not all older; page 3 is

    naive: list[str] = []  # stop at the first old record, as a monotonic sort would allow
    for record in (record for page in pages for record in page.records):
        if date(*map(int, reversed(record["lastUpdated"].split("/")))) < cutoff:
            break
        naive.append(record["ctNumber"])
    assert "2026-512345-67-00" not in naive


def test_a_recent_publication_update_keeps_the_walk_going(fake: FakeCtis, http: httpx.Client) -> None:
    trials = trials_by_age(350)
    # Old by lastUpdated (sorted onto page 2), but republished yesterday: still inside the window.
    trials[150] = make_trial(ct(150), last_updated=NEWEST - timedelta(days=150), last_publication=NEWEST)
    fake.set_trials(trials)
    pages = list(client_for(fake, http).iter_updated(MS, since=NEWEST - timedelta(days=40)))
    assert [page.page for page in pages] == [1, 2, 3]
    fake.set_trials(trials_by_age(350))
    fake.requests.clear()
    pages = list(client_for(fake, http).iter_updated(MS, since=NEWEST - timedelta(days=40)))
    assert [page.page for page in pages] == [1, 2]


def test_a_page_count_that_never_ends_does_not_walk_forever(fake: FakeCtis, http: httpx.Client) -> None:
    fake.set_trials(trials_by_age(120))
    pages = list(client_for(fake, http).iter_updated(MS, since=date(2000, 1, 1)))
    assert [page.page for page in pages] == [1, 2]  # everything is new, and page 2 is the last


def test_a_capped_result_is_reported(
    fake: FakeCtis, http: httpx.Client, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctis_client, "RESULT_CAP", 5)  # the real cap is 10,000 records per query
    fake.set_trials(trials_by_age(5))
    with caplog.at_level(logging.WARNING, logger="tracker.ctis.client"):
        list(client_for(fake, http).iter_updated(MS, since=None))
    assert "CTIS matched 5 trials; its search returns at most 5 per query" in caplog.text


# --- retries and errors ---------------------------------------------------------------------------------


TRANSIENT = [
    Fault("403"),
    Fault("429", retry_after=0),
    Fault("500"),
    Fault("503"),
    Fault("html"),
    Fault("invalid_json"),
    Fault("reset"),
]


@pytest.mark.parametrize("fault", TRANSIENT, ids=lambda fault: fault.kind)
def test_every_transient_fault_on_the_search_is_retried(
    fake: FakeCtis, http: httpx.Client, fault: Fault
) -> None:
    fake.set_trials(trials_by_age(250))
    walk = client_for(fake, http).iter_updated(MS, since=None)
    first = next(walk)
    fake.inject(fault)  # hits page 2
    pages = [first, *walk]

    assert numbers(pages) == [ct(i) for i in range(250)]
    assert fake.pending_faults() == 0
    assert len(fake.requests_to("/search")) == 4  # 3 pages + 1 retry, all POST
    assert {request.method for request in fake.requests_to("/search")} == {"POST"}


@pytest.mark.parametrize("fault", TRANSIENT, ids=lambda fault: fault.kind)
def test_every_transient_fault_on_a_retrieve_is_retried(
    fake: FakeCtis, http: httpx.Client, fault: Fault
) -> None:
    fake.set_trials(trials_by_age(1))
    fake.inject(Fault(fault.kind, path="/retrieve", retry_after=fault.retry_after))
    assert client_for(fake, http).retrieve(ct(0))["ctNumber"] == ct(0)
    assert len(fake.requests_to("/retrieve")) == 2


def test_retry_after_is_honoured_on_a_post(
    fake: FakeCtis, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    fake.set_trials(trials_by_age(1))
    fake.inject(Fault("429", retry_after=0.3))
    with caplog.at_level(logging.WARNING, logger="tracker.transport"):
        started = time.monotonic()
        client_for(fake, http, backoff_base=0.001).search_page(MS, 1)
    assert time.monotonic() - started >= 0.3
    assert "CTIS: retrying in 0.30s" in caplog.text and "429" in caplog.text


def test_a_firewall_that_keeps_refusing_ends_in_one_clear_error(fake: FakeCtis, http: httpx.Client) -> None:
    fake.inject(*["403"] * 10)
    with pytest.raises(
        ApiError, match=r"CTIS at http://127\.0\.0\.1:\d+/ctis-public-api failed after 3 attempts: HTTP 403"
    ):
        client_for(fake, http, max_retries=2).search_page(MS, 1)
    assert len(fake.requests_to("/search")) == 3


def test_a_400_is_never_retried_and_carries_the_server_text(fake: FakeCtis, http: httpx.Client) -> None:
    with pytest.raises(
        ApiRequestError, match=r"CTIS rejected the request \(HTTP 400\): Unknown sort property: bogus"
    ):
        client_for(fake, http).search_page(MS, 1, sort_property="bogus")  # type: ignore[arg-type]
    assert len(fake.requests_to("/search")) == 1


def test_retrieve_of_an_unknown_trial_is_not_found_at_once(fake: FakeCtis, http: httpx.Client) -> None:
    with pytest.raises(NotFoundError, match=r"CTIS has no /retrieve/2024-999999-99-00 \(HTTP 404\)"):
        client_for(fake, http).retrieve("2024-999999-99-00")
    assert len(fake.requests_to("/retrieve")) == 1


def test_retrieve_refuses_what_is_not_a_ct_number_before_asking(fake: FakeCtis, http: httpx.Client) -> None:
    with pytest.raises(ValueError, match="not an EU CT number: '2019-001588-63'"):
        client_for(fake, http).retrieve("2019-001588-63")
    assert fake.requests == []


def test_a_refused_first_connection_stops_at_once(http: httpx.Client) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once we leave: nothing listens there
    client = CtisClient(
        http, base_url=f"http://127.0.0.1:{port}/ctis-public-api", max_retries=5, backoff_base=30
    )
    with pytest.raises(
        UnreachableError,
        match=r"cannot reach CTIS at .*\(connection refused\); check the network or TRACKER_CTIS_BASE_URL",
    ):
        client.search_page(MS, 1)
    assert client.requests_made == 1  # no retry (the 30 s backoff would otherwise time the test out)


def test_the_rate_cap_spaces_posts_too(fake: FakeCtis, http: httpx.Client) -> None:
    client = client_for(fake, http, requests_per_second=20)
    started = time.monotonic()
    for _ in range(5):
        client.search_page(MS, 1)
    assert time.monotonic() - started >= 4 * 0.05 * 0.9


@pytest.mark.parametrize(
    "url", ["htp://x", "not a url", "", "ftp://euclinicaltrials.eu/ctis-public-api", "http://"]
)
def test_bad_base_urls_are_config_errors(url: str, http: httpx.Client) -> None:
    with pytest.raises(ConfigError, match=f"invalid CTIS base URL .*e.g. {DEFAULT_CTIS_BASE_URL}"):
        CtisClient(http, base_url=url)


def test_the_base_url_setting(monkeypatch: pytest.MonkeyPatch, http: httpx.Client) -> None:
    assert load_settings().ctis_base_url == "https://euclinicaltrials.eu/ctis-public-api"
    monkeypatch.setenv("TRACKER_CTIS_BASE_URL", "http://127.0.0.1:9/ctis-public-api/")
    settings = load_settings()
    assert settings.ctis_base_url == "http://127.0.0.1:9/ctis-public-api/"
    assert CtisClient(http, base_url=settings.ctis_base_url).base_url == "http://127.0.0.1:9/ctis-public-api"


# --- shape checks ---------------------------------------------------------------------------------------


def test_a_search_page_without_its_data_list_is_a_shape_error(fake: FakeCtis, http: httpx.Client) -> None:
    fake.set_trials(trials_by_age(2))
    fake.inject("no_data")
    with pytest.raises(
        ShapeError,
        match=r"^CTIS search page shape changed: no 'data' list \(keys: content, pagination, showWarning\)",
    ):
        client_for(fake, http).search_page(MS, 1)
    assert len(fake.requests_to("/search")) == 1  # drift does not heal with a retry


def test_a_retrieve_in_the_old_schema_is_a_shape_error_naming_it(fake: FakeCtis, http: httpx.Client) -> None:
    fake.set_trials(trials_by_age(1))
    fake.inject(Fault("old_schema", path="/retrieve"))
    with pytest.raises(ShapeError) as raised:
        client_for(fake, http).retrieve(ct(0))
    assert str(raised.value).startswith(
        "CTIS record shape changed: top-level 'authorizedPartI' (the pre-June-2024 schema) instead of "
        "authorizedApplication.authorizedPartI"
    )
    assert isinstance(raised.value, ApiError)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"ctStatus": "Ongoing, recruiting"},
            r"'ctStatus' of .* is 'Ongoing, recruiting', not a public status code",
        ),
        ({"lastUpdated": "2026-07-01"}, r"'lastUpdated' of .* is '2026-07-01', not DD/MM/YYYY"),
        (
            {"lastPublicationUpdate": "07/01/26"},
            r"'lastPublicationUpdate' of .* is '07/01/26', not DD/MM/YYYY",
        ),
    ],
)
def test_search_records_in_another_shape_are_shape_errors(
    fake: FakeCtis, http: httpx.Client, change: dict[str, str], message: str
) -> None:
    fake.set_trials([{**make_trial(ct(0), last_updated=NEWEST), **change}])
    with pytest.raises(ShapeError, match="^CTIS search page shape changed: " + message):
        client_for(fake, http).search_page(MS, 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "2025-500000-00-00 is not a JSON object but a list"),
        ({"ctNumber": "2025-500001-01-00"}, "asked for 2025-500000-00-00, got ctNumber '2025-500001-01-00'"),
        ({"ctNumber": "2025-500000-00-00", "ctPublicStatusCode": 4}, "no 'authorizedApplication' object"),
        (
            {"ctNumber": "2025-500000-00-00", "authorizedApplication": {"partOne": {}}},
            r"no authorizedApplication.authorizedPartI object .*\(keys of authorizedApplication: partOne\)",
        ),
    ],
)
def test_retrieved_records_in_another_shape_are_shape_errors(
    fake: FakeCtis, http: httpx.Client, body: object, message: str
) -> None:
    fake.set_trials(trials_by_age(1))
    fake.set_retrieve(ct(0), body)
    with pytest.raises(ShapeError, match="^CTIS record shape changed: " + message):
        client_for(fake, http).retrieve(ct(0))


def test_a_trial_never_authorised_may_lack_an_authorised_application(
    fake: FakeCtis, http: httpx.Client
) -> None:
    fake.set_trials(trials_by_age(1))
    body = {"ctNumber": ct(0), "ctStatus": "Under evaluation", "ctPublicStatusCode": 1}
    fake.set_retrieve(ct(0), body)
    assert client_for(fake, http).retrieve(ct(0)) == body


# --- search, retrieve, merge, parse ------------------------------------------------------------------------


def test_every_fixture_trial_parses_the_same_through_the_api(fake: FakeCtis, http: httpx.Client) -> None:
    """The summary from the search and the raw retrieve, merged, give what the stored merged record gives."""
    trials = fixture_trials()
    fake.set_trials(trials)
    client = client_for(fake, http)
    summaries = {r["ctNumber"]: r for page in client.iter_updated("", since=None) for r in page.records}
    assert set(summaries) == {trial["ctNumber"] for trial in trials}
    for stored in trials:
        full = client.retrieve(stored["ctNumber"])
        assert isinstance(full["ctStatus"], str)  # the application status of a raw retrieve
        fetched = parse_ctis_record(merge_summary(summaries[stored["ctNumber"]], full))
        expected = parse_ctis_record(stored)
        for name in (
            "registration_id", "brief_title", "official_title", "acronym", "overall_status",
            "registry_status",
            "phases", "enrollment_count", "start_date", "completion_date", "first_posted",
            "last_update_posted", "lead_sponsor", "collaborators", "conditions", "interventions",
            "locations", "eligibility_criteria", "minimum_age", "maximum_age", "sex", "std_ages",
            "outcomes", "secondary_ids", "decision_date", "countries",
        ):  # fmt: skip
            assert getattr(fetched, name) == getattr(expected, name), (stored["ctNumber"], name)


def test_the_condition_filters_the_search(fake: FakeCtis, http: httpx.Client) -> None:
    fake.set_trials(fixture_trials())
    found = numbers(list(client_for(fake, http).iter_updated("multiple sclerosis", since=None)))
    assert sorted(found) == [
        "2023-508412-47-00",
        "2024-513377-21-00",
        "2025-520148-33-00",
        "2025-523726-40-00",
    ]


# --- the fake itself (so tests built on it can be trusted) ------------------------------------------------


def test_fake_refuses_a_get_on_the_search_like_the_firewall(fake: FakeCtis, http: httpx.Client) -> None:
    response = http.get(fake.url + "/search")
    assert response.status_code == 403
    assert response.headers["content-type"] == "text/html"


def test_fake_envelope_has_the_observed_keys(fake: FakeCtis, http: httpx.Client) -> None:
    observed = json.loads((CTIS / "search_page_ms_1record.json").read_text())
    fake.set_trials(fixture_trials())
    body = http.post(fake.url + "/search", json={"pagination": {"page": 1, "size": 2}}).json()
    assert body.keys() == observed.keys()
    assert body["pagination"].keys() == observed["pagination"].keys()
    assert body["pagination"] == {
        "totalRecords": 6,
        "currentPage": 1,
        "totalPages": 3,
        "nextPage": True,
        "prevPage": False,
    }


def test_fake_summaries_have_the_observed_fields(fake: FakeCtis) -> None:
    observed = json.loads((CTIS / "search_page_ms_1record.json").read_text())["data"][0]
    derived = summary_of(json.loads((CTIS / "retrieve_2025-520148-33-00.json").read_text()))
    assert set(derived) <= set(observed) | {"endDateEU", "endDate"}
    assert set(observed) - set(derived) == set()
    assert derived["ctStatus"] == 4 and derived["trialCountries"][0] == "Germany:4"


def test_fake_sorts_day_first_dates_as_dates(fake: FakeCtis, http: httpx.Client) -> None:
    fake.set_trials(
        [
            make_trial(ct(1), last_updated=date(2026, 6, 10)),  # "10/06/2026": sorts after 09/07 as text
            make_trial(ct(2), last_updated=date(2026, 7, 9)),  # "09/07/2026"
            make_trial(ct(3), last_updated=date(2025, 12, 31)),
        ]
    )
    body = {"pagination": {"page": 1, "size": 10}, "sort": {"property": "lastUpdated", "direction": "DESC"}}
    found = [r["ctNumber"] for r in http.post(fake.url + "/search", json=body).json()["data"]]
    assert found == [ct(2), ct(1), ct(3)]


def test_fake_sorts_by_the_overall_decision_date(fake: FakeCtis, http: httpx.Client) -> None:
    early, late = make_trial(ct(1), last_updated=NEWEST), make_trial(ct(2), last_updated=NEWEST)
    early["decisionDateOverall"], late["decisionDateOverall"] = "28/11/2023", "03/09/2024"
    fake.set_trials([early, late])
    body = {"pagination": {"page": 1, "size": 10}, "sort": {"property": "decisionDate", "direction": "DESC"}}
    assert [r["ctNumber"] for r in http.post(fake.url + "/search", json=body).json()["data"]] == [
        ct(2),
        ct(1),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"pagination": {"page": 0, "size": 10}}, "pagination.page must be a positive integer"),
        ({"pagination": {"page": 1, "size": 0}}, "pagination.size must be a positive integer"),
        ({"sort": {"property": "title"}}, "Unknown sort property: title"),
        ({"sort": {"property": "lastUpdated", "direction": "UP"}}, "Unknown sort direction"),
        ({"searchCriteria": {"condition": "x"}}, "Unknown search criterion: condition"),
        ([1, 2], "Request body must be a JSON object"),
    ],
)
def test_fake_validates_the_search_body(
    fake: FakeCtis, http: httpx.Client, body: object, message: str
) -> None:
    response = http.post(fake.url + "/search", json=body)
    assert response.status_code == 400
    assert message in response.text


def test_fake_raw_retrieve_is_not_the_merged_form(fake: FakeCtis, http: httpx.Client) -> None:
    merged = json.loads((CTIS / "retrieve_2024-510663-34-00.json").read_text())
    fake.set_trials([merged])
    raw = http.get(fake.url + "/retrieve/2024-510663-34-00").json()
    assert raw["ctStatus"] == "Authorised" and raw["ctPublicStatusCode"] == 4
    assert raw["lastUpdated"] == "2025-09-15" and raw["decisionDate"] == "2024-04-24"
    assert "trialPhase" not in raw and "lastPublicationUpdate" not in raw
    assert raw["authorizedApplication"] == merged["authorizedApplication"]
    assert http.get(fake.url + "/retrieve/2024-510663-34").status_code == 400
