"""`batchtag.keys` and `batchtag.keys_async`: the tag keys (or one key's values) with counts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from batchtag.api._functions import refuse_unknown
from batchtag.api._interrupt import Resume, finish, run_blocking
from batchtag.commands import READ_NAMES, run_keys
from batchtag.defaults import document_options
from batchtag.errors import BatchtagError, Interrupted
from batchtag.inventory import ScopeChoice
from batchtag.record import conform


async def keys_async(
    *,
    project_id: int | Iterable[int] | None = None,
    region_id: int | Iterable[int] | None = None,
    scopes: Any = None,
    all_projects: bool = False,
    all_regions: bool = False,
    values: str | None = None,
    **reading: Any,
) -> pd.DataFrame:
    """The tag keys the snapshots of some scopes have, with how many snapshots have each.

    Parameters
    ----------
    project_id, region_id : int or list of int, optional
        Every project x region is read; default: GCORE_CLOUD_PROJECT_ID / _REGION_ID.
    scopes : path, DataFrame or list of (project_id, region_id), optional
        Explicit pairs instead.
    all_projects, all_regions : bool
        Every project or region the API lists (see `batchtag.export`).
    values : str, optional
        Count this key's values instead of the keys (a key no snapshot has is warned about
        with the closest keys that exist).

    Returns
    -------
    pandas.DataFrame
        Columns ``key`` (or ``value``), ``read_only``, ``snapshots``: most common first.
        ``attrs["keys"]`` holds the summary (snapshots read, scopes, failed scopes).

    Examples
    --------
    >>> await batchtag.keys_async(project_id=1, region_id=1)  # doctest: +SKIP
    """
    refuse_unknown(reading, READ_NAMES, "keys")
    choice = ScopeChoice(project_id, region_id, scopes, all_projects, all_regions)
    choice.check()
    outcome = await run_keys(choice, key=values, **reading)
    name = "key" if values is None else "value"
    frame = conform(pd.DataFrame(outcome.rows(), columns=[name, "read_only", "snapshots"]))
    frame.attrs["keys"] = outcome.as_dict()
    return frame


def keys(**options: Any) -> pd.DataFrame:
    try:
        return run_blocking(lambda _: keys_async(**options), "batchtag-keys")
    except Interrupted as error:
        resume = Resume(keys, "batchtag.keys", None, options)
        raise finish(error, resume, "keys").with_traceback(None) from None
    except BatchtagError as error:
        raise error.with_traceback(None) from None


document_options(keys_async, READ_NAMES)
document_options(
    keys,
    like=keys_async,
    summary="The tag keys with how many snapshots have each, from sync code (a notebook's\n"
    "running event loop is fine: the read then runs on its own loop in a helper thread).",
    example=">>> batchtag.keys(project_id=1, region_id=1)  # doctest: +SKIP",
)
