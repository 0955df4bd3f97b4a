"""The sandbox's in-memory snapshot store, seeded deterministically.

Each scope (project_id, region_id) has its own RNG derived from the seed, so adding a scope
never changes the data of another, and locks use a separate RNG, so turning on `lock_rate`
does not change names, tags or ids.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from batchtag.mergepatch import apply_tags_patch

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
    "env": ["prod", "staging", "dev", "test"],
    "team": ["data", "platform", "web", "ml", "billing", "security"],
    "cost-center": ["cc-1001", "cc-1002", "cc-2040", "cc-3300"],
    "owner": ["alice", "bob", "carol", "dave", "erin"],
    "app": ["checkout", "search", "reports", "gateway"],
    "retention": ["7d", "30d", "90d", "1y"],
}
READ_ONLY_TAGS = {
    "lifecycle-policy": ["daily-7", "weekly-4", "monthly-12"],
    "created-by": ["gcore-scheduler", "gcore-backup"],
}
SEED_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
NAME_MIN, NAME_MAX = 3, 63
TAG_MIN, TAG_MAX = 1, 255


class SandboxError(Exception):
    """An API error the sandbox answers with, in the Gcore error shape."""

    def __init__(
        self,
        status: int,
        exception_class: str,
        message: str,
        invalid_fields: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.exception_class = exception_class
        self.message = message
        self.invalid_fields = invalid_fields


def not_found(snapshot_id: str) -> SandboxError:
    return SandboxError(404, "NotFoundError", f"Snapshot {snapshot_id} not found")


def validation_error(invalid_fields: dict[str, Any]) -> SandboxError:
    return SandboxError(400, "ValidationError", "Validation error", invalid_fields)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def seeded_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


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


def make_snapshot(rng: random.Random, project_id: int, region_id: int) -> Snapshot:
    created = SEED_EPOCH + timedelta(seconds=rng.randrange(300 * 86400))
    word = rng.choice(VOLUME_WORDS)
    name = f"{word}-{rng.randrange(1, 30):02d}-{created:%Y%m%d-%H%M}"
    description = rng.choice(DESCRIPTIONS) if rng.random() < 0.5 else None
    status = "available" if rng.random() < 0.9 else rng.choice(STATUSES_RARE)
    tags: dict[str, str] = {}
    if rng.random() < 0.4:
        for key in rng.sample(sorted(USER_TAGS), rng.randint(1, 4)):
            tags[key] = rng.choice(USER_TAGS[key])
    read_only: set[str] = set()
    if rng.random() < 0.1:
        for key in rng.sample(sorted(READ_ONLY_TAGS), rng.randint(1, 2)):
            tags[key] = rng.choice(READ_ONLY_TAGS[key])
            read_only.add(key)
    return Snapshot(
        id=seeded_uuid(rng),
        name=name,
        description=description,
        status=status,
        size=rng.choice(SIZES),
        volume_id=seeded_uuid(rng),
        project_id=project_id,
        region=REGION_NAMES.get(region_id, f"Region-{region_id}"),
        region_id=region_id,
        created_at=iso(created),
        updated_at=iso(created + timedelta(seconds=rng.randrange(3600))),
        creator_task_id=seeded_uuid(rng),
        task_id=None,
        tags=tags,
        read_only=read_only,
    )


# ---------------------------------------------------------------- validation


def tag_text_problems(text: str, what: str) -> list[str]:
    problems = []
    if not TAG_MIN <= len(text) <= TAG_MAX:
        problems.append(f"{what} length must be between {TAG_MIN} and {TAG_MAX}.")
    if any(ch.isspace() for ch in text):
        problems.append(f"{what} must not contain whitespace.")
    if "=" in text:
        problems.append(f"{what} must not contain '='.")
    return problems


def validate_tags(tags: Any) -> dict[str, Any] | list[str] | None:
    """Return the invalid_fields entry for `tags`, or None when it is fine."""
    if tags is None:
        return None
    if not isinstance(tags, dict):
        return ["Not a valid mapping type."]
    problems: dict[str, list[str]] = {}
    for key, value in tags.items():
        found = tag_text_problems(key, "Key")
        if value is not None and not isinstance(value, str):
            found.append("Value must be a string or null.")
        elif value is not None:
            found += tag_text_problems(value, "Value")
        if found:
            problems[key] = found
    return problems or None


def validate_patch(body: Any) -> dict[str, Any]:
    """Check a PATCH body; return it, or raise a 400 ValidationError naming every problem."""
    if not isinstance(body, dict):
        raise validation_error({"_schema": ["Invalid input type: the body must be an object."]})
    invalid: dict[str, Any] = {}
    for key in body:
        if key not in ("name", "tags"):
            invalid[key] = ["Unknown field."]
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str):
            invalid["name"] = ["Not a valid string."]
        elif not NAME_MIN <= len(name) <= NAME_MAX:
            invalid["name"] = [f"Length must be between {NAME_MIN} and {NAME_MAX}."]
    if "tags" in body:
        tag_problems = validate_tags(body["tags"])
        if tag_problems:
            invalid["tags"] = tag_problems
    if invalid:
        raise validation_error(invalid)
    return body


# ---------------------------------------------------------------- the store


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
    ):
        self.seed = seed
        self.count = snapshots
        self.project_ids = list(project_ids) or [1]
        self.region_ids = list(region_ids) or [1]
        self.lock_rate = lock_rate
        self.lock_ms = lock_ms
        self.reset()

    def reset(self) -> None:
        """Restore the seeded state exactly."""
        self.scopes: dict[tuple[int, int], dict[str, Snapshot]] = {}
        self.lock_started: dict[str, float] = {}
        for project_id in self.project_ids:
            for region_id in self.region_ids:
                self.scopes[(project_id, region_id)] = self.seed_scope(project_id, region_id)

    def seed_scope(self, project_id: int, region_id: int) -> dict[str, Snapshot]:
        rng = random.Random(f"batchtag-sandbox:{self.seed}:{project_id}:{region_id}")
        lock_rng = random.Random(f"batchtag-sandbox-locks:{self.seed}:{project_id}:{region_id}")
        scope = {}
        for _ in range(self.count):
            snap = make_snapshot(rng, project_id, region_id)
            locked = lock_rng.random() < self.lock_rate
            task_id = seeded_uuid(lock_rng)
            if locked:
                snap.task_id = task_id
            scope[snap.id] = snap
        return scope

    # ---- reading

    def has_scope(self, project_id: int, region_id: int) -> bool:
        return (project_id, region_id) in self.scopes

    def ids(self, project_id: int = 1, region_id: int = 1) -> list[str]:
        return list(self.scopes.get((project_id, region_id), {}))

    def snapshots(self, project_id: int = 1, region_id: int = 1) -> list[Snapshot]:
        return list(self.scopes.get((project_id, region_id), {}).values())

    def find(self, project_id: int, region_id: int, snapshot_id: str) -> Snapshot:
        snap = self.scopes.get((project_id, region_id), {}).get(snapshot_id.lower())
        if snap is None:
            raise not_found(snapshot_id)
        return snap

    def list(
        self,
        project_id: int,
        region_id: int,
        limit: int = 1000,
        offset: int = 0,
        volume_id: str | None = None,
    ) -> tuple[int, list[dict[str, Any]]]:
        if not self.has_scope(project_id, region_id):
            raise SandboxError(
                404, "NotFoundError", f"Project {project_id} region {region_id} not found"
            )
        snaps = self.snapshots(project_id, region_id)
        if volume_id is not None:
            snaps = [s for s in snaps if s.volume_id == volume_id]
        return len(snaps), [s.to_json() for s in snaps[offset : offset + limit]]

    def get(self, project_id: int, region_id: int, snapshot_id: str, now: float) -> dict:
        snap = self.find(project_id, region_id, snapshot_id)
        self.touch(snap, now)
        return snap.to_json()

    # ---- locks

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
            tags = apply_tags_patch(snap.tags, body["tags"], frozenset(snap.read_only))
            if tags != snap.tags:
                snap.tags = tags
                changed = True
        if changed:
            self.bump(snap)
        return snap.to_json()

    def bump(self, snap: Snapshot) -> None:
        """Set updated_at to now, strictly later than before (two writes in a microsecond)."""
        previous = datetime.fromisoformat(snap.updated_at)
        moment = max(datetime.now(UTC), previous + timedelta(microseconds=1))
        snap.updated_at = iso(moment)


def tags_of(snapshot_json: Mapping[str, Any]) -> dict[str, str]:
    """The tags of a snapshot response as a plain dict (all tags, read-only included)."""
    return {t["key"]: t["value"] for t in snapshot_json["tags"]}
