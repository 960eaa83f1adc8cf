"""The literal gate in front of the classifier's regexes: the literals it derives are ones every match
holds, so a gated pattern answers exactly as its regex does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tracker.classify import rules
from tracker.classify.gate import GatedPattern, gated, required_literals
from tracker.sources import iter_raw_studies

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        (r"\bt ?max\b", {"max"}),
        (r"multiple\s*scler\w*", {"multiple"}),
        (r"(?<![a-z])(?:lupus|\bsle\b|crohn)", {"lupus", "sle", "crohn"}),
        (r"(?:a|b)c", {"c"}),
        (r"relaps(?:e|es)?|onset", {"relaps", "onset"}),
        (r"relaps\w*|remit", {"laps", "mit"}),  # the parser takes the common "re" out first
        (r"x(?:yz)+", {"yz"}),
    ],
)
def test_required_literals(pattern: str, literals: set[str]) -> None:
    assert required_literals(re.compile(pattern)) == literals


@pytest.mark.parametrize("pattern", [r"\w+", r"a|\d", r"(?:abc)?", r"a*", r"(?i)abc"])
def test_no_gate_where_a_match_needs_no_literal_or_case_is_ignored(pattern: str) -> None:
    assert required_literals(re.compile(pattern)) is None


def test_a_gated_pattern_answers_as_its_regex() -> None:
    pattern = gated(r"(?<![a-z])(?:relaps\w*|remit)")
    for text in ("relapsing ms", "no such words", "nonrelapsing", "remitting, relapses", ""):
        expected = re.compile(pattern.pattern)
        found, wanted = pattern.search(text), expected.search(text)
        assert (found and found.span()) == (wanted and wanted.span())
        assert [m.span() for m in pattern.finditer(text)] == [m.span() for m in expected.finditer(text)]
        assert pattern.sub(" ", text) == expected.sub(" ", text)
        assert pattern.split(text) == expected.split(text)


def _fixture_texts() -> list[str]:
    texts: list[str] = []
    for path in sorted(FIXTURES.glob("*studies*.jsonl*")):
        for raw in iter_raw_studies(path):
            protocol = raw.get("protocolSection", {})
            identification = protocol.get("identificationModule", {})
            texts += [identification.get("briefTitle", ""), identification.get("officialTitle", "")]
            texts += protocol.get("conditionsModule", {}).get("conditions", [])
            texts += protocol.get("conditionsModule", {}).get("keywords", [])
            texts.append(protocol.get("descriptionModule", {}).get("briefSummary", ""))
            texts.append(protocol.get("eligibilityModule", {}).get("eligibilityCriteria", ""))
    return [text for text in texts if text]


def test_no_text_a_rule_matches_is_gated_out() -> None:
    texts = _fixture_texts()
    texts += [text.lower() for text in texts]
    gated_rules = [value for value in vars(rules).values() if isinstance(value, GatedPattern)]
    assert len(gated_rules) > 10
    for pattern in gated_rules:
        for text in texts:
            if pattern.regex.search(text) is not None:
                assert pattern.search(text) is not None, (pattern.pattern, text)
