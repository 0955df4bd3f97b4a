"""`read_report` gives back the frame `apply` returned, through every format (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from batchtag.model import STATUSES, Result
from batchtag.record import ReportWriter, done_keys, read_report, results_frame, write_report

FP = "f" * 32
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=10)
KEY = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, blacklist_characters="="),
              min_size=1, max_size=8)  # fmt: skip
TAGS = st.none() | st.dictionaries(KEY, KEY, max_size=3)
TIMES = st.none() | st.datetimes(
    min_value=pd.Timestamp("2000-01-01").to_pydatetime(),
    max_value=pd.Timestamp("2100-01-01").to_pydatetime(),
).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000).isoformat() + "Z")


@st.composite
def results(draw) -> list[Result]:
    out = []
    for i in range(draw(st.integers(1, 4))):
        out.append(
            Result(
                project_id=draw(st.integers(1, 2**40)),
                region_id=draw(st.integers(1, 9999)),
                snapshot_id=f"3fa85f64-5717-4562-b3fc-2c963f66a{i:03d}",
                status=draw(st.sampled_from(STATUSES)),
                http_status=draw(st.none() | st.sampled_from([200, 404, 409, 422])),
                attempts=draw(st.integers(0, 9)),
                error=draw(st.none() | TEXT),
                started_at=draw(TIMES),
                finished_at=draw(TIMES),
                elapsed_ms=draw(st.none() | st.floats(0, 1e6)),
                tags_before=draw(TAGS),
                tags_after=draw(TAGS),
                name_before=draw(st.none() | TEXT),
                ro_tags=draw(TAGS),
                rows=draw(st.lists(st.integers(1, 10**6), min_size=1, max_size=3)),
                body=draw(st.none() | st.fixed_dictionaries({"tags": st.none() | TAGS})),
            )
        )
    return out


HYPOTHESIS = settings(
    max_examples=40,
    deadline=None,
    # filter_too_much: the to_parquet test keeps only frames with a tag in every tag column
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
@HYPOTHESIS
@given(values=results())
def test_every_format_reads_back_the_frame_apply_returns(tmp_path, suffix, values):
    path = tmp_path / f"r{suffix}"
    with ReportWriter(path, fingerprint=FP) as writer:
        for result in values:
            writer.write(result)
    expected = results_frame(values)
    pd.testing.assert_frame_equal(read_report(path), expected)
    again = tmp_path / f"again{suffix}"
    write_report(expected, again)
    pd.testing.assert_frame_equal(read_report(again), expected)


@HYPOTHESIS
@given(values=results())
def test_a_frame_saved_with_to_parquet_reads_back_with_the_same_tag_sets(tmp_path, values):
    frame = results_frame(values)
    for column in ["tags_before", "tags_after", "ro_tags"]:
        # pyarrow cannot store a struct without fields: all-empty tag columns cannot be
        # written by to_parquet at all (write_report can; tested above).
        assume(any(tags for tags in frame[column] if tags))
    frame.to_parquet(tmp_path / "frame.parquet")
    pd.testing.assert_frame_equal(read_report(tmp_path / "frame.parquet"), frame)


def test_the_frame_types(tmp_path):
    path = tmp_path / "r.csv"
    with ReportWriter(path, fingerprint=FP) as writer:
        writer.write(Result(1, 76, "s-1", "ok", 200, 1, started_at="2025-01-01T00:00:00.125Z",
                            tags_after={"a": "1"}, ro_tags={"ro": "x"}, rows=[2]))  # fmt: skip
    frame = read_report(path)
    assert str(frame["started_at"].dtype) == "datetime64[ns, UTC]"
    assert frame.loc[0, "started_at"] == pd.Timestamp("2025-01-01T00:00:00.125Z")
    assert str(frame["attempts"].dtype) == "Int64" and str(frame["project_id"].dtype) == "Int64"
    assert frame.loc[0, "ro_tags"] == {"ro": "x"} and pd.isna(frame.loc[0, "name_before"])
    columns = list(frame.columns)
    assert columns[columns.index("tags_after") + 1 : columns.index("rows")] == [
        "name_before", "name_after", "ro_tags",
    ]  # fmt: skip


OLD_REPORT = (
    "project_id,region_id,snapshot_id,status,http_status,attempts,error_class,error,"
    "request_id,started_at,finished_at,elapsed_ms,tags_before,tags_after,rows,request_body,"
    "ticket\n"
    '1,76,s-1,ok,200,1,,,req-1,2025-01-01T00:00:00Z,2025-01-01T00:00:01Z,12.5,,"{""a"":""1""}",'
    '[2],"{""tags"":{""a"":""1""}}",T-1\n'
    "1,76,s-2,failed,500,4,ServerError,boom,,,,,,,[3],,T-2\n"
)


def test_a_report_from_before_the_name_and_read_only_columns_resumes(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text(OLD_REPORT)
    Path(f"{path}.meta.json").write_text(f'{{"fingerprint": "{FP}"}}')
    frame = read_report(path)
    assert frame["ro_tags"].isna().all() and frame.columns[-1] == "ticket"
    assert done_keys(path) == {(1, 76, "s-1")}
    with ReportWriter(path, passthrough=["ticket"], fingerprint=FP, resume=True) as writer:
        writer.write(Result(1, 76, "s-2", "ok", 200, 1, name_after="n", extra={"ticket": "T-2"}))
    frame = read_report(path)
    assert frame["status"].tolist() == ["ok", "ok"]
    assert frame["tags_after"].tolist()[0] == {"a": "1"}
    assert frame["name_after"].tolist()[1] == "n"
