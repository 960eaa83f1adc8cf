"""`tracker sync --registry ctis`: the EU registry's MS trials, landed through the same store as
ClinicalTrials.gov's.

The walk (../shared/ctis/API_NOTES.md):

1. Search by medical condition (POST /search), newest `lastUpdated` first. The first run, or `full=True`,
   walks every page; later runs are incremental from the watermark (the newest `lastUpdated` date a clean
   run saw — the registry's dates, never our clock) minus a 2-day overlap, and stop only after a page whose
   records are all older on both `lastUpdated` and `lastPublicationUpdate`: the order is not strictly
   monotonic, so a walk that stopped at the first old record would miss the next one.
2. Each search record in the window is retrieved whole (GET /retrieve/{ctNumber}), the search summary's
   fields merged in, and each page lands in its own transaction through `store.ingest_page` with the CTIS
   parser: versions, change events, classification and linking to ClinicalTrials.gov twins exactly as for
   the first registry. A record that cannot be retrieved (404) or parsed is rejected alone.
3. A full pass that receives fewer trials than the search's `totalRecords` fails loudly (what landed is
   kept); a complete full pass flags CTIS registrations the search no longer returns.
4. The run holds the "ingest" lease, like every writer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import date
from functools import partial
from typing import Any

import httpx
from sqlalchemy import Engine

from tracker import store
from tracker.config import Settings
from tracker.ctis.client import UPDATE_DATES, CtisClient, older_than
from tracker.ctis.dates import day_first_date
from tracker.ctis.parse import merge_summary, parse_ctis_record
from tracker.db.session import utcnow
from tracker.errors import IncompleteSyncError
from tracker.sync import (
    OVERLAP,
    ProgressCallback,
    SyncResult,
    classify_hook,
    fail_run,
    leased_run,
    log_progress,
    make_http_client,
)
from tracker.transport import NotFoundError

logger = logging.getLogger(__name__)
REGISTRY = "ctis"


def run_ctis_sync(
    engine: Engine,
    settings: Settings,
    *,
    full: bool = False,
    http: httpx.Client | None = None,
    backoff_base: float = 1.0,
    progress: ProgressCallback | None = log_progress,
    classify: bool = True,
    classify_progress: Callable[[int, int], None] | None = None,
    hold_lease: bool = True,
) -> SyncResult:
    """Sync the store with CTIS; see the module docstring. Raises `ApiError` (unreachable, failing or
    changed shape) or `IncompleteSyncError`; the run is then recorded as failed with the error text."""
    walk = partial(
        _run,
        engine,
        settings,
        full=full,
        http=http,
        backoff_base=backoff_base,
        progress=progress,
        classify=classify,
    )
    return leased_run(
        engine, walk, hold_lease=hold_lease, classify=classify, classify_progress=classify_progress
    )


def _run(
    engine: Engine,
    settings: Settings,
    *,
    full: bool,
    http: httpx.Client | None,
    backoff_base: float,
    progress: ProgressCallback | None,
    classify: bool,
) -> SyncResult:
    started_at = utcnow()
    mark = None if full else store.watermark(engine, REGISTRY)
    since = mark - OVERLAP if mark is not None else None  # the window; the client walks with the same lag
    mode = "incremental" if since is not None else "full"
    condition = settings.query.strip()
    own_http = http is None
    http_client = http if http is not None else make_http_client(settings)
    run_id = store.begin_run(
        engine,
        mode=mode,
        query=condition,
        source=settings.ctis_base_url,
        data_timestamp=None,
        started_at=started_at,
        registry=REGISTRY,
    )
    result = SyncResult(run_id=run_id, mode=mode, since=since)
    on_landed = classify_hook() if classify else None
    client: CtisClient | None = None
    try:
        client = CtisClient(
            http_client,
            base_url=settings.ctis_base_url,
            requests_per_second=settings.requests_per_second,
            max_retries=settings.max_retries,
            backoff_base=backoff_base,
        )
        logger.info(
            "%s CTIS sync of %r from %s%s",
            mode,
            condition,
            client.base_url,
            f", updated since {since}" if since else "",
        )
        seen = _walk(engine, client, condition, mark, result, progress, on_landed)
        if mode == "full":
            _check_complete(result, seen)
            result.removed = store.flag_removed(engine, run_id, seen, registry=REGISTRY)
        result.outcome = "partial" if result.rejected else "success"
    except BaseException as exc:
        result.requests = client.requests_made if client is not None else 0
        fail_run(engine, result, exc)
        raise
    finally:
        if own_http:
            http_client.close()
    result.requests = client.requests_made
    # The watermark moves with the registry's own dates: the newest update this run saw, else the last one.
    if result.data_timestamp is None and mark is not None:
        result.data_timestamp = mark.isoformat()
    return result


def _walk(
    engine: Engine,
    client: CtisClient,
    condition: str,
    mark: date | None,
    result: SyncResult,
    progress: ProgressCallback | None,
    on_landed: store.LandedHook | None,
) -> set[str]:
    """Land every page of the walk from the watermark `mark` (all when None); returns the CT numbers seen."""
    seen: set[str] = set()
    updates: list[date] = []
    since = mark - OVERLAP if mark is not None else None
    for page in client.iter_updated(condition, mark, overlap_days=OVERLAP.days):
        if page.total_records is not None and result.total_count is None:
            result.total_count = page.total_records
        records: list[object] = []
        for summary in page.records:
            if since is not None and older_than(summary, since):
                continue  # on the page that ends the walk: older than the window, as the client judges it
            number = summary.get("ctNumber")
            if not isinstance(number, str):
                records.append(summary)  # the parser rejects it with its reason
                continue
            if number in seen:
                continue  # listed again as the search moved under the walk
            seen.add(number)
            updates.extend(_update_dates(summary))
            try:
                records.append(merge_summary(summary, client.retrieve(number)))
            except NotFoundError:
                result.rejected.append(
                    store.Rejection(number, "listed by the search but not retrievable (404)")
                )
        outcome = store.ingest_page(
            engine, result.run_id, records, parse=parse_ctis_record, on_landed=on_landed
        )
        result.add(outcome)
        if progress is not None:
            progress(result, len(page.records))
    if updates:
        result.data_timestamp = max(updates).isoformat()
    return seen


def _update_dates(summary: Mapping[str, Any]) -> list[date]:
    """The update dates a search record states (day-first in the registry)."""
    return [day for name in UPDATE_DATES if (day := day_first_date(summary.get(name))) is not None]


def _check_complete(result: SyncResult, seen: set[str]) -> None:
    if result.total_count is None:
        logger.warning("CTIS sent no totalRecords; completeness not checked")
        return
    if len(seen) < result.total_count:
        raise IncompleteSyncError(
            f"incomplete CTIS sync: received {len(seen)} of {result.total_count} trials; "
            "what landed is kept, run the sync again"
        )
