"""Registry identifiers, normalised so that registrations naming each other can be matched (pure).

Registrations name their twins in free text as often as in typed fields ("EudraCT No. 2019-001588-63",
"EU CT: 2024-510663-34-00", "nct 04494412"). An EU CT number (`YYYY-NNNNNN-NN-NN`) contains an
EudraCT-shaped prefix (`YYYY-NNNNNN-NN`), so the longer form is matched first and its span consumed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from tracker.ctgov.parse import StudyRecord

Scheme = Literal["nct", "euct", "eudract"]

_DASH = r"\s*[-‐‑‒–—]\s*"
_EUCT = re.compile(rf"(?<!\d)(\d{{4}}){_DASH}(\d{{6}}){_DASH}(\d{{2}}){_DASH}(\d{{2}})(?!\d)")
_EUDRACT = re.compile(rf"(?<!\d)(\d{{4}}){_DASH}(\d{{6}}){_DASH}(\d{{2}})(?![\d‐‑‒–—-])")
_NCT = re.compile(r"\bNCT\s*[-:]?\s*(\d{8})(?!\d)", re.IGNORECASE)
# Each registry's own ID scheme: a registration's own ID is an identifier it carries.
OWN_SCHEME: dict[str, Scheme] = {"ctgov": "nct", "ctis": "euct"}


class RegistryId(NamedTuple):
    scheme: Scheme
    value: str


def registry_ids_in(text: str | None) -> tuple[RegistryId, ...]:
    """Every NCT, EU CT and EudraCT number in `text`, normalised, in order of appearance, no repeats."""
    if not text:
        return ()
    found: list[tuple[int, RegistryId]] = []
    taken: list[tuple[int, int]] = []
    for match in _EUCT.finditer(text):
        found.append((match.start(), RegistryId("euct", "-".join(match.groups()))))
        taken.append(match.span())
    for match in _EUDRACT.finditer(text):
        if not any(start <= match.start() < end for start, end in taken):
            found.append((match.start(), RegistryId("eudract", "-".join(match.groups()))))
    found.extend((match.start(), RegistryId("nct", f"NCT{match.group(1)}")) for match in _NCT.finditer(text))
    return tuple(dict.fromkeys(item for _, item in sorted(found)))


def own_id(record: StudyRecord) -> RegistryId:
    return RegistryId(OWN_SCHEME.get(record.registry, "nct"), record.registration_id)


def carried_ids(record: StudyRecord) -> set[RegistryId]:
    """The registration's own ID plus every registry identifier its secondary IDs name."""
    carried = {own_id(record)}
    for secondary in record.secondary_ids:
        carried.update(registry_ids_in(secondary.id))
    return carried
