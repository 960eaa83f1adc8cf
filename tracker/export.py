"""CSV and workbook export: trial rows in, CSV or .xlsx bytes out, columns in a fixed, documented order.

`tracker export` streams the CSV: it writes each row as it reads it from one aggregated query
(`tracker.query.iter_trial_rows`), adding each trial's registry details from one read of the detail
tables. The dashboard's download buttons serialise the frame they already hold (`frame_to_csv`,
`frame_to_xlsx`); all go through `export_row` / the same columns, so they give identical content for the
same trials. A sidecar `FILE.csv.json` (the workbook's Provenance sheet) records where the data came from.

Cells are neutralised against CSV (formula) injection: a text cell starting with `=`, `+`, `-`, `@`,
a tab or a carriage return gets a leading apostrophe, so spreadsheet programs show it as text.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import Engine

from tracker import query
from tracker.db.session import batched, utcnow
from tracker.errors import ConfigError
from tracker.filters import TrialFilter
from tracker.taxonomy import load_taxonomy

if TYPE_CHECKING:
    import pandas as pd

MULTI_VALUE_SEPARATOR = "; "
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EXCEL_BOM = "\ufeff"
# The row key holding the mechanism keys the export's filter counts (see `TrialFilter.mechanism_column`).
COUNTED_MECHANISMS = "_counted_mechanisms"
# Streamed rows per read of the detail tables (one query per detail table per batch).
DETAIL_BATCH = 1000


@dataclass(frozen=True, slots=True)
class ExportColumn:
    """One CSV column: its header, what it holds (for the README) and how to read it from a frame row."""

    name: str
    description: str
    value: Callable[[Mapping[str, Any]], object]


class _Field:
    """A column that is one key of the row (callable as every column's `value` is; the export reads `key`)."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, row: Mapping[str, Any]) -> object:
        return row.get(self.key)


def _field(name: str) -> Callable[[Mapping[str, Any]], object]:
    return _Field(name)


def _labels(dimension: str, column: str) -> Callable[[Mapping[str, Any]], object]:
    def labels(row: Mapping[str, Any]) -> object:
        taxonomy = load_taxonomy()
        return tuple(taxonomy.label(dimension, key) for key in _sequence(row.get(column)))  # type: ignore[arg-type]

    return labels


EXPORT_COLUMNS: tuple[ExportColumn, ...] = (
    ExportColumn(
        "trial_id",
        "The trial's ID: its NCT ID, or its EU CT number when it is registered only in CTIS",
        _field("trial_id"),
    ),
    ExportColumn("registries", "Registries the trial is registered in (ctgov, ctis)", _field("registries")),
    ExportColumn(
        "registration_ids",
        "Every registration of the trial (NCT ID, EU CT number)",
        _field("registration_ids"),
    ),
    ExportColumn("url", "Link to the trial's page in the registry of trial_id", _field("url")),
    ExportColumn("brief_title", "Brief title", _field("brief_title")),
    ExportColumn("acronym", "Acronym", _field("acronym")),
    ExportColumn(
        "overall_status", "Overall status (registry enum, e.g. RECRUITING)", _field("overall_status")
    ),
    ExportColumn(
        "why_stopped", "Why the study stopped (terminated, suspended, withdrawn)", _field("why_stopped")
    ),
    ExportColumn("phases", "Phases (registry enums, e.g. PHASE2; PHASE3)", _field("phases")),
    ExportColumn("study_type", "INTERVENTIONAL, OBSERVATIONAL or EXPANDED_ACCESS", _field("study_type")),
    ExportColumn("enrollment_count", "Enrollment (participants)", _field("enrollment_count")),
    ExportColumn("enrollment_type", "ACTUAL or ESTIMATED", _field("enrollment_type")),
    ExportColumn(
        "start_date", "Start date as registered (YYYY, YYYY-MM or YYYY-MM-DD)", _field("start_date_raw")
    ),
    ExportColumn("start_date_type", "ACTUAL or ESTIMATED", _field("start_date_type")),
    ExportColumn(
        "primary_completion_date",
        "Primary completion date as registered",
        _field("primary_completion_date_raw"),
    ),
    ExportColumn(
        "primary_completion_date_type", "ACTUAL or ESTIMATED", _field("primary_completion_date_type")
    ),
    ExportColumn("completion_date", "Study completion date as registered", _field("completion_date_raw")),
    ExportColumn("completion_date_type", "ACTUAL or ESTIMATED", _field("completion_date_type")),
    ExportColumn("first_posted", "First posted (YYYY-MM-DD)", _field("first_posted")),
    ExportColumn("last_update_posted", "Last update posted (YYYY-MM-DD)", _field("last_update_posted")),
    ExportColumn("results_first_posted", "Results first posted (YYYY-MM-DD)", _field("results_first_posted")),
    ExportColumn("has_results", "true when results are posted", _field("has_results")),
    ExportColumn("lead_sponsor", "Lead sponsor", _field("lead_sponsor_name")),
    ExportColumn(
        "sponsor_class",
        "Lead sponsor class (registry enum: INDUSTRY, NIH, OTHER, ...)",
        _field("lead_sponsor_class"),
    ),
    ExportColumn("sponsor_category", "industry, academic_other or government", _field("sponsor_category")),
    ExportColumn("conditions", "Conditions as registered", _field("conditions")),
    ExportColumn("interventions", "Intervention names", _field("interventions")),
    ExportColumn(
        "mechanisms",
        "Mechanism keys (taxonomy) under study; with --include-comparators also the comparators'",
        _field(COUNTED_MECHANISMS),
    ),
    ExportColumn(
        "mechanism_labels",
        "Mechanism labels, in the order of `mechanisms`",
        _labels("mechanism", COUNTED_MECHANISMS),
    ),
    ExportColumn(
        "comparator_mechanisms",
        "Mechanism keys of the comparators only (from arm groups, titles or intervention names)",
        _field("comparator_mechanisms"),
    ),
    ExportColumn(
        "mechanism_roles", "key:role pairs (investigational or comparator)", _field("mechanism_roles")
    ),
    ExportColumn("phenotypes", "MS phenotype keys (taxonomy)", _field("phenotypes")),
    ExportColumn(
        "phenotype_labels",
        "Phenotype labels, in the order of `phenotypes`",
        _labels("phenotype", "phenotypes"),
    ),
    ExportColumn(
        "endpoint_primary",
        "Endpoint keys (taxonomy) of the primary outcome measures, manual overrides included",
        _field("endpoints_primary"),
    ),
    ExportColumn(
        "endpoint_secondary",
        "Endpoint keys (taxonomy) of the secondary outcome measures, manual overrides included",
        _field("endpoints_secondary"),
    ),
    ExportColumn(
        "relevance",
        "ms, ms_plus or not_ms (unclassified before the first classification)",
        _field("relevance"),
    ),
    ExportColumn(
        "multi_disease", "true when the study covers other diseases besides MS", _field("multi_disease")
    ),
    ExportColumn(
        "manual_override", "true when a manual correction overrides the automatic labels", _field("manual")
    ),
    ExportColumn(
        "countries",
        "Countries with a study site, or where an EU registration is authorised",
        _field("countries"),
    ),
    ExportColumn(
        "eu_countries",
        "EU/EEA member states of the CTIS registration, each with its own status",
        _field("eu_countries"),
    ),
    ExportColumn(
        "eu_decision_date",
        "First EU decision on the CTIS registration (YYYY-MM-DD)",
        _field("eu_decision_date"),
    ),
    ExportColumn(
        "taxonomy_version", "Taxonomy version the labels were assigned with", _field("taxonomy_version")
    ),
    ExportColumn(
        "versions",
        "Registry versions of the record (registry history; empty until backfilled)",
        _field("versions"),
    ),
    ExportColumn(
        "pcd_changes",
        "Times the primary completion date moved (registry history with version records)",
        _field("pcd_changes"),
    ),
    ExportColumn(
        "pcd_total_slip_days",
        "Days the primary completion date moved in all (+ later, - earlier)",
        _field("pcd_total_slip_days"),
    ),
    ExportColumn(
        "original_enrollment", "Enrollment in the first registered version", _field("original_enrollment")
    ),
    ExportColumn(
        "primary_outcome_changed_after_start",
        "true when a primary outcome was added, removed or reworded after the start date",
        _field("primary_outcome_changed_after_start"),
    ),
    # The registry details a review's data-extraction form asks for (query.with_details adds them).
    ExportColumn("official_title", "Official title", _field("official_title")),
    ExportColumn("brief_summary", "Brief summary as registered", _field("brief_summary")),
    ExportColumn("allocation", "Design: allocation (RANDOMIZED, NON_RANDOMIZED or NA)", _field("allocation")),
    ExportColumn(
        "intervention_model",
        "Design: intervention model (PARALLEL, CROSSOVER, SINGLE_GROUP, FACTORIAL, SEQUENTIAL)",
        _field("intervention_model"),
    ),
    ExportColumn("masking", "Design: masking (NONE, SINGLE, DOUBLE, TRIPLE or QUADRUPLE)", _field("masking")),
    ExportColumn(
        "primary_purpose",
        "Design: primary purpose (TREATMENT, PREVENTION, SUPPORTIVE_CARE, BASIC_SCIENCE, ...)",
        _field("primary_purpose"),
    ),
    ExportColumn("arms", "Arm groups as label (ARM TYPE)", _field("arms")),
    ExportColumn(
        "intervention_details",
        "Interventions as name (TYPE; arm role), the role taken from the arms the intervention is in",
        _field("intervention_details"),
    ),
    ExportColumn(
        "primary_outcomes", "Primary outcome measures as measure | time frame", _field("primary_outcomes")
    ),
    ExportColumn(
        "secondary_outcomes",
        "Secondary outcome measures as measure | time frame",
        _field("secondary_outcomes"),
    ),
    ExportColumn("minimum_age", "Minimum age as registered (e.g. 18 Years)", _field("minimum_age")),
    ExportColumn("maximum_age", "Maximum age as registered (e.g. 65 Years)", _field("maximum_age")),
    ExportColumn("minimum_age_years", "Minimum age in years", _field("minimum_age_years")),
    ExportColumn("maximum_age_years", "Maximum age in years", _field("maximum_age_years")),
    ExportColumn("sex", "Sex eligible: ALL, FEMALE or MALE", _field("sex")),
    ExportColumn(
        "healthy_volunteers",
        "true when healthy volunteers are accepted, false when not, empty when not stated",
        _field("healthy_volunteers"),
    ),
    ExportColumn("std_ages", "Standard age groups (CHILD, ADULT, OLDER_ADULT)", _field("std_ages")),
    # Eligibility facets read from the criteria text (tracker.classify.eligibility), overrides included.
    ExportColumn(
        "edss_min",
        "Lowest EDSS score the inclusion criteria admit; empty when not stated",
        _field("edss_min"),
    ),
    ExportColumn(
        "edss_max",
        "Highest EDSS score the inclusion criteria admit; empty when not stated",
        _field("edss_max"),
    ),
    ExportColumn(
        "prior_treatment",
        "treatment_naive and/or prior_dmt_failure, where the criteria say so explicitly",
        _field("prior_treatment"),
    ),
    ExportColumn(
        "excluded_therapies",
        "Disease-modifying therapies whose prior use the exclusion criteria rule out",
        _field("excluded_therapies"),
    ),
    ExportColumn("collaborators", "Collaborators", _field("collaborators")),
    ExportColumn("site_count", "Number of study sites listed", _field("site_count")),
    ExportColumn("secondary_ids", "Secondary IDs as identifier (TYPE)", _field("secondary_ids")),
)
EXPORT_HEADER: tuple[str, ...] = tuple(column.name for column in EXPORT_COLUMNS)
# Per column: the row key it reads, or None and the function that derives it.
_ROW_PLAN = tuple(
    (column.value.key, None) if isinstance(column.value, _Field) else (None, column.value)
    for column in EXPORT_COLUMNS
)


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path | None
    sidecar_path: Path | None
    row_count: int
    provenance: dict[str, Any]
    xlsx_path: Path | None = None


# The workbook's per-row sheets: (column, description, how to read it from a detail row).
OUTCOME_SHEET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("trial_id", "The trial (Trials sheet); its measures are those of the registration named trial_id"),
    ("role", "primary, secondary or other"),
    ("order", "Position of the measure within its role, from 1, as registered"),
    ("measure", "Outcome measure title as registered"),
    ("time_frame", "Time frame as registered"),
    ("description", "Outcome measure description as registered"),
    ("endpoints", "Endpoint keys (taxonomy) of the measure, '; '-separated, as classified automatically"),
)
ARM_SHEET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("trial_id", "The trial (Trials sheet); its arms are those of the registration named trial_id"),
    ("order", "Position of the arm, from 1, as registered"),
    ("label", "Arm group label"),
    ("type", "Arm type (EXPERIMENTAL, ACTIVE_COMPARATOR, PLACEBO_COMPARATOR, SHAM_COMPARATOR, ...)"),
    ("interventions", "Intervention names given to the arm, '; '-separated"),
    ("description", "Arm group description as registered"),
)


