"""Errors a user can cause, each rendered by the CLI as one line and a non-zero exit.

TrackerError
 ├── ConfigError        bad setting or flag value (database URL, base URL, path)
 ├── DatabaseError      database unreachable, unwritable or failing a migration
 ├── ApiError           ClinicalTrials.gov unreachable or answering with an error
 │    └── ApiRequestError   a 400: our request was wrong, never retried
 ├── IncompleteSyncError   a full pass received fewer studies than totalCount
 ├── RecordError        one study record that cannot be parsed (rejected alone)
 ├── WorkerError        a worker process died (killed, out of memory); what landed is kept
 └── FilterError        a filter value that is not one of the known keys
"""

from __future__ import annotations


class TrackerError(Exception):
    """Base class: the message is the one line the user sees."""

    exit_code: int = 1


class ConfigError(TrackerError):
    exit_code = 2


class DatabaseError(TrackerError):
    pass


class ApiError(TrackerError):
    pass


class ApiRequestError(ApiError):
    """The API answered 400: the request is wrong and retrying cannot help."""


class IncompleteSyncError(TrackerError):
    pass


class RecordError(TrackerError):
    """A single study record that cannot be parsed; carries its NCT ID when known."""

    def __init__(self, reason: str, registration_id: str | None = None) -> None:
        super().__init__(f"{registration_id or '<no ID>'}: {reason}")
        self.reason = reason
        self.registration_id = registration_id


class FilterError(TrackerError):
    exit_code = 2


class WorkerError(TrackerError):
    """A process that classified ahead died; the pages or chunks landed before stay landed."""


class PartialSyncError(TrackerError):
    """The run finished but some records were rejected; schedulers see exit code 3."""

    exit_code = 3
