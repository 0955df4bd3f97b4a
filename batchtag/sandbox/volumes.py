"""The sandbox's volumes: seeded per scope as numpy columns, listed with tag filters.

Each snapshot's `volume_id` names one of its scope's volumes, except a few whose volume has
been deleted since (listed nowhere; a GET answers 404). Which volume each snapshot has is
drawn when the store starts; the volumes' ids when first needed (a page of snapshots, or
of volumes), and the rest of their columns on the first volume request of the scope, so
seeding a million snapshots costs a few milliseconds more than without volumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from batchtag.sandbox import uuids
from batchtag.sandbox.merge import patch_tags
from batchtag.sandbox.seed import (
    SIZES,
    USER_TAGS,
    VOLUME_WORDS,
    LazyIds,
    TagColumns,
    Vocabulary,
    generator,
    iso_times,
    uuid4_bytes,
)

VOLUME_TYPES = ["standard", "ssd_hiiops", "cold", "ultra"]
# limiter_stats by volume type: IOPS base, IOPS burst, MBps base, MBps burst
LIMITS = {
    "standard": (1000, 3000, 100, 300),
    "ssd_hiiops": (10000, 30000, 500, 1000),
    "cold": (200, 600, 50, 100),
    "ultra": (20000, 60000, 1000, 2000),
}
STATUSES_RARE = ["backing-up", "extending", "error", "maintenance"]
VOLUME_TAGS = Vocabulary(
    {key: USER_TAGS[key] for key in ("cost-center", "team", "env", "owner")},
    {
        "created-by": ["gcore-console", "gcore-k8s", "gcore-dbaas"],
        "billing-plan": ["pay-as-you-go", "reserved"],
    },
)
SHARE_USER_TAGS, SHARE_READ_ONLY = 0.8, 0.3
SHARE_ATTACHED, SHARE_BOOTABLE, SHARE_RARE = 0.6, 0.3, 0.05
AGE = 365 * 86400  # volumes were made in the year before the snapshots (SEED_EPOCH on)
FLAVOR = "g1-standard-2-4"


def default_count(snapshots: int) -> int:
    """Volumes per scope when not given: a quarter of the snapshots, at least one."""
    return max(1, snapshots // 4)


def volume_ids(seed: int, project_id: int, region_id: int, count: int) -> LazyIds:
    """The scope's volume ids (snapshots point at them; drawn when first needed)."""
    return LazyIds("volume-ids", seed, project_id, region_id, count)


@dataclass
class VolumeColumns:
    """The seeded volumes of one scope, one numpy array per field."""

    ids: np.ndarray
    creators: np.ndarray
    servers: np.ndarray  # the instance a volume is attached to
    attachments: np.ndarray  # the attachment's id
    created: np.ndarray  # seconds after SEED_EPOCH (negative: before it)
    updated: np.ndarray  # seconds after created
    word: np.ndarray
    number: np.ndarray
    size: np.ndarray
    kind: np.ndarray  # index in VOLUME_TYPES
    bootable: np.ndarray
    attached: np.ndarray
    status: np.ndarray  # -1: available, or in-use when attached
    tags: TagColumns

    def __len__(self) -> int:
        return len(self.ids)


def seed_volumes(seed: int, project_id: int, region_id: int, ids: np.ndarray) -> VolumeColumns:
    rng = generator("volumes", seed, project_id, region_id)
    n = len(ids)
    tags = TagColumns.draw(rng, n, VOLUME_TAGS, (SHARE_USER_TAGS, 3), (SHARE_READ_ONLY, 2))
    rare = rng.random(n) < SHARE_RARE
    return VolumeColumns(
        ids=ids,
        creators=uuid4_bytes(rng, n),
        servers=uuid4_bytes(rng, n),
        attachments=uuid4_bytes(rng, n),
        created=rng.integers(-AGE, 0, n, dtype=np.int32),
        updated=rng.integers(0, 30 * 86400, n, dtype=np.int32),
        word=rng.integers(0, len(VOLUME_WORDS), n, dtype=np.uint8),
        number=rng.integers(1, 100, n, dtype=np.uint8),
        size=rng.integers(0, len(SIZES), n, dtype=np.uint8),
        kind=rng.integers(0, len(VOLUME_TYPES), n, dtype=np.uint8),
        bootable=rng.random(n) < SHARE_BOOTABLE,
        attached=rng.random(n) < SHARE_ATTACHED,
        status=np.where(rare, rng.integers(0, len(STATUSES_RARE), n), -1).astype(np.int8),
        tags=tags,
    )


def rows_json(cols: VolumeColumns, index: np.ndarray, scope: dict[str, Any]) -> list[dict]:
    """The API objects of seeded rows `index` (uuids and times formatted column-wise)."""
    created, updated = (t.tolist() for t in iso_times(cols.created[index], cols.updated[index]))
    ids = zip(
        uuids.texts(cols.ids[index]),
        uuids.texts(cols.creators[index]),
        uuids.texts(cols.servers[index]),
        uuids.texts(cols.attachments[index]),
        strict=True,
    )
    return [
        _json(cols, i, scope, made, changed, *row)
        for i, made, changed, row in zip(index.tolist(), created, updated, ids, strict=True)
    ]


