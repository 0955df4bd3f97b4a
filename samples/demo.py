"""`make demo`: start the sandbox on a free port, apply the sample manifest, stop the sandbox.

Runs from the repository (`python samples/demo.py`), not from the installed package.

The sandbox runs in its own process and is stopped in every case, apply failing included.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from batchtag.config import ENV_API_KEY, ENV_BASE_URL, ENV_PROJECT_ID, ENV_REGION_ID

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "snapshots-long.csv"
REPORT = Path("reports") / "demo-report.csv"
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


def main() -> int:
    with sandbox_process() as (proc, url):
        print(f"sandbox running at {url} (pid {proc.pid})")
        env = dict(os.environ, **{ENV_API_KEY: "demo-key", ENV_BASE_URL: url})
        env.setdefault(ENV_PROJECT_ID, "1")
        env.setdefault(ENV_REGION_ID, "1")
        command = [sys.executable, "-m", "batchtag", "apply", str(SAMPLE)]
        command += ["--report", str(REPORT), "--yes", "--no-progress", "--overwrite"]
        print("$ batchtag apply", SAMPLE.relative_to(ROOT), "--report", REPORT, flush=True)
        code = subprocess.call(command, env=env)
        print(f"\nreport written to {REPORT.resolve()} (exit code {code})")
    print("sandbox stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