def neutralise_cell(text: str) -> str:
    """Prefix an apostrophe to text a spreadsheet would read as a formula."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


# A frame's cells may hold numpy and pandas scalars; the streaming export holds only plain Python values and
# never imports either library. So their types are checked only when something has loaded them.
def _numpy() -> Any:
    return sys.modules.get("numpy")


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    pandas = sys.modules.get("pandas")
    if pandas is not None and (value is pandas.NaT or value is pandas.NA):
        return True
    return isinstance(value, float) and math.isnan(value)


def _sequence(value: object) -> Sequence[object]:
    """A multi-value cell as a sequence: tuples and lists as they are, numpy arrays as lists, None as ()."""
    if _is_missing(value):
        return ()
    if isinstance(value, (list, tuple)):
        return value
    if getattr(value, "ndim", 0) > 0:
        return list(value.tolist())  # type: ignore[attr-defined]
    return (value,)


def format_cell(value: object) -> str:
    """One value as CSV text: missing → empty, booleans → true/false, dates → ISO, lists → '; '-joined."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) > 0:
        return MULTI_VALUE_SEPARATOR.join(format_cell(item) for item in _sequence(value))
    if _is_missing(value):
        return ""
    numpy = _numpy()
    if numpy is not None and isinstance(value, numpy.bool_):
        return "true" if value else "false"
    if isinstance(value, datetime):  # pandas Timestamps included
        midnight = (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0)
        return value.date().isoformat() if midnight else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if (isinstance(value, float) or (numpy is not None and isinstance(value, numpy.floating))) and float(
        value  # type: ignore[arg-type]
    ).is_integer():
        return str(int(value))  # type: ignore[call-overload]
    return str(value)


