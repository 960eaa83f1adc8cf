"""Stored frames: a frame the query layer built, kept in `frame_snapshots` as Apache Parquet.

Building the trial frame is most of a dashboard process's cold start (seconds at 100,000 studies), and it
only changes when the data or the code that builds it does. A snapshot row carries the data version it was
built from and the frame format of the code that built it; a reader whose two match loads the Parquet
payload instead of building. `tracker.query.load_trial_frame_snapshot` is the door; this module only
converts and stores.

Parquet, never pickle: whoever can write a row of this table must not be able to run code in the process
that reads it. Loading gives back exactly the frame that was stored (`pandas.testing.assert_frame_equal`):
Arrow list columns become tuples again, and equal tuples and strings are shared between rows, which keeps
a loaded frame smaller than a built one. Anything unreadable is a miss (the caller rebuilds), not an error.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, delete, select

from tracker.db.models import FrameSnapshot
from tracker.db.session import transaction, utcnow

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

# Rows per Parquet row group when writing: the Arrow copy of the frame is made one slice at a time, so
# storing a snapshot adds a slice's worth of memory to the built frame, not a second frame.
ROW_GROUP_ROWS = 20_000


def version_text(version: Iterable[Any]) -> str:
    """A data version (`tracker.query.data_version`: numbers, datetimes, None) as stable JSON text."""
    return orjson.dumps(list(version), default=str).decode()


def frame_format(columns: Sequence[str], modules: Sequence[str]) -> int:
    """A number that changes whenever the stored form of a frame may: its column names, the source of the
    modules that build and convert it (a changed dtype or derivation is a changed file), and the pandas and
    pyarrow versions that infer and convert its types. 31 bits, so it fits any SQL INTEGER."""
    import pandas as pd
    import pyarrow as pa

    digest = hashlib.sha256()
    digest.update(orjson.dumps([list(columns), pd.__version__, pa.__version__]))
    for name in modules:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:  # a module shipped without its source keeps the columns and versions in the hash
            with open(path, "rb") as source:
                digest.update(source.read())
    return int.from_bytes(digest.digest()[:4], "big") & 0x7FFF_FFFF


def frame_to_parquet(frame: pd.DataFrame) -> memoryview:
    """The frame as Parquet, its pandas dtypes in the file's metadata; row labels not kept
    (the frames stored have a plain RangeIndex)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    # One schema for every slice: a slice where a column is all None would otherwise infer another type.
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    # Dictionary-encoded but not compressed: decompressing (zstd, snappy) leaves its buffers in Arrow's
    # allocator, and the loaded frame then held 190 rather than 120 MB at 100,000 trials; the payload is
    # 50 rather than 12 MB, which the database stores without noticing.
    with pq.ParquetWriter(sink, schema, compression="none") as writer:
        for start in range(0, max(len(frame), 1), ROW_GROUP_ROWS):
            piece = frame.iloc[start : start + ROW_GROUP_ROWS]
            writer.write_table(pa.Table.from_pandas(piece, schema=schema, preserve_index=False))
    pa.default_memory_pool().release_unused()  # the slices' Arrow copies
    # a view of Arrow's buffer, not a copy: both drivers bind a buffer as a blob
    return memoryview(sink.getvalue())


