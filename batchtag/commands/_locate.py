"""``--all-regions`` / ``--all-projects`` for `apply` and `plan`: a manifest without a
``region_id`` (or ``project_id``) column names snapshots, not where they are; each is
looked for in every region (project) the API lists, and its row gets the scope it is in.

A snapshot id is unique, so each is found in one scope at most. The scopes are listed as
`export` lists them (ids only); one that cannot be read is named in the run's summary and
the others go on (exit code 1, the run was partial). A row whose snapshot is in none of the
scopes read is a manifest problem (exit 2, nothing sent), naming the row, and the scopes
that could not be read if there were any. A manifest that has the column already is
refused: its rows say where they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from batchtag.commands._connect import open_client
from batchtag.commands._options import ApplyOptions
from batchtag.errors import Problem, UsageError, option
from batchtag.gcore import RateLimiter, TableClient
from batchtag.model import arrow_keys, id_bytes
from batchtag.read import Reader, ScopeError, each_scope

if TYPE_CHECKING:
    from batchtag.manifest import Manifest

COLUMNS = {"all_projects": "project_id", "all_regions": "region_id"}


def locates(options: ApplyOptions) -> bool:
    """Whether the manifest's snapshots are to be found in listed scopes."""
    return bool(options.all_projects or options.all_regions)


async def locate(source: Any, options: ApplyOptions) -> tuple[Manifest, list[ScopeError]]:
    """The manifest with the scope columns filled where its snapshots were found.

    Parameters
    ----------
    source : path or DataFrame
        The manifest.
    options : ApplyOptions
        ``all_projects`` / ``all_regions`` (and the project or region given otherwise),
        the connection and the reads' pacing.

    Returns
    -------
    (Manifest, list of ScopeError)
        The manifest (a row not found carries a problem, see the module docstring) and
        the scopes that could not be read.
    """
    import pyarrow as pa  # (with pandas, through the manifest: only for these runs)

    from batchtag.commands._export import PageBar
    from batchtag.inventory import ScopeChoice
    from batchtag.manifest import load_manifest

    manifest = load_manifest(source)
    frame = manifest.frame
    for flag, column in COLUMNS.items():
        if getattr(options, flag) and column in frame.columns:
            raise UsageError(
                f"{option(flag)} finds each snapshot's {column[:-3]}; this manifest has a "
                f"{column} column, which says where each row is: drop one of the two"
            )
    given = None
    if "project_id" in frame.columns:
        given = sorted({str(v).strip() for v in frame["project_id"]} - {""})
    choice = ScopeChoice(
        project_id=given or options.project_id,
        region_id=options.region_id,
        all_projects=options.all_projects,
        all_regions=options.all_regions,
    )
    choice.check()
    if "snapshot_id" not in frame.columns:
        return manifest, []  # the checks say what is missing
    keys = [id_bytes(str(v).strip()) for v in frame["snapshot_id"].tolist()]
    wanted = set(keys)
    found: dict[bytes, tuple[int, int]] = {}
    bar = PageBar(options.progress)
    async with open_client(options) as client:
        reader = Reader(
            TableClient(client, pa.schema([("id", pa.string())])),  # ids: all that places one
            concurrency=options.concurrency,
            limiter=RateLimiter(options.rate),
            isolate_scopes=True,
            progress=bar,
        )
        scopes = await choice.resolve(reader)

        async def read_one(project_id: int, region_id: int) -> None:
            async for page in reader.read_scope(project_id, region_id):
                if isinstance(page, list) or not page.num_rows:
                    continue
                for key in arrow_keys(page.column("id")).tolist():
                    if key in wanted:
                        found[key] = (project_id, region_id)

        try:
            failed = await each_scope(scopes, read_one)
        finally:
            bar.close()
    _fill(manifest, [found.get(key) for key in keys], failed, len(scopes))
    return manifest, failed


def _fill(manifest: Manifest, where: list, failed: list[ScopeError], scopes: int) -> None:
    """Scope cells for the rows found (`where`: each row's scope, or None); a problem for
    each row whose snapshot was not."""
    frame = manifest.frame
    ids = frame["snapshot_id"].tolist()
    rows = manifest.rows()
    projects = frame["project_id"].tolist() if "project_id" in frame.columns else None
    unread = "; ".join(
        f"{f.project_id}/{f.region_id} could not be read ({f.error})" for f in failed
    )
    for pos, (value, scope) in enumerate(zip(ids, where, strict=True)):
        if scope is None and str(value).strip():
            text = f"snapshot {value} is in none of the {scopes - len(failed)} scopes read"
            manifest.problems.append(
                Problem(
                    text + (f"; {unread}" if unread else ""),
                    row=int(rows[pos]),
                    column="snapshot_id",
                )
            )
        elif (
            scope is not None
            and projects is not None
            and projects[pos].strip()
            not in (
                "",
                str(scope[0]),
            )
        ):
            text = f"snapshot {value} is in project {scope[0]}, not in project {projects[pos]}"
            manifest.problems.append(Problem(text, row=int(rows[pos]), column="project_id"))
    import pandas as pd

    dtype = frame["snapshot_id"].dtype
    for at, column in enumerate(("project_id", "region_id")):
        cells = ["" if s is None else str(s[at]) for s in where]
        frame[column] = pd.Series(cells, index=frame.index, dtype=dtype)
