"""`tracker history`: backfill and refresh the registry's own version history of the stored trials.

Per trial (HISTORY_NOTES §1-§3):

1. The version index (one request): the status timeline, the original enrolment and primary outcomes.
   It is accepted only as a gap-free chain from version 0 to its last version; a gap leaves the trial
   unaccepted and it is retried on the next run.
2. With `versions` (and always for trials backfilled before), every version record not fetched yet, one
   request each, each landed at once; then the index is read again, and versions posted meanwhile are
   fetched too, until the chain 0..last is complete. A missing version fails the trial (kept, retried).
3. Reruns ask only for what is missing: a trial whose stored study has not moved since its index was read
   and whose chain is complete costs no request at all.

A drifted response shape fails its trial with one line naming the field; when the first trials of a run
all drift, the run stops instead of sending the rest of its requests to an API it no longer understands.
An unreachable registry (after the transport's retries) stops the run; what landed stays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine

from tracker import history_store
from tracker.config import Settings, history_base_url
from tracker.ctgov.client import NotFoundError
from tracker.ctgov.history import HistoryClient
from tracker.ctgov.history_parse import HistoryShapeError, VersionIndex
from tracker.errors import ApiError, TrackerError

logger = logging.getLogger(__name__)

DRIFT_STOP_AFTER = 3  # the first this many trials all drifting stops the run
MAX_INDEX_ROUNDS = 3  # re-reads of the index when versions keep being posted mid-walk


class HistoryDriftError(ApiError):
    """The first trials of a run all came back in a shape we do not know: the run stopped early."""


@dataclass(frozen=True, slots=True)
class TrialFailure:
    registration_id: str
    reason: str


@dataclass
class HistoryResult:
    planned: int = 0
    done: int = 0
    accepted: int = 0  # trials whose index (and, where asked, version chain) was accepted
    versions_fetched: int = 0
    requests: int = 0
    failed: list[TrialFailure] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def outcome(self) -> str:
        return "partial" if self.failed else "success"

    def summary(self) -> str:
        return (
            f"history {self.outcome}: {self.accepted} of {self.planned} trials accepted, "
            f"{self.versions_fetched} version records fetched, {len(self.failed)} failed; "
            f"{self.requests} requests in {self.elapsed:.1f}s"
        )


# Called after each trial with the result so far; the CLI draws a progress bar with an ETA from it.
HistoryProgress = Callable[[HistoryResult], None]


def log_history_progress(result: HistoryResult) -> None:
    if result.done % 100 == 0 or result.done == result.planned:
        logger.info("history: %d of %d trials (%d requests)", result.done, result.planned, result.requests)


def run_history(
    engine: Engine,
    settings: Settings,
    *,
    registration_ids: Sequence[str] | None = None,
    versions: bool = False,
    limit: int | None = None,
    http: httpx.Client | None = None,
    backoff_base: float = 1.0,
    progress: HistoryProgress | None = log_history_progress,
) -> HistoryResult:
    """Backfill or refresh the history of the stored trials (or `registration_ids`); see the module docstring.

    `limit` caps the number of trials visited in this run. Raises `ApiError` when the registry is
    unreachable and `HistoryDriftError` when the first trials all drift; per-trial failures are listed in
    the result (outcome "partial").
    """
    from tracker.locks import HISTORY, Lease

    with Lease(engine, HISTORY, purpose="history backfill"):
        return _run_history(engine, settings, registration_ids, versions, limit, http, backoff_base, progress)


def _run_history(
    engine: Engine,
    settings: Settings,
    registration_ids: Sequence[str] | None,
    versions: bool,
    limit: int | None,
    http: httpx.Client | None,
    backoff_base: float,
    progress: HistoryProgress | None,
) -> HistoryResult:
    from tracker.sync import make_http_client  # the same HTTP settings as a sync

    started = time.monotonic()
    planned = history_store.plan(
        engine, registration_ids=[n.strip().upper() for n in registration_ids or ()], versions=versions
    )
    if limit is not None:
        planned = planned[:limit]
    result = HistoryResult(planned=len(planned))
    own_http = http is None
    http_client = http if http is not None else make_http_client(settings)
    try:
        client = HistoryClient(
            http_client,
            base_url=history_base_url(settings),
            requests_per_second=settings.requests_per_second,
            max_retries=settings.max_retries,
            backoff_base=backoff_base,
        )
        drifted: list[HistoryShapeError] = []
        for trial in planned:
            try:
                accepted = _backfill_trial(engine, client, trial, versions, result)
            except HistoryShapeError as exc:
                drifted.append(exc)
                _fail_trial(engine, result, trial.registration_id, str(exc))
                if len(drifted) == result.done == DRIFT_STOP_AFTER:
                    raise HistoryDriftError(
                        f"stopped after the first {DRIFT_STOP_AFTER} trials: {drifted[0]}"
                    ) from None
            except (NotFoundError, _ChainError) as exc:
                _fail_trial(engine, result, trial.registration_id, str(exc))
            except ApiError:
                result.requests = client.requests_made
                raise
            else:
                result.done += 1
                result.accepted += int(accepted)
            result.requests = client.requests_made
            if progress is not None:
                progress(result)
    finally:
        if own_http:
            http_client.close()
        result.elapsed = time.monotonic() - started
    return result


class _ChainError(TrackerError):
    """The versions do not (yet) form a gap-free chain 0..last."""


def _fail_trial(engine: Engine, result: HistoryResult, registration_id: str, reason: str) -> None:
    logger.warning("history of %s not accepted: %s", registration_id, reason)
    result.failed.append(TrialFailure(registration_id, reason))
    result.done += 1
    history_store.record_error(engine, registration_id, reason)


def _read_index(engine: Engine, client: HistoryClient, trial: history_store.PlannedTrial) -> VersionIndex:
    index = client.index(trial.registration_id)
    gaps = index.gaps()
    if gaps:
        listed = ", ".join(map(str, gaps[:5])) + (" …" if len(gaps) > 5 else "")
        raise _ChainError(f"{trial.registration_id}: the version index has a gap (missing version {listed})")
    history_store.store_index(engine, index, trial.study_last_update_posted)
    return index


def _backfill_trial(
    engine: Engine,
    client: HistoryClient,
    trial: history_store.PlannedTrial,
    versions: bool,
    result: HistoryResult,
) -> bool:
    """One trial; True when its history was accepted (index, and the version chain where wanted)."""
    last_version = trial.last_version
    if trial.read_index or last_version is None:
        last_version = _read_index(engine, client, trial).last_version
    if not (versions or trial.versions_through is not None):
        return True
    for _round in range(MAX_INDEX_ROUNDS):
        for number in history_store.missing_versions(engine, trial.registration_id):
            try:
                record = client.version(trial.registration_id, number)
            except NotFoundError:
                raise _ChainError(
                    f"{trial.registration_id}: version {number} of {last_version} is missing (HTTP 404); "
                    "the chain is incomplete and will be retried"
                ) from None
            history_store.store_version(engine, record)
            result.versions_fetched += 1
        # A version posted while we walked shows up here; its record is fetched in the next round.
        latest = _read_index(engine, client, trial).last_version
        if latest == last_version and not history_store.missing_versions(engine, trial.registration_id):
            history_store.accept_versions(engine, trial.registration_id, latest)
            return True
        last_version = latest
    raise _ChainError(
        f"{trial.registration_id}: new versions kept being posted during {MAX_INDEX_ROUNDS} walks;"
        " retried next run"
    )
