"""Deterministic, vectorised seeding: one scope's snapshots as numpy columns.

A million snapshots are drawn in about a second and kept in about 80 MB; a snapshot becomes a
Python object only when a request reads or writes it (`materialise`), and a list page is
encoded straight from the columns (`encode`), so listing never builds every snapshot.

Each scope draws from its own generator derived from (seed, project_id, region_id), so adding
a scope never changes another, and locks draw from a separate generator, so turning on
`lock_rate` does not change names, tags or ids. Which volume each snapshot was taken from
draws from another, so the number of volumes changes only the snapshots' `volume_id`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from batchtag.sandbox import uuids

REGION_NAMES = {
    1: "Luxembourg-2",
    2: "Amsterdam",
    3: "Frankfurt",
    4: "Singapore",
    5: "Manassas",
}
STATUSES_RARE = ["creating", "backing-up", "restoring", "error", "deleting"]
SIZES = [1, 5, 10, 20, 40, 50, 100, 200, 250, 500, 1000]
VOLUME_WORDS = ["db", "web", "cache", "queue", "etl", "ml", "logs", "api", "auth", "search"]
DESCRIPTIONS = [
    "Nightly backup",
    "Before kernel upgrade",
    "Pre-migration copy",
    "Weekly snapshot by lifecycle policy",
    "Manual snapshot",
]
USER_TAGS = {
    "app": ["checkout", "search", "reports", "gateway"],
    "cost-center": ["cc-1001", "cc-1002", "cc-2040", "cc-3300"],
    "env": ["prod", "staging", "dev", "test"],
    "owner": ["alice", "bob", "carol", "dave", "erin"],
    "retention": ["7d", "30d", "90d", "1y"],
    "team": ["data", "platform", "web", "ml", "billing", "security"],
}
READ_ONLY_TAGS = {
    "created-by": ["gcore-scheduler", "gcore-backup"],
    "lifecycle-policy": ["daily-7", "weekly-4", "monthly-12"],
}
SEED_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
EPOCH64 = np.datetime64(SEED_EPOCH.replace(tzinfo=None), "us")
SHARE_USER_TAGS, SHARE_READ_ONLY, SHARE_AVAILABLE, SHARE_DESCRIBED = 0.4, 0.1, 0.9, 0.5
SHARE_VOLUME_GONE = 0.03  # snapshots whose volume has been deleted since


def region_name(region_id: int) -> str:
    """A region's name, as snapshots and volumes give it in `region`."""
    return REGION_NAMES.get(region_id, f"Region-{region_id}")


def generator(kind: str, seed: int, project_id: int, region_id: int) -> np.random.Generator:
    digest = hashlib.sha256(f"batchtag-sandbox-{kind}:{seed}:{project_id}:{region_id}".encode())
    return np.random.default_rng(int.from_bytes(digest.digest()[:16], "big"))


