"""The taxonomy (mechanism, phenotype, relevance and endpoint keys, labels, families), from versioned data.

Keys are stable identifiers used in the database, exports, URLs and digests; labels are what people see.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from tracker.errors import FilterError

Dimension = Literal["mechanism", "phenotype", "relevance", "endpoint"]


@dataclass(frozen=True, slots=True)
class TaxonomyKey:
    key: str
    label: str
    family: str | None = None
    description: str | None = None  # typical measures and words (endpoint keys)


@dataclass(frozen=True, slots=True)
class Family:
    """A family of keys (the endpoint family "Imaging"), under the key filters, links and flags take."""

    key: str  # "imaging", "symptoms_and_patient_reported"
    label: str  # as the taxonomy names it
    members: tuple[str, ...]  # its keys, in taxonomy order


def family_key(label: str) -> str:
    """ "Symptoms and patient-reported" → "symptoms_and_patient_reported". Derived from the taxonomy's
    family name, so renaming a family in the data renames its key too; no second list to keep in step."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


@dataclass(frozen=True, slots=True)
class Taxonomy:
    version: str
    mechanisms: tuple[TaxonomyKey, ...]
    phenotypes: tuple[TaxonomyKey, ...]
    relevance: tuple[TaxonomyKey, ...]
    endpoints: tuple[TaxonomyKey, ...] = ()

    def keys(self, dimension: Dimension) -> tuple[TaxonomyKey, ...]:
        return {
            "mechanism": self.mechanisms,
            "phenotype": self.phenotypes,
            "relevance": self.relevance,
            "endpoint": self.endpoints,
        }[dimension]

    def label(self, dimension: Dimension, key: str) -> str:
        for item in self.keys(dimension):
            if item.key == key:
                return item.label
        return key

    def families(self, dimension: Dimension = "mechanism") -> dict[str, tuple[str, ...]]:
        """Mechanism (or endpoint) keys grouped by family, in taxonomy order."""
        grouped: dict[str, list[str]] = {}
        for item in self.keys(dimension):
            grouped.setdefault(item.family or "Other", []).append(item.key)
        return {family: tuple(keys) for family, keys in grouped.items()}

    def family_groups(self, dimension: Dimension = "endpoint") -> tuple[Family, ...]:
        """The families of a dimension with their keys, in taxonomy order."""
        return tuple(
            Family(family_key(label), label, members) for label, members in self.families(dimension).items()
        )

    def validate(self, dimension: Dimension, keys: Iterable[str]) -> tuple[str, ...]:
        """Return the keys unchanged, or raise FilterError naming the unknown ones and the valid list."""
        keys = tuple(keys)
        valid = [item.key for item in self.keys(dimension)]
        unknown = [key for key in keys if key not in valid]
        if unknown:
            raise FilterError(
                f"unknown {dimension} key(s): {', '.join(unknown)}; valid keys: {', '.join(valid)}"
            )
        return keys


@cache
def load_taxonomy() -> Taxonomy:
    text = resources.files("tracker.classify").joinpath("data/taxonomy.json").read_text("utf-8")
    data = json.loads(text)

    def items(name: str) -> tuple[TaxonomyKey, ...]:
        return tuple(
            TaxonomyKey(d["key"], d["label"], d.get("family"), d.get("description")) for d in data[name]
        )

    return Taxonomy(
        data["version"], items("mechanisms"), items("phenotypes"), items("relevance"), items("endpoints")
    )
