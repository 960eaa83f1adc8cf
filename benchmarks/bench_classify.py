"""Benchmark: reclassifying the 3,616-study snapshot (budget: under 2 s for the pure classifier).

Measured in the same run, each repeated (median reported):

  classify   `classify_study` over every parsed record (the pure part of `tracker classify --all`);
  baseline   `parse_study` over the same raw records (the step every classification already pays for),
             so the ratio says how the classifier compares with reading the records at all;
  endpoints  `classify_endpoints` + `classify_eligibility` alone (their share of `classify`);
  database   `classify_pending(all_studies=True)` on a SQLite file holding the snapshot: read raw JSON,
             parse, classify, write classifications and labels in batches;
  process    `tracker classify --all` as a whole process on that file (interpreter start, imports,
             the run), beside `tracker classify` with nothing pending (start-up and the pending query
             only) as its baseline.

Also prints how many drug/biological interventions the dictionary left to the type fallback.

    .venv/bin/python benchmarks/bench_classify.py [--repeat 5]
        [--data ../shared/data/ctgov_ms_2025-09-25.jsonl.gz]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timing import median_seconds  # noqa: E402

from tracker import store  # noqa: E402
from tracker.classify.dictionary import load_dictionary  # noqa: E402
from tracker.classify.eligibility import classify_eligibility  # noqa: E402
from tracker.classify.endpoints import classify_endpoints  # noqa: E402
from tracker.classify.rules import (  # noqa: E402
    CLASSIFIER_VERSION,
    _intervention_hits,
    classify_study,
    clear_caches,
)
from tracker.classify.store import classify_pending  # noqa: E402
from tracker.ctgov.parse import StudyRecord, parse_study  # noqa: E402
from tracker.db.migrate import upgrade_to_head  # noqa: E402
from tracker.db.session import make_engine  # noqa: E402
from tracker.sources import iter_raw_studies  # noqa: E402

BUDGET_SECONDS = 2.0
DRUG_TYPES = {"DRUG", "BIOLOGICAL", "GENETIC", "COMBINATION_PRODUCT"}


def fallback_share(records: list[StudyRecord]) -> tuple[int, int]:
    dictionary = load_dictionary()
    total = fallback = 0
    for record in records:
        for index, intervention in enumerate(record.interventions):
            if (intervention.type or "").upper() not in DRUG_TYPES:
                continue
            hits = _intervention_hits(dictionary, index, intervention, False)
            if not hits:
                continue  # placebo and the like
            total += 1
            fallback += all(hit.fallback for hit in hits)
    return fallback, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/ctgov_ms_2025-09-25.jsonl.gz")
    args = parser.parse_args()

    raws = list(iter_raw_studies(args.data))
    records = [parse_study(raw) for raw in raws]
    classify_study(records[0])  # compile the dictionary outside the timing

    def classify_all() -> None:
        clear_caches()  # every repeat is a cold run, as in a fresh `tracker classify --all`
        for record in records:
            classify_study(record)

    classify_seconds = median_seconds(classify_all, args.repeat)
    classify_cpu = median_seconds(classify_all, args.repeat, clock=time.process_time)
    parse_seconds = median_seconds(lambda: [parse_study(raw) for raw in raws], args.repeat)
    endpoint_seconds = median_seconds(
        lambda: [(classify_endpoints(r), classify_eligibility(r)) for r in records], args.repeat
    )

    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        upgrade_to_head(engine)
        run = store.begin_run(engine, mode="import", query=None, source="bench", data_timestamp=None)
        for start in range(0, len(raws), 1000):
            store.ingest_page(engine, run, raws[start : start + 1000])
        store.finish_run(engine, run, outcome="success")
        database_seconds = median_seconds(
            lambda: classify_pending(engine, all_studies=True), max(1, args.repeat // 2)
        )
        engine.dispose()
        command = [
            sys.executable,
            "-m",
            "tracker",
            "--database-url",
            f"sqlite:///{folder}/bench.db",
            "classify",
        ]
        process_seconds = median_seconds(
            lambda: subprocess.run([*command, "--all"], check=True, capture_output=True), args.repeat
        )
        idle_seconds = median_seconds(
            lambda: subprocess.run(command, check=True, capture_output=True), args.repeat
        )

    fallback, total = fallback_share(records)
    print(f"classifier {CLASSIFIER_VERSION}, {len(records)} studies, median of {args.repeat}")
    print(
        f"  classify (pure)        {classify_seconds:6.3f} s   budget {BUDGET_SECONDS:.1f} s  "
        f"{'OK' if classify_seconds < BUDGET_SECONDS else 'OVER BUDGET'}"
    )
    print(
        f"  baseline parse_study   {parse_seconds:6.3f} s   "
        f"classify/parse ratio {classify_seconds / parse_seconds:5.2f}"
    )
    print(f"  classify (pure), CPU   {classify_cpu:6.3f} s")
    print(f"  endpoints + eligibility facets alone {endpoint_seconds:6.3f} s")
    print(f"  classify --all (SQLite, read+parse+classify+write) {database_seconds:6.3f} s")
    print(
        f"  `tracker classify --all`, whole process {process_seconds:6.3f} s   "
        f"budget {BUDGET_SECONDS:.1f} s  "
        f"{'OK' if process_seconds < BUDGET_SECONDS else 'OVER BUDGET'}; baseline `tracker classify` with "
        f"nothing pending {idle_seconds:6.3f} s (ratio {process_seconds / idle_seconds:4.1f})"
    )
    print(
        f"  drug/biological interventions left to the type fallback: {fallback}/{total} "
        f"({100 * fallback / max(total, 1):.1f}%)"
    )


if __name__ == "__main__":
    main()