def export_row(row: Mapping[str, Any], *, include_comparators: bool = False) -> list[str]:
    """One trial's CSV cells in EXPORT_COLUMNS order, already neutralised.

    `mechanisms` holds the keys under study, or every key with `include_comparators` (as the filter counts
    them: `TrialFilter.mechanism_column`)."""
    row = counted_row(row, include_comparators=include_comparators)
    get = row.get
    values = [get(key) if key is not None else value(row) for key, value in _ROW_PLAN]
    # csv_cell inlined for the common text and empty cells: an export writes millions of cells
    return [
        (("'" + v) if v.startswith(FORMULA_PREFIXES) else v)
        if type(v) is str
        else ("" if v is None else csv_cell(v))
        for v in values
    ]


def csv_cell(value: object) -> str:
    """`neutralise_cell(format_cell(value))` for a cell that is neither text nor missing (`export_row`
    writes those inline); a tuple of text is joined without `format_cell`'s checks of each item."""
    if type(value) is tuple:
        text = MULTI_VALUE_SEPARATOR.join(
            [item if type(item) is str else format_cell(item) for item in value]
        )
    else:
        text = format_cell(value)
    return neutralise_cell(text)


def counted_row(row: Mapping[str, Any], *, include_comparators: bool = False) -> dict[str, Any]:
    """The row with the mechanism keys the export counts (under study, or all with `include_comparators`)."""
    counted = TrialFilter(include_comparators=include_comparators).mechanism_column
    return {**row, COUNTED_MECHANISMS: row[counted] if counted in row else row.get("mechanisms")}


