"""`read_plan`: a manifest into a Plan, the small-file way when it can be, else the full way.

A small, plainly valid CSV file is planned with the standard library (`_small`), so a run
of a few rows does not import pandas; every other manifest, and every manifest with a
problem, is loaded, checked and built as columns (`_build`).
"""

from __future__ import annotations

from typing import Any

from batchtag.manifest._detect import CheckOptions
from batchtag.manifest._small import small_plan
from batchtag.model import Plan


def read_plan(source: Any, **options: Any) -> Plan:
    """Load, validate and plan a manifest; nothing here touches the network.

    The options are keyword-only, the fields of `CheckOptions` (an unknown one is a
    TypeError).

    Parameters
    ----------
    source : str, pathlib.Path or pandas.DataFrame
        A manifest file (.csv, .csv.gz, .parquet, .jsonl), "-" for CSV on stdin, or a frame.
    form : {"long", "wide", "json"}, optional
        The manifest form; detected from the columns when not given.
    delete_marker : str
        The wide-form cell that removes a tag (default "<delete>").
    empty_deletes : bool
        Wide form: an empty (or NA) cell removes its tag instead of leaving it alone.
    project_id, region_id : int, optional
        Scope of rows without one; else GCORE_CLOUD_PROJECT_ID / GCORE_CLOUD_REGION_ID
        from `env` (default: os.environ).

    Returns
    -------
    Plan
        One entry per snapshot; its `rows` are a file's 1-based data rows, or a DataFrame's
        index labels. Raises ManifestError with every problem found.

    Examples
    --------
    >>> import pandas as pd
    >>> sid = "aaaaaaaa-0000-4000-8000-000000000001"
    >>> frame = pd.DataFrame({"snapshot_id": [sid], "tag:env": ["prod"]}, index=[10])
    >>> read_plan(frame, project_id=1, region_id=2, env={}).entries[0].rows
    [10]
    """
    plan = small_plan(source, CheckOptions(**options))
    if plan is not None:
        return plan
    from batchtag.manifest._build import plan_manifest  # pandas: imported only when needed

    return plan_manifest(source, **options)
