"""An undo that holds nothing per snapshot gives what the whole-frame undo gives: a report
file read once (its latest row per snapshot, numbered as `read_report` numbers them) gives
the same change rows, skipped rows and errors as its frame; change rows written as they
come make the same file as a frame of them; `batchtag undo` prints the first skipped
snapshots and counts them all; a disk too full for its temporary file aborts it."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from helpers import API_KEY, FullDisk, invoke, write_long_csv
from hypothesis import given, settings
from hypothesis import strategies as st

import batchtag
from batchtag.diff import ChangeStream, write_diff
from batchtag.errors import UsageError
from batchtag.memory import Spill
from batchtag.model import CONFLICT
from batchtag.record import (
    CHANGE_COLUMNS,
    FrameRows,
    Inversion,
    ReportRows,
    Skipped,
    frame_of,
    journal_path,
    read_report,
    write_report,
)

IDS = [f"aaaaaaaa-0000-4000-8000-00000000000{i}" for i in range(4)] + ["snap-X", "SNAP-x"]
tags = st.dictionaries(st.sampled_from(["env", "team"]), st.sampled_from(["a", "b"]), max_size=2)
rows = st.fixed_dictionaries(
    {
        "region_id": st.sampled_from([1, 2]),
        "snapshot_id": st.sampled_from(IDS),
        "status": st.sampled_from(["ok", "ok", "failed", "noop"]),
        "tags_before": st.none() | tags,
        "tags_after": tags,
        "name_before": st.none() | st.sampled_from(["n1", "n2"]),
        "name_after": st.sampled_from(["n1", "n2"]),
        "ro_tags": st.none() | tags,
        "rows": st.lists(st.integers(1, 9), max_size=2),
    }
)


def report_frame(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"project_id": 1, **r} for r in records])


def write_file(records: list[dict], path) -> None:
    """The report at `path`; a Parquet one with its later rows in its journal (a resumed
    run's, not folded in yet)."""
    frame = report_frame(records)
    if path.suffix == ".parquet":
        cut = len(frame) // 2
        write_report(frame.iloc[:cut], path)
        if cut < len(frame):
            write_report(frame.iloc[cut:], journal_path(path))
    else:
        write_report(frame, path)


def outcome(rows, current) -> tuple:
    """(change rows, skipped rows, wanted ids) of an undo of `rows`, or its error."""
    skipped = Skipped()
    with Inversion(rows, skipped, "r", None) as inversion:
        try:
            wanted = inversion.scan()
        except UsageError as error:
            return ("error", str(error))
        ids = wanted.ids_at(np.arange(len(wanted)))
        changes = [row for chunk in inversion.changes(current) for row in chunk]
    return changes, skipped.rows, ids, inversion.reverted, inversion.written


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(rows, min_size=1, max_size=12),
    suffix=st.sampled_from([".csv", ".jsonl", ".parquet"]),
    state=st.dictionaries(st.sampled_from(IDS), tags),
)
def test_a_report_file_read_once_undoes_as_its_frame(tmp_path_factory, records, suffix, state):
    path = tmp_path_factory.mktemp("report") / f"run{suffix}"
    write_file(records, path)

    def current(position, key):  # each snapshot's tags now (its region 1 only exists)
        if key[1] != 1 or key[2] not in state:
            return None
        listed = [{"key": k, "value": v, "read_only": False} for k, v in state[key[2]].items()]
        return {"id": key[2], "name": "n1", "task_id": None, "tags": listed}

    with ReportRows(path, "r") as streamed:
        got = outcome(streamed, current)
    assert got == outcome(FrameRows(read_report(path), "r"), current)


def test_the_latest_row_of_a_snapshot_counts_at_the_place_of_its_first(tmp_path):
    first, second = IDS[:2]
    later = {"tags_before": {}, "tags_after": {"env": "b"}, "status": "ok"}
    records = [
        {"snapshot_id": first, "status": "failed", "tags_after": {}},
        {"snapshot_id": second, "tags_before": {}, "tags_after": {"env": "a"}, "status": "ok"},
        {"snapshot_id": first, **later},  # retried by a resume: ok now
        {"snapshot_id": second, "status": "failed", "tags_after": {"x": [1]}},  # its latest
    ]
    path = tmp_path / "run.csv"
    write_file([{"region_id": 1, **r} for r in records], path)
    with ReportRows(path) as rows, Inversion(rows, Skipped()) as inversion:
        assert [numbers for numbers, _ in rows.chunks()] == [[1]]
        inversion.scan()
        (changes,) = inversion.changes(None)
    assert [(c["snapshot_id"], c["key"], c["new"]) for c in changes] == [(first, "env", None)]
    # A bad cell in a latest row is named by the frame's row number, as `read_report` has it.
    bad = [*records[:3], {"snapshot_id": second, **later, "tags_after": '["x"]'}]
    write_file([{"region_id": 1, **r} for r in bad], path)
    with ReportRows(path, str(path)) as rows, pytest.raises(UsageError) as error:
        Inversion(rows, Skipped(), str(path)).scan()
    assert str(error.value) == (
        f"{path}: row 2 (snapshot {second}): tags_after holds a JSON list, not the tags as an "
        'object {"key": "value"}'
    )


