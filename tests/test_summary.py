"""The run summary and exit codes."""

from __future__ import annotations

import json

import pytest

from batchtag.model import STATUSES, Result
from batchtag.record import Summary, exit_code, format_summary, write_summary_json


def result(i: int, status: str, attempts: int = 1, **kw) -> Result:
    return Result(1, 76, f"snap-{i}", status, attempts=attempts, **kw)


def test_counts_every_status_and_the_total():
    summary = Summary(report_path="reports/r.csv")
    summary.start()
    for i, status in enumerate(["ok", "ok", "noop", "failed", "not_found"]):
        summary.add(result(i, status, attempts=0 if status == "noop" else 1))
    summary.finish()
    d = summary.as_dict()
    assert d["counts"] == {
        "ok": 2, "noop": 1, "not_found": 1, "failed": 1, "skipped": 0, "planned": 0,
        "conflict": 0,
    }  # fmt: skip
    assert set(d["counts"]) == set(STATUSES)
    assert d["total"] == 5
    assert d["sent"] == 4
    assert d["exit_code"] == 1
    assert d["report"] == "reports/r.csv"
    assert d["aborted"] is None and d["interrupted"] is False
    assert json.loads(json.dumps(d)) == d  # JSON-able as is


def test_elapsed_and_rate_come_from_the_clock():
    ticks = iter([100.0, 102.5])
    summary = Summary(clock=lambda: next(ticks))
    summary.start()
    for i in range(5):
        summary.add(result(i, "ok"))
    summary.finish()
    d = summary.as_dict()
    assert d["elapsed_s"] == 2.5
    assert d["rate_per_s"] == 2.0  # 5 sent in 2.5 s
    assert "5 snapshots in 2.5 s, 5 sent (2.0/s)" in format_summary(d)


def test_after_a_resume_the_summary_describes_the_whole_report():
    summary = Summary(report_path="r.csv")
    summary.already_done = 2500
    for i, status in enumerate(["ok"] * 50 + ["failed"] * 8):
        summary.add(result(i, status))
    summary.report_counts = {"ok": 2550, "noop": 0, "failed": 8}
    d = summary.as_dict()
    assert d["total"] == 2558 and d["counts"]["ok"] == 2550
    assert d["this_run"] == {
        "counts": {**dict.fromkeys(STATUSES, 0), "ok": 50, "failed": 8}, "total": 58, "sent": 58,
    }  # fmt: skip
    assert d["exit_code"] == 1
    lines = format_summary(d).splitlines()
    assert lines[0].startswith("2558 snapshots in")
    assert "  ok 2550, failed 8" in lines
    assert "  this run: 58 snapshots: ok 50, failed 8" in lines


def test_empty_run_has_all_statuses_at_zero_and_exit_0():
    d = Summary().as_dict()
    assert d["counts"] == dict.fromkeys(STATUSES, 0)
    assert d["total"] == 0
    assert d["exit_code"] == 0
    assert d["rate_per_s"] is None


def test_retries_and_rate_changes_are_counted_by_class():
    summary = Summary()
    for kind in ["lock", "lock", "rate_limit", "transient", "transient", "transient"]:
        summary.count_retry(kind)
    summary.rate_change()
    summary.rate_change()
    d = summary.as_dict()
    assert d["retries"] == {"lock": 2, "rate_limit": 1, "transient": 3}
    assert d["rate_changes"] == 2
    assert Summary().as_dict()["retries"] == {"lock": 0, "rate_limit": 0, "transient": 0}


def test_top_errors_are_the_five_most_common():
    summary = Summary()
    i = 0
    for n, message in [(7, "a"), (1, "b"), (5, "c"), (3, "d"), (4, "e"), (2, "f")]:
        for _ in range(n):
            summary.add(result(i, "failed", error_class="ValidationError", error=message))
            i += 1
    summary.add(result(i, "not_found", error_class="NotFoundError"))
    summary.add(result(i + 1, "ok"))
    top = summary.as_dict()["top_errors"]
    assert top == [
        {"error": "ValidationError: a", "count": 7},
        {"error": "ValidationError: c", "count": 5},
        {"error": "ValidationError: e", "count": 4},
        {"error": "ValidationError: d", "count": 3},
        {"error": "ValidationError: f", "count": 2},
    ]


@pytest.mark.parametrize(
    ("counts", "flags", "code"),
    [
        ({"ok": 3, "noop": 2, "planned": 1}, {}, 0),
        ({}, {}, 0),
        ({"ok": 3, "failed": 1}, {}, 1),
        ({"ok": 3, "not_found": 1}, {}, 1),
        ({"ok": 3, "skipped": 2}, {}, 1),
        ({"ok": 3, "skipped": 2}, {"aborted": "HTTP 401"}, 3),
        ({"failed": 3, "skipped": 2}, {"aborted": True}, 3),
        ({"ok": 3, "skipped": 2}, {"interrupted": True}, 130),
        ({"failed": 3}, {"interrupted": True}, 130),
        ({"skipped": 3}, {"aborted": "x", "interrupted": True}, 3),
    ],
)
def test_exit_codes(counts, flags, code):
    assert exit_code(counts, **flags) == code


def test_abort_and_interrupt_show_in_the_dict():
    summary = Summary(report_path="r.csv")
    summary.add(result(0, "ok"))
    summary.add(result(1, "skipped", attempts=0))
    summary.interrupt()
    d = summary.as_dict()
    assert d["interrupted"] is True
    assert d["exit_code"] == 130
    summary.abort("credentials rejected (HTTP 401)")
    d = summary.as_dict()
    assert d["aborted"] == "credentials rejected (HTTP 401)"
    assert d["exit_code"] == 3


def test_format_summary_mentions_what_a_user_needs():
    summary = Summary(report_path="reports/r.csv")
    summary.start()
    summary.add(result(0, "ok"))
    summary.add(result(1, "failed", error_class="ValidationError", error="bad\nvalue"))
    summary.add(result(2, "skipped", attempts=0))
    summary.count_retry("rate_limit")
    summary.abort("credentials rejected (HTTP 401)")
    summary.finish()
    text = format_summary(summary.as_dict())
    assert "3 snapshots" in text
    assert "ok 1, failed 1, skipped 1" in text
    assert "rate limit 1" in text
    assert "1 x ValidationError: bad value" in text
    assert "aborted: credentials rejected (HTTP 401)" in text
    assert "--resume reports/r.csv" in text
    assert text.splitlines()[-1].strip() == "exit code 3"


def test_format_summary_of_a_clean_run_is_short():
    summary = Summary()
    summary.add(result(0, "ok"))
    text = format_summary(summary.as_dict())
    assert "1 snapshot in" in text
    assert "error" not in text
    assert "--resume" not in text
    assert len(text.splitlines()) == 3


def test_write_summary_json(tmp_path):
    summary = Summary(report_path="r.csv")
    summary.add(result(0, "failed", error="boom"))
    path = tmp_path / "out" / "summary.json"
    write_summary_json(summary.as_dict(), path)
    data = json.loads(path.read_text())
    assert data["counts"]["failed"] == 1
    assert data["exit_code"] == 1
    assert data["top_errors"] == [{"error": "boom", "count": 1}]
