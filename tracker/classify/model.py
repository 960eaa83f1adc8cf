"""What a classification is: labels with their evidence (which field, which words)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["investigational", "comparator"]
EndpointRole = Literal["primary", "secondary", "other"]


@dataclass(frozen=True, slots=True)
class Evidence:
    field: str  # e.g. "conditions", "official_title", "interventions[2].name"
    text: str  # the words that matched

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "text": self.text}


@dataclass(frozen=True, slots=True)
class RelevanceLabel:
    key: str  # ms / ms_plus / not_ms
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class MechanismLabel:
    key: str
    role: Role | None  # armGroups (EXPERIMENTAL / ACTIVE_COMPARATOR), else titles and intervention words
    evidence: tuple[Evidence, ...]
    role_evidence: tuple[Evidence, ...] = ()  # which field and words gave the role


@dataclass(frozen=True, slots=True)
class PhenotypeLabel:
    key: str
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class EndpointLabel:
    """An endpoint key of the trial in one role (primary or secondary), with the measures' words."""

    key: str
    role: str  # primary / secondary
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class OutcomeEndpoints:
    """The endpoint keys of one outcome measure; evidence[i] is why keys[i]."""

    role: str  # primary / secondary / other
    order: int
    measure: str
    keys: tuple[str, ...]
    evidence: tuple[Evidence, ...]

    def evidence_for(self, key: str) -> tuple[Evidence, ...]:
        return tuple(item for k, item in zip(self.keys, self.evidence, strict=True) if k == key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "order": self.order,
            "measure": self.measure,
            "keys": list(self.keys),
            "evidence": [item.to_dict() for item in self.evidence],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutcomeEndpoints:
        return cls(
            data["role"],
            int(data["order"]),
            data["measure"],
            tuple(data["keys"]),
            tuple(Evidence(item["field"], item["text"]) for item in data["evidence"]),
        )


@dataclass(frozen=True, slots=True)
class Facet:
    """One eligibility facet: a name (edss_min, sex, prior_treatment...), its value and why."""

    name: str
    value: str
    evidence: tuple[Evidence, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "evidence": [e.to_dict() for e in self.evidence]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Facet:
        return cls(
            data["name"], data["value"], tuple(Evidence(e["field"], e["text"]) for e in data["evidence"])
        )


@dataclass(frozen=True, slots=True)
class ClassificationResult:
    relevance: RelevanceLabel
    mechanisms: tuple[MechanismLabel, ...]
    phenotypes: tuple[PhenotypeLabel, ...]
    multi_disease: bool
    endpoints: tuple[EndpointLabel, ...] = ()  # the trial's union per role
    outcome_endpoints: tuple[OutcomeEndpoints, ...] = ()  # per measure, "other" outcomes included
    eligibility: tuple[Facet, ...] = ()

    def endpoint_keys(self, role: str) -> tuple[str, ...]:
        return tuple(label.key for label in self.endpoints if label.role == role)

    @property
    def mechanism_keys(self) -> tuple[str, ...]:
        return tuple(label.key for label in self.mechanisms)

    @property
    def phenotype_keys(self) -> tuple[str, ...]:
        return tuple(label.key for label in self.phenotypes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored in `classifications.result`."""
        return {
            "relevance": {
                "key": self.relevance.key,
                "evidence": [item.to_dict() for item in self.relevance.evidence],
            },
            "mechanisms": [
                {
                    "key": m.key,
                    "role": m.role,
                    "evidence": [item.to_dict() for item in m.evidence],
                    "role_evidence": [item.to_dict() for item in m.role_evidence],
                }
                for m in self.mechanisms
            ],
            "phenotypes": [
                {"key": p.key, "evidence": [item.to_dict() for item in p.evidence]} for p in self.phenotypes
            ],
            "multi_disease": self.multi_disease,
            "endpoints": [
                {"key": e.key, "role": e.role, "evidence": [item.to_dict() for item in e.evidence]}
                for e in self.endpoints
            ],
            "outcome_endpoints": [item.to_dict() for item in self.outcome_endpoints],
            "eligibility": [facet.to_dict() for facet in self.eligibility],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassificationResult:
        def evidence(items: list[dict[str, str]]) -> tuple[Evidence, ...]:
            return tuple(Evidence(item["field"], item["text"]) for item in items)

        return cls(
            relevance=RelevanceLabel(data["relevance"]["key"], evidence(data["relevance"]["evidence"])),
            mechanisms=tuple(
                MechanismLabel(
                    m["key"], m.get("role"), evidence(m["evidence"]), evidence(m.get("role_evidence", []))
                )
                for m in data["mechanisms"]
            ),
            phenotypes=tuple(PhenotypeLabel(p["key"], evidence(p["evidence"])) for p in data["phenotypes"]),
            multi_disease=bool(data["multi_disease"]),
            endpoints=tuple(
                EndpointLabel(e["key"], e["role"], evidence(e["evidence"])) for e in data.get("endpoints", ())
            ),
            outcome_endpoints=tuple(
                OutcomeEndpoints.from_dict(item) for item in data.get("outcome_endpoints", ())
            ),
            eligibility=tuple(Facet.from_dict(item) for item in data.get("eligibility", ())),
        )
