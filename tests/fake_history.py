"""The registry's internal history API, as the fake server (`fake_ctgov.FakeCtgov`) serves it under /api/int.

A `FakeHistory` is a list of versions, each a v2-shaped study as it stood then (HISTORY_NOTES §1-§2):

- `GET /api/int/studies/{NCT}?history=true` → the current (last) version with `history.changes` (every
  version with its date, status and the module labels that changed), `originalData` (first version's
  primary outcomes and enrolment) and `lastUpdateVersions`;
- `GET /api/int/studies/{NCT}/history/{v}` → {"studyVersion": v, "study": …}.

Text fields are served as HTML, as the real API does (`as_html`). Scriptable: versions that answer 404
(`missing`), versions left out of the index (`index_gaps`), a drifted shape (`drift`), and versions posted
while a client walks the history (`post_later` after `post_after` version requests).
"""

from __future__ import annotations

import copy
import html
from dataclasses import dataclass, field
from typing import Any

import orjson

# protocolSection module → the label the registry's "History of Changes" gives it.
MODULE_LABELS = {
    "identificationModule": "Study Identification",
    "statusModule": "Study Status",
    "sponsorCollaboratorsModule": "Sponsor/Collaborators",
    "oversightModule": "Oversight",
    "descriptionModule": "Study Description",
    "conditionsModule": "Conditions",
    "designModule": "Study Design",
    "armsInterventionsModule": "Arms and Interventions",
    "outcomesModule": "Outcome Measures",
    "eligibilityModule": "Eligibility",
    "contactsLocationsModule": "Contacts/Locations",
    "referencesModule": "References",
}


def as_html(text: str) -> str:
    """Plain text the way the internal API serves it: paragraphs in <p>, slashes as entities."""
    escaped = html.escape(text, quote=False).replace("/", "&#x2F;")
    return f"<p>{escaped}</p>"


@dataclass
class FakeVersion:
    study: dict[str, Any]
    date: str  # YYYY-MM-DD


@dataclass
class FakeHistory:
    versions: list[FakeVersion]
    missing: set[int] = field(default_factory=set)
    index_gaps: set[int] = field(default_factory=set)
    drift: str | None = None  # "index" or "version"
    post_later: list[FakeVersion] = field(default_factory=list)
    post_after: int = 0  # version requests served before `post_later` is posted
    version_requests: int = 0

    def note_version_request(self) -> None:
        self.version_requests += 1
        if self.post_later and self.version_requests >= self.post_after:
            self.versions.extend(self.post_later)
            self.post_later = []

    def index_body(self) -> bytes:
        changes = []
        for number, version in enumerate(self.versions):
            if number in self.index_gaps:
                continue
            previous = self.versions[number - 1].study if number else {}
            changes.append(
                {
                    "version": number,
                    "date": version.date,
                    "status": _status(version.study),
                    "moduleLabels": _changed_labels(previous, version.study) if number else [],
                }
            )
        first = self.versions[0].study
        first_design = _protocol(first).get("designModule", {})
        history: dict[str, Any] = {
            "changes": changes,
            "originalData": {
                "primaryOutcomes": _protocol(first).get("outcomesModule", {}).get("primaryOutcomes", []),
                "enrollmentInfo": first_design.get("enrollmentInfo"),
                "secondaryOutcomesSame": True,
            },
            "lastUpdateVersions": {
                "primaryOutcomes": self._last_change(("outcomesModule", "primaryOutcomes")),
                "enrollmentInfo": self._last_change(("designModule", "enrollmentInfo")),
            },
        }
        if self.drift == "index":
            history["versionChanges"] = history.pop("changes")  # a renamed field: the shape drifted
        body = {**self.versions[-1].study, "history": history, "topics": []}
        return orjson.dumps(body)

    def version_body(self, number: int) -> bytes | None:
        if number >= len(self.versions) or number in self.missing:
            return None
        if self.drift == "version":
            return orjson.dumps({"studyVersion": number, "studyRecord": self.versions[number].study})
        return orjson.dumps({"studyVersion": number, "study": self.versions[number].study})

    def _last_change(self, path: tuple[str, str]) -> int:
        last = 0
        for number in range(1, len(self.versions)):
            before = _protocol(self.versions[number - 1].study).get(path[0], {}).get(path[1])
            after = _protocol(self.versions[number].study).get(path[0], {}).get(path[1])
            if before != after:
                last = number
        return last


def _protocol(study: dict[str, Any]) -> dict[str, Any]:
    return study.get("protocolSection") or {}


def _status(study: dict[str, Any]) -> str | None:
    return _protocol(study).get("statusModule", {}).get("overallStatus")


def _changed_labels(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    old, new = _protocol(before), _protocol(after)
    return [label for key, label in MODULE_LABELS.items() if old.get(key) != new.get(key)]


def evolve(study: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of a v2 study with some fields changed (the next version of a registration).

    Keywords: status, pcd=(date, type), enrollment=(count, type), primary_outcomes=[measure, …] (served
    as HTML), has_results=date (results first posted), last_update=YYYY-MM-DD.
    """
    study = copy.deepcopy(study)
    protocol = study.setdefault("protocolSection", {})
    status = protocol.setdefault("statusModule", {})
    design = protocol.setdefault("designModule", {})
    if "status" in changes:
        status["overallStatus"] = changes["status"]
    if "pcd" in changes:
        day, kind = changes["pcd"]
        status["primaryCompletionDateStruct"] = {"date": day, "type": kind}
    if "enrollment" in changes:
        count, kind = changes["enrollment"]
        design["enrollmentInfo"] = {"count": count, "type": kind}
    if "primary_outcomes" in changes:
        protocol.setdefault("outcomesModule", {})["primaryOutcomes"] = [
            {"measure": measure, "timeFrame": "52 weeks"} for measure in changes["primary_outcomes"]
        ]
    if "has_results" in changes:
        study["hasResults"] = True
        status["resultsFirstPostDateStruct"] = {"date": changes["has_results"], "type": "ACTUAL"}
    if "last_update" in changes:
        status["lastUpdatePostDateStruct"] = {"date": changes["last_update"], "type": "ACTUAL"}
    return study
