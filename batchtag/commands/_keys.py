"""`keys`: which tag keys the snapshots of some scopes have, and how many snapshots have
each (or, for one key, each of its values) -- AWS's ``get-tag-keys`` / ``get-tag-values``.

The scopes are read as `export` reads them (list pages as Arrow, the same limiter and
retries, a scope that fails left out and named), but nothing is spilled or pivoted: only
the counts are kept.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from batchtag.commands._export import PageBar
from batchtag.config import resolve_settings
from batchtag.defaults import default
from batchtag.errors import UsageError, option
from batchtag.gcore import Client, RateLimiter, TableClient
from batchtag.inventory import TAG_LIST as TAGS_TYPE
from batchtag.inventory import Scope, ScopeChoice, closest, count_keys, count_values
from batchtag.logs import register_secret
from batchtag.read import Reader, ReadStats, ScopeError, each_scope
from batchtag.record import EXIT_FAILED, EXIT_OK

KEYS_SCHEMA = pa.schema([("id", pa.string()), ("tags", TAGS_TYPE)])  # all a count needs


@dataclass
class KeysOutcome:
    """What `run_keys` found: per key (or per value of `key`) the snapshots having it."""

    counts: Counter  # (key or value, read_only) -> snapshots
    snapshots: int
    scopes: list[Scope]
    stats: ReadStats
    key: str | None = None  # --values KEY
    failed: list[ScopeError] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.failed else EXIT_OK

    def rows(self) -> list[dict[str, Any]]:
        """One dict per key (or value): most snapshots first, then by name."""
        name = "key" if self.key is None else "value"
        ordered = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        return [{name: k, "read_only": ro, "snapshots": n} for (k, ro), n in ordered]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key} if self.key is not None else {}
        out.update(
            {
                "values" if self.key is not None else "keys": self.rows(),
                "snapshots": self.snapshots,
                "scopes": [list(s) for s in self.scopes],
                "failed_scopes": [f.as_dict() for f in self.failed],
                "requests": self.stats.requests,
                "warnings": list(self.stats.warnings),
                "exit_code": self.exit_code,
            }
        )
        return out


async def run_keys(
    scopes: list[Scope] | ScopeChoice,
    *,
    key: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    insecure_http: bool = False,
    ca_bundle: str | os.PathLike | None = None,
    concurrency: int = default("concurrency"),
    rate: float = default("rate"),
    progress: bool | None = None,
) -> KeysOutcome:
    """Count the tag keys (or the values of tag `key`) of every snapshot of the scopes.

    Parameters
    ----------
    scopes : list of (project_id, region_id) or ScopeChoice
        What to read (a choice may list projects or regions from the API first).
    key : str, optional
        Count this key's values instead of the keys; a key no snapshot has is warned
        about with the closest keys that exist.

    Returns
    -------
    KeysOutcome
    """
    if concurrency < 1 or not rate > 0:
        raise UsageError(f"{option('concurrency')} must be >= 1 and {option('rate')} > 0")
    if key is not None and not key.strip():
        raise UsageError(f"{option('values')}: name a tag key")
    settings = resolve_settings(base_url, api_key, insecure_http=insecure_http, ca_bundle=ca_bundle)
    register_secret(settings.api_key)
    counts: Counter = Counter()
    keys: Counter = Counter()  # with --values too: the suggestions for an unknown key
    snapshots = 0

    async def read_one(project_id: int, region_id: int) -> None:
        nonlocal snapshots
        here, found, rows = Counter(), Counter(), 0
        async for page in reader.read_scope(project_id, region_id):
            if isinstance(page, list) or not page.num_rows:
                continue  # an empty page
            tags = page.column("tags")
            found.update(count_keys(tags))
            if key is not None:
                here.update(count_values(tags, key))
            rows += page.num_rows
        counts.update(found if key is None else here)  # only scopes read whole
        keys.update(found)
        snapshots += rows

    bar = PageBar(progress)
    try:
        async with Client(settings, connections=concurrency) as client:
            tables = TableClient(client, KEYS_SCHEMA)
            limiter = RateLimiter(rate)
            reader = Reader(
                tables, concurrency=concurrency, limiter=limiter, progress=bar, isolate_scopes=True
            )
            chosen = scopes if isinstance(scopes, list) else await scopes.resolve(reader)
            failed = await each_scope(chosen, read_one)
    finally:
        bar.close()
    if key is not None and not counts:
        hint = closest(key, {k for k, _ in keys})
        reader.warn(f"no snapshot has tag {key!r}" + (f"; did you mean {hint}?" * bool(hint)))
    return KeysOutcome(counts, snapshots, chosen, reader.stats, key, failed)
