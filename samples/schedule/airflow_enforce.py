"""An Airflow DAG running the nightly cost-tag cleanup through batchtag's Python API.

NOT RUN HERE (no Airflow in this environment): the tests compile and import this file and
call `enforce_task` with a stand-in for `batchtag.enforce`. Install batchtag in the
workers' environment (``pip install .``). The API key comes from an Airflow connection
``gcore_api`` (its password), or from the GCORE_API_KEY environment variable; it is never
logged (batchtag masks it in every message).

Outcomes: a clean run returns the summary (pushed to XCom: the counts, the compliance
figures per rule, the exit code); failed or not-found snapshots, or a scope that could not be
read (exit code 1), fail the task, to be retried; so does an interruption (the worker was
stopped: Airflow's SIGTERM, or a Ctrl-C, which batchtag raises as `batchtag.Interrupted`; the
run stops cleanly either way, its report written). A retry finishes the job: `enforce`
re-reads the state and writes only what still breaks a rule, and every attempt writes its
own files (``{started}``: the attempt's start, UTC). A bad policy or conflicting rules
(PolicyError, nothing sent), an abort by the ``max_changes`` guard or bad credentials
(AbortRun) fail it without retries: a human has to look.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

POLICY = "/opt/airflow/policies/cost-policy.toml"
RUNS = "/opt/airflow/runs"


def api_key() -> str | None:
    """The key from the Airflow connection ``gcore_api``, else from the environment."""
    try:
        from airflow.hooks.base import BaseHook

        return BaseHook.get_connection("gcore_api").password
    except Exception:  # no Airflow here, or no such connection: use the environment
        return os.environ.get("GCORE_API_KEY")


def enforce_task(ds: str = "manual", enforce: Any = None, **_context: Any) -> dict:
    """Run `batchtag.enforce`; map its outcome to the task's (see the module docstring)."""
    import batchtag

    enforce = enforce or batchtag.enforce
    try:
        report = enforce(
            POLICY,
            max_changes="10%",
            # {started}: each attempt's own files, so a retry never meets the first one's
            report=f"{RUNS}/enforce-{ds}-{{started}}.csv",
            undo_file=f"{RUNS}/enforce-{ds}-{{started}}.undo.jsonl",  # apply it to undo
            summary_json=f"{RUNS}/summary-{ds}-{{started}}.json",
            api_key=api_key(),
        )
    except (batchtag.UsageError, batchtag.AbortRun) as error:  # policy, options, guard
        fail_without_retry(str(error))
        raise
    summary = report.attrs.get("summary", {})
    if summary.get("exit_code", 0) != 0:
        raise RuntimeError(f"batchtag enforce ended with exit code {summary['exit_code']}")
    return summary


def fail_without_retry(message: str) -> None:
    try:
        from airflow.exceptions import AirflowFailException
    except ImportError:  # outside Airflow: the caller re-raises the original error
        return
    raise AirflowFailException(message)


try:
    from airflow import DAG
    from airflow.operators.python import PythonOperator
except ImportError:  # the file still imports (and is tested) without Airflow
    dag = None
else:
    with DAG(
        dag_id="batchtag_enforce_cost_tags",
        schedule="30 2 * * *",
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["batchtag", "cost"],
    ) as dag:
        PythonOperator(task_id="enforce", python_callable=enforce_task, retries=2)