def uuid4_bytes(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` random version-4 UUIDs as an (n, 16) uint8 array."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


def pick_tags(rng: np.random.Generator, n: int, share: float, sizes: list[int], most: int):
    """A bit mask of chosen keys (1..`most` of them for `share` of the rows) and value indexes."""
    keys = len(sizes)
    has = rng.random(n) < share
    wanted = rng.integers(1, most + 1, n)
    ranks = np.argsort(np.argsort(rng.random((n, keys)), axis=1), axis=1)
    chosen = (ranks < wanted[:, None]) & has[:, None]
    mask = (chosen.astype(np.uint8) << np.arange(keys, dtype=np.uint8)).sum(axis=1)
    values = (rng.integers(0, 60, (n, keys)) % np.array(sizes)).astype(np.uint8)
    return mask.astype(np.uint8), values


class Vocabulary:
    """The tag keys a kind of resource is seeded with, and each key's values."""

    def __init__(self, user: dict[str, list[str]], read_only: dict[str, list[str]]):
        self.user = user
        self.read_only = read_only
        self.groups = (list(user.items()), list(read_only.items()))  # bit j: key j

    def find(self, key: str) -> tuple[bool, int, list[str]] | None:
        """(read_only, bit, values) of `key`, or None when no seeded row can have it."""
        for read_only, group in ((False, self.user), (True, self.read_only)):
            if key in group:
                return read_only, list(group).index(key), group[key]
        return None


SNAPSHOT_TAGS = Vocabulary(USER_TAGS, READ_ONLY_TAGS)


@dataclass
class TagColumns:
    """Seeded tags of many rows: which keys each row has (a bit per key) and value indexes."""

    vocabulary: Vocabulary
    user_mask: np.ndarray
    user_values: np.ndarray
    ro_mask: np.ndarray
    ro_values: np.ndarray

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        n: int,
        vocabulary: Vocabulary,
        user: tuple[float, int],
        read_only: tuple[float, int],
    ) -> TagColumns:
        """Tags for `n` rows: (share of rows that have any, most keys a row has) per group."""
        sizes = [len(v) for v in vocabulary.user.values()]
        user_mask, user_values = pick_tags(rng, n, user[0], sizes, user[1])
        sizes = [len(v) for v in vocabulary.read_only.values()]
        ro_mask, ro_values = pick_tags(rng, n, read_only[0], sizes, read_only[1])
        return cls(vocabulary, user_mask, user_values, ro_mask, ro_values)

    def at(self, i: int) -> list[tuple[str, str, bool]]:
        """The (key, value, read_only) tags of row `i`: user tags first, each group by key."""
        out = []
        user, read_only = self.vocabulary.groups
        bits = int(self.user_mask[i])
        for j, (key, texts) in enumerate(user):
            if bits >> j & 1:
                out.append((key, texts[self.user_values[i, j]], False))
        bits = int(self.ro_mask[i])
        for j, (key, texts) in enumerate(read_only):
            if bits >> j & 1:
                out.append((key, texts[self.ro_values[i, j]], True))
        return out

    def having(self, key: str, value: str | None = None) -> np.ndarray:
        """Which rows have tag `key` (with `value`, when given), as a boolean array."""
        found = self.vocabulary.find(key)
        if found is None:
            return np.zeros(len(self.user_mask), dtype=bool)
        read_only, bit, texts = found
        mask, values = (
            (self.ro_mask, self.ro_values) if read_only else (self.user_mask, self.user_values)
        )
        has = (mask >> bit & 1).astype(bool)
        if value is not None:
            if value not in texts:
                return np.zeros(len(mask), dtype=bool)
            has &= values[:, bit] == texts.index(value)
        return has


class LazyIds:
    """`count` random UUIDs of one kind and scope, drawn on first use of `array`."""

    def __init__(self, kind: str, seed: int, project_id: int, region_id: int, count: int):
        self.draw = (kind, seed, project_id, region_id)
        self.count = count
        self._array: np.ndarray | None = None

    def __len__(self) -> int:
        return self.count

    @property
    def array(self) -> np.ndarray:
        """The ids as a (count, 16) uint8 array."""
        if self._array is None:
            self._array = uuid4_bytes(generator(*self.draw), self.count)
        return self._array


NO_IDS = LazyIds("none", 0, 0, 0, 0)


@dataclass
class Columns:
    """The seeded snapshots of one scope, one numpy array per field."""

    ids: np.ndarray
    volumes: np.ndarray  # the ids of deleted volumes, used where `volume_links` is -1
    creators: np.ndarray
    created: np.ndarray  # seconds after SEED_EPOCH
    updated: np.ndarray  # seconds after created
    word: np.ndarray
    number: np.ndarray
    description: np.ndarray  # -1: none
    status: np.ndarray  # -1: available
    size: np.ndarray
    tags: TagColumns
    locked: np.ndarray
    tasks: np.ndarray
    volume_ids: LazyIds  # the scope's volumes
    volume_links: np.ndarray  # each snapshot's row in `volume_ids`; -1: volume deleted
    sorted_ids: np.ndarray = field(init=False)  # ids as 'S16', sorted, for lookups
    sort_order: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        keys = self.ids.view("S16").ravel()
        self.sort_order = np.argsort(keys, kind="stable")
        self.sorted_ids = keys[self.sort_order]

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, key: bytes) -> int | None:
        if not len(self):
            return None
        at = int(np.searchsorted(self.sorted_ids, key))
        # 'S16' drops trailing zero bytes when compared: check the full 16 bytes.
        for pos in (at - 1, at):
            if 0 <= pos < len(self) and self.ids[self.sort_order[pos]].tobytes() == key:
                return int(self.sort_order[pos])
        return None

    def volume_bytes(self, index: np.ndarray) -> np.ndarray:
        """The (len(index), 16) volume ids of rows `index`."""
        links = self.volume_links[index]
        out = self.volumes[index]
        kept = links >= 0
        if kept.any():
            out[kept] = self.volume_ids.array[links[kept]]
        return out


def link_volumes(rng: np.random.Generator, n: int, volumes: int) -> np.ndarray:
    """Each of `n` snapshots' volume among `volumes`, or -1 (`SHARE_VOLUME_GONE` of them)."""
    links = rng.integers(0, max(volumes, 1), n, dtype=np.int32)
    gone = rng.random(n) < SHARE_VOLUME_GONE
    links[gone] = -1
    if not volumes:
        links[:] = -1
    return links


def seed_columns(
    seed: int,
    project_id: int,
    region_id: int,
    n: int,
    lock_rate: float,
    kind: str = "data",
    volume_ids: LazyIds = NO_IDS,
) -> Columns:
    rng = generator(kind, seed, project_id, region_id)
    locks = generator(f"{kind}-locks", seed, project_id, region_id)
    links = generator(f"{kind}-volume-links", seed, project_id, region_id)
    tags = TagColumns.draw(rng, n, SNAPSHOT_TAGS, (SHARE_USER_TAGS, 4), (SHARE_READ_ONLY, 2))
    described = rng.random(n) < SHARE_DESCRIBED
    rare = rng.random(n) >= SHARE_AVAILABLE
    return Columns(
        ids=uuid4_bytes(rng, n),
        volumes=uuid4_bytes(rng, n),
        creators=uuid4_bytes(rng, n),
        created=rng.integers(0, 300 * 86400, n, dtype=np.int32),
        updated=rng.integers(0, 3600, n, dtype=np.int32),
        word=rng.integers(0, len(VOLUME_WORDS), n, dtype=np.uint8),
        number=rng.integers(1, 30, n, dtype=np.uint8),
        description=np.where(described, rng.integers(0, len(DESCRIPTIONS), n), -1).astype(np.int8),
        status=np.where(rare, rng.integers(0, len(STATUSES_RARE), n), -1).astype(np.int8),
        size=rng.integers(0, len(SIZES), n, dtype=np.uint8),
        tags=tags,
        locked=locks.random(n) < lock_rate,
        tasks=uuid4_bytes(locks, n),
        volume_ids=volume_ids,
        volume_links=link_volumes(links, n, len(volume_ids)),
    )


def times(cols: Columns, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """created_at and updated_at of rows `index` as ISO 8601 text (UTC, microseconds)."""
    return iso_times(cols.created[index], cols.updated[index])


def iso_times(created: np.ndarray, later: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 texts (UTC, microseconds) of `created` seconds after SEED_EPOCH, and of
    `later` seconds after that."""
    made = EPOCH64 + created.astype("timedelta64[s]")
    changed = made + later.astype("timedelta64[s]")
    return (
        np.char.add(np.datetime_as_string(made, unit="us"), "+00:00"),
        np.char.add(np.datetime_as_string(changed, unit="us"), "+00:00"),
    )


def tags_at(cols: Columns, i: int) -> list[tuple[str, str, bool]]:
    """The (key, value, read_only) tags of row `i`: user tags first, each group by key."""
    return cols.tags.at(i)


def fields_at(cols: Columns, i: int, created: str, updated: str) -> dict:
    """Every field of row `i` but the scope's, as plain Python values."""
    fields = _fields(cols, i, created, updated)
    row = np.array([i])
    fields.update(
        id=uuids.texts(cols.ids[row])[0],
        volume_id=uuids.texts(cols.volume_bytes(row))[0],
        creator_task_id=uuids.texts(cols.creators[row])[0],
        task_id=uuids.texts(cols.tasks[row])[0] if cols.locked[i] else None,
    )
    return fields


def page_json(cols: Columns, index: np.ndarray, scope: dict[str, Any]) -> list[dict]:
    """The API objects of untouched seeded rows `index`, built column-wise (a list page
    builds 1,000 of them: one `Snapshot` each costs ~3x the time). The same objects as
    `Snapshot.to_json()` of the rows (a test holds them equal); `scope` gives project_id,
    region and region_id."""
    created, updated = (t.tolist() for t in times(cols, index))
    ids, volumes, creators = (
        uuids.texts(cols.ids[index]),
        uuids.texts(cols.volume_bytes(index)),
        uuids.texts(cols.creators[index]),
    )
    locked = cols.locked[index]
    tasks = iter(uuids.texts(cols.tasks[index[locked]]))
    rows = zip(
        index.tolist(), ids, volumes, creators, created, updated, locked.tolist(), strict=True
    )
    out = []
    for i, sid, volume, creator, made, changed, has_task in rows:
        fields = _fields(cols, i, made, changed)
        fields.update(id=sid, volume_id=volume, creator_task_id=creator)
        fields["task_id"] = next(tasks) if has_task else None
        out.append(_json(fields, scope, cols.tags.at(i)))
    return out


def _fields(cols: Columns, i: int, created: str, updated: str) -> dict[str, Any]:
    """The fields of row `i` that are not UUIDs."""
    description = int(cols.description[i])
    status = int(cols.status[i])
    stamp = f"{created[:4]}{created[5:7]}{created[8:10]}-{created[11:13]}{created[14:16]}"
    return {
        "name": f"{VOLUME_WORDS[cols.word[i]]}-{cols.number[i]:02d}-{stamp}",
        "description": DESCRIPTIONS[description] if description >= 0 else None,
        "status": STATUSES_RARE[status] if status >= 0 else "available",
        "size": SIZES[cols.size[i]],
        "created_at": created,
        "updated_at": updated,
    }


def _json(fields: dict[str, Any], scope: dict[str, Any], tags: list) -> dict[str, Any]:
    """One API object, its keys in the order `Snapshot.to_json` gives them."""
    return {
        "id": fields["id"],
        "name": fields["name"],
        "description": fields["description"],
        "status": fields["status"],
        "size": fields["size"],
        "volume_id": fields["volume_id"],
        **scope,
        "created_at": fields["created_at"],
        "updated_at": fields["updated_at"],
        "creator_task_id": fields["creator_task_id"],
        "task_id": fields["task_id"],
        "tags": [{"key": k, "value": v, "read_only": ro} for k, v, ro in tags],
    }
