"""The classifier's text caches keep short texts only: a summary, an eligibility text or an intervention
description is unique to its trial, so keeping it would only hold memory over a long sync."""

from __future__ import annotations

from tests.test_classify_rules import study
from tracker.classify import endpoints, rules


def _sizes() -> tuple[int, ...]:
    return (
        rules._analyse.cache_info().currsize,
        rules._part_matches.cache_info().currsize,
        endpoints._cached_match.cache_info().currsize,
    )


def test_long_texts_are_not_cached() -> None:
    def classified(variant: int) -> object:
        long_text = f"Variant {variant}: " + "relapsing multiple sclerosis patients treated " * 20
        return study(
            title="A study of ocrelizumab",
            summary=long_text,
            eligibility=f"Inclusion criteria: {long_text}",
            interventions=({"type": "DRUG", "name": "Study drug", "description": long_text},),
        )

    first = classified(1)
    before = _sizes()
    second = classified(2)
    assert _sizes() == before  # only the long texts differ, and none of them was kept
    assert first == second  # the same rules answered the same
