"""Benchmark: CSV export and a digest round on the 3,616-study snapshot (SQLite file).

Measured in the same run, each repeated (median reported):

  baseline   `query.load_trial_frame`: the read every export and every digest round pays first;
  export     `select_trials` + the registry details + `frame_to_csv` for every trial (what
             `tracker export --relevance all` does);
  workbook   the same trials as `frame_to_xlsx` (what `tracker export --xlsx FILE --relevance all` adds);
  digest     `run_digests` for N subscriptions (half unfiltered, half by phase) after one incremental load
             that changed every 18th study, written as .eml files (dry run: the ledger is not touched,
             so every repeat does the same work).

    .venv/bin/python benchmarks/bench_export_digest.py [--repeat 3] [--subscriptions 50]
        [--data ../shared/data/ctgov_ms_2025-09-25.jsonl.gz]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timing import median_seconds  # noqa: E402

from tracker import query, store  # noqa: E402
from tracker.config import load_settings  # noqa: E402
from tracker.db.migrate import upgrade_to_head  # noqa: E402
from tracker.db.session import make_engine, utcnow  # noqa: E402
from tracker.digest.run import run_digests  # noqa: E402
from tracker.digest.send import EmlWriter  # noqa: E402
from tracker.export import frame_to_csv, frame_to_xlsx, provenance_for  # noqa: E402
from tracker.filters import TrialFilter  # noqa: E402
from tracker.sources import iter_raw_studies  # noqa: E402
from tracker.subscriptions import add_subscription  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/ctgov_ms_2025-09-25.jsonl.gz"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--subscriptions", type=int, default=50)
    args = parser.parse_args()

    raws = list(iter_raw_studies(Path(args.data)))
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        engine = make_engine(url)
        upgrade_to_head(engine)
        loaded = utcnow() - timedelta(days=1)
        run = store.begin_run(engine, mode="full", query="ms", source=args.data, data_timestamp=None)
        store.ingest_page(engine, run, raws, seen_at=loaded)
        store.finish_run(engine, run, outcome="success")
        for index in range(args.subscriptions):
            chosen = TrialFilter(relevance=(), phases=("PHASE3",)) if index % 2 else TrialFilter(relevance=())
            add_subscription(engine, f"reader{index}@example.org", chosen, now=loaded + timedelta(minutes=1))
        edited = []
        for raw in raws[::18]:
            changed = copy.deepcopy(raw)
            changed["protocolSection"]["statusModule"]["overallStatus"] = "TERMINATED"
            edited.append(changed)
        run = store.begin_run(engine, mode="incremental", query="ms", source=args.data, data_timestamp=None)
        store.ingest_page(engine, run, edited, seen_at=loaded + timedelta(hours=1))
        store.finish_run(engine, run, outcome="success")

        settings = load_settings(database_url=url)
        everything = TrialFilter(relevance=())
        outbox = Path(folder) / "outbox"
        baseline = median_seconds(lambda: query.load_trial_frame(engine), args.repeat)

        def export_frame():  # type: ignore[no-untyped-def]
            tables = query.load_detail_tables(engine)
            return query.with_details(query.select_trials(engine, everything), tables), tables

        def workbook() -> bytes:
            frame, tables = export_frame()
            return frame_to_xlsx(frame, tables, provenance_for(frame, everything, query.latest_run(engine)))

        export = median_seconds(lambda: frame_to_csv(export_frame()[0]), args.repeat)
        xlsx = median_seconds(workbook, args.repeat)
        digest = median_seconds(
            lambda: run_digests(engine, settings, EmlWriter(outbox), dry_run=True), args.repeat
        )
        engine.dispose()

    print(f"studies: {len(raws)}, changed: {len(edited)}, subscriptions: {args.subscriptions}")
    print(f"baseline  load_trial_frame      {baseline:7.3f} s")
    print(f"export    all trials to CSV     {export:7.3f} s  ({export / baseline:.1f}x baseline)")
    print(f"workbook  all trials to .xlsx   {xlsx:7.3f} s  ({xlsx / baseline:.1f}x baseline)")
    per_subscription = digest / args.subscriptions * 1000
    label = f"{args.subscriptions} subscriptions"
    print(
        f"digest    {label:<22}{digest:7.3f} s  ({digest / baseline:.1f}x baseline, "
        f"{per_subscription:.0f} ms per subscription)"
    )


if __name__ == "__main__":
    main()
