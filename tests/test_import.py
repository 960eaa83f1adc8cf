"""`tracker import`: raw studies from a directory, a zip, or JSON Lines (.gz), through the same store."""

from __future__ import annotations

import gzip
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from sqlalchemy import Engine, select
from support import count_rows, stored_classification

from tracker.classify.store import classify_pending
from tracker.cli import main
from tracker.db.models import Study, StudyVersion, SyncRun
from tracker.db.session import make_engine, transaction
from tracker.errors import ConfigError
from tracker.sources import import_studies, iter_raw_studies
from tracker.store import Unreadable

STUDY_FILES = sorted((FIXTURES / "ctgov/studies").glob("*.json"))
SAMPLE = FIXTURES / "ms_sample.jsonl"


def last_run(engine: Engine) -> SyncRun:
    with transaction(engine) as session:
        return session.scalars(select(SyncRun).order_by(SyncRun.id.desc())).first()


def test_import_a_directory_of_json_files(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "studies"
    shutil.copytree(FIXTURES / "ctgov/studies", folder)
    shutil.copy(FIXTURES / "ctgov/pages/page_phelan_p1_pageSize5.json", folder / "nested-page.json")

    result = import_studies(engine, folder)

    assert (result.mode, result.outcome, result.inserted) == ("import", "success", 15)
    run = last_run(engine)
    assert (run.mode, run.outcome, run.source, run.studies_inserted) == ("import", "success", str(folder), 15)
    assert count_rows(engine, Study) == 15


def test_import_a_zip_of_json_files(engine: Engine, tmp_path: Path) -> None:
    archive = tmp_path / "ctg-studies.json.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in STUDY_FILES:
            bundle.write(path, arcname=f"ctg-studies/{path.name}")

    result = import_studies(engine, archive)

    assert (result.outcome, result.inserted) == ("success", len(STUDY_FILES))


@pytest.mark.parametrize("compressed", [False, True], ids=["jsonl", "jsonl.gz"])
def test_import_json_lines_in_chunks(sqlite_url: str, tmp_path: Path, compressed: bool) -> None:
    engine = make_engine(sqlite_url)
    from tracker.db.migrate import upgrade_to_head

    upgrade_to_head(engine)
    path = tmp_path / ("sample.jsonl.gz" if compressed else "sample.jsonl")
    data = SAMPLE.read_bytes()
    path.write_bytes(gzip.compress(data) if compressed else data)

    result = import_studies(engine, path, chunk_size=64)

    assert (result.outcome, result.inserted, result.pages) == ("success", 200, 4)
    assert count_rows(engine, StudyVersion) == 200
    again = import_studies(engine, path, chunk_size=64)  # idempotent
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 200)
    assert count_rows(engine, StudyVersion) == 200


