"""The results report: formats, crash safety, resume, fingerprints."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchtag import __version__
from batchtag.errors import UsageError
from batchtag.model import Result
from batchtag.record import (
    BASE_COLUMNS,
    ReportWriter,
    default_report_path,
    done_keys,
    journal_path,
    meta_path,
    read_report,
    results_frame,
    scan_report,
)

FORMATS = ["csv", "jsonl", "parquet"]
FP = "f" * 32
SNAP = "3fa85f64-5717-4562-b3fc-2c963f66a{:03d}"


def snap(i: int) -> str:
    return SNAP.format(i)


def make_result(i: int, status: str = "ok", **kw) -> Result:
    base = dict(
        project_id=1,
        region_id=76,
        snapshot_id=snap(i),
        status=status,
        http_status=200,
        attempts=1,
        request_id=f"req-{i}",
        started_at="2025-01-01T00:00:00+00:00",
        finished_at="2025-01-01T00:00:01+00:00",
        elapsed_ms=12.5 + i,
        tags_before={"env": "dev"},
        tags_after={"env": "prod", "team": f"t{i}"},
        rows=[i + 1],
        extra={"ticket": f"T-{i}"},
        body={"tags": {"env": "prod"}},
    )
    base.update(kw)
    return Result(**base)


def varied_results() -> list[Result]:
    """Results exercising every column: missing values, quoting, unicode, empty dicts."""
    return [
        make_result(0),
        make_result(1, "noop", http_status=None, attempts=0, tags_after={}, body={}),
        make_result(
            2,
            "failed",
            http_status=422,
            attempts=1,
            error_class="ValidationError",
            error='bad "value", line1\nline2; ünïcode',
            tags_after=None,
            rows=[3, 4],
            extra={"ticket": None},
        ),
        make_result(
            3,
            "skipped",
            http_status=None,
            attempts=0,
            request_id=None,
            started_at=None,
            finished_at=None,
            elapsed_ms=None,
            tags_before=None,
            tags_after=None,
            body=None,
            extra={"ticket": 'a,b "c"'},
        ),
        make_result(4, "planned", http_status=None, attempts=0, body={"tags": None, "name": "x"}),
    ]


def crash_mid_write(path: Path, partial: str) -> None:
    """What a crash in the middle of a row leaves: the start of a line, no line end."""
    with open(path, "a", encoding="utf-8", newline="") as fh:
        fh.write(partial)


def write_all(path: Path, results, **kw) -> None:
    kw.setdefault("passthrough", ["ticket"])
    kw.setdefault("fingerprint", FP)
    with ReportWriter(path, **kw) as writer:
        for result in results:
            writer.write(result)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reads_back_what_was_written(tmp_path, fmt):
    path = tmp_path / f"report.{fmt}"
    results = varied_results()
    write_all(path, results)

    loaded = read_report(path)
    expected = results_frame(results, ["ticket"])
    assert list(loaded.columns) == [*BASE_COLUMNS, "ticket"]
    pd.testing.assert_frame_equal(loaded, expected)
    assert loaded.loc[2, "error"] == 'bad "value", line1\nline2; ünïcode'
    assert loaded.loc[1, "tags_after"] == {}
    assert loaded.loc[4, "request_body"] == '{"tags":null,"name":"x"}'  # the text sent
    assert not journal_path(path).exists()


def test_csv_is_a_plain_csv_with_json_cells(tmp_path):
    path = tmp_path / "report.csv"
    write_all(path, varied_results())
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(df) == 5
    assert json.loads(df.loc[0, "tags_after"]) == {"env": "prod", "team": "t0"}
    assert df.loc[3, "http_status"] == ""  # missing values are empty cells
    assert df.loc[3, "ticket"] == 'a,b "c"'


def test_jsonl_keeps_json_cells_as_json_values(tmp_path):
    path = tmp_path / "report.jsonl"
    write_all(path, varied_results())
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["tags_after"] == {"env": "prod", "team": "t0"}
    assert lines[0]["rows"] == [1]
    assert lines[3]["http_status"] is None


def test_parquet_stores_tags_as_maps_and_times_as_timestamps(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "report.parquet"
    write_all(path, varied_results())
    table = pq.read_table(path)
    assert table.schema.field("tags_after").type == pa.map_(pa.string(), pa.string())
    assert table.column("tags_after").to_pylist()[:2] == [[("env", "prod"), ("team", "t0")], []]
    assert table.schema.field("started_at").type == pa.timestamp("us", tz="UTC")
    assert table.column("http_status").to_pylist()[3] is None


def test_unknown_extension_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"\.csv, \.jsonl or \.parquet"):
        ReportWriter(tmp_path / "report.xlsx", passthrough=[], fingerprint=FP)
    with pytest.raises(UsageError):
        read_report(tmp_path / "report")


def test_passthrough_columns_follow_the_report_columns(tmp_path):
    path = tmp_path / "report.csv"
    result = make_result(0, extra={"owner": "ana", "status": "keep", "ignored": 1})
    write_all(path, [result], passthrough=["owner", "status"])
    df = read_report(path)
    assert list(df.columns)[-2:] == ["owner", "manifest_status"]
    assert df.loc[0, "owner"] == "ana"
    assert df.loc[0, "manifest_status"] == "keep"
    assert df.loc[0, "status"] == "ok"
    assert "ignored" not in df.columns


def test_results_frame_dtypes_are_usable():
    df = results_frame(varied_results(), ["ticket"])
    assert str(df["http_status"].dtype) == "Int64"
    assert df["http_status"].isna().tolist() == [False, True, False, True, True]
    assert df["elapsed_ms"].dtype == "float64"
    assert df.loc[2, "rows"] == [3, 4]
    assert results_frame([], ["ticket"]).columns.tolist()[-1] == "ticket"


def test_existing_report_is_overwritten_without_resume(tmp_path):
    path = tmp_path / "report.csv"
    write_all(path, [make_result(i) for i in range(3)])
    write_all(path, [make_result(9)], fingerprint="other")
    assert read_report(path)["snapshot_id"].tolist() == [snap(9)]
    assert json.loads(meta_path(path).read_text())["fingerprint"] == "other"


def test_metadata_records_fingerprint_and_version(tmp_path):
    path = tmp_path / "report.jsonl"
    write_all(path, [], manifest="tags.csv")
    meta = json.loads(meta_path(path).read_text())
    assert meta["fingerprint"] == FP
    assert meta["manifest"] == "tags.csv"
    assert meta["batchtag_version"] == __version__
    assert datetime.fromisoformat(meta["created_at"]).tzinfo is not None


# ------------------------------------------------------------------ resume


@pytest.mark.parametrize("fmt", FORMATS)
def test_resume_keeps_each_snapshot_once_with_its_latest_status(tmp_path, fmt):
    path = tmp_path / f"report.{fmt}"
    first = [
        make_result(0),
        make_result(1, "failed", error_class="ServerError", error="boom", http_status=500),
        make_result(2, "noop"),
        make_result(3, "skipped", attempts=0, http_status=None),
    ]
    write_all(path, first)
    assert done_keys(path) == {(1, 76, snap(0)), (1, 76, snap(2))}

    with ReportWriter(path, passthrough=["ticket"], fingerprint=FP, resume=True) as writer:
        writer.write(make_result(3))
        writer.write(make_result(1, extra={"ticket": "new"}))
        writer.write(make_result(4))

    df = read_report(path)
    assert df["snapshot_id"].tolist() == [snap(i) for i in range(5)]  # original order
    assert df["status"].tolist() == ["ok", "ok", "noop", "ok", "ok"]
    assert df.loc[1, "ticket"] == "new"
    assert pd.isna(df.loc[1, "error"])
    # The file itself is compacted, not just the loaded frame.
    if fmt == "csv":
        assert len(pd.read_csv(path)) == 5
    elif fmt == "jsonl":
        assert len(path.read_text().splitlines()) == 5
    else:
        assert len(pd.read_parquet(path)) == 5
        assert not journal_path(path).exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_resumed_rows_are_appended_during_the_run(tmp_path, fmt):
    """Before close, a resumed report holds old and new rows; readers see the latest."""
    path = tmp_path / f"report.{fmt}"
    write_all(path, [make_result(0, "failed"), make_result(1)])
    writer = ReportWriter(path, passthrough=["ticket"], fingerprint=FP, resume=True)
    writer.write(make_result(0))
    # A reader in the middle of the run (or after a crash) sees the superseding row.
    assert read_report(path)["status"].tolist() == ["ok", "ok"]
    assert done_keys(path) == {(1, 76, snap(0)), (1, 76, snap(1))}
    writer.close()
    assert read_report(path)["status"].tolist() == ["ok", "ok"]


def test_resume_with_a_different_fingerprint_is_refused(tmp_path):
    path = tmp_path / "report.csv"
    write_all(path, [make_result(0)])
    with pytest.raises(UsageError, match="was written for a different manifest") as info:
        ReportWriter(path, passthrough=[], fingerprint="0" * 32, resume=True)
    assert FP in str(info.value)
    assert len(read_report(path)) == 1  # the report is left alone


def test_resume_of_a_missing_report_is_refused(tmp_path):
    with pytest.raises(UsageError, match="no report"):
        ReportWriter(tmp_path / "nope.csv", passthrough=[], fingerprint=FP, resume=True)
    with pytest.raises(UsageError, match="no report"):
        read_report(tmp_path / "nope.parquet")


def test_resume_without_metadata_is_refused(tmp_path):
    path = tmp_path / "report.csv"
    write_all(path, [make_result(0)])
    meta_path(path).unlink()
    with pytest.raises(UsageError, match="metadata"):
        ReportWriter(path, passthrough=[], fingerprint=FP, resume=True)


def test_parquet_resume_can_use_the_fingerprint_inside_the_file(tmp_path):
    path = tmp_path / "report.parquet"
    write_all(path, [make_result(0, "failed")])
    meta_path(path).unlink()
    with pytest.raises(UsageError, match="different manifest"):
        ReportWriter(path, passthrough=[], fingerprint="0" * 32, resume=True)
    write_all(path, [make_result(0)], resume=True)
    assert read_report(path)["status"].tolist() == ["ok"]


def test_resume_with_new_passthrough_columns_widens_the_report(tmp_path):
    path = tmp_path / "report.csv"
    write_all(path, [make_result(0, "failed"), make_result(1)])
    write_all(
        path, [make_result(0, extra={"ticket": "T-0", "owner": "bo"})],
        passthrough=["ticket", "owner"], resume=True,
    )  # fmt: skip
    df = read_report(path)
    assert df["owner"].tolist()[0] == "bo"
    assert pd.isna(df["owner"].tolist()[1])
    assert df["status"].tolist() == ["ok", "ok"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_row_cut_short_by_a_crash_is_dropped(tmp_path, fmt):
    path = tmp_path / f"report.{fmt}"
    writer = ReportWriter(path, passthrough=["ticket"], fingerprint=FP)
    writer.write(make_result(0))
    writer.write(make_result(1))
    crash_mid_write(path, path.read_text().splitlines(keepends=True)[-1][:30])  # half a row
    assert read_report(path)["snapshot_id"].tolist() == [snap(0), snap(1)]
    # Resuming cleans the file up before appending to it.
    write_all(path, [make_result(2)], resume=True)
    assert read_report(path)["snapshot_id"].tolist() == [snap(0), snap(1), snap(2)]


@pytest.mark.parametrize("cut", ['"first line\n', '"first li'])
def test_csv_row_cut_inside_a_quoted_cell_drops_only_itself(tmp_path, cut):
    path = tmp_path / "report.csv"
    writer = ReportWriter(path, passthrough=[], fingerprint=FP)
    writer.write(make_result(0))
    crash_mid_write(path, f"1,76,{snap(1)},failed,422,1,X,{cut}")
    assert read_report(path)["snapshot_id"].tolist() == [snap(0)]
    # A line end inside the torn cell: pyarrow would read it as a whole cell, so the row
    # readers read this report (and the writer rewrites it); else the torn line is cut off.
    assert scan_report(path).columnar == ("\n" not in cut)
    # Resuming keeps the good row before the torn one and sends only what is not done.
    assert done_keys(path) == {(1, 76, snap(0))}
    with ReportWriter(path, passthrough=[], fingerprint=FP, resume=True) as again:
        again.write(make_result(2))
    assert read_report(path)["snapshot_id"].tolist() == [snap(0), snap(2)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_resume_appends_to_the_report_as_it_is(tmp_path, fmt):
    """No rewrite before the first request: the rows already there stay where they are
    (same file, same bytes), the new ones follow; the latest row of a snapshot wins."""
    path = tmp_path / f"report.{fmt}"
    write_all(path, [make_result(i, "failed" if i % 2 else "ok") for i in range(6)])
    before, inode = path.read_bytes(), path.stat().st_ino
    with ReportWriter(path, passthrough=["ticket"], fingerprint=FP, resume=True) as writer:
        assert path.stat().st_ino == inode and path.read_bytes() == before
        writer.write(make_result(6))
        assert path.read_bytes().startswith(before)
        writer.write(make_result(1))
    assert read_report(path)["status"].tolist() == ["ok"] * 3 + ["failed", "ok", "failed", "ok"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_resumed_writer_counts_each_snapshot_once_by_its_latest_status(tmp_path, fmt):
    """The summary's report counts: the report's rows and this run's results together."""
    path = tmp_path / f"report.{fmt}"
    write_all(path, [make_result(0, "failed"), make_result(1), make_result(2, "skipped")])
    write_all(path, [make_result(2, "failed")], resume=True)  # an earlier resume's repeat
    with ReportWriter(path, passthrough=["ticket"], fingerprint=FP, resume=True) as writer:
        assert writer.status_counts() == {"failed": 2, "ok": 1}
        writer.write(make_result(0))
        writer.write(make_result(3, "noop"))
        assert writer.status_counts() == {"ok": 2, "failed": 1, "noop": 1}
    assert read_report(path)["status"].tolist() == ["ok", "ok", "failed", "noop"]