def export_rows(frame: pd.DataFrame, *, include_comparators: bool = False) -> Iterator[list[str]]:
    """The CSV rows (without header) for a trial frame, in EXPORT_COLUMNS order, already neutralised."""
    for row in frame.to_dict("records"):
        yield export_row(row, include_comparators=include_comparators)


def _write_csv(handle: IO[str], rows: Iterable[list[str]], *, excel: bool) -> None:
    """UTF-8 CSV with CRLF rows as RFC 4180 has them; `excel` starts it with a BOM so Excel reads UTF-8."""
    if excel:
        handle.write(EXCEL_BOM)
    writer = csv.writer(handle, lineterminator="\r\n")
    writer.writerow(EXPORT_HEADER)
    writer.writerows(rows)


def frame_to_csv(frame: pd.DataFrame, *, excel: bool = False, include_comparators: bool = False) -> bytes:
    """CSV bytes of a trial frame (the dashboard's download), the same bytes `write_export` writes."""
    buffer = io.StringIO()
    _write_csv(buffer, export_rows(frame, include_comparators=include_comparators), excel=excel)
    return buffer.getvalue().encode("utf-8")


def _json_safe(value: object) -> object:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def build_provenance(
    *,
    exported_at: datetime,
    latest_run: Mapping[str, Any] | None,
    trial_filter: TrialFilter,
    row_count: int,
    frame_taxonomy_versions: Sequence[str] = (),
) -> dict[str, Any]:
    """The sidecar: when, from which data (registry timestamp, last sync run), which filter, how many rows."""
    run = None
    if latest_run is not None:
        keys = ("id", "mode", "outcome", "started", "finished", "data_timestamp")
        run = {key: _json_safe(latest_run.get(key)) for key in keys if key in latest_run}
    return {
        "exported_at": exported_at.isoformat(timespec="seconds") + "Z",
        "data_timestamp": latest_run.get("data_timestamp") if latest_run else None,
        "last_sync_run": run,
        "filters": trial_filter.to_dict(),
        "filter_description": trial_filter.describe(),
        "taxonomy_version": load_taxonomy().version,
        "classification_taxonomy_versions": sorted(set(frame_taxonomy_versions)),
        "row_count": row_count,
        "columns": list(EXPORT_HEADER),
    }


