"""What a classification is: labels with their evidence (which field, which words)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["investigational", "comparator"]


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
class ClassificationResult:
    relevance: RelevanceLabel
    mechanisms: tuple[MechanismLabel, ...]
    phenotypes: tuple[PhenotypeLabel, ...]
    multi_disease: bool

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
        )