def test_a_last_json_line_without_its_line_end_is_kept_and_ended(tmp_path):
    """A whole row that lost only its line end (an edited file) is a row, not a torn one."""
    path = tmp_path / "report.jsonl"
    write_all(path, [make_result(0), make_result(1, "failed")])
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert done_keys(path) == {(1, 76, snap(0))}
    write_all(path, [make_result(2)], resume=True)
    assert len(path.read_text().splitlines()) == 3
    assert read_report(path)["status"].tolist() == ["ok", "failed", "ok"]


# ------------------------------------------------------------------ default path


def test_default_report_path_is_timestamped_under_reports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    now = datetime(2025, 3, 4, 5, 6, 7)
    path = default_report_path(now)
    assert path == Path("reports/batchtag-20250304-050607.csv")
    assert (tmp_path / "reports").is_dir()
    path.write_text("taken")
    assert default_report_path(now) == Path("reports/batchtag-20250304-050607-2.csv")


# min_size=1: an empty CSV cell reads back as missing, for "" and None alike.
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=12)
TAGS = st.none() | st.dictionaries(TEXT, TEXT | st.just(""), max_size=3)
PASSTHROUGH = st.none() | TEXT  # what CSV and Parquet manifests pass through


@st.composite
def result_lists(draw) -> list[Result]:
    out = []
    for i in range(draw(st.integers(1, 4))):
        body = draw(st.none() | st.fixed_dictionaries({"tags": TAGS}))
        sent = None if body is None or not draw(st.booleans()) else json.dumps(body)
        out.append(
            make_result(
                i,
                draw(st.sampled_from(["ok", "noop", "failed", "skipped", "planned"])),
                http_status=draw(st.none() | st.sampled_from([200, 404, 429])),
                attempts=draw(st.integers(0, 9)),
                error_class=draw(st.none() | TEXT),
                error=draw(st.none() | TEXT),
                request_id=draw(st.none() | TEXT),
                elapsed_ms=draw(st.none() | st.floats(0, 1e6)),
                tags_before=draw(TAGS),
                tags_after=draw(TAGS),
                rows=draw(st.lists(st.integers(1, 10**6), max_size=3)),
                extra={"ticket": draw(PASSTHROUGH), "status": draw(PASSTHROUGH)},
                body=body,
                body_json=sent,
            )
        )
    return out


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(results=result_lists())
def test_csv_rows_read_back_as_the_results_any_values(tmp_path, results):
    # The writer builds CSV rows straight from Result, not through the record used
    # everywhere else; both must agree for any values (quotes, newlines, unicode).
    path = tmp_path / "report.csv"
    write_all(path, results, passthrough=["ticket", "status"])
    pd.testing.assert_frame_equal(read_report(path), results_frame(results, ["ticket", "status"]))