def provenance_for(
    frame: pd.DataFrame,
    trial_filter: TrialFilter,
    latest_run: Mapping[str, Any] | None,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The sidecar of an export of `frame` (the trials `trial_filter` selected), made now or at `now`."""
    versions = [str(v) for v in frame["taxonomy_version"] if not _is_missing(v)] if len(frame) else []
    return build_provenance(
        exported_at=now or utcnow(),
        latest_run=latest_run,
        trial_filter=trial_filter,
        row_count=len(frame),
        frame_taxonomy_versions=versions,
    )


def provenance_json(provenance: Mapping[str, Any]) -> bytes:
    return json.dumps(provenance, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"


def _write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write to a temporary file beside `path`, then rename: a failed export never leaves half a file."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; an export is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def sidecar_path_for(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def write_export(
    engine: Engine,
    trial_filter: TrialFilter,
    path: Path | None,
    *,
    excel: bool = False,
    xlsx_path: Path | None = None,
    now: datetime | None = None,
    workers: int = 1,
) -> ExportResult:
    """Write the trials matching the filter as CSV to `path` with the provenance sidecar beside it,
    and/or as a workbook to `xlsx_path`; nothing is written unless every target folder exists.

    CSV rows are written as they are read (`detailed_trial_rows`); the sidecar, which counts them,
    follows. With `workers` > 1 and a store of more than one EXPORT_SPAN, worker processes format spans of
    registration IDs into CSV text that this process writes in order: the same bytes."""
    targets = [target for target in (path, xlsx_path) if target is not None]
    if not targets:
        raise ConfigError("nothing to write: give --out FILE.csv, --xlsx FILE.xlsx or both")
    for target in targets:
        if not target.parent.is_dir():
            raise ConfigError(f"cannot write {target}: folder {target.parent} does not exist")
    exported_at = now or utcnow()
    latest_run = query.latest_run(engine)
    tally = _Tally()
    kept: list[dict[str, Any]] = []  # the rows again, for the workbook (built in memory anyway)

    def trial_rows() -> Iterator[dict[str, Any]]:
        for row in detailed_trial_rows(engine, trial_filter):
            tally.add(row)
            if xlsx_path is not None:
                kept.append(row)
            yield row

    def provenance() -> dict[str, Any]:
        return build_provenance(
            exported_at=exported_at,
            latest_run=latest_run,
            trial_filter=trial_filter,
            row_count=tally.rows,
            frame_taxonomy_versions=sorted(tally.versions),
        )

    spans = query.registration_spans(engine, EXPORT_SPAN) if workers > 1 and xlsx_path is None else []

    def write_csv(handle: IO[bytes]) -> None:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=False)
        if len(spans) > 1:
            _write_csv(text, (), excel=excel)  # the header; the spans' rows follow in order
            from tracker.workers import ordered_map

            url = engine.url.render_as_string(hide_password=False)
            registrations = query.load_registrations(engine)  # once for every span
            work = [(url, trial_filter, span, registrations) for span in spans]
            for _work, (chunk, span_tally) in ordered_map(
                _csv_of_span, work, workers=workers, engine=engine, ahead=workers + 1
            ):
                text.write(chunk)
                tally.merge(span_tally)
        else:
            rows = (
                export_row(row, include_comparators=trial_filter.include_comparators) for row in trial_rows()
            )
            _write_csv(text, rows, excel=excel)
        text.flush()
        text.detach()  # the caller closes the file

    written: list[dict[str, Any]] = []

    def write_sidecar(handle: IO[bytes]) -> None:
        written.append(provenance())
        handle.write(provenance_json(written[-1]))

    def write_xlsx(handle: IO[bytes]) -> None:
        rows = kept if path is not None else list(trial_rows())
        written.append(provenance())
        keys = query.outcome_endpoint_keys(engine, (row["registration_id"] for row in rows))
        tables = query.load_detail_tables(engine)  # the workbook's outcome sheet; built in memory anyway
        handle.write(
            rows_to_xlsx(
                rows,
                tables,
                written[-1],
                include_comparators=trial_filter.include_comparators,
                outcome_endpoints=keys,
            )
        )

    writes: list[tuple[Path, Callable[[IO[bytes]], None]]] = []
    sidecar = None
    if path is not None:
        sidecar = sidecar_path_for(path)
        writes += [(path, write_csv), (sidecar, write_sidecar)]
    if xlsx_path is not None:
        writes.append((xlsx_path, write_xlsx))
    for target, write in writes:
        try:
            _write_atomically(target, write)
        except OSError as exc:
            raise ConfigError(f"cannot write {target}: {exc.strerror}") from None
    return ExportResult(
        path=path, sidecar_path=sidecar, row_count=tally.rows, provenance=written[0], xlsx_path=xlsx_path
    )


def detailed_trial_rows(
    engine: Engine,
    trial_filter: TrialFilter,
    span: tuple[str, str] | None = None,
    registrations: dict[str, tuple[query.Registration, ...]] | None = None,
) -> Iterator[dict[str, Any]]:
    """The trial rows `query.iter_trial_rows` streams (of one `span`, with `registrations`, when given),
    each with its registry details. Details are read for one batch of streamed rows at a time (their
    registration ID range), so the export's memory stays at a batch's outcome and arm text however many
    trials the store holds."""
    rows = query.iter_trial_rows(engine, trial_filter, span=span, registrations=registrations)
    for batch in batched(rows, DETAIL_BATCH):
        first_and_last = (batch[0]["registration_id"], batch[-1]["registration_id"])
        details = query.fold_details(query.read_detail_rows(engine, nct_range=first_and_last))
        for row in batch:
            row.update(details.get(row["registration_id"]) or query.EMPTY_DETAILS)
            yield row


# Registrations per worker's share of a parallel CSV export (a smaller store is exported in one process).
EXPORT_SPAN = 5_000


@dataclass(slots=True)
class _Tally:
    """What an export wrote, for its provenance: how many rows, and the taxonomy versions they carry."""

    rows: int = 0
    versions: set[str] = field(default_factory=set)

    def add(self, row: Mapping[str, Any]) -> None:
        self.rows += 1
        if row["taxonomy_version"] is not None:
            self.versions.add(str(row["taxonomy_version"]))

    def merge(self, other: _Tally) -> None:
        self.rows += other.rows
        self.versions |= other.versions


def _csv_of_span(
    work: tuple[str, TrialFilter, tuple[str, str], dict[str, tuple[query.Registration, ...]]],
) -> tuple[str, _Tally]:
    """In a worker process: the CSV rows (no header) of the trials in one span of registration IDs, and
    their tally."""
    from tracker.workers import child_engine

    url, trial_filter, span, registrations = work
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    tally = _Tally()
    for row in detailed_trial_rows(child_engine(url), trial_filter, span, registrations):
        tally.add(row)
        writer.writerow(export_row(row, include_comparators=trial_filter.include_comparators))
    return buffer.getvalue(), tally


# --- workbook -----------------------------------------------------------------------------------


def _xlsx_value(value: object) -> object:
    """A cell value for the workbook: numbers stay numbers, everything else the CSV's text, or empty."""
    numpy = _numpy()
    if isinstance(value, bool) or (numpy is not None and isinstance(value, numpy.bool_)):
        return format_cell(value)
    if isinstance(value, int) or (numpy is not None and isinstance(value, numpy.integer)):
        return int(value)  # type: ignore[arg-type]
    is_float = isinstance(value, float) or (numpy is not None and isinstance(value, numpy.floating))
    if is_float and not math.isnan(value):  # type: ignore[arg-type]
        return float(value)  # type: ignore[arg-type]
    text = format_cell(value)
    return text or None


def _append(sheet: Any, values: Sequence[object]) -> None:
    """Append one row; text is kept as text (never read as a formula) and stripped of the control
    characters the .xlsx format cannot hold. Text cells are made here and typed before they are written
    (the sheets are write-only: rows stream to the file, none is kept to be found again)."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    row: list[object] = []
    for value in values:
        if isinstance(value, str):
            cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
            cell.data_type = "s"
            row.append(cell)
        else:
            row.append(value)
    sheet.append(row)


def _header(sheet: Any, names: Sequence[str]) -> None:
    """The bold header row, kept in view (set before any row is written: a write-only sheet's view is
    written with its first row)."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    cells = []
    for name in names:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        cells.append(cell)
    sheet.append(cells)


def glossary_rows() -> list[tuple[str, str, str]]:
    """(sheet or taxonomy dimension, column or key, meaning): every column and every taxonomy key."""
    rows = [("Trials", column.name, column.description) for column in EXPORT_COLUMNS]
    rows += [("Outcomes", name, text) for name, text in OUTCOME_SHEET_COLUMNS]
    rows += [("Arms", name, text) for name, text in ARM_SHEET_COLUMNS]
    taxonomy = load_taxonomy()
    for dimension in ("relevance", "mechanism", "phenotype", "endpoint"):
        for item in taxonomy.keys(dimension):  # type: ignore[arg-type]
            family = f" (family: {item.family})" if item.family else ""
            typical = f". Typical measures: {item.description}" if item.description else ""
            rows.append((f"{dimension} key", item.key, item.label + family + typical))
    for group in taxonomy.family_groups("endpoint"):
        members = ", ".join(group.members)
        rows.append(("endpoint family", group.key, f"{group.label}: {members} (--primary-endpoint)"))
    return rows


def provenance_rows(provenance: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The sidecar as (field, value) rows; nested values as compact JSON."""
    return [
        (name, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        for name, value in provenance.items()
    ]


def frame_to_xlsx(
    frame: pd.DataFrame,
    tables: query.DetailTables,
    provenance: Mapping[str, Any],
    *,
    include_comparators: bool = False,
    outcome_endpoints: Mapping[query.OutcomeRef, Sequence[str]] | None = None,
) -> bytes:
    """The workbook of a trial frame with `query.with_details` columns (the dashboard's download)."""
    return rows_to_xlsx(
        frame.to_dict("records"),
        tables,
        provenance,
        include_comparators=include_comparators,
        outcome_endpoints=outcome_endpoints,
    )


def rows_to_xlsx(
    rows: Sequence[Mapping[str, Any]],
    tables: query.DetailTables,
    provenance: Mapping[str, Any],
    *,
    include_comparators: bool = False,
    outcome_endpoints: Mapping[query.OutcomeRef, Sequence[str]] | None = None,
) -> bytes:
    """A workbook with sheets Trials (the CSV's columns), Outcomes (one row per measure, with its endpoint
    keys from `outcome_endpoints`, see `query.outcome_endpoint_keys`), Arms, Glossary and Provenance, for
    the trial rows given (with their registry details)."""
    keys_of = outcome_endpoints or {}
    from openpyxl import Workbook

    ids = {row["registration_id"] for row in rows}
    workbook = Workbook(write_only=True)
    trials = workbook.create_sheet("Trials")
    _header(trials, EXPORT_HEADER)
    for row in rows:
        counted = counted_row(row, include_comparators=include_comparators)
        _append(trials, [_xlsx_value(column.value(counted)) for column in EXPORT_COLUMNS])

    outcomes = workbook.create_sheet("Outcomes")
    _header(outcomes, [name for name, _ in OUTCOME_SHEET_COLUMNS])
    for item in tables.outcomes[tables.outcomes["registration_id"].isin(ids)].itertuples(index=False):
        values = (
            item.registration_id,
            item.role,
            int(item.position) + 1,
            item.measure,
            item.time_frame,
            item.description,
            tuple(keys_of.get((item.registration_id, item.role, int(item.position)), ())),
        )
        _append(outcomes, [_xlsx_value(v) for v in values])

    arms = workbook.create_sheet("Arms")
    _header(arms, [name for name, _ in ARM_SHEET_COLUMNS])
    for item in tables.arms[tables.arms["registration_id"].isin(ids)].itertuples(index=False):
        values = (
            item.registration_id,
            int(item.position) + 1,
            item.label,
            item.type,
            item.intervention_names,
            item.description,
        )
        _append(arms, [_xlsx_value(v) for v in values])

    glossary = workbook.create_sheet("Glossary")
    _header(glossary, ["sheet", "name", "meaning"])
    for values in glossary_rows():
        _append(glossary, values)

    sheet = workbook.create_sheet("Provenance")
    _header(sheet, ["field", "value"])
    for values in provenance_rows(provenance):
        _append(sheet, values)

    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
