"""The progress bar: when it shows, what it counts, how it ends (read from the bar itself)."""

from __future__ import annotations

import asyncio
import sys
import types
from collections import Counter

import pandas as pd
import pytest
import tqdm.std
from helpers import scope_of
from hypothesis import given
from hypothesis import strategies as st
from tqdm.std import tqdm as text_bar

import batchtag
from batchtag.commands import _apply as runner
from batchtag.commands import _apply_run as apply_run
from batchtag.model import (
    CONFLICT,
    FAILED,
    NOOP,
    NOT_FOUND,
    OK,
    PLANNED,
    SKIPPED,
    STATUSES,
    Result,
)
from batchtag.record import (
    FAILED_COLOUR,
    OK_COLOUR,
    SOME_FAILED_COLOUR,
    Progress,
    choose_bar,
    in_notebook,
)
from batchtag.record import _progress as progress_module


def result(status: str) -> Result:
    return Result(1, 1, "00000000-0000-4000-8000-000000000000", status)


class Kernel:
    kernel = object()  # what ipykernel's shell has and a terminal IPython has not


@pytest.fixture
def notebook(monkeypatch):
    """Pretend to run inside a Jupyter kernel."""
    fake = types.ModuleType("IPython")
    fake.get_ipython = Kernel
    monkeypatch.setitem(sys.modules, "IPython", fake)


def test_counts_by_status_and_ends_complete(capsys):
    progress = Progress(5, enabled=True)
    for status in (OK, OK, FAILED, OK, NOT_FOUND):
        progress.update(result(status))
    progress.close(ok=True)
    bar = progress.bar
    assert bar.n == 5 and bar.colour == SOME_FAILED_COLOUR  # orange: finished, some failed
    assert "5/5" in capsys.readouterr().err
    assert bar.postfix == "ok=3, not_found=1, failed=1"


@pytest.mark.parametrize(
    "statuses, finished, colour",
    [
        ((OK, NOOP, OK), True, OK_COLOUR),
        ((OK, PLANNED), True, OK_COLOUR),
        ((OK, FAILED, OK), True, SOME_FAILED_COLOUR),
        ((OK, CONFLICT), True, SOME_FAILED_COLOUR),
        ((NOT_FOUND,), True, SOME_FAILED_COLOUR),
        ((OK, SKIPPED), False, FAILED_COLOUR),
        ((OK, OK), False, FAILED_COLOUR),
    ],
)
def test_the_colour_tells_the_outcome(statuses, finished, colour):
    progress = Progress(len(statuses), enabled=True, bar_class=quiet_bar)
    for status in statuses:
        progress.update(result(status))
    progress.close(ok=finished)
    assert progress.bar.colour == colour


def test_the_rate_shown_is_the_runs_average(monkeypatch, capsys):
    """90 snapshots in 0.9 s, then 9 in 9 s: the run so far averaged 99 / 9.9 s = 10/s, its
    last seconds 1/s. Every figure shown is the average: the notebook widget ends on the
    figure of its last refresh (tqdm recomputes the overall rate at close only for the text
    bar), which with an exponential average (tqdm's default) was 3.80/s here."""
    now = [1000.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])  # the clock tqdm reads
    progress = Progress(100, enabled=True)
    for step in [0.01] * 90 + [1.0] * 9:
        now[0] += step
        progress.update(result(OK))
    shown = capsys.readouterr().err.split("\r")[-1]
    assert "99/100" in shown and "10.00snap/s" in shown, shown
    now[0] += 1.0
    progress.update(result(OK))
    progress.close()
    final = capsys.readouterr().err.split("\r")[-1]
    assert "100/100" in final and "9.17snap/s" in final, final


def test_interrupted_run_ends_red_and_unfinished(capsys):
    progress = Progress(5, enabled=True)
    for status in (OK, OK, SKIPPED, SKIPPED, SKIPPED):
        progress.update(result(status))
    progress.close(ok=False)
    assert progress.bar.n == 2 and progress.bar.colour == FAILED_COLOUR
    final = capsys.readouterr().err.split("\r")[-1]
    assert "2/5" in final and "ok=2, skipped=3" in final


@given(st.lists(st.sampled_from(STATUSES), max_size=30))
def test_bar_advances_for_every_finished_snapshot_but_skipped(statuses):
    progress = Progress(len(statuses), enabled=True, bar_class=quiet_bar)
    for status in statuses:
        progress.update(result(status))
    counts = Counter(statuses)
    assert progress.bar.n == len(statuses) - counts[SKIPPED]
    postfix = progress.bar.postfix or ""
    shown = dict(part.split("=") for part in filter(None, postfix.split(", ")))
    assert {k: int(v) for k, v in shown.items()} == counts
    progress.close()


