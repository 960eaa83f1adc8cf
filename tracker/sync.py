"""`tracker sync`: fetch the registry's studies for the query and land them page by page.

The walk (API_NOTES §5, §13):

1. `GET /version`; its dataTimestamp is stored with the run. The registry's clock, never ours, sets the
   watermark (`store.watermark`: the data date of the last run that finished without error).
2. No watermark (first run, or the last clean run searched for another query) or `full=True`: a full pass
   over `query.cond`. Otherwise an incremental pass over
   `AREA[LastUpdatePostDate]RANGE[watermark - 2 days, MAX]`; the overlap re-reads a trailing window, and
   upserts are idempotent, so nothing is missed when the registry posts late.
3. Pages of up to 1000 studies; each page lands in its own transaction (`store.ingest_page`), so a run killed
   at any moment leaves a consistent store and the next run finishes the job. Studies are deduplicated by
   NCT ID within a pass. A refused page token (tokens die at data refreshes) restarts the walk once; the
   restarted pass lands every page it is served again (the copies may be fresher, and re-landing unchanged
   content writes nothing), and the completeness and removal checks use every study seen in either pass.
4. A pass that receives fewer distinct studies than the registry's totalCount fails loudly
   (`IncompleteSyncError`); whatever landed stays. A complete `full=True` pass flags studies the query no
   longer returns (kept, with a "removed" change event), unless the last clean run searched for another query.
5. Rejected records (logged by the store with NCT ID and reason) make the outcome "partial"; the CLI turns
   that into exit code 3. Only a "success" run moves the watermark.
6. New and changed studies are classified page by page, from the records the store has just parsed and
   in the page's transaction (`classify_hook`): an interrupted run leaves no landed study unclassified.
   At the end, before the run is finished, studies classified by an older classifier version are redone
   (`classify_pending`); a classification that fails (e.g. the disk is full) fails the run.
7. The whole sync holds the database's "ingest" lease (`tracker.locks`): a second sync, an import or a
   `classify --all` started meanwhile stops at once with "another sync is running (owner HOST:PID since …)".
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from itertools import chain
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import Engine

from tracker import store
from tracker.config import Settings
from tracker.ctgov.client import CtgovClient, Page, PageTokenError, validate_base_url
from tracker.db.session import utcnow
from tracker.errors import ApiError, ConfigError, IncompleteSyncError, TrackerError
from tracker.locks import INGEST, Lease

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tracker.classify.store import Classified
    from tracker.ctgov.parse import StudyRecord

logger = logging.getLogger(__name__)

OVERLAP = timedelta(days=2)  # re-read window behind the watermark
USER_AGENT = "ms-trial-tracker/0.1 (python-httpx)"


@dataclass
class SyncResult:
    """What one sync or import did; `outcome` is success, partial or failed."""

    run_id: int
    mode: str
    outcome: str = "running"
    data_timestamp: str | None = None
    since: date | None = None
    total_count: int | None = None
    pages: int = 0
    seen: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[store.Rejection] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restarts: int = 0
    requests: int = 0
    elapsed: float = 0.0
    classified: int | None = None  # studies classified; None when classification was skipped

    def add(self, outcome: store.PageResult) -> None:
        if outcome.classified:
            self.classified = (self.classified or 0) + outcome.classified
        self.pages += 1
        self.seen += outcome.seen
        self.inserted += outcome.inserted
        self.updated += outcome.updated
        self.unchanged += outcome.unchanged
        self.rejected.extend(outcome.rejected)

    @property
    def landed(self) -> bool:
        """Whether the run changed what the read side shows: studies in, changed or out, or classified."""
        return bool(self.inserted or self.updated or self.removed or self.classified)

    def summary(self) -> str:
        """One line for logs and the end of the command."""
        return (
            f"{self.mode} {self.outcome}: {self.inserted} inserted, {self.updated} updated, "
            f"{self.unchanged} unchanged, {len(self.rejected)} rejected, {len(self.removed)} removed; "
            f"{self.pages} page{'s' if self.pages != 1 else ''} in {self.elapsed:.1f}s"
        )


# Called after each landed page with (result so far, studies on this page); the CLI draws a progress bar.
ProgressCallback = Callable[[SyncResult, int], None]


def log_progress(result: SyncResult, page_studies: int) -> None:
    total = f" of {result.total_count}" if result.total_count is not None else ""
    logger.info("page %d: %d studies (%d%s so far)", result.pages, page_studies, result.seen, total)


def check_query(settings: Settings) -> None:
    """Refuse an empty query: it would fetch the whole registry (over half a million studies)."""
    if not settings.query.strip():
        raise ConfigError(
            "the query is empty; refusing to fetch the whole registry (set --query or TRACKER_QUERY)"
        )


def search_params(settings: Settings, since: date | None) -> dict[str, Any]:
    """The /studies parameters of one walk (identical on every page, API_NOTES §5.1)."""
    params: dict[str, Any] = {"format": "json", "pageSize": settings.page_size, "countTotal": "true"}
    if settings.query.strip():
        params["query.cond"] = settings.query.strip()
    if since is not None:
        params["filter.advanced"] = f"AREA[LastUpdatePostDate]RANGE[{since.isoformat()},MAX]"
    return params


def make_http_client(settings: Settings) -> httpx.Client:
    timeout = httpx.Timeout(settings.request_timeout, connect=min(settings.request_timeout, 15.0))
    return httpx.Client(
        timeout=timeout,
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
    )


def run_sync(
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
    workers: int = 1,
) -> SyncResult:
    """Sync the store with the registry; see the module docstring. Returns the result, outcome included.
    With `workers` > 1, worker processes classify the pages of a full walk ahead of their landing.

    Raises `ConfigError` (bad base URL), `ApiError` (registry unreachable or failing) or
    `IncompleteSyncError`; in each case the run is recorded as failed with the error text. An empty query
    fetches the whole registry (the CLI refuses one). `hold_lease=False`: the caller holds it.
    """
    return leased_run(
        engine,
        partial(
            _run_sync,
            engine,
            settings,
            full=full,
            http=http,
            backoff_base=backoff_base,
            progress=progress,
            classify=classify,
            workers=workers,
        ),
        hold_lease=hold_lease,
        classify=classify,
        classify_progress=classify_progress,
    )


def leased_run(
    engine: Engine,
    walk: Callable[[], SyncResult],
    *,
    hold_lease: bool,
    classify: bool,
    classify_progress: Callable[[int, int], None] | None,
) -> SyncResult:
    """One registry's sync: its `walk` under the "ingest" lease (unless the caller holds it), then what
    every ingest ends with (`finish_ingest`)."""
    started = time.monotonic()
    with Lease(engine, INGEST, purpose="sync") if hold_lease else nullcontext():
        result = walk()
        finish_ingest(engine, result, classify=classify, classify_progress=classify_progress)
    result.elapsed = time.monotonic() - started
    return result


def finish_ingest(
    engine: Engine,
    result: SyncResult,
    *,
    classify: bool,
    classify_progress: Callable[[int, int], None] | None,
) -> None:
    """The end of a sync or an import: classify what is still pending, then finish the run."""
    if classify:
        classify_run(engine, result, progress=classify_progress)
    else:
        finish(engine, result)


def _run_sync(
    engine: Engine,
    settings: Settings,
    *,
    full: bool,
    http: httpx.Client | None,
    backoff_base: float,
    progress: ProgressCallback | None,
    classify: bool,
    workers: int,
) -> SyncResult:
    started_at = utcnow()  # recorded as the run's start even when the first request fails
    previous_query = last_clean_query(engine)
    same_query = previous_query == _query_identity(settings.query)
    # The watermark says the store is complete up to that date for the query that set it: an incremental
    # window for another query would silently miss that query's older studies.
    mark = store.watermark(engine) if same_query else None
    # Nor does another query's full pass say which of the stored studies the registry dropped.
    flag_removals = full and (previous_query is None or same_query)
    incremental = not full and mark is not None
    mode = "incremental" if incremental else "full"
    since = mark - OVERLAP if incremental and mark is not None else None
    own_http = http is None
    http_client = http if http is not None else make_http_client(settings)
    try:
        try:
            client = CtgovClient(
                http_client,
                base_url=validate_base_url(settings.ctgov_base_url),
                requests_per_second=settings.requests_per_second,
                max_retries=settings.max_retries,
                backoff_base=backoff_base,
            )
            data_timestamp = _data_timestamp(client.version())
        except TrackerError as exc:  # recorded, so `tracker status` shows why nothing was fetched
            run_id = store.begin_run(
                engine,
                mode=mode,
                query=settings.query,
                source=settings.ctgov_base_url,
                data_timestamp=None,
                started_at=started_at,
            )
            store.finish_run(engine, run_id, outcome="failed", error=str(exc))
            raise
        base_url = client.base_url
        run_id = store.begin_run(
            engine,
            mode=mode,
            query=settings.query,
            source=base_url,
            data_timestamp=data_timestamp,
            started_at=started_at,
        )
        result = SyncResult(run_id=run_id, mode=mode, data_timestamp=data_timestamp, since=since)
        logger.info(
            "%s sync of %r from %s (data %s%s)",
            mode,
            settings.query,
            base_url,
            data_timestamp or "timestamp unknown",
            f", updated since {since}" if since else "",
        )
        try:
            seen_ids = _walk(
                engine,
                client,
                search_params(settings, since),
                result,
                progress,
                classify=classify,
                workers=workers,
            )
            _check_complete(result, seen_ids)
            if flag_removals:
                result.removed = store.flag_removed(engine, run_id, seen_ids)
            elif full:
                logger.warning(
                    "the last clean sync searched for %r, not %r: no study is flagged removed",
                    previous_query,
                    _query_identity(settings.query),
                )
        except BaseException as exc:
            result.requests = client.requests_made
            fail_run(engine, result, exc)
            raise
        result.requests = client.requests_made
        result.outcome = "partial" if result.rejected else "success"
    finally:
        if own_http:
            http_client.close()
    return result


REGISTRY_CHOICES = ("ctgov", "ctis", "all")


def registries_named(name: str) -> tuple[str, ...]:
    """`all` → every registry, in the order they sync (ClinicalTrials.gov first: CTIS records link to it)."""
    key = name.strip().lower()
    if key not in REGISTRY_CHOICES:
        raise ConfigError(f"unknown registry {name!r}; choose one of {', '.join(REGISTRY_CHOICES)}")
    return ("ctgov", "ctis") if key == "all" else (key,)


def run_registries(
    engine: Engine, settings: Settings, registries: Sequence[str], *, workers: int = 1, **options: Any
) -> list[tuple[str, SyncResult | TrackerError]]:
    """Sync each registry in turn under one lease; a registry that fails does not keep the next from
    syncing. Returns (registry, result or the error that stopped it) per registry. `workers`: processes
    that classify ClinicalTrials.gov pages ahead (see `run_sync`)."""
    outcomes: list[tuple[str, SyncResult | TrackerError]] = []
    with Lease(engine, INGEST, purpose="sync"):
        for registry in registries:
            try:
                runner = _runner(registry, workers)
                outcomes.append((registry, runner(engine, settings, hold_lease=False, **options)))
            except TrackerError as exc:
                outcomes.append((registry, exc))
    return outcomes


def synced(outcomes: Sequence[tuple[str, SyncResult | TrackerError]], registry: str) -> bool:
    """Whether `registry`'s sync finished (rejected records allowed) among `run_registries`' outcomes."""
    return any(name == registry and isinstance(outcome, SyncResult) for name, outcome in outcomes)


def _runner(registry: str, workers: int) -> Callable[..., SyncResult]:
    if registry == "ctis":
        from tracker.ctis.sync import run_ctis_sync  # only a CTIS sync needs its client and parser

        # A CTIS walk retrieves its records one by one: the rate limit, not the classifier, sets its pace.
        return run_ctis_sync
    return partial(run_sync, workers=workers)


def classify_run(
    engine: Engine, result: SyncResult, progress: Callable[[int, int], None] | None = None
) -> None:
    """Classify what the run landed, then finish the run: a failed classification fails the run."""
    try:
        result.classified = (result.classified or 0) + classify_landed(engine, progress=progress)
    except BaseException as exc:
        fail_run(engine, result, exc, prefix="classification failed: ")
        raise
    finish(engine, result)


def finish(engine: Engine, result: SyncResult) -> None:
    store.finish_run(
        engine,
        result.run_id,
        outcome=result.outcome,
        total_count=result.total_count,
        data_timestamp=result.data_timestamp,
    )


def last_clean_query(engine: Engine) -> str | None:
    """The query of the last sync that finished without error, as `_query_identity` (None when none)."""
    clean = store.last_clean_run(engine)
    return None if clean is None else _query_identity(clean.query or "")


def _query_identity(query: str) -> str:
    # The registry's search ignores case and spacing, so "Multiple  Sclerosis" is the same query.
    return " ".join(query.split()).casefold()


def _data_timestamp(version: dict[str, Any]) -> str | None:
    value = version.get("dataTimestamp")
    return value if isinstance(value, str) and value else None


def _walk(
    engine: Engine,
    client: CtgovClient,
    params: dict[str, Any],
    result: SyncResult,
    progress: ProgressCallback | None,
    *,
    classify: bool,
    workers: int = 1,
) -> set[str]:
    """Land every page; restart from page 1 once if a page token dies. Returns the NCT IDs seen."""
    seen_ids: set[str] = set()  # in any pass: what the completeness and removal checks count
    while True:
        pass_ids: set[str] = set()  # in this pass: a restarted pass lands again what it is served
        try:
            pages = _fresh_pages(client.iter_pages(params), pass_ids, seen_ids, result)
            landing = classified_pages(engine, pages, classify, workers, parallel_from=PARALLEL_MIN_STUDIES)
            for fresh, served, on_landed in landing:
                _land_page(engine, fresh, served, on_landed, result, progress)
            return seen_ids
        except PageTokenError as exc:
            if result.restarts >= 1:
                raise ApiError(f"page token refused again after a restart; giving up ({exc})") from None
            result.restarts += 1
            logger.warning("%s; restarting the walk from page 1", exc)


def _land_page(
    engine: Engine,
    fresh: list[Any],
    served: int,
    on_landed: store.LandedHook | None,
    result: SyncResult,
    progress: ProgressCallback | None,
) -> None:
    # The collector pauses while a page is landed, and runs between pages.
    with store.gc_paused():
        result.add(store.ingest_page(engine, result.run_id, fresh, on_landed=on_landed))
    if progress is not None:
        progress(result, served)


# A first page with fewer new studies than this is classified here: a worker would cost more than it saves
# (and an incremental sync with nothing new never loads the classifier).
PARALLEL_MIN_STUDIES = 500

# A page's studies not landed yet in this pass, and how many studies the page served.
FreshPage = tuple[list[Any], int]


def _fresh_pages(
    pages: Iterator[Page], pass_ids: set[str], seen_ids: set[str], result: SyncResult
) -> Iterator[FreshPage]:
    for page in store.each_decoded(pages):
        if page.total_count is not None:
            result.total_count = page.total_count
        yield list(_not_seen_yet(page.studies, pass_ids, seen_ids)), len(page.studies)
        del page  # the next response is decoded with this one already freed


def classified_pages(
    engine: Engine,
    pages: Iterator[FreshPage],
    classify: bool,
    workers: int,
    *,
    parallel_from: int,
) -> Iterator[tuple[list[Any], int, store.LandedHook | None]]:
    """Each page (a sync's, an import's chunk) with what classifies it as it lands: this process, or, when
    `workers` > 1, worker processes from the first page that brings at least `parallel_from` studies to
    classify (new, or changed since stored): they classify each page while the pages before it land."""
    on_landed = classify_hook() if classify else None
    for page in pages:
        work = _to_classify(engine, page[0]) if classify and workers > 1 else []
        if len(work) >= max(parallel_from, 1):
            yield from _classified_in_workers(engine, page, work, pages, workers)
            return
        yield page[0], page[1], on_landed


def _classified_in_workers(
    engine: Engine, first: FreshPage, first_work: list[Any], pages: Iterator[FreshPage], workers: int
) -> Iterator[tuple[list[Any], int, store.LandedHook]]:
    from tracker.classify.store import classify_raw, raw_payload
    from tracker.workers import ordered_map

    # Each page's studies to classify are cut into one part per worker, so the first page is classified by
    # every worker at once; a page lands once all its parts are back. The pages whose parts are in flight
    # (about two) are what the walk holds in memory.
    waiting: deque[tuple[FreshPage, int]] = deque()  # pages handed out, with how many parts each

    def parts() -> Iterator[bytes | list[Any]]:
        for page in chain([first], pages):
            cut = _parts(first_work if page is first else _to_classify(engine, page[0]), workers)
            waiting.append((page, len(cut)))
            yield from map(raw_payload, cut)

    classified: dict[str, Classified] = {}
    parts_back = 0
    for _part, part_classified in ordered_map(
        classify_raw, parts(), workers=workers, engine=engine, ahead=2 * workers + 1
    ):
        classified.update(part_classified)
        parts_back += 1
        (fresh, served), count = waiting[0]
        if parts_back == count:
            waiting.popleft()
            yield fresh, served, classify_hook(classified)
            classified, parts_back = {}, 0


def _to_classify(engine: Engine, studies: list[Any]) -> list[Any]:
    """The studies of a page that can land new or changed. One served again with the content the store
    holds lands unchanged and is not classified: an incremental sync with nothing new is served every
    study updated on its last day again (hundreds, in a large store), and must not start workers for them."""
    keyed = [(study_id(raw), raw) for raw in studies]
    stored = store.stored_content_hashes(engine, [rid for rid, _raw in keyed if rid is not None])
    if not stored:
        return studies
    from tracker.ctgov.parse import content_hash

    return [raw for rid, raw in keyed if rid not in stored or content_hash(raw) != stored[rid]]


def _parts(studies: list[Any], count: int) -> list[list[Any]]:
    """`studies` in `count` consecutive parts of (nearly) equal size; one empty part for no studies."""
    size = max(1, -(-len(studies) // count))
    return [studies[start : start + size] for start in range(0, len(studies), size)] or [[]]


def _not_seen_yet(raw_studies: Iterable[Any], pass_ids: set[str], seen_ids: set[str]) -> Iterator[Any]:
    """Skip studies already landed in this pass (pages can overlap when the registry refreshes mid-walk)."""
    for raw in raw_studies:
        registration_id = study_id(raw)
        if registration_id is None:
            yield raw  # let the store reject it with its reason
            continue
        if registration_id in pass_ids:
            continue
        pass_ids.add(registration_id)
        seen_ids.add(registration_id)
        yield raw


def study_id(raw: Any) -> str | None:
    """The NCT ID of a raw study, if it has a readable one (no validation; parse.py does that)."""
    try:
        registration_id = raw["protocolSection"]["identificationModule"]["nctId"]
    except (KeyError, TypeError):
        return None
    return registration_id.strip().upper() if isinstance(registration_id, str) else None


def _check_complete(result: SyncResult, seen_ids: set[str]) -> None:
    if result.total_count is None:
        logger.warning("the registry sent no totalCount; completeness not checked")
        return
    received = len(seen_ids) + sum(1 for r in result.rejected if r.registration_id is None)
    if received < result.total_count:
        raise IncompleteSyncError(
            f"incomplete {result.mode} sync: received {received} of {result.total_count} studies; "
            "what landed is kept, run the sync again"
        )


def fail_run(engine: Engine, result: SyncResult, exc: BaseException, *, prefix: str = "") -> None:
    """Record the run as failed with the error's text (the database itself may be what failed)."""
    result.outcome = "failed"
    error = str(exc) if isinstance(exc, TrackerError) else f"{type(exc).__name__}: {exc}".rstrip(": ")
    if isinstance(exc, KeyboardInterrupt):
        error = "interrupted"
    error = prefix + error
    try:
        store.finish_run(engine, result.run_id, outcome="failed", error=error, total_count=result.total_count)
    except TrackerError as finish_error:  # the database itself may be what failed
        logger.error("could not record the failed run: %s", finish_error)


def classify_hook(classified: Mapping[str, Classified] | None = None) -> store.LandedHook:
    """What the sync and the import hand `store.ingest_page` to classify each landed page, with what a
    worker process already `classified`. The classifier is imported by the first page that brings new or
    changed studies: a sync with nothing new never compiles its dictionary."""

    def classify_page(session: Session, records: Sequence[StudyRecord]) -> int:
        from tracker.classify.store import classify_records

        return classify_records(session, records, classified)

    return classify_page


def classify_landed(engine: Engine, progress: Callable[[int, int], None] | None = None) -> int:
    """Classify what is still pending (the classifier keeps track); returns how many. After a sync or an
    import that classified page by page, this finds only studies an older classifier version labelled;
    when nothing is pending, one query answers and the classifier is not imported. `progress(done, total)`
    follows the batches (the CLI draws a bar)."""
    from tracker.classify.version import any_pending

    if not any_pending(engine):
        return 0
    from tracker.classify.store import classify_pending  # deferred: importing it compiles the dictionary

    return classify_pending(engine, progress=progress)
