"""The sandbox's in-memory store: seeded snapshot and volume columns (see seed.py and
volumes.py) plus what changed."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from batchtag.sandbox import uuids
from batchtag.sandbox.merge import patch_tags
from batchtag.sandbox.rules import SandboxError, not_found, validate_patch
from batchtag.sandbox.seed import (
    Columns,
    fields_at,
    page_json,
    region_name,
    seed_columns,
    tags_at,
    times,
)
from batchtag.sandbox.volumes import Volume, VolumeScope, default_count, volume_ids


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


@dataclass
class Snapshot:
    id: str
    name: str
    description: str | None
    status: str
    size: int
    volume_id: str
    project_id: int
    region: str
    region_id: int
    created_at: str
    updated_at: str
    creator_task_id: str
    task_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    read_only: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        tags = [
            {"key": k, "value": v, "read_only": k in self.read_only} for k, v in self.tags.items()
        ]
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "size": self.size,
            "volume_id": self.volume_id,
            "project_id": self.project_id,
            "region": self.region,
            "region_id": self.region_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "creator_task_id": self.creator_task_id,
            "task_id": self.task_id,
            "tags": tags,
        }


# ---------------------------------------------------------------- the store


class Scope:
    """One (project, region): seeded columns, plus what requests changed since.

    Snapshots are numbered: 0..n-1 are the seeded rows, n.. the ones created later. A
    snapshot read or written by id is materialised once into `live` and changed in place.
    """

    def __init__(self, cols: Columns, project_id: int, region_id: int, seed: int = 0):
        self.cols = cols
        self.project_id = project_id
        self.region_id = region_id
        self.region = region_name(region_id)
        where = {"project_id": project_id, "region": self.region, "region_id": region_id}
        self.volumes = VolumeScope(seed, cols.volume_ids, where)
        self.live: dict[int, Snapshot] = {}
        self.created: list[Snapshot] = []
        self.created_index: dict[str, int] = {}
        self.deleted: set[int] = set()
        self._order: np.ndarray | None = None  # listing order; None: 0..n-1

    def __len__(self) -> int:
        return len(self.cols) + len(self.created) - len(self.deleted)

    def order(self) -> np.ndarray:
        if self._order is None:
            everything = np.arange(len(self.cols) + len(self.created))
            self._order = np.setdiff1d(everything, list(self.deleted), assume_unique=True)
        return self._order

    def positions(self, offset: int, limit: int) -> np.ndarray:
        if not self.deleted and not self.created:
            return np.arange(offset, min(offset + limit, len(self.cols)))
        return self.order()[offset : offset + limit]

    def index_of(self, snapshot_id: str) -> int | None:
        key = uuids.parse(snapshot_id)
        index = self.cols.index_of(key) if key is not None else None
        if index is None:  # a UUID in either case; any other id exactly
            index = self.created_index.get(snapshot_id.lower() if key else snapshot_id)
        return None if index is None or index in self.deleted else index

    def snapshot(self, index: int) -> Snapshot:
        if index >= len(self.cols):
            return self.created[index - len(self.cols)]
        snap = self.live.get(index)
        if snap is None:
            created, updated = times(self.cols, np.array([index]))
            snap = self.live[index] = self._build(index, str(created[0]), str(updated[0]))
        return snap

    def _build(self, index: int, created: str, updated: str) -> Snapshot:
        return self._assemble(self.cols, index, fields_at(self.cols, index, created, updated))

    def _assemble(self, cols: Columns, index: int, fields: dict[str, Any]) -> Snapshot:
        """The snapshot at `index` of `cols`, with its column `fields` and this store's scope."""
        tags = tags_at(cols, index)
        return Snapshot(
            **fields,
            project_id=self.project_id,
            region=self.region,
            region_id=self.region_id,
            tags={k: v for k, v, _ in tags},
            read_only={k for k, _, ro in tags if ro},
        )

    def page(self, positions: np.ndarray) -> list[dict[str, Any]]:
        """The API objects at `positions`, without materialising untouched snapshots."""
        live = self.live
        untouched = np.array(
            [i < len(self.cols) and i not in live for i in positions.tolist()], dtype=bool
        )
        scope = {"project_id": self.project_id, "region": self.region}
        scope["region_id"] = self.region_id
        built = iter(page_json(self.cols, positions[untouched], scope))
        return [
            next(built) if fresh else self.snapshot(index).to_json()
            for index, fresh in zip(positions.tolist(), untouched.tolist(), strict=True)
        ]

    def add(self, snap: Snapshot) -> None:
        """Put a snapshot built by hand at the end of the listing (tests, rehearsals)."""
        self.created_index[snap.id] = len(self.cols) + len(self.created)
        self.created.append(snap)
        self._order = None

    def locked(self) -> list[Snapshot]:
        """The snapshots a task holds now (only those are materialised)."""
        seeded = np.flatnonzero(self.cols.locked).tolist()
        candidates = [self.snapshot(i) for i in seeded if i not in self.deleted]
        candidates += self.created
        return [s for s in candidates if s.task_id is not None]

    def create(self, count: int, batch: Columns) -> list[str]:
        start = len(self.cols) + len(self.created)
        now = iso(datetime.now(UTC))
        for j in range(count):
            snap = self._build_created(batch, j, now)
            self.created_index[snap.id] = start + j
            self.created.append(snap)
        self._order = None
        return [s.id for s in self.created[-count:]] if count else []

    def _build_created(self, batch: Columns, j: int, now: str) -> Snapshot:
        return self._assemble(batch, j, {**fields_at(batch, j, now, now), "task_id": None})

    def delete(self, positions: Iterable[int]) -> list[str]:
        order = self.order() if (self.deleted or self.created) else None
        gone = [int(order[p]) if order is not None else int(p) for p in positions]
        ids = [self.snapshot(i).id for i in gone]
        self.deleted.update(gone)
        for i in gone:
            self.live.pop(i, None)
        self._order = None
        return ids


