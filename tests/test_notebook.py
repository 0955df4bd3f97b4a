"""samples/notebook.ipynb and the README's Python section, run top to bottom in a real kernel.

The kernel is this interpreter (the venv's python): a kernelspec made for the test with
ipykernel's own writer (its argv is `sys.executable -m ipykernel_launcher`), under a unique
name, found first through JUPYTER_PATH. A user's or the system's `python3` kernelspec, which
might point at another python, is never used; nothing is fetched.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs the dev extra (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="needs the dev extra (nbclient)")
kernelspec = pytest.importorskip("ipykernel.kernelspec", reason="needs the dev extra (ipykernel)")

from batchtag.sandbox.store import SnapshotStore  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "samples" / "notebook.ipynb"
README = ROOT / "README.md"
README_SECTION = "## From Python and Jupyter"
KERNEL_NAME = "batchtag-test-venv"
CELL_TIMEOUT = 60  # seconds a cell may run before the test fails
EXPECTED_OUTPUT = re.compile(
    r"#\s*->\s*(.+)$", flags=re.MULTILINE
)  # `print(x)  # -> 5` in the README
PROBE = "import sys; print(sys.executable)"


def readme_blocks() -> list[str]:
    """The runnable examples of the README's Python section: its ```python blocks that show
    their output as `# -> ...` comments ([] when there is no such section)."""
    text = README.read_text(encoding="utf-8")
    start = text.find(README_SECTION)
    if start < 0:
        return []
    section = text[start + len(README_SECTION) :]
    end = re.search(r"^## ", section, flags=re.MULTILINE)
    section = section[: end.start()] if end else section
    blocks = re.findall(r"^```python\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL)
    return [block for block in blocks if EXPECTED_OUTPUT.search(block)]


class Run:
    """The executed notebook: cells by a marker in their source, outputs as text."""

    def __init__(self, nb, readme_cells: list[int]):
        self.nb = nb
        self.readme_cells = readme_cells  # indices of the README's examples, after the notebook

    def cell(self, marker: str):
        notebook_cells = (
            self.nb.cells[: self.readme_cells[0]] if self.readme_cells else self.nb.cells
        )
        (found,) = [c for c in notebook_cells if c.cell_type == "code" and marker in c.source]
        return found

    def stdout(self, marker: str) -> str:
        return stream(self.cell(marker), "stdout")


def stream(cell, name: str) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == name)


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> Iterator[Run]:
    work = tmp_path_factory.mktemp("notebook")
    kernelspec.write_kernel_spec(path=work / "jupyter" / "kernels" / KERNEL_NAME)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(PROBE))
    first_readme = len(nb.cells)
    nb.cells += [nbformat.v4.new_code_cell(block) for block in readme_blocks()]
    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(work)}},  # the kernel's working directory
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("JUPYTER_PATH", str(work / "jupyter"))
        env.setenv("IPYTHONDIR", str(work / "ipython"))  # no user profile or startup files
        setup = client.setup_kernel()
        try:
            setup.__enter__()
        except Exception as error:  # the one reason to skip: no kernel
            pytest.skip(f"a Jupyter kernel could not start: {type(error).__name__}: {error}")
        try:
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
        finally:
            setup.__exit__(None, None, None)  # shut the kernel down
    yield Run(nb, list(range(first_readme, len(nb.cells))))


def seeded_store() -> SnapshotStore:
    return SnapshotStore(seed=7, snapshots=60, lock_rate=0.2)  # the notebook's sandbox


def expected_counts() -> tuple[int, int]:
    """(untagged snapshots, untagged and locked ones) in the notebook's sandbox."""
    untagged = [s for s in seeded_store().snapshots() if "cost-center" not in s.tags]
    return len(untagged), sum(1 for s in untagged if s.task_id)


GONE = 2  # ids of snapshots that do not exist, added to the manifest on purpose


def test_kernel_is_this_interpreter(executed):
    assert executed.stdout(PROBE).strip() == sys.executable


def test_no_cell_raised(executed):
    errors = [o for c in executed.nb.cells if c.cell_type == "code" for o in c.outputs]
    assert [o.get("ename") for o in errors if o.output_type == "error"] == []


def result_text(cell) -> str:
    """The cell's displayed value (its last expression), as text."""
    return "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs if o.get("data"))


def test_the_client_shows_no_key(executed):
    shown = result_text(executed.cell("client = batchtag.Client("))
    assert shown.startswith("batchtag.Client(base_url='http://127.0.0.1:")
    assert "api_key=***" in shown and "sandbox-" not in shown and "rate=50" in shown


