"""The demo: a small real sample (200 MS studies as ClinicalTrials.gov API v2 served them, public domain)
shipped with the package, loaded through the same import path as any bulk download."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sqlalchemy import Engine, func, select

from tracker.db.models import Study, SyncRun
from tracker.db.session import mask_url, transaction
from tracker.errors import ConfigError
from tracker.sync import SyncResult

SAMPLE_NAME = "demo_sample.jsonl.gz"


def sample_path() -> Path:
    return Path(str(resources.files("tracker").joinpath("data", SAMPLE_NAME)))


def load_demo(engine: Engine) -> SyncResult:
    """Import the sample; refused when the database holds studies that did not come from it."""
    from tracker.sources import import_studies

    path = sample_path()
    with transaction(engine) as session:
        studies = session.scalar(select(func.count()).select_from(Study)) or 0
        other_sources = session.scalar(
            select(func.count()).select_from(SyncRun).where(SyncRun.source.not_like(f"%{SAMPLE_NAME}"))
        )
    if studies and other_sources:
        raise ConfigError(
            f"{mask_url(str(engine.url))} already holds {studies} studies; the demo loads into a database "
            "of its own: tracker --database-url sqlite:///data/demo.db demo"
        )
    return import_studies(engine, path)
