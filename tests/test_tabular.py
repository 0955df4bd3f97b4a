"""The tabular I/O module: one object per format, append-rows and whole-table writers."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchtag.errors import UsageError
from batchtag.tabular import (
    CSV,
    INT,
    JSONL,
    STR,
    TAGS,
    atomic_write,
    csv_lines,
    jsonl_lines,
    read_table,
    table_format,
    write_table,
)

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


CELL_TEXT = st.text(
    alphabet=st.sampled_from(list(',"\r\n\\\t\x00\x1f\x7f aZ1é€\u2028')), max_size=6
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.none() | st.integers(-(2**63), 2**63 - 1), st.none() | CELL_TEXT, CELL_TEXT),
        max_size=8,
    ),
    width=st.integers(1, 3),
)
def test_text_made_a_column_at_a_time_is_what_the_row_writers_write(rows, width):
    """CSV and JSON Lines of Arrow columns: the same bytes as the formats' own line writers
    give for the same cells (quoting, escaping, empty cells and nulls, one-column rows)."""
    names = ["n", "text", "more"][:width]
    kinds = {"n": INT, "text": STR, "more": STR}
    columns = [
        pa.array([row[0] for row in rows], pa.int64()),
        pa.array([row[1] for row in rows], pa.string()),
        pa.array([row[2] for row in rows], pa.string()),
    ][:width]
    records = [dict(zip(["n", "text", "more"], row, strict=True)) for row in rows]
    for fmt, made in (
        (CSV, csv_lines(columns)),
        (JSONL, jsonl_lines(names, columns, [False] * width)),
    ):
        encoders = fmt.encoders(names, kinds)
        want = "".join(fmt.line(names, encoders, [r[c] for c in names]) for r in records)
        assert bytes(made) == want.encode()
