"""Which scopes an inventory reads: named ones, or every project / region the API lists.

``--project-id`` x ``--region-id`` (repeatable; else the ``GCORE_CLOUD_*`` env vars), a
``--scopes`` file, or ``--all-projects`` / ``--all-regions``: the projects
(``GET /cloud/v1/projects``) or regions (``GET /cloud/v1/regions``) the key sees, listed
when the run starts, crossed with the other half as named. Conflicting choices are
refused before any request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from batchtag.config import ENV_PROJECT_ID, ENV_REGION_ID
from batchtag.errors import UsageError, option
from batchtag.inventory._select import Scope, as_ids, read_scopes, resolve_scopes
from batchtag.read import Reader, listed_ids

IdChoice = int | Iterable[int] | None


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, (list, tuple)) and not value)


@dataclass(frozen=True)
class ScopeChoice:
    """What a command was asked to read (see the module docstring).

    Examples
    --------
    >>> ScopeChoice(project_id=[1, 2], region_id=3).named(env={})
    [(1, 3), (2, 3)]
    >>> ScopeChoice(project_id=1, all_regions=True).discovers
    True
    """

    project_id: IdChoice = None
    region_id: IdChoice = None
    scopes: Any = None
    all_projects: bool = False
    all_regions: bool = False

    @property
    def discovers(self) -> bool:
        return self.all_projects or self.all_regions

    def check(self, env: Mapping[str, str] | None = None) -> None:
        """Refuse, before any request, choices that contradict each other or name bad ids."""
        for flag, name in (("all_projects", "project_id"), ("all_regions", "region_id")):
            if getattr(self, flag) and _given(getattr(self, name)):
                raise UsageError(
                    f"{option(flag)} reads every {name[:-3]} the API lists: "
                    f"do not also pass {option(name)}"
                )
        if self.scopes is not None and self.discovers:
            flag = "all_projects" if self.all_projects else "all_regions"
            raise UsageError(
                f"{option('scopes')} lists the scopes itself: do not also pass {option(flag)}"
            )
        if self.scopes is not None:
            read_scopes(self.scopes)
        elif not self.all_projects:
            as_ids(self.project_id, "project_id", _env(env).get(ENV_PROJECT_ID))
        if self.scopes is None and not self.all_regions:
            as_ids(self.region_id, "region_id", _env(env).get(ENV_REGION_ID))

    def named(self, env: Mapping[str, str] | None = None) -> list[Scope]:
        """The scopes when nothing is listed from the API."""
        return resolve_scopes(self.project_id, self.region_id, self.scopes, env)

    async def resolve(self, reader: Reader, env: Mapping[str, str] | None = None) -> list[Scope]:
        """Every scope to read: the named ones, or projects x regions with the listed halves
        read from the API through `reader`."""
        self.check(env)
        if not self.discovers:
            return self.named(env)
        env = _env(env)
        projects = (
            await listed_ids(reader, "project")
            if self.all_projects
            else as_ids(self.project_id, "project_id", env.get(ENV_PROJECT_ID))
        )
        regions = (
            await listed_ids(reader, "region")
            if self.all_regions
            else as_ids(self.region_id, "region_id", env.get(ENV_REGION_ID))
        )
        return [(p, r) for p in projects for r in regions]


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    import os

    return os.environ if env is None else env