def _json(
    cols: VolumeColumns,
    i: int,
    scope: dict[str, Any],
    created: str,
    updated: str,
    volume_id: str,
    creator: str,
    server: str,
    attachment: str,
) -> dict[str, Any]:
    """Row `i` as the API answers it, members in the order the API lists them."""
    kind = VOLUME_TYPES[cols.kind[i]]
    attached, bootable = bool(cols.attached[i]), bool(cols.bootable[i])
    status = int(cols.status[i])
    iops, iops_burst, mbps, mbps_burst = LIMITS[kind]
    word, number = VOLUME_WORDS[cols.word[i]], int(cols.number[i])
    attachments = [
        {
            "attachment_id": attachment,
            "volume_id": volume_id,
            "server_id": server,
            "instance_name": f"vm-{word}-{number:02d}",
            "device": "/dev/vda" if bootable else "/dev/vdb",
            "attached_at": created,
            "flavor_id": FLAVOR,
        }
    ]
    return {
        "id": volume_id,
        "name": f"{word}-volume-{number:02d}",
        "size": SIZES[cols.size[i]],
        "status": STATUSES_RARE[status] if status >= 0 else "in-use" if attached else "available",
        "volume_type": kind,
        "bootable": bootable,
        "is_root_volume": bootable and attached,
        "attachments": attachments if attached else [],
        "limiter_stats": {
            "iops_base_limit": iops,
            "iops_burst_limit": iops_burst,
            "MBps_base_limit": mbps,
            "MBps_burst_limit": mbps_burst,
        },
        "creator_task_id": creator,
        "task_id": None,
        **scope,
        "created_at": created,
        "updated_at": updated,
        "tags": [{"key": k, "value": v, "read_only": ro} for k, v, ro in cols.tags.at(i)],
    }


@dataclass
class Volume:
    """A volume changed since seeding: its members, and its tags as a map."""

    members: dict[str, Any]  # every member but tags
    tags: dict[str, str]
    read_only: set[str]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Volume:
        members = {k: v for k, v in doc.items() if k != "tags"}
        tags = {t["key"]: t["value"] for t in doc["tags"]}
        return cls(members, tags, {t["key"] for t in doc["tags"] if t["read_only"]})

    def to_json(self) -> dict[str, Any]:
        tags = [
            {"key": k, "value": v, "read_only": k in self.read_only} for k, v in self.tags.items()
        ]
        return {**self.members, "tags": tags}

    def matches(self, keys: list[str], pairs: Mapping[str, str]) -> bool:
        return all(k in self.tags for k in keys) and all(
            self.tags.get(k) == v for k, v in pairs.items()
        )

    def patch(self, body: Mapping[str, Any]) -> bool:
        """Apply a validated PATCH body; True when something changed."""
        changed = False
        if "name" in body and body["name"] != self.members["name"]:
            self.members["name"] = body["name"]
            changed = True
        if "tags" in body:
            tags = patch_tags(self.tags, body["tags"], self.read_only)
            if tags != self.tags:
                self.tags = tags
                changed = True
        return changed


class VolumeScope:
    """One scope's volumes: the seeded columns (built on first use) plus changed volumes."""

    def __init__(self, seed: int, ids: LazyIds, scope: dict[str, Any]):
        self.seed = seed
        self.lazy_ids = ids
        self.scope = scope  # project_id, region, region_id
        self._cols: VolumeColumns | None = None
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None
        self.live: dict[int, Volume] = {}

    def __len__(self) -> int:
        return len(self.lazy_ids)

    @property
    def ids(self) -> np.ndarray:
        return self.lazy_ids.array

    @property
    def cols(self) -> VolumeColumns:
        if self._cols is None:
            p, r = self.scope["project_id"], self.scope["region_id"]
            self._cols = seed_volumes(self.seed, p, r, self.ids)
        return self._cols

    def forget_changes(self) -> None:
        """Back to the seeded volumes (the columns stay built)."""
        self.live = {}

    def index_of(self, volume_id: str) -> int | None:
        key = uuids.parse(volume_id)
        if key is None or not len(self):
            return None
        if self._sorted is None:
            keys = self.ids.view("S16").ravel()
            order = np.argsort(keys, kind="stable")
            self._sorted = order, keys[order]
        order, keys = self._sorted
        at = int(np.searchsorted(keys, key))
        # 'S16' drops trailing zero bytes when compared: check the full 16 bytes.
        for pos in (at - 1, at):
            if 0 <= pos < len(self) and self.ids[order[pos]].tobytes() == key:
                return int(order[pos])
        return None

    def volume(self, index: int) -> Volume:
        """Volume `index`, built once and kept, so it can change."""
        found = self.live.get(index)
        if found is None:
            doc = rows_json(self.cols, np.array([index]), self.scope)[0]
            found = self.live[index] = Volume.from_json(doc)
        return found

    def matching(self, keys: list[str], pairs: Mapping[str, str]) -> np.ndarray | None:
        """The rows having every key in `keys` and every pair in `pairs`; None: all rows."""
        if not keys and not pairs:
            return None
        tags = self.cols.tags
        match = np.ones(len(self), dtype=bool)
        for key in keys:
            match &= tags.having(key)
        for key, value in pairs.items():
            match &= tags.having(key, value)
        for index, volume in self.live.items():
            match[index] = volume.matches(keys, pairs)
        return np.flatnonzero(match)

    def page(self, rows: np.ndarray) -> list[dict[str, Any]]:
        """The API objects of `rows`: seeded ones column-wise, changed ones as they are now."""
        fresh = np.array([i not in self.live for i in rows.tolist()], dtype=bool)
        built = iter(rows_json(self.cols, rows[fresh], self.scope))
        return [
            next(built) if new else self.live[i].to_json()
            for i, new in zip(rows.tolist(), fresh.tolist(), strict=True)
        ]

    def list(
        self, limit: int, offset: int, keys: list[str], pairs: Mapping[str, str]
    ) -> tuple[int, list[dict[str, Any]]]:
        rows = self.matching(keys, pairs)
        if rows is None:
            return len(self), self.page(np.arange(offset, min(offset + limit, len(self))))
        return len(rows), self.page(rows[offset : offset + limit])
