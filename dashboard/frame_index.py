"""Multi-value columns of the whole trial frame, flattened once per data version.

A filter change must not re-explode 100,000 tuples of mechanisms, phenotypes and countries. `FrameIndex`
keeps, for every (trial, key) pair, the trial's row position and the key's integer code; counting the
keys of any filtered subset is then one boolean lookup and `np.bincount`. Pure: no Streamlit, no database.

A subset is recognised by its index labels, which must be row positions in the indexed frame (the trial
frame has a RangeIndex and `apply_filter` keeps the labels of the rows it keeps).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
import pandas as pd

from dashboard import labels
from tracker.filters import INVESTIGATIONAL_MECHANISMS, PRIMARY_ENDPOINTS


@dataclass(frozen=True, slots=True)
class KeyIndex:
    """One tuple column flattened: `rows[i]` is the trial of pair i, `keys[codes[i]]` its key."""

    rows: np.ndarray
    codes: np.ndarray
    keys: tuple[str, ...]

    @classmethod
    def of(cls, column: pd.Series) -> KeyIndex:
        lengths = np.fromiter((len(keys) for keys in column), dtype=np.int64, count=len(column))
        flat = np.fromiter(chain.from_iterable(column), dtype=object, count=int(lengths.sum()))
        codes, uniques = pd.factorize(flat) if len(flat) else (np.array([], dtype=np.int64), [])
        return cls(np.repeat(np.arange(len(column)), lengths), codes, tuple(str(key) for key in uniques))

    def counts(self, selected: np.ndarray) -> pd.Series:
        """Selected trials per key (keys with none left out), largest first."""
        counts = np.bincount(self.codes[selected[self.rows]], minlength=len(self.keys))
        series = pd.Series(counts, index=list(self.keys), dtype="int64")
        return series[series > 0].sort_values(ascending=False, kind="stable")


@dataclass(frozen=True, slots=True)
class FrameIndex:
    """The flattened label and country columns of one trial frame, plus each trial's phase label code."""

    size: int
    mechanisms: KeyIndex
    phenotypes: KeyIndex
    countries: KeyIndex
    primary_endpoint_families: KeyIndex  # the families of each trial's primary endpoint keys
    pair_rows: np.ndarray  # one entry per (trial, mechanism, phenotype)
    pair_mechanisms: np.ndarray
    pair_phenotypes: np.ndarray
    phase_codes: np.ndarray  # per trial: index into `phase_labels`
    phase_labels: tuple[str, ...]

    @classmethod
    def build(cls, frame: pd.DataFrame, mechanism_column: str = INVESTIGATIONAL_MECHANISMS) -> FrameIndex:
        """Index `frame`, counting the mechanism keys of `mechanism_column` (`TrialFilter.mechanism_column`:
        the investigational ones by default)."""
        mechanisms = KeyIndex.of(frame[mechanism_column])
        phenotypes = KeyIndex.of(frame["phenotypes"])
        pairs = pd.DataFrame({"row": mechanisms.rows, "mechanism": mechanisms.codes}).merge(
            pd.DataFrame({"row": phenotypes.rows, "phenotype": phenotypes.codes}), on="row"
        )
        phase_codes, phase_labels = pd.factorize(phase_texts(frame["highest_phase"]))
        return cls(
            size=len(frame),
            mechanisms=mechanisms,
            phenotypes=phenotypes,
            countries=KeyIndex.of(frame["countries"]),
            primary_endpoint_families=KeyIndex.of(primary_families(frame)),
            pair_rows=pairs["row"].to_numpy(),
            pair_mechanisms=pairs["mechanism"].to_numpy(),
            pair_phenotypes=pairs["phenotype"].to_numpy(),
            phase_codes=np.asarray(phase_codes),
            phase_labels=tuple(str(label) for label in phase_labels),
        )

    def selection(self, subset: pd.DataFrame) -> np.ndarray:
        """A boolean mask over the indexed frame's rows: True for the rows of `subset`."""
        selected = np.zeros(self.size, dtype=bool)
        selected[subset.index.to_numpy(dtype=np.int64)] = True
        return selected


def phase_texts(highest_phases: pd.Series) -> np.ndarray:
    """Each trial's phase label (`labels.phase_label`), worked out once per distinct phase."""
    codes, uniques = pd.factorize(highest_phases, use_na_sentinel=False)
    texts = np.array([labels.phase_label(phase) for phase in uniques], dtype=object)
    return texts[codes]


def primary_families(frame: pd.DataFrame) -> pd.Series:
    """Per trial, the endpoint families of its primary endpoint keys, each once, in key order (worked out
    once per distinct tuple of keys: most trials share theirs)."""
    family_of = labels.endpoint_family_of()
    keys = frame[PRIMARY_ENDPOINTS] if PRIMARY_ENDPOINTS in frame else pd.Series([()] * len(frame))
    families: dict[tuple[str, ...] | None, tuple[str, ...]] = {}
    for found in dict.fromkeys(keys):
        families[found] = tuple(dict.fromkeys(family_of[k] for k in found or () if k in family_of))
    return pd.Series([families[found] for found in keys], index=frame.index, dtype=object)


def index_for(frame: pd.DataFrame, index: FrameIndex | None) -> tuple[FrameIndex, np.ndarray, np.ndarray]:
    """(index, selected rows as a mask, the positions of `frame`'s rows in the index): with the given index
    (built from the frame `frame` was filtered from), or with one built from `frame` itself."""
    if index is None:
        own = frame.reset_index(drop=True)
        return FrameIndex.build(own), np.ones(len(own), dtype=bool), np.arange(len(own))
    return index, index.selection(frame), frame.index.to_numpy(dtype=np.int64)
