"""Scopes from the API and reads over several of them.

`listed_ids` pages through ``GET /cloud/v1/projects`` or ``GET /cloud/v1/regions`` (what
``--all-projects`` / ``--all-regions`` cover), with the reads' limiter, retries and auth.
`each_scope` reads scope after scope where one failing does not stop the others: a scope
whose list fails for good (403, 404, 5xx after retries) is logged and listed, the others
go on, and the caller says the run was partial. Credentials (401), a TLS failure or the
circuit breaker still stop everything. When every scope fails, the first failure is
raised as a read of that scope alone would raise it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from batchtag.errors import ApiError, UsageError
from batchtag.gcore import PROJECTS, REGIONS
from batchtag.read._reader import Reader, ScopeError

log = logging.getLogger("batchtag.read._scopes")

Scope = tuple[int, int]
LISTINGS = {"project": PROJECTS, "region": REGIONS}


async def listed_ids(reader: Reader, what: str) -> list[int]:
    """Every id of a listing, in the API's order.

    Parameters
    ----------
    reader : Reader
        Its client, limiter and retries send the requests.
    what : {"project", "region"}
        Which listing.

    Returns
    -------
    list of int

    Raises
    ------
    UsageError
        The listing holds none (nothing to read).
    """
    listing, ids, offset = LISTINGS[what], [], 0
    while True:
        try:
            page = await reader.request(
                lambda: reader.client.list_scope_page(listing, offset=offset)  # noqa: B023
            )
        except ApiError as error:
            raise ApiError(
                error.status, error.exception_class, f"listing the {what}s: {error.message}"
            ) from None
        results = page.get("results") or []
        ids += [int(item["id"]) for item in results if isinstance(item, dict) and "id" in item]
        offset += len(results)
        if not results or offset >= int(page.get("count", 0)):
            break
    if not ids:
        raise UsageError(f"the API lists no {what}s for this key (GET {listing})")
    return list(dict.fromkeys(ids))


async def each_scope(
    scopes: Sequence[Scope], read: Callable[[int, int], Awaitable[None]], what: str = "scope"
) -> list[ScopeError]:
    """``await read(project_id, region_id)`` for every scope; the ones that fail are logged
    and returned, the others go on.

    Parameters
    ----------
    scopes : sequence of (project_id, region_id)
    read : callable
        Reads one scope with a `Reader` made with ``isolate_scopes=True`` (its failures
        are `ScopeError`). What it gathered of a scope that failed is the caller's to drop.
    what : str
        What a warning calls the thing read (``"volumes of scope"``).

    Returns
    -------
    list of ScopeError
        The scopes that failed, in order (empty: every scope was read).

    Raises
    ------
    UsageError, AbortRun or ApiError
        Every scope failed: the first failure, as a read of that scope alone raises it.
    """
    failed: list[ScopeError] = []
    for project_id, region_id in scopes:
        try:
            await read(project_id, region_id)
        except ScopeError as error:
            failed.append(error)
            if len(scopes) > 1:  # (a single scope's failure is the run's error, said once)
                where = f"{what} {project_id}/{region_id}"
                log.warning("%s: %s; left out, the other scopes go on", where, error.error)
    if failed and len(failed) == len(scopes):
        raise failed[0].run_error()
    return failed