def test_inventory_selection_and_validation(executed):
    total = len(seeded_store().snapshots())
    untagged, _ = expected_counts()
    assert 0 < untagged < total  # the walkthrough needs some of each
    assert executed.stdout("inventory = client.export").splitlines() == [
        f"{total} snapshots, {untagged} without a cost center",
        "created_at: datetime64[ns, UTC]",
    ]
    assert executed.stdout("gone = [").strip() == f"manifest: {untagged + GONE} rows"
    assert executed.stdout("checked = client.validate").strip() == (
        f"ok=True, form long: {untagged + GONE} snapshots, operations {untagged + GONE} set"
    )
    problems = executed.stdout("bad = client.validate")
    assert "1 problem" in problems and "row label 1, column 'key'" in problems
    table = result_text(executed.cell("bad = client.validate"))
    assert "row_label" in table and "cost center" in table


def test_plan_predicts_the_run(executed):
    untagged, locked = expected_counts()
    verdicts = ast.literal_eval(executed.stdout("diff = client.plan").strip())
    assert verdicts == {
        "change": untagged - locked,
        "noop": 0,
        "not_found": GONE,
        "locked": locked,
        "conflict": 0,
    }


def test_the_stop_button_keeps_the_report_and_names_the_resume(executed):
    untagged, _ = expected_counts()
    cell = executed.cell("press_stop_after(writes=10)")
    message, counts = executed.stdout("press_stop_after(writes=10)").splitlines()
    assert message.startswith("apply interrupted: ")
    assert "client.apply(<DataFrame>, report=" not in message
    assert message.endswith(
        "; finish it with .resume(), i.e. client.apply(<DataFrame>, resume='run1.csv',"
        " lock_budget=0.5, check_current=True)"
    )
    counts = ast.literal_eval(counts)
    assert counts["ok"] >= 10 and counts["skipped"] >= 1
    assert sum(counts.values()) == untagged + GONE
    bar = re.split(r"[\r\n]+", stream(cell, "stderr").strip())[-1]
    done, total = map(int, re.search(r"(\d+)/(\d+)", bar).groups())
    assert done < total and "skipped=" in bar  # left unfinished (and red)


def test_the_resume_finishes_with_locked_failures_and_missing_snapshots(executed):
    untagged, locked = expected_counts()
    assert locked > 0
    counts = ast.literal_eval(executed.stdout("report = interrupted.resume()").strip())
    assert counts == {"ok": untagged - locked, "failed": locked, "not_found": GONE}
    by_reason = ast.literal_eval(executed.stdout("failures = report[").splitlines()[0])
    assert by_reason == {("failed", "ConflictError"): locked, ("not_found", "NotFoundError"): GONE}


def test_progress_bar_shows_in_the_kernel_and_ends_full(executed):
    _, locked = expected_counts()
    bar = stream(executed.cell("report = interrupted.resume()"), "stderr")
    final = re.split(r"[\r\n]+", bar.strip())[-1]  # what a frontend shows after the \r redraws
    done, total = map(int, re.search(r"(\d+)/(\d+)", final).groups())
    assert done == total and f"failed={locked}" in final and f"not_found={GONE}" in final


def test_resume_finishes_the_job_on_the_sandbox(executed):
    untagged, locked = expected_counts()
    all_locked = sum(1 for s in seeded_store().snapshots() if s.task_id)
    assert executed.stdout("sb.end_tasks()").strip() == f"tasks ended: {all_locked}"
    lines = executed.stdout("resume=").splitlines()
    assert ast.literal_eval(lines[0]) == {"ok": untagged, "not_found": GONE}
    # the missing snapshots are known from the state read: nothing is sent for them again
    assert lines[1] == f"sent this time: {locked}"
    assert executed.stdout("tagged cc-4242").strip() == f"tagged cc-4242: {untagged}"


def test_undo_restores_the_inventory(executed):
    untagged, _ = expected_counts()
    assert executed.stdout("inverse = client.undo").splitlines() == [
        f"to revert: {untagged}, skipped: {{}}",
        "read back: True",
    ]
    assert executed.stdout("undone = client.apply").strip() == "restored: True"


def test_readme_python_section_runs_as_shown(executed):
    assert executed.readme_cells, f"README.md has no {README_SECTION!r} section with an example"
    for index in executed.readme_cells:
        cell = executed.nb.cells[index]
        shown = [
            m.group(1).strip() for m in map(EXPECTED_OUTPUT.search, cell.source.splitlines()) if m
        ]
        printed = stream(cell, "stdout").splitlines()
        assert Counter(printed) >= Counter(shown), (printed, shown)
