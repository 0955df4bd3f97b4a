"""The tabular I/O module: one object per format, append-rows and whole-table writers."""

from __future__ import annotations

import pytest

from batchtag.errors import UsageError
from batchtag.tabular import INT, TAGS, atomic_write, read_table, table_format, write_table

KINDS = {"n": INT, "tags": TAGS}
ROWS = [
    {"n": 1, "name": "a,b", "tags": {"k": "v"}},
    {"n": None, "name": "line1\nline2", "tags": {}},
    {"n": 3, "name": None, "tags": None},
]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_rows_appended_in_chunks_read_back(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    writer = table_format(path).open_rows(path, ["n", "name", "tags"], KINDS)
    writer.write_rows(ROWS[:2])  # a page
    writer.write_rows(ROWS[2:])  # the next one
    writer.close()
    columns, records = read_table(path, KINDS)
    assert columns == ["n", "name", "tags"]
    assert records == ROWS


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_whole_table_replaces_the_file(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    write_table(path, ["n", "name", "tags"], ROWS, KINDS)
    write_table(path, ["n", "name", "tags"], ROWS[:1], KINDS)
    assert read_table(path, KINDS)[1] == ROWS[:1]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "f.json"
    atomic_write(path, "old\n")

    def fail_half_way(fh):
        fh.write(b"new and half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, fail_half_way)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_an_unknown_suffix_names_the_file_and_the_formats(tmp_path):
    with pytest.raises(
        UsageError, match=r"out 'x\.xlsx': unknown format '\.xlsx'; .*\.csv, \.jsonl or \.parquet"
    ):
        table_format("x.xlsx", "out")
