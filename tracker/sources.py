"""`tracker import`: raw API v2 studies from files, landed through the same `store.ingest_page` as a sync.

Accepted sources:
- a directory of `.json` files (searched recursively, in name order);
- a `.zip` of `.json` files (the registry's bulk download);
- JSON Lines, one study per line, optionally gzip-compressed (`.jsonl`, `.jsonl.gz`, `.ndjson`).

A `.json` file may hold one study, a list of studies, or a `/studies` page (`{"studies": [...]}`).
A `.json` file that is not JSON stops the import with its name and position; the chunks landed before it
stay. A JSON Lines line that cannot be decoded (bad UTF-8, a lone surrogate, nesting past orjson's limit)
is rejected alone, by line number, like a record that cannot be parsed.

An import holds the database's "ingest" lease, like a sync (`tracker.locks`).
"""

from __future__ import annotations

import gzip
import logging
import time
import zipfile
from collections.abc import Callable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from tracker import store
from tracker.db.session import batched
from tracker.errors import ConfigError, TrackerError
from tracker.locks import INGEST, Lease
from tracker.sync import FreshPage, ProgressCallback, SyncResult, classified_pages, finish_ingest

logger = logging.getLogger(__name__)

IMPORT_CHUNK = 1000
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")


def iter_raw_studies(path: Path) -> Iterator[Any]:
    """Every raw study in `path` (directory, .zip, .json, or JSON Lines optionally gzip-compressed)."""
    if not path.exists():
        raise ConfigError(f"no such file or directory: {path}")
    name = path.name.lower()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _is_json_name(p.name.lower()))
        if not files:
            raise ConfigError(f"no .json or .jsonl files in {path}")
        for file in files:
            yield from iter_raw_studies(file)
    elif name.endswith(".zip"):
        yield from _iter_zip(path)
    elif name.endswith(JSONL_SUFFIXES):
        yield from _iter_jsonl(path)
    elif name.endswith(".json"):
        yield from _studies_in(_load_json(_read_file(path), str(path)), str(path))
    else:
        raise ConfigError(f"cannot import {path}: expected a directory, .zip, .json, .jsonl or .jsonl.gz")


def _is_json_name(name: str) -> bool:
    return name.endswith(".json") or name.endswith(JSONL_SUFFIXES)


def _iter_zip(path: Path) -> Iterator[Any]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ConfigError(f"cannot read zip archive {path}: {exc}") from None
    with archive:
        members = sorted(
            info.filename
            for info in archive.infolist()
            if not info.is_dir() and info.filename.lower().endswith(".json")
        )
        if not members:
            raise ConfigError(f"no .json files in {path}")
        for member in members:
            where = f"{path}:{member}"
            yield from _studies_in(_load_json(_read_member(archive, member, where), where), where)


def _read_member(archive: zipfile.ZipFile, member: str, where: str) -> bytes:
    # A damaged, encrypted or exotically compressed member is the file's fault, not a crash of ours.
    try:
        return archive.read(member)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as exc:
        raise ConfigError(f"cannot read {where}: {exc}") from None


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def _iter_jsonl(path: Path) -> Iterator[Any]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield _decode_line(line, f"{path} line {number}")
    except (OSError, EOFError) as exc:  # gzip errors are OSErrors
        raise ConfigError(f"cannot read {path}: {exc}") from None


def _decode_line(line: bytes, where: str) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return store.Unreadable(f"{where}: not valid JSON ({exc})")


def _load_json(content: bytes, where: str) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc})") from None


def _studies_in(document: Any, where: str) -> Iterator[Any]:
    if isinstance(document, list):
        yield from document
    elif isinstance(document, dict) and isinstance(document.get("studies"), list):
        yield from document["studies"]
    else:
        yield document  # one study; the store rejects it if it is not one


def import_studies(
    engine: Engine,
    path: Path,
    *,
    chunk_size: int = IMPORT_CHUNK,
    progress: ProgressCallback | None = None,
    classify: bool = True,
    classify_progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> SyncResult:
    """Import raw studies from `path` in chunks of `chunk_size`, each in its own transaction; with
    `workers` > 1 and a full first chunk, worker processes parse and classify the chunks ahead.

    Returns the result (outcome "partial" when records were rejected). A file error fails the run loudly.
    """
    started = time.monotonic()
    chunks = batched(iter_raw_studies(path), chunk_size)
    first = next(chunks, None)  # a missing or unreadable source fails before a run is recorded
    if first is None:
        raise ConfigError(f"no studies in {path}")
    with Lease(engine, INGEST, purpose="import"):
        run_id = store.begin_run(engine, mode="import", query=None, source=str(path), data_timestamp=None)
        result = SyncResult(run_id=run_id, mode="import")
        # A full first chunk means more follow: worker processes then parse and classify the chunks ahead
        # while each lands here, in file order, with its labels in its own transaction.
        pages = classified_pages(
            engine, _decoded(chain([first], chunks)), classify, workers, parallel_from=chunk_size
        )
        try:
            for chunk, served, on_landed in pages:
                result.add(store.ingest_page(engine, run_id, chunk, on_landed=on_landed))
                if progress is not None:
                    progress(result, served)
        except BaseException as exc:
            result.outcome = "failed"
            error = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
            try:
                store.finish_run(engine, run_id, outcome="failed", error=error)
            except TrackerError as finish_error:
                logger.error("could not record the failed run: %s", finish_error)
            raise
        result.outcome = "partial" if result.rejected else "success"
        finish_ingest(engine, result, classify=classify, classify_progress=classify_progress)
    result.elapsed = time.monotonic() - started
    return result


def _decoded(chunks: Iterator[list[Any]]) -> Iterator[FreshPage]:
    """Each chunk with its size."""
    for chunk in store.each_decoded(chunks):
        yield chunk, len(chunk)