def test_csv_passthrough_cells_of_any_python_type(tmp_path):
    # DataFrame manifests pass Python values through; CSV keeps their text.
    values = [1, True, 2.5, float("nan"), None, {"a": 1}, "x"]
    results = [make_result(i, extra={"ticket": v}) for i, v in enumerate(values)]
    write_all(tmp_path / "r.csv", results)
    cells = read_report(tmp_path / "r.csv")["ticket"].tolist()
    assert cells[:3] == ["1", "True", "2.5"]
    assert pd.isna(cells[3]) and pd.isna(cells[4])
    assert cells[5:] == ['{"a":1}', "x"]


def test_csv_cells_with_carriage_returns_read_back(tmp_path):
    # An API error message may hold a bare "\r"; it must neither split nor change the row.
    results = [make_result(0, error="a\rb", extra={"ticket": "\r"}), make_result(1, error="x\r\ny")]
    write_all(tmp_path / "r.csv", results)
    loaded = read_report(tmp_path / "r.csv")
    assert loaded["error"].tolist() == ["a\rb", "x\r\ny"]
    assert loaded["ticket"].tolist() == ["\r", "T-1"]


def test_default_report_folder_that_cannot_be_created_is_a_usage_error(tmp_path, monkeypatch):
    (tmp_path / "reports").write_text("a file where the folder should be")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="cannot create the report folder .*report"):
        default_report_path()
