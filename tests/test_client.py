"""The API client against the fake registry over real HTTP: paging, retries, errors; and the fake itself."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest
from conftest import FIXTURES
from fake_ctgov import FakeCtgov, Fault, make_study

from tracker.ctgov.client import CtgovClient, PageTokenError, validate_base_url
from tracker.errors import ApiError, ApiRequestError, ConfigError
from tracker.transport import RateLimiter, UnreachableError


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def studies(count: int, start: int = 1) -> list[dict]:
    return [make_study(f"NCT{number:08d}") for number in range(start, start + count)]


def client_for(fake: FakeCtgov, http: httpx.Client, **kwargs: object) -> CtgovClient:
    options: dict = {"requests_per_second": 0, "max_retries": 3, "backoff_base": 0.01, **kwargs}
    return CtgovClient(http, base_url=fake.url, **options)


def ids_of(pages: list) -> list[str]:
    return [s["protocolSection"]["identificationModule"]["nctId"] for page in pages for s in page.studies]


def test_version_returns_the_registry_data_timestamp(fake_ctgov: FakeCtgov, http: httpx.Client) -> None:
    fake_ctgov.data_timestamp = "2026-03-25T09:00:05"
    assert client_for(fake_ctgov, http).version() == {
        "apiVersion": "2.0.5",
        "dataTimestamp": "2026-03-25T09:00:05",
    }


def test_pages_follow_tokens_and_total_count_comes_on_page_one_only(
    fake_ctgov: FakeCtgov, http: httpx.Client
) -> None:
    fake_ctgov.set_studies(studies(25))
    pages = list(client_for(fake_ctgov, http).iter_pages({"pageSize": 10, "countTotal": "true"}))

    assert [len(page.studies) for page in pages] == [10, 10, 5]
    assert [page.total_count for page in pages] == [25, None, None]
    assert pages[-1].next_token is None
    assert len(set(ids_of(pages))) == 25
    requests = fake_ctgov.requests_to("/studies")
    assert "pageToken" not in requests[0].params and requests[0].params["countTotal"] == "true"
    for request in requests[1:]:
        assert len(request.params["pageToken"]) >= 40
        assert "countTotal" not in request.params
        assert request.params["pageSize"] == "10"


def test_a_false_last_token_leads_to_one_empty_page_and_the_walk_ends(http: httpx.Client) -> None:
    with FakeCtgov(studies(20), false_last_token=True) as fake:
        pages = list(client_for(fake, http).iter_pages({"pageSize": 10}))
    assert [len(page.studies) for page in pages] == [10, 10, 0]
    assert len(ids_of(pages)) == 20


@pytest.mark.parametrize(
    "fault",
    [
        Fault("429", retry_after=0),
        Fault("403"),
        Fault("500"),
        Fault("503"),
        Fault("reset"),
        Fault("truncated"),
        Fault("close_after_headers"),
        Fault("invalid_json"),
        Fault("html"),
        Fault("html_as_json"),
    ],
    ids=lambda fault: fault.kind,
)
def test_every_transient_fault_is_retried_and_the_walk_completes(
    fake_ctgov: FakeCtgov, http: httpx.Client, fault: Fault
) -> None:
    fake_ctgov.set_studies(studies(25))
    client = client_for(fake_ctgov, http)
    walk = client.iter_pages({"pageSize": 10})
    first = next(walk)
    fake_ctgov.inject(fault)  # hits page 2
    pages = [first, *walk]

    assert len(set(ids_of(pages))) == 25
    assert fake_ctgov.pending_faults() == 0
    assert len(fake_ctgov.requests_to("/studies")) == 4  # 3 pages + 1 retry


def test_a_fault_on_version_is_retried_too(fake_ctgov: FakeCtgov, http: httpx.Client) -> None:
    fake_ctgov.inject(Fault("503", path="/version"), Fault("html", path="/version"))
    assert client_for(fake_ctgov, http).version()["apiVersion"] == "2.0.5"
    assert len(fake_ctgov.requests_to("/version")) == 3


def test_retry_after_is_honoured_instead_of_the_backoff(
    fake_ctgov: FakeCtgov, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    fake_ctgov.inject(Fault("429", retry_after=0.3, path="/version"))
    with caplog.at_level(logging.WARNING, logger="tracker.ctgov.client"):
        client_for(fake_ctgov, http, backoff_base=0.001).version()
    assert "retrying in 0.30s" in caplog.text
    assert "429" in caplog.text


def test_retries_run_out_with_one_clear_api_error(fake_ctgov: FakeCtgov, http: httpx.Client) -> None:
    fake_ctgov.inject(*["503"] * 10)
    with pytest.raises(ApiError, match=r"failed after 3 attempts: HTTP 503") as raised:
        list(client_for(fake_ctgov, http, max_retries=2).iter_pages({"pageSize": 10}))
    assert not isinstance(raised.value, ApiRequestError)
    assert len(fake_ctgov.requests_to("/studies")) == 3


def test_a_400_is_never_retried_and_carries_the_server_text(
    fake_ctgov: FakeCtgov, http: httpx.Client
) -> None:
    with pytest.raises(ApiRequestError, match="`filter.phase` is unknown parameter"):
        list(client_for(fake_ctgov, http).iter_pages({"filter.phase": "PHASE3"}))
    assert len(fake_ctgov.requests_to("/studies")) == 1


def test_a_refused_page_token_raises_page_token_error(fake_ctgov: FakeCtgov, http: httpx.Client) -> None:
    fake_ctgov.set_studies(studies(25))
    walk = client_for(fake_ctgov, http).iter_pages({"pageSize": 10})
    next(walk)
    fake_ctgov.expire_tokens()  # a data refresh
    with pytest.raises(PageTokenError, match="page token refused"):
        next(walk)
    assert len(fake_ctgov.requests_to("/studies")) == 2


@pytest.mark.parametrize("status", [400, 404, 410])
def test_scripted_token_expiry_statuses_are_all_token_errors(
    fake_ctgov: FakeCtgov, http: httpx.Client, status: int
) -> None:
    fake_ctgov.set_studies(studies(15))
    fake_ctgov.inject(Fault("expired_token", status=status))
    with pytest.raises(PageTokenError):
        list(client_for(fake_ctgov, http).iter_pages({"pageSize": 10}))


@pytest.mark.parametrize("url", ["htp://x", "not a url", "", "ftp://example.org/api/v2", "http://"])
def test_bad_base_urls_are_config_errors(url: str, http: httpx.Client) -> None:
    with pytest.raises(ConfigError, match="invalid ClinicalTrials.gov base URL"):
        CtgovClient(http, base_url=url)
    with pytest.raises(ConfigError):
        validate_base_url(url)


def test_a_refused_first_connection_stops_at_once(http: httpx.Client) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once we leave: nothing listens there
    client = CtgovClient(http, base_url=f"http://127.0.0.1:{port}/api/v2", max_retries=5, backoff_base=30)
    with pytest.raises(UnreachableError, match=r"\(connection refused\); check the network or --base-url"):
        client.version()
    assert client.requests_made == 1  # no retry (the 30 s backoff would otherwise time the test out)


def test_an_unresolvable_host_stops_at_once(http: httpx.Client) -> None:
    # .invalid never resolves (RFC 6761).
    client = CtgovClient(http, base_url="http://tracker-test.invalid/api/v2", max_retries=5, backoff_base=30)
    with pytest.raises(UnreachableError, match="does not resolve") as caught:
        client.version()
    assert "tracker import FILE" in str(caught.value)
    assert client.requests_made == 1


def test_a_connection_lost_after_the_server_answered_is_retried(
    fake_ctgov: FakeCtgov, http: httpx.Client
) -> None:
    client = client_for(fake_ctgov, http, max_retries=1)
    client.version()  # the server answered once: a later refusal may be a restart, worth a retry
    fake_ctgov.stop()
    client.http = httpx.Client()  # no kept-alive connection to the stopped server's handler thread
    with pytest.raises(ApiError, match="failed after 2 attempts: ConnectError"):
        client.version()
    client.http.close()
    assert client.requests_made == 3


def test_single_study_and_its_errors(fake_ctgov: FakeCtgov, http: httpx.Client) -> None:
    raw = orjson.loads((FIXTURES / "ctgov/studies/NCT00973089.json").read_bytes())
    fake_ctgov.set_studies([raw])
    client = client_for(fake_ctgov, http)
    assert client.study("NCT00973089") == raw
    with pytest.raises(ApiError, match="HTTP 404"):
        client.study("NCT00000001")
    with pytest.raises(ApiRequestError, match="Invalid NCT ID"):
        client.study("XYZ123")


def test_rate_limiter_spaces_request_starts() -> None:
    limiter = RateLimiter(4)
    assert limiter.interval == 0.25
    assert RateLimiter(0).interval == 0.0
    RateLimiter(0).wait()  # returns at once: nothing to assert about the clock


# --- the fake registry itself (so tests built on it can be trusted) ----------------------------------


def get(fake: FakeCtgov, http: httpx.Client, path: str, **params: object) -> httpx.Response:
    return http.get(fake.url + path, params=params)


def test_fake_page_size_default_cap_and_zero(http: httpx.Client) -> None:
    with FakeCtgov(studies(1005)) as fake:
        assert len(get(fake, http, "/studies").json()["studies"]) == 10
        assert len(get(fake, http, "/studies", pageSize=0).json()["studies"]) == 10
        assert len(get(fake, http, "/studies", pageSize=5000).json()["studies"]) == 1000


def test_fake_answers_compact_json_with_one_study_per_line(fake_ctgov: FakeCtgov, http: httpx.Client) -> None:
    fake_ctgov.set_studies(studies(3))
    response = get(fake_ctgov, http, "/studies", countTotal="true")
    assert response.headers["content-type"] == "application/json"
    lines = response.content.split(b"\n")
    assert lines[0] == b'{"totalCount":3,"studies":['
    assert all(line.startswith(b'{"protocolSection"') for line in lines[1:4])
    assert "nextPageToken" not in response.json()


def test_fake_validates_parameters_like_the_registry(fake_ctgov: FakeCtgov, http: httpx.Client) -> None:
    fake_ctgov.set_studies(studies(3))
    bad_status = get(fake_ctgov, http, "/studies", **{"filter.overallStatus": "RECRUITING,DONE"})
    assert bad_status.status_code == 400
    assert bad_status.headers["content-type"] == "text/plain"
    assert "Invalid value in parameter overallStatus" in bad_status.text
    assert (
        get(fake_ctgov, http, "/studies", **{"query.recrs": "x"}).text == "`query.recrs` is unknown parameter"
    )
    bad_field = get(fake_ctgov, http, "/studies", fields="StudyDesign")
    assert "invalid field name: 'StudyDesign'" in bad_field.text


def test_fake_enforces_the_same_params_rule(fake_ctgov: FakeCtgov, http: httpx.Client) -> None:
    fake_ctgov.set_studies(studies(15))
    token = get(fake_ctgov, http, "/studies", **{"query.cond": "sclerosis"}).json()["nextPageToken"]
    changed = get(fake_ctgov, http, "/studies", pageToken=token, **{"query.cond": "other"})
    assert changed.status_code == 400


def test_fake_filters_fields_ids_status_cond_and_update_range(
    fake_ctgov: FakeCtgov, http: httpx.Client
) -> None:
    fake_ctgov.set_studies(
        [
            make_study("NCT00000001", status="RECRUITING", last_update="2025-01-10"),
            make_study("NCT00000002", status="COMPLETED", last_update="2025-02-10"),
            make_study("NCT00000003", conditions=["Asthma"], status="WITHDRAWN", last_update="2025-03-10"),
        ]
    )

    def found(**params: object) -> list[str]:
        body = get(fake_ctgov, http, "/studies", **params).json()
        return [s["protocolSection"]["identificationModule"]["nctId"] for s in body["studies"]]

    assert found(**{"query.cond": "MULTIPLE sclerosis"}) == ["NCT00000001", "NCT00000002"]
    assert found(**{"filter.overallStatus": "COMPLETED|RECRUITING"}) == ["NCT00000001", "NCT00000002"]
    assert found(**{"filter.ids": "NCT00000003,NCT00000002"}) == ["NCT00000002", "NCT00000003"]
    advanced = "AREA[LastUpdatePostDate]RANGE[2025-02-10,MAX]"
    assert found(**{"filter.advanced": advanced}) == ["NCT00000002", "NCT00000003"]
    advanced = "AREA[LastUpdatePostDate]RANGE[MIN,2025-02-09]"
    assert found(**{"filter.advanced": advanced}) == ["NCT00000001"]
    projected = get(fake_ctgov, http, "/studies", fields="NCTId,OverallStatus", pageSize=1).json()
    assert projected["studies"] == [
        {
            "protocolSection": {
                "identificationModule": {"nctId": "NCT00000001"},
                "statusModule": {"overallStatus": "RECRUITING"},
            }
        }
    ]


def test_fake_redirects_an_alias_to_the_study(fake_ctgov: FakeCtgov) -> None:
    study = make_study("NCT00000042")
    study["protocolSection"]["identificationModule"]["nctIdAliases"] = ["NCT00000041"]
    fake_ctgov.set_studies([study])
    with httpx.Client(timeout=10, follow_redirects=True) as http:
        response = http.get(f"{fake_ctgov.url}/studies/NCT00000041")
        assert [r.status_code for r in response.history] == [301]
        assert response.json() == study
        found = get(fake_ctgov, http, "/studies", **{"filter.ids": "NCT00000041"}).json()["studies"]
        assert found == [study]
