"""The bench's final table and results file: every row says met, NOT MET or info, from the
figures given; a section's figures survive the results file; a failed section is recorded
without losing the others. Nothing is measured here (no timing)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import benchmarks.__main__ as bench_main
from benchmarks import figures, harness, mode
from benchmarks.figures import FORMATS, Figure, Target, at_least, at_most, within


def row_of(text: str, name: str) -> list[str]:
    """The cells of `name`'s row in a table `text` (columns are two or more spaces apart)."""
    line = next(line for line in text.splitlines() if line.startswith(name))
    return [cell.strip() for cell in line[len(name) :].split("  ") if cell.strip()]


CASES = [  # value, target, result
    (0.95, at_least(0.95), "met"),
    (0.949, at_least(0.95), "NOT MET"),
    (1.5, at_most(1.5), "met"),
    (1.51, at_most(1.5), "NOT MET"),
    (1.02, within(1, 0.02), "met"),
    (0.98, within(1, 0.02), "met"),
    (1.021, within(1, 0.02), "NOT MET"),
    (0.97, within(1, 0.02), "NOT MET"),
    (0.8, None, "info"),
]


@pytest.mark.parametrize(("value", "target", "result"), CASES)
def test_table_marks_each_figure_against_its_target(value, target, result):
    figure = Figure("some figure", "what it measures", value, unit="x", target=target)
    text = figures.table({"latency": {"figures": [figure]}}, ["latency"])
    cells = row_of(text, "some figure")
    wanted = "-" if target is None else target.text("x")
    assert cells == [f"{value:.2f}x", wanted, result, "what it measures"]


def test_table_counts_results_and_names_sections_failed_or_not_measured():
    sections = {
        "latency": {
            "figures": [
                Figure("latency: batchtag / loop", "w", 0.94, target=at_least(0.95)),
                Figure("latency: SDK / loop", "w", 0.45),
            ],
            "commit": "abc1234",
        },
        "memory": {"figures": [], "error": "RuntimeError: batchtag apply failed (3)"},
        "startup": {"figures": [Figure("start-up: --help", "w", 0.08, "s", at_most(0.25))]},
    }
    text = figures.table(sections, ["startup", "latency", "memory", "export"])
    assert row_of(text, "latency: batchtag / loop")[:3] == ["0.94x", ">= 0.95x", "NOT MET"]
    assert row_of(text, "start-up: --help")[:3] == ["0.08 s", "<= 0.25 s", "met"]
    assert "[latency] abc1234" in text
    assert "[memory] FAILED: RuntimeError: batchtag apply failed (3)" in text
    assert "1 met, 1 not met, 1 for information" in text
    assert text.splitlines()[-1] == "not measured: export"


def test_a_section_round_trips_and_saving_another_keeps_it(tmp_path):
    path = tmp_path / "out" / "results.json"
    latency = [Figure("latency: batchtag / loop", "w", 0.97, target=at_least(0.95))]
    memory = [Figure("memory: apply peak RSS at 1M", "w", 380.5, "MB", at_most(400))]
    figures.save(path, "latency", latency, commit="abc1234")
    figures.save(path, "memory", memory)
    figures.save(path, "memory", memory[:0], error="boom")  # a later failed run of it
    saved = figures.load(path)
    assert saved["latency"] == {"figures": latency, "error": None, "commit": "abc1234"}
    assert saved["memory"] == {"figures": [], "error": "boom"}


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
targets = st.none() | st.builds(
    Target, st.sampled_from([">=", "<=", "within"]), finite, st.floats(0, 1)
)
figure_lists = st.lists(
    st.builds(Figure, st.text(), st.text(), finite, st.sampled_from(list(FORMATS)), targets),
    max_size=5,
)


@given(found=figure_lists)
def test_any_figures_round_trip_through_the_results_file(tmp_path_factory, found):
    path = tmp_path_factory.mktemp("results") / "results.json"
    figures.save(path, "rate", found)
    assert figures.load(path)["rate"]["figures"] == found


def test_a_failing_section_is_recorded_and_the_others_kept(tmp_path, monkeypatch, capsys):
    def broken() -> list[Figure]:
        raise RuntimeError("sandbox did not start")

    fine = [Figure("start-up: --help", "w", 0.3, "s", at_most(0.25))]
    monkeypatch.setattr(mode, "RESULTS", tmp_path / "results.json")
    monkeypatch.setattr(bench_main, "SECTIONS", {"startup": lambda: fine, "memory": broken})
    monkeypatch.setattr(harness, "compile_bytecode", lambda: None)
    assert bench_main.main(["startup", "memory"]) == 1
    out = capsys.readouterr().out
    assert row_of(out, "start-up: --help")[:3] == ["0.30 s", "<= 0.25 s", "NOT MET"]
    assert "FAILED: RuntimeError: sandbox did not start" in out
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["memory"]["error"] == "RuntimeError: sandbox did not start"
    assert bench_main.main(["summary"]) == 0  # the table again, from the file alone
    assert row_of(capsys.readouterr().out, "start-up: --help")[2] == "NOT MET"


def test_an_unknown_section_is_refused_naming_the_choices(capsys):
    assert bench_main.main(["latncy"]) == 2
    err = capsys.readouterr().err
    assert "unknown section 'latncy'" in err and "summary" in err


def test_memory_rows_come_from_every_measured_command(monkeypatch):
    from benchmarks import bench_memory, sections

    def part(peak_mb: float) -> dict:
        return {"wall": 1.0, "peak_mb": peak_mb, "summary": {"sent": 0}}

    rows = [
        {"size": 100_000, "apply": part(250), "resume": part(240)},
        {"size": 1_000_000, "apply": part(380), "resume": part(420), "plan": part(590)},
    ]
    monkeypatch.setattr(bench_memory, "run", lambda: rows)
    text = figures.table({"memory": {"figures": sections.memory()}}, ["memory"])
    assert row_of(text, "memory: apply at 1M: peak RSS")[:3] == ["380 MB", "<= 400 MB", "met"]
    assert row_of(text, "memory: resume at 1M: peak RSS")[:3] == ["420 MB", "<= 400 MB", "NOT MET"]
    assert row_of(text, "memory: plan at 1M: peak RSS")[:3] == ["590 MB", "<= 600 MB", "met"]
    assert row_of(text, "memory: apply peak 1M / 100k")[:3] == ["1.52x", "<= 1.50x", "NOT MET"]