def frame_from_parquet(payload: bytes, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The frame `frame_to_parquet` stored, equal to it (only `columns`, in that order, when given);
    raises on anything unreadable. Read one column at a time, each Arrow column freed once converted, so
    memory peaks at the frame plus one column."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(pa.BufferReader(payload))
    schema = parquet.schema_arrow
    stored_types = {
        column["name"]: column["numpy_type"] for column in (schema.pandas_metadata or {}).get("columns", ())
    }
    shared: dict[Any, Any] = {}  # equal strings and tuples, one object each, across every list column
    converted: dict[str, pd.Series] = {}
    for name in schema.names if columns is None else columns:
        table = parquet.read(columns=[name], use_pandas_metadata=True)
        if pa.types.is_list(schema.field(name).type):
            values = _tuples(table.column(0), shared)
            del table
            converted[name] = pd.Series(values, dtype=object, name=name)
        else:
            series = table.to_pandas(self_destruct=True)[name]
            del table
            converted[name] = _stored_dtype(series, stored_types.get(name))
    shared.clear()
    frame = pd.DataFrame(converted, copy=False)
    converted.clear()
    pa.default_memory_pool().release_unused()  # the read's scratch buffers, back to the system
    return frame


def _stored_dtype(series: pd.Series, stored: str | None) -> pd.Series:
    """Parquet keeps no second-resolution timestamps: give a datetime column back the unit it was built in."""
    if stored and stored.startswith("datetime64") and str(series.dtype) != stored:
        return series.astype(stored)
    return series


def _tuples(column: pa.ChunkedArray, shared: dict[Any, Any]) -> np.ndarray:
    """An Arrow list column as an object array of one tuple per row (None for a null list); equal tuples
    and equal strings are one object each (`shared` spans every column)."""
    import numpy as np

    rows = [_chunk_tuples(chunk, shared) for chunk in column.chunks]
    return np.concatenate(rows) if rows else np.empty(0, dtype=object)


# Joins a list's strings into one key per row; lists holding it in a string take the general path.
_SEPARATOR = "\x1f"


def _chunk_tuples(chunk: pa.ListArray, shared: dict[Any, Any]) -> np.ndarray:
    """Most rows repeat a few lists (phases, countries, mechanism keys), so each distinct list is made a
    tuple once: a row's strings joined are its key, the keys are dictionary-encoded by Arrow, and the rows
    take their tuple by index. Exact: an empty list has no key (a list of one "" has the key ""), and a
    chunk whose strings contain the separator, or that is not a list of strings, is converted row by row."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    values = chunk.flatten()
    if chunk.null_count == 0 and len(values) == 0:  # every list empty (a facet no trial has yet)
        result = np.empty(len(chunk), dtype=object)
        result.fill(())
        return result
    if (
        chunk.null_count
        or not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type))
        or pc.any(pc.match_substring(values, _SEPARATOR)).as_py()
    ):
        return _rowwise_tuples(chunk, shared)
    empty = pc.equal(pc.list_value_length(chunk), 0)
    keys = pc.if_else(empty, pa.scalar(None, pa.string()), pc.binary_join(chunk, _SEPARATOR))
    encoded = keys.dictionary_encode()
    intern = shared.setdefault
    distinct = np.empty(len(encoded.dictionary) + 1, dtype=object)
    for index, key in enumerate(encoded.dictionary.to_pylist()):
        items = tuple(intern(item, item) for item in key.split(_SEPARATOR))
        distinct[index] = intern(items, items)
    distinct[-1] = ()  # what an empty list's missing key points to
    positions = encoded.indices.fill_null(len(distinct) - 1).to_numpy(zero_copy_only=False)
    return distinct[positions]


def _rowwise_tuples(chunk: pa.ListArray, shared: dict[Any, Any]) -> np.ndarray:
    import numpy as np

    intern = shared.setdefault
    offsets = chunk.offsets.to_pylist()
    base = offsets[0]  # a sliced chunk's offsets start where its values do
    values = [intern(value, value) for value in chunk.flatten().to_pylist()]
    valid = chunk.is_valid().to_pylist()
    result = np.empty(len(chunk), dtype=object)
    for index, (start, end) in enumerate(pairwise(offsets)):
        if valid[index]:
            items = tuple(values[start - base : end - base])
            result[index] = intern(items, items)
    return result


def read_snapshot(
    engine: Engine, name: str, version: str, frame_format: int, columns: Sequence[str] | None = None
) -> pd.DataFrame | None:
    """The stored frame `name` (`columns` of it, when given) if it was built from data version `version`
    in format `frame_format`; None when there is none, it is stale, or its payload cannot be read
    (logged: it will be rebuilt)."""
    with transaction(engine) as session:
        payload = session.scalar(
            select(FrameSnapshot.payload).where(
                FrameSnapshot.name == name,
                FrameSnapshot.data_version == version,
                FrameSnapshot.frame_format == frame_format,
            )
        )
    if payload is None:
        return None
    try:
        return frame_from_parquet(payload, columns)
    except Exception as exc:  # a corrupt or foreign payload is a miss, whatever pyarrow raises for it
        log.warning("stored %s is unreadable (%s: %s); rebuilding it", name, type(exc).__name__, exc)
        return None


def write_snapshot(engine: Engine, name: str, frame: pd.DataFrame, version: str, frame_format: int) -> int:
    """Store `frame` as snapshot `name`, replacing any earlier one; returns the payload's size in bytes."""
    payload = frame_to_parquet(frame)
    with transaction(engine) as session:
        # delete + insert rather than a merge, which would read the old payload back first
        session.execute(delete(FrameSnapshot).where(FrameSnapshot.name == name))
        session.add(
            FrameSnapshot(
                name=name,
                data_version=version,
                frame_format=frame_format,
                created_at=utcnow(),
                payload=payload,
            )
        )
    return len(payload)


def stored_version(engine: Engine, name: str) -> tuple[str, int] | None:
    """(data version, frame format) of the stored frame `name`, without reading its payload."""
    with transaction(engine) as session:
        row = session.execute(
            select(FrameSnapshot.data_version, FrameSnapshot.frame_format).where(FrameSnapshot.name == name)
        ).first()
    return None if row is None else (row[0], row[1])