def test_import_rejects_bad_records_alone(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(FIXTURES / "ctgov/edge", folder)

    result = import_studies(engine, folder)

    assert result.outcome == "partial"
    assert result.inserted == 1  # minimal.json
    reasons = {r.registration_id: r.reason for r in result.rejected}
    assert set(reasons) == {None, "NCT09999901"}
    assert len(result.rejected) == 3
    assert any("legacy API v1" in r.reason for r in result.rejected)


def test_sources_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        list(iter_raw_studies(tmp_path / "missing.jsonl"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ConfigError, match="expected a directory, .zip"):
        list(iter_raw_studies(tmp_path / "notes.txt"))
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(SAMPLE.read_bytes().splitlines()[0] + b"\n{not json\n")
    first, second = iter_raw_studies(broken)  # a bad line is rejected alone, later, by the store
    assert isinstance(first, dict)
    assert isinstance(second, Unreadable) and "broken.jsonl line 2: not valid JSON" in second.reason
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no .json or .jsonl files"):
        list(iter_raw_studies(tmp_path / "empty"))


def test_import_command(sqlite_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["--database-url", sqlite_url, "import", str(SAMPLE)])
    assert ok.exit_code == 0, ok.output
    assert "import success: 200 inserted" in ok.output

    partial = runner.invoke(main, ["--database-url", sqlite_url, "import", str(FIXTURES / "ctgov/edge")])
    assert partial.exit_code == 3
    assert "rejected NCT09999901" in partial.output

    missing = runner.invoke(main, ["--database-url", sqlite_url, "import", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2
    assert [line for line in missing.output.splitlines() if line.startswith("Error:")] == [
        f"Error: no such file or directory: {tmp_path / 'nope.jsonl'}"
    ]
    assert "Traceback" not in missing.output


def damaged_zip(path: Path) -> Path:
    """A zip whose one member fails its CRC check (a byte flipped after writing)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as bundle:
        bundle.writestr("ctg-studies/NCT00000001.json", '{"protocolSection": {}}')
    data = bytearray(path.read_bytes())
    data[data.index(b"protocolSection")] ^= 0x20
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_zip_member_fails_clearly(tmp_path: Path) -> None:
    archive = damaged_zip(tmp_path / "damaged.zip")
    with pytest.raises(ConfigError, match=r"cannot read .*damaged.zip:ctg-studies/NCT00000001.json: Bad CRC"):
        list(iter_raw_studies(archive))


@pytest.mark.parametrize("content", [b"", b"\n\n", b"[]"], ids=["empty", "blank-lines", "empty-list"])
def test_a_source_without_studies_records_no_run(engine: Engine, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / ("studies.json" if content == b"[]" else "studies.jsonl")
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="no studies in"):
        import_studies(engine, path)
    assert count_rows(engine, SyncRun) == 0


@pytest.mark.parametrize("source", ["damaged.zip", "empty.jsonl", "mixed.zip"])
def test_import_errors_are_one_line_without_traceback(sqlite_url: str, tmp_path: Path, source: str) -> None:
    path = tmp_path / source
    if source == "damaged.zip":
        damaged_zip(path)
    elif source == "empty.jsonl":
        path.write_bytes(b"")
    else:  # a README beside a member that is not JSON
        with zipfile.ZipFile(path, "w") as bundle:
            bundle.writestr("README.txt", "hello")
            bundle.writestr("study.json", "garbage")

    outcome = CliRunner().invoke(main, ["--database-url", sqlite_url, "import", str(path)])

    assert outcome.exit_code == 2, outcome.output
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit)
    assert "Traceback" not in outcome.output
    assert len([line for line in outcome.output.splitlines() if line.startswith("Error: ")]) == 1


def test_a_rejected_record_is_printed_once(sqlite_url: str) -> None:
    import subprocess
    import sys

    command = [
        sys.executable,
        "-m",
        "tracker",
        "--database-url",
        sqlite_url,
        "import",
        str(FIXTURES / "ctgov/edge"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 3, result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "NCT09999901" in line]
    assert len(lines) == 1 and lines[0].startswith("rejected NCT09999901: "), lines


def test_worker_processes_classify_what_a_single_process_would(tmp_path: Path) -> None:
    # More than one chunk: worker processes parse and classify ahead while this process lands the chunks.
    from tracker.db.migrate import upgrade_to_head

    stores = {}
    for workers in (1, 2):
        engine = make_engine(f"sqlite:///{tmp_path / f'workers{workers}.db'}")
        upgrade_to_head(engine)
        result = import_studies(engine, SAMPLE, chunk_size=64, workers=workers)
        assert (result.outcome, result.inserted, result.classified) == ("success", 200, 200)
        stores[workers] = stored_classification(engine)
        engine.dispose()
    assert stores[2] == stores[1]
    assert len(stores[1][0]) == 200
    assert {relevance for _rid, dimension, relevance, _ in stores[1][1] if dimension == "relevance"} >= {"ms"}


def test_an_import_with_workers_stores_what_reclassifying_in_one_process_gives(engine: Engine) -> None:
    # On both databases: the parent disposes of its pool before forking, lands each chunk with the labels
    # a worker sent back, and a later reclassification in one process rewrites exactly the same rows.
    result = import_studies(engine, SAMPLE, chunk_size=64, workers=2)
    assert (result.outcome, result.inserted, result.classified) == ("success", 200, 200)
    with_workers = stored_classification(engine)

    assert classify_pending(engine, all_studies=True, workers=1) == 200
    assert stored_classification(engine) == with_workers


def test_a_worker_part_classifies_the_content_the_parent_stores() -> None:
    # A part travels to a worker as JSON bytes: the records it parses there must hash as the parent's do,
    # or the parent would quietly classify every study again. Undecodable items stay with the parent.
    from tracker.classify.rules import classify_study
    from tracker.classify.store import classify_raw, raw_payload
    from tracker.ctgov.parse import parse_study

    raws = [raw for raw in iter_raw_studies(SAMPLE)][:40]
    payload = raw_payload([*raws, Unreadable("line 41: not valid JSON")])
    assert isinstance(payload, bytes)
    classified = classify_raw(payload)
    records = [parse_study(raw) for raw in raws]
    assert list(classified) == [record.registration_id for record in records]
    for record in records:
        done = classified[record.registration_id]
        assert done.content_hash == record.content_hash
        assert json.loads(done.result) == classify_study(record).to_dict()
