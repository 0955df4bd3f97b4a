"""The bench's combined table: every row says met, NOT MET or info (no target)."""

from __future__ import annotations

from benchmarks.__main__ import combined, info, target


def test_each_row_states_its_target_and_result():
    rows = [
        target("latency: batchtag / loop", 0.94, ">= 0.95x", 0.95, "x"),
        target("memory: growth", 1.4, "<= 1.5x", 1.5, "x", below=True),
        target("memory: growth at 2M", 1.6, "<= 1.5x", 1.5, "x", below=True),
        info("zero latency: batchtag / loop", "0.80x"),
    ]
    lines = combined(rows).splitlines()
    assert lines[0].split() == ["figure", "measured", "target", "result"]
    assert lines[1].endswith("0.94x         >= 0.95x  NOT MET")
    assert lines[2].endswith("1.40x          <= 1.5x  met")
    assert lines[3].endswith("NOT MET")
    assert lines[4].split()[-3:] == ["0.80x", "-", "info"]
