"""`batchtag.export` and `batchtag.export_async`: the inventory as a DataFrame."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import pandas as pd

from batchtag.api._functions import refuse_unknown
from batchtag.api._interrupt import Resume, finish, run_blocking
from batchtag.commands import READ_NAMES, run_export
from batchtag.defaults import document_options
from batchtag.errors import BatchtagError, Interrupted
from batchtag.inventory import ScopeChoice, Selection, output_format, split_columns


async def export_async(
    *,
    project_id: int | Iterable[int] | None = None,
    region_id: int | Iterable[int] | None = None,
    scopes: Any = None,
    all_projects: bool = False,
    all_regions: bool = False,
    where: str | None = None,
    columns: str | Iterable[str] | None = None,
    long: bool = False,
    with_volume: bool = False,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
    **reading: Any,
) -> pd.DataFrame:
    """The inventory of one or more scopes as a DataFrame (and `output`, when given).

    Parameters
    ----------
    project_id, region_id : int or list of int, optional
        Every project x region is exported; default: GCORE_CLOUD_PROJECT_ID / _REGION_ID.
    scopes : path, DataFrame or list of (project_id, region_id), optional
        Explicit pairs instead (CSV/JSONL file with project_id, region_id columns).
    all_projects, all_regions : bool
        Every project (``GET /cloud/v1/projects``) or region (``GET /cloud/v1/regions``)
        the API lists, instead of `project_id` / `region_id`. A scope that cannot be read
        is left out (``attrs["export"]["failed_scopes"]``, ``exit_code`` 1).
    where : str, optional
        A condition in batchtag's safe ``where`` language, checked before any request;
        backticks for ``tag:``/``ro:``/``volume_tag:`` columns, which are all-missing when
        no snapshot (volume) has the key.
    columns : str or list of str, optional
        Columns to keep (comma-separated or a list; patterns like ``tag:*``).
    long : bool
        One row per (snapshot, tag) with key, value, read_only (the volume columns stay
        columns of each row); a snapshot without tags (of the chosen columns) is one row
        with key and value NA, read_only False.
    with_volume : bool
        Also list each scope's volumes and join each snapshot's: ``volume_name`` and
        ``volume_tag:<key>`` per user tag key of the volumes (NA when the volume is gone or
        lacks the key).
    output : path, optional
        Also write .csv / .parquet / .jsonl.
    overwrite : bool
        Replace `output` when it exists (else refused before any request).

    Returns
    -------
    pandas.DataFrame
        One row per snapshot (a ``long`` export: per tag), columns as in the file and typed
        as `batchtag.read_inventory` reads it back: ids and texts strings, ``project_id``,
        ``region_id`` and ``size`` Int64, ``created_at``/``updated_at`` UTC datetimes. A
        whole wide export (every inventory column) also has the user tags as a ``tags``
        dict column. ``frame.attrs["export"]`` holds the summary (requests, warnings, the
        scopes read and those that failed).

    Raises
    ------
    UsageError
        Bad options (a refused ``where``, an unknown column or output format); nothing sent.
    Interrupted
        (`export` only) Ctrl-C stopped the read: ``error.report`` holds the snapshots read
        so far, ``error.resume()`` exports again.

    Examples
    --------
    >>> df = await batchtag.export_async(project_id=1, region_id=1,
    ...                                  where="`tag:cost-center`.isna() and size > 100")
    """
    refuse_unknown(reading, READ_NAMES, "export")
    if output is not None:
        output_format(output)
    selection = Selection(where, split_columns(columns), long, bool(with_volume))
    chosen = ScopeChoice(project_id, region_id, scopes, all_projects, all_regions)
    chosen.check()
    outcome = await run_export(
        chosen, selection, output, collect=True, overwrite=overwrite, **reading
    )
    outcome.frame.attrs["export"] = outcome.as_dict()
    return outcome.frame


def export(**options: Any) -> pd.DataFrame:
    try:
        return run_blocking(lambda _: export_async(**options), "batchtag-export")
    except Interrupted as error:
        resume = Resume(export, "batchtag.export", None, options)
        raise finish(error, resume, "export").with_traceback(None) from None
    except BatchtagError as error:
        raise error.with_traceback(None) from None


document_options(export_async, READ_NAMES)
document_options(
    export,
    like=export_async,
    summary="The inventory of one or more scopes, from sync code (a notebook's running\n"
    "event loop is fine: the read then runs on its own loop in a helper thread).",
    example=""">>> df = batchtag.export(project_id=1, region_id=1,
...                      where="`tag:cost-center`.isna() and size > 100")  # doctest: +SKIP""",
)