class NullFile:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def quiet_bar(**options) -> text_bar:
    return text_bar(**{**options, "file": NullFile()})


def test_auto_is_off_outside_a_terminal_or_notebook(capsys):
    assert not in_notebook()
    progress = Progress(3)  # pytest's captured stderr is not a terminal
    progress.update(result(OK))
    progress.close()
    assert progress.bar is None and progress.counts[OK] == 1
    assert capsys.readouterr().err == ""


def test_auto_is_on_in_a_notebook_kernel(notebook, monkeypatch, capsys):
    monkeypatch.setattr(progress_module, "has_widgets", lambda: False)
    assert in_notebook()
    progress = Progress(3)
    assert isinstance(progress.bar, text_bar)  # the text fallback without ipywidgets
    progress.close()


def test_widget_in_a_notebook_with_ipywidgets(monkeypatch):
    from tqdm.notebook import tqdm as widget_bar

    monkeypatch.setattr(progress_module, "has_widgets", lambda: True)
    assert choose_bar(notebook=True) is widget_bar
    assert choose_bar(notebook=False) is text_bar


class Recorded(Progress):
    made: list[Progress] = []

    def __init__(self, total, enabled=None):
        super().__init__(total, enabled)
        Recorded.made.append(self)


@pytest.fixture
def recorded(monkeypatch):
    Recorded.made = []
    monkeypatch.setattr(apply_run, "Progress", Recorded)
    return Recorded.made


def manifest(ids) -> pd.DataFrame:
    return pd.DataFrame({"snapshot_id": ids, "op": "set", "key": "team", "value": "data"})


def test_a_finished_run_fills_the_bar(make_sandbox, recorded, tmp_path, capsys):
    server = make_sandbox(snapshots=4)
    batchtag.apply(
        manifest(server.store.ids()),
        **scope_of(server, report=str(tmp_path / "r.csv"), progress=True),
    )
    (progress,) = recorded
    assert progress.bar.n == progress.bar.total == 4 and progress.bar.colour == OK_COLOUR
    assert progress.counts == {OK: 4}


def test_an_aborted_run_leaves_the_bar_red(make_sandbox, recorded, tmp_path, capsys):
    server = make_sandbox(snapshots=4, api_key="right")
    with pytest.raises(batchtag.AbortRun, match="credentials rejected") as info:
        batchtag.apply(
            manifest(server.store.ids()),
            **scope_of(server, api_key="wrong", report=str(tmp_path / "r.csv"), progress=True),
            concurrency=1,
            check_current=False,  # the 401 answers a write (not the state read before the run)
        )
    report = info.value.report
    (progress,) = recorded
    assert report.status.value_counts().to_dict() == {SKIPPED: 3, FAILED: 1}  # the 401 itself
    assert progress.bar.n == 1 and progress.bar.colour == FAILED_COLOUR
    final = capsys.readouterr().err.split("\r")[-1]
    assert "1/4" in final and "failed=1, skipped=3" in final


def test_an_interrupted_run_leaves_the_bar_red_and_unfinished(make_sandbox, tmp_path):
    """Ctrl-C after the first result (the stop button in Jupyter calls the same interrupt)."""
    server = make_sandbox(snapshots=6)
    engines = []

    class InterruptAfterFirst(Progress):
        def update(self, result):
            super().update(result)
            if sum(self.counts.values()) == 1:
                engines[0].interrupt()

    made = []

    def make_progress(total, enabled=None):
        made.append(InterruptAfterFirst(total, enabled=True, bar_class=quiet_bar))
        return made[-1]

    options = runner.ApplyOptions(
        base_url=server.base_url,
        api_key="k",
        project_id=1,
        region_id=1,
        report=str(tmp_path / "r.csv"),
        concurrency=1,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(apply_run, "Progress", make_progress)
        outcome = asyncio.run(
            runner.run_apply(manifest(server.store.ids()), options, on_engine=engines.append)
        )
    (progress,) = made
    assert outcome.summary["interrupted"] and progress.counts[OK] == 1
    assert progress.counts[SKIPPED] == 5
    assert progress.bar.n == 1 < progress.bar.total and progress.bar.colour == FAILED_COLOUR
