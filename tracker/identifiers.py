"""Registry identifiers: find and normalise them, so registrations of one trial can be linked (pure).

Three schemes (ctis API_NOTES §5):

- `nct`: ClinicalTrials.gov, `NCT` and 8 digits (`NCT04494412`);
- `euct`: an EU CT number from CTIS, `YYYY-NNNNNN-NN-NN` (`2024-510663-34-00`);
- `eudract`: a EudraCT number, `YYYY-NNNNNN-NN` (`2019-001588-63`).

An EU CT number *contains* a EudraCT-shaped prefix, so the longer form is matched first: otherwise
`2024-510663-34-00` would also be read as the EudraCT number `2024-510663-34`. Registries and sponsors
write these numbers by hand: lower case, spaces around the dashes, en-dashes or non-breaking hyphens,
and prefixes such as "EudraCT No.", "EU CT:" or "EudraCT2019-…" glued on. Values come back in one
canonical form (upper-case `NCT`, ASCII hyphens, no spaces), so equal identifiers compare equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from tracker.ctgov.parse import StudyRecord

Scheme = Literal["nct", "euct", "eudract"]

# Hyphen-minus and the dashes that word processors and PDF exports put in its place.
_DASH = "[-\u2010\u2011\u2012\u2013\u2014\u2212\ufe63\uff0d]"
# Between the digit groups: a dash, with spaces around it or not. Spaces alone are not accepted: "EudraCT
# 2019-001588-63 12 sites" would turn into an EU CT number.
_SEP = rf"[^\S\n]*{_DASH}[^\S\n]*"
# Not glued to more digits on either side (a letter is fine: "EudraCT2019-001588-63").
_YEAR = r"(?<!\d)(20\d{2})"
_IDENTIFIER = re.compile(
    rf"(?P<euct>{_YEAR}{_SEP}(\d{{6}}){_SEP}(\d{{2}}){_SEP}(\d{{2}})(?!\d))"
    rf"|(?P<eudract>{_YEAR}{_SEP}(\d{{6}}){_SEP}(\d{{2}})(?!\d))"
    rf"|(?P<nct>(?<![A-Za-z0-9])NCT[^\S\n]*(?:{_DASH}|[:#])?[^\S\n]*(\d{{8}})(?!\d))",
    re.IGNORECASE,
)
_SCHEMES: tuple[Scheme, ...] = ("euct", "eudract", "nct")
# Which registry a record's own ID comes from.
OWN_SCHEME: dict[str, Scheme] = {"ctgov": "nct", "ctis": "euct"}


@dataclass(frozen=True, slots=True, order=True)
class RegistryId:
    """One identifier in canonical form; two spellings of the same number compare equal."""

    scheme: Scheme
    value: str

    def __str__(self) -> str:
        return self.value


def registry_ids_in(text: str | None) -> tuple[RegistryId, ...]:
    """Every identifier in `text`, in order of appearance, each once."""
    if not text:
        return ()
    found: dict[RegistryId, None] = {}
    for match in _IDENTIFIER.finditer(text):
        found.setdefault(_from_match(match), None)
    return tuple(found)


def registry_id(text: str | None) -> RegistryId | None:
    """The one identifier `text` consists of (prefixes allowed), or None when it holds none or several."""
    ids = registry_ids_in(text)
    return ids[0] if len(ids) == 1 else None


def own_id(record: StudyRecord) -> RegistryId:
    """The record's own registration ID. ValueError when it is not of its registry's shape."""
    found = registry_id(record.registration_id)
    expected = OWN_SCHEME.get(record.registry)
    if found is None or found.scheme != expected:
        raise ValueError(f"{record.registration_id!r} is not a {record.registry} registration ID")
    return found


def carried_ids(record: StudyRecord) -> set[RegistryId]:
    """The record's own ID and every identifier its secondary IDs carry, whatever their declared type.

    The declared type is not trusted: ClinicalTrials.gov records file EU CT numbers as EUDRACT_NUMBER or
    OTHER, and write them inside free text ("EudraCT No. 2019-001588-63"); the shape decides.
    """
    ids = {own_id(record)}
    for secondary in record.secondary_ids:
        ids.update(registry_ids_in(secondary.id))
        ids.update(registry_ids_in(secondary.domain))
    return ids


def _from_match(match: re.Match[str]) -> RegistryId:
    scheme = next(name for name in _SCHEMES if match.group(name))
    # The digit groups of the matched alternative, in order (the named group itself comes first).
    start = match.re.groupindex[scheme]
    groups = [group for group in match.groups()[start:] if group is not None]
    if scheme == "nct":
        return RegistryId("nct", f"NCT{groups[0]}")
    count = 4 if scheme == "euct" else 3
    return RegistryId(scheme, "-".join(groups[:count]))