def change_rows(count: int) -> list[dict]:
    rows = []
    for i in range(count):
        name = i % 7 == 0
        rows.append(
            {
                "project_id": 1,
                "region_id": 1 + i % 2,
                "snapshot_id": f"aaaaaaaa-0000-4000-8000-{i:012d}",
                "verdict": "change",
                "field": "name" if name else "tag",
                "key": None if name else f"k{i % 3}",
                "change": ["add", "remove", "change"][i % 3],
                "old": None if i % 3 == 0 else f"o{i}",
                "new": None if i % 3 == 1 else "n é",
                "rows": [i, i + 1] if i % 5 else [],
            }
        )
    return rows


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("count", [0, 3, 16_384 + 5])
def test_change_rows_written_as_they_come_are_the_file_of_their_frame(tmp_path, suffix, count):
    rows = change_rows(count)
    whole, streamed = tmp_path / f"whole{suffix}", tmp_path / f"streamed{suffix}"
    write_diff(frame_of(rows, CHANGE_COLUMNS), whole)
    cuts = [0, 1, 2, 5000, 9000, 16_390, count]
    chunks = (rows[a:b] for a, b in zip(cuts, cuts[1:], strict=False))
    write_diff(ChangeStream(chunks), streamed)
    assert streamed.read_bytes() == whole.read_bytes()


@pytest.fixture
def drifted(make_sandbox, tmp_path):
    """A run that tagged 8 snapshots, each tag changed by someone since."""
    server = make_sandbox(snapshots=10)
    ids = server.store.ids()[:8]
    rows = [{"snapshot_id": sid, "op": "set", "key": "batch", "value": "one"} for sid in ids]
    manifest = write_long_csv(tmp_path / "m.csv", rows)
    report = tmp_path / "run1.csv"
    assert invoke(["apply", str(manifest), "--report", str(report)], server).exit_code == 0
    for sid in ids:
        server.store.find(1, 1, sid).tags["batch"] = "theirs"
    return server, ids, report


def test_undo_prints_the_first_skipped_snapshots_and_counts_them_all(drifted, tmp_path):
    server, ids, report = drifted
    result = invoke(["undo", str(report), "-o", "-"], server)
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [",".join(CHANGE_COLUMNS)]  # nothing to revert
    lines = result.stderr.splitlines()
    assert "  8 conflict (changed since the run: left alone)" in lines
    shown = [line for line in lines if line.startswith(f"    {CONFLICT} 1/1/")]
    assert shown == [
        f"    {CONFLICT} 1/1/{sid}: changed since the run (batch: 'one' → 'theirs'); left "
        "alone (--force reverts it)"
        for sid in ids[:5]
    ]
    assert "    ... and 3 more" in lines
    inverse = batchtag.undo(report, base_url=server.base_url, api_key=API_KEY)
    assert inverse.attrs["skipped"]["snapshot_id"].tolist() == ids  # Python: every one
    assert inverse.attrs["summary"]["skipped"] == {CONFLICT: 8}


def test_undo_to_stdout_prints_the_change_file(drifted, tmp_path):
    server, ids, report = drifted
    out = tmp_path / "forced.csv"  # (standard output takes CSV)
    assert invoke(["undo", str(report), "--force", "-o", str(out)], server).exit_code == 0
    result = invoke(["undo", str(report), "--force", "-o", "-"], server)
    assert result.exit_code == 0, result.output
    assert result.stdout == out.read_text()
    assert batchtag.read_changes(out)["old"].tolist() == ["theirs"] * 8


def test_a_disk_too_full_for_the_undo_aborts_naming_the_folder(drifted, monkeypatch, tmp_path):
    import tempfile

    server, _, report = drifted
    monkeypatch.setattr("tempfile.TemporaryFile", FullDisk)
    result = invoke(["undo", str(report)], server)
    assert result.exit_code == 3, result.output
    assert result.stderr.strip().splitlines() == [
        f"error: cannot keep the report's rows in {tempfile.gettempdir()}: No space left on "
        "device (point TMPDIR to a folder with room)"
    ]
    assert not (tmp_path / "run1.undo.jsonl").exists()


def test_a_spill_gives_back_each_record_as_it_was_put():
    spill = Spill("records")
    records = [bytes([i % 251]) * (i * 37 % 3000) for i in range(2000)]  # past a buffer's worth
    offsets = [spill.append(r) for r in records]
    assert [spill.read(o) for o in reversed(offsets)] == records[::-1]
    spill.close()


def test_a_report_read_for_undo_holds_a_few_bytes_a_row(tmp_path):
    count = 20_000
    frame = pd.DataFrame(
        {
            "project_id": 1,
            "region_id": 1,
            "snapshot_id": [f"aaaaaaaa-0000-4000-8000-{i:012d}" for i in range(count)],
            "status": "ok",
            "tags_before": [{"team": "a"}] * count,
            "tags_after": [{"team": "a", "env": "b"}] * count,
        }
    )
    path = tmp_path / "run.csv"
    write_report(frame, path)
    del frame
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        rows = ReportRows(path)
        inversion = Inversion(rows, Skipped())
        wanted = inversion.scan()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(wanted) == count
    assert held / count < 64, f"{held / count:.1f} bytes a row"
    assert sum(len(chunk) for chunk in inversion.changes(None)) == count
    inversion.close()
    rows.close()
