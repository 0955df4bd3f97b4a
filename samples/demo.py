"""`make demo`: the migration story against the local sandbox, in under a minute.

validate -> plan to a file (a few lines of diff) -> apply that plan file with an undo file ->
the report's head -> undo -> the state is back where it started. Runs from the repository
(`python samples/demo.py`), not from the installed package.

The sandbox runs in its own process and is stopped in every case, a failing step included.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from batchtag.config import ENV_API_KEY, ENV_BASE_URL, ENV_PROJECT_ID, ENV_REGION_ID

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "snapshots-long.csv"
OUT = Path("reports") / "demo"
PLAN = OUT / "plan.csv"  # the change file `plan -o` writes: what `apply` applies, as reviewed
REPORT = OUT / "run1.csv"
UNDO = OUT / "run1.undo.jsonl"
REVERT = OUT / "revert.csv"  # `batchtag undo`'s change file back, checked key by key
REVERT_REPORT = OUT / "revert-run.csv"
BANNER = "batchtag sandbox listening on "


@contextmanager
def sandbox_process(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """`python -m batchtag.sandbox --port 0 ARGS` in its own process, stopped in every
    case; yields the process and its base URL (shared with the benchmarks)."""
    command = [sys.executable, "-m", "batchtag.sandbox", "--port", "0", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        if not line.startswith(BANNER):
            raise SystemExit(f"sandbox did not start (said {line!r})")
        yield proc, line[len(BANNER) :]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Step(Exception):
    """A demo step exited with an unexpected code."""


def batchtag(env: dict[str, str], *args: str, ok: tuple[int, ...] = (0,)) -> None:
    """Show and run one `batchtag` command; stop the demo when its exit code is not `ok`."""
    shown = " ".join(str(Path(a).relative_to(ROOT)) if a.startswith(str(ROOT)) else a for a in args)
    print(f"\n$ batchtag {shown}", flush=True)
    code = subprocess.call([sys.executable, "-m", "batchtag", *args], env=env)
    if code not in ok:
        raise Step(f"`batchtag {shown}` exited {code}")


def user_state(env: dict[str, str]) -> dict[str, tuple]:
    """Every snapshot's name and user tags, as the API lists them (through batchtag.export)."""
    import batchtag as bt

    frame = bt.export(
        base_url=env[ENV_BASE_URL],
        api_key=env[ENV_API_KEY],
        project_id=1,
        region_id=1,
        progress=False,
    )
    return {
        row.snapshot_id: (row.name, tuple(sorted(row.tags.items()))) for row in frame.itertuples()
    }


def show_report_head() -> None:
    import batchtag as bt

    frame = bt.read_report(REPORT)
    print(f"\n{REPORT}: {len(frame)} rows; the first five:")
    head = frame[["snapshot_id", "status", "tags_before", "tags_after"]].head()
    print(head.to_string(index=False, max_colwidth=60))


def story(env: dict[str, str]) -> None:
    before = user_state(env)
    batchtag(env, "validate", str(SAMPLE))
    batchtag(env, "plan", str(SAMPLE), "--limit", "6", "-o", str(PLAN))
    batchtag(env, "apply", str(PLAN), "--report", str(REPORT), "--undo-file", str(UNDO), "--yes")
    show_report_head()
    changed = sum(1 for sid, state in user_state(env).items() if before.get(sid) != state)
    print(f"\n{changed} snapshots changed; now take the run back:")
    batchtag(env, "undo", str(REPORT), "-o", str(REVERT))
    batchtag(env, "apply", str(REVERT), "--report", str(REVERT_REPORT), "--yes")
    after = user_state(env)
    same = sum(1 for sid, state in before.items() if after.get(sid) == state)
    print(f"\nstate restored: {same} of {len(before)} snapshots exactly as before the run")
    if same != len(before):
        raise Step("the undo did not restore every snapshot")


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    with sandbox_process() as (proc, url):
        print(f"sandbox running at {url} (pid {proc.pid})")
        env = dict(os.environ, **{ENV_API_KEY: "demo-key", ENV_BASE_URL: url})
        env.update({ENV_PROJECT_ID: "1", ENV_REGION_ID: "1"})
        try:
            story(env)
        except Step as failed:
            print(f"\ndemo stopped: {failed}", file=sys.stderr)
            return 1
    print(f"\nsandbox stopped; the files are in {OUT.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