class SnapshotStore:
    """Snapshots by scope. Not thread-safe: the sandbox uses it from one event loop."""

    def __init__(
        self,
        seed: int = 0,
        snapshots: int = 200,
        project_ids: Iterable[int] = (1,),
        region_ids: Iterable[int] = (1,),
        lock_rate: float = 0.0,
        lock_ms: float = 1000.0,
        volumes: int | None = None,
    ):
        self.seed = seed
        self.count = snapshots
        self.volume_count = default_count(snapshots) if volumes is None else volumes
        self.project_ids = list(project_ids) or [1]
        self.region_ids = list(region_ids) or [1]
        self.lock_rate = lock_rate
        self.lock_ms = lock_ms
        self.columns = {
            (p, r): seed_columns(
                seed,
                p,
                r,
                snapshots,
                lock_rate,
                volume_ids=volume_ids(seed, p, r, self.volume_count),
            )
            for p in self.project_ids
            for r in self.region_ids
        }
        self.scopes: dict[tuple[int, int], Scope] = {}
        self.reset()

    def reset(self) -> None:
        """Restore the seeded state exactly."""
        before = self.scopes
        self.scopes = {key: Scope(cols, *key, self.seed) for key, cols in self.columns.items()}
        for key, scope in before.items():
            scope.volumes.forget_changes()
            self.scopes[key].volumes = scope.volumes
        self.lock_started: dict[str, float] = {}
        self.batches = 0

    # ---- reading

    def has_scope(self, project_id: int, region_id: int) -> bool:
        return (project_id, region_id) in self.scopes

    def scope(self, project_id: int, region_id: int) -> Scope:
        found = self.scopes.get((project_id, region_id))
        if found is None:
            raise SandboxError(
                404, "NotFoundError", f"Project {project_id} region {region_id} not found"
            )
        return found

    def ids(self, project_id: int = 1, region_id: int = 1) -> list[str]:
        return [s.id for s in self.snapshots(project_id, region_id)]

    def snapshots(self, project_id: int = 1, region_id: int = 1) -> list[Snapshot]:
        scope = self.scopes.get((project_id, region_id))
        if scope is None:
            return []
        return [scope.snapshot(i) for i in scope.positions(0, len(scope)).tolist()]

    def find(self, project_id: int, region_id: int, snapshot_id: str) -> Snapshot:
        scope = self.scopes.get((project_id, region_id))
        index = scope.index_of(snapshot_id) if scope is not None else None
        if index is None:
            raise not_found(snapshot_id)
        return scope.snapshot(index)

    def list(
        self,
        project_id: int,
        region_id: int,
        limit: int = 1000,
        offset: int = 0,
        volume_id: str | None = None,
    ) -> tuple[int, list[dict[str, Any]]]:
        """(count, one page): only the page's snapshots are built, O(limit) per call."""
        scope = self.scope(project_id, region_id)
        if volume_id is None:
            return len(scope), scope.page(scope.positions(offset, limit))
        snaps = [s for s in self.snapshots(project_id, region_id) if s.volume_id == volume_id]
        return len(snaps), [s.to_json() for s in snaps[offset : offset + limit]]

    def get(self, project_id: int, region_id: int, snapshot_id: str, now: float) -> dict:
        snap = self.find(project_id, region_id, snapshot_id)
        self.touch(snap, now)
        return snap.to_json()

    # ---- churn: snapshots created and deleted by someone else

    def mutate(
        self, project_id: int, region_id: int, create: int = 0, delete: int = 0
    ) -> dict[str, Any]:
        """Delete `delete` snapshots spread over the listing, then create `create` at its end.

        Which ones is drawn from the seed and the number of earlier mutations, so a run
        repeats exactly.
        """
        scope = self.scope(project_id, region_id)
        self.batches += 1
        rng = random.Random(f"batchtag-sandbox-churn:{self.seed}:{self.batches}")
        deleted = scope.delete(sorted(rng.sample(range(len(scope)), min(delete, len(scope)))))
        batch = seed_columns(
            self.seed,
            project_id,
            region_id,
            create,
            0.0,
            f"churn-{self.batches}",
            volume_ids=scope.volumes.lazy_ids,
        )
        created = scope.create(create, batch)
        return {"created": created, "deleted": deleted, "count": len(scope)}

    # ---- locks

    def end_tasks(self) -> int:
        """End every running task now: locked snapshots accept writes. Returns how many."""
        locked = [snap for scope in self.scopes.values() for snap in scope.locked()]
        for snap in locked:
            snap.task_id = None
        return len(locked)

    def touch(self, snap: Snapshot, now: float) -> None:
        """Start a lock's clock on the first request for it; clear it `lock_ms` later.

        The first request always still sees the lock, so a locked snapshot answers at least
        one 409 however small `lock_ms` is.
        """
        if snap.task_id is None:
            return
        started = self.lock_started.get(snap.id)
        if started is None:
            self.lock_started[snap.id] = now
        elif now - started >= self.lock_ms / 1000:
            snap.task_id = None

    # ---- writing

    def patch(
        self, project_id: int, region_id: int, snapshot_id: str, body: Any, now: float
    ) -> dict[str, Any]:
        snap = self.find(project_id, region_id, snapshot_id)
        self.touch(snap, now)
        validate_patch(body)
        if snap.task_id is not None:
            raise SandboxError(
                409,
                "ConflictError",
                f"Snapshot {snap.id} is locked by task {snap.task_id}; try again later",
            )
        changed = False
        if "name" in body and body["name"] != snap.name:
            snap.name = body["name"]
            changed = True
        if "tags" in body:
            tags = patch_tags(snap.tags, body["tags"], snap.read_only)
            if tags != snap.tags:
                snap.tags = tags
                changed = True
        if changed:
            snap.updated_at = later(snap.updated_at)
        return snap.to_json()

    # ---- volumes

    def volume_scope(self, project_id: int, region_id: int) -> VolumeScope:
        return self.scope(project_id, region_id).volumes

    def volumes(self, project_id: int = 1, region_id: int = 1) -> list[dict[str, Any]]:
        """Every volume of a scope as the API's objects, in listing order."""
        scope = self.scopes.get((project_id, region_id))
        if scope is None:
            return []
        return scope.volumes.list(len(scope.volumes), 0, [], {})[1]

    def list_volumes(
        self,
        project_id: int,
        region_id: int,
        limit: int = 1000,
        offset: int = 0,
        tag_keys: Iterable[str] = (),
        tag_values: Mapping[str, str] | None = None,
    ) -> tuple[int, list[dict[str, Any]]]:
        """(count, one page) of the volumes having every key of `tag_keys` and every
        key/value pair of `tag_values` (read-only tags included)."""
        volumes = self.volume_scope(project_id, region_id)
        return volumes.list(limit, offset, list(tag_keys), dict(tag_values or {}))

    def find_volume(self, project_id: int, region_id: int, volume_id: str) -> Volume:
        """A volume of one scope; 404 when it has no such volume (or no such scope)."""
        scope = self.scopes.get((project_id, region_id))
        index = scope.volumes.index_of(volume_id) if scope is not None else None
        if index is None:
            raise not_found(volume_id, "Volume")
        return scope.volumes.volume(index)

    def get_volume(self, project_id: int, region_id: int, volume_id: str) -> dict[str, Any]:
        return self.find_volume(project_id, region_id, volume_id).to_json()

    def patch_volume(
        self, project_id: int, region_id: int, volume_id: str, body: Any
    ) -> tuple[dict[str, Any], bool]:
        """Rename a volume or merge-patch its tags; (the volume, whether it changed)."""
        volume = self.find_volume(project_id, region_id, volume_id)
        validate_patch(body)
        changed = volume.patch(body)
        if changed:
            volume.members["updated_at"] = later(volume.members["updated_at"])
        return volume.to_json(), changed

    def volume_home(self, volume_id: str) -> tuple[int, int]:
        """The (project_id, region_id) holding `volume_id`; 404 when no scope does."""
        for key, scope in self.scopes.items():
            if scope.volumes.index_of(volume_id) is not None:
                return key
        raise not_found(volume_id, "Volume")


def later(updated_at: str) -> str:
    """Now as ISO 8601, strictly later than `updated_at` (two writes in a microsecond)."""
    previous = datetime.fromisoformat(updated_at)
    return iso(max(datetime.now(UTC), previous + timedelta(microseconds=1)))


def tags_of(snapshot_json: Mapping[str, Any]) -> dict[str, str]:
    """The tags of a snapshot response as a plain dict (all tags, read-only included)."""
    return {t["key"]: t["value"] for t in snapshot_json["tags"]}
