"""The classifier's version and the studies it has still to label, known without compiling the classifier.

A sync with nothing new asks only "is anything pending?"; answering that must not import the rules (which
compile the dictionary), so the version lives here and is read from the packaged data files alone.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Engine, or_, select

from tracker.classify.dictionary import load_agents_data
from tracker.db.models import Classification, Study
from tracker.taxonomy import load_taxonomy

# Bump whenever a rule or the dictionary changes the output: stored classifications then get redone.
RULES_REVISION = 3  # relevance, mechanisms, phenotypes (rules.py)
ENDPOINT_RULES_REVISION = 2  # endpoints.py
ELIGIBILITY_RULES_REVISION = 1  # eligibility.py


@cache
def classifier_version() -> str:
    """Taxonomy version + rules, endpoint-rules and eligibility-facet revisions + dictionary version,
    e.g. "2026.12.1+r3.e1f1.d2" (fits 20 chars)."""
    revisions = f"r{RULES_REVISION}.e{ENDPOINT_RULES_REVISION}f{ELIGIBILITY_RULES_REVISION}"
    return f"{load_taxonomy().version}+{revisions}.d{int(load_agents_data()['version'])}"


def pending_query(all_studies: bool = False) -> Any:
    """NCT IDs of the studies never classified, changed since, or classified by another classifier
    version (every study with `all_studies`), in NCT ID order."""
    query = select(Study.registration_id).order_by(Study.registration_id)
    if all_studies:
        return query
    return query.outerjoin(Classification, Classification.registration_id == Study.registration_id).where(
        or_(
            Classification.registration_id.is_(None),
            Classification.content_hash != Study.content_hash,
            Classification.taxonomy_version != classifier_version(),
        )
    )


def any_pending(engine: Engine) -> bool:
    with engine.connect() as connection:
        return connection.execute(pending_query().limit(1)).first() is not None
