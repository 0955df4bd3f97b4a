"""What a plan would change, snapshot by snapshot, given the current state: the `plan` diff.

Pure logic, no network: the caller reads the snapshots (the state reader) and hands each
plan entry with its current snapshot JSON (or None when the API does not know it) to
`diff_entry` (or a `DiffMemo`), or streams the pairs through a
`batchtag.diffcollect.DiffCollector` to get the diff and the summary.

Verdicts, one per snapshot:

- ``change``: a PATCH would be sent (its minimal body is `SnapshotDiff.body`).
- ``noop``: nothing would change, no PATCH.
- ``not_found``: the snapshot does not exist (in that project/region).
- ``locked``: it would change, but a task holds a lock on it now (`task_id` set), so the
  write would get 409 and be retried; the change is still shown.

Read-only tags are never written (the API preserves them). A manifest that sets, deletes
or renames onto a read-only key gets a ``read_only`` row for it: a problem, not a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batchtag.client import read_only_keys, tags_dict
from batchtag.mergepatch import apply_tags_patch
from batchtag.plan import EMPTY, PlanEntry, SharedDict

if TYPE_CHECKING:
    pass

CHANGE, NOOP, NOT_FOUND, LOCKED = "change", "noop", "not_found", "locked"
VERDICTS = (CHANGE, NOOP, NOT_FOUND, LOCKED)
WRITES = frozenset({CHANGE, LOCKED})  # verdicts that send a PATCH
TAG, NAME = "tag", "name"  # the `field` column
ADD, REMOVE, MODIFY, READ_ONLY = "add", "remove", "change", "read_only"  # the `change` column
PASSTHROUGH_PREFIX = "manifest_"  # a manifest column named like a diff column gets this


@dataclass(frozen=True, slots=True)
class Change:
    """One line of the diff: a tag added, removed or changed, the name, or a read-only key."""

    field: str  # TAG or NAME
    key: str | None  # the tag key (None for the name)
    change: str  # ADD, REMOVE, MODIFY or READ_ONLY
    old: str | None
    new: str | None


@dataclass(slots=True)
class SnapshotDiff:
    """The effective change for one plan entry against its current snapshot."""

    entry: PlanEntry
    verdict: str
    changes: list[Change] = field(default_factory=list)  # in key order, name last
    body: dict[str, Any] = field(default_factory=dict)  # the minimal PATCH body ({}: none)
    before: dict[str, str] = field(default_factory=dict)  # user tags now
    after: dict[str, str] = field(default_factory=dict)  # user tags after the write
    name_before: str | None = None
    name_after: str | None = None

    @property
    def key(self) -> tuple[int, int, str]:
        return self.entry.key

    @property
    def problems(self) -> list[Change]:
        """Writes the API would ignore (read-only keys)."""
        return [c for c in self.changes if c.change == READ_ONLY]


def diff_entry(entry: PlanEntry, snapshot: Mapping[str, Any] | None) -> SnapshotDiff:
    """Compare what `entry` asks for with `snapshot`, the current state.

    Parameters
    ----------
    entry : PlanEntry
        One snapshot's planned operations.
    snapshot : Mapping or None
        The snapshot JSON as the API returns it (``tags`` a list of
        ``{key, value, read_only}``, ``name``, ``task_id``); None when it was not found.

    Returns
    -------
    SnapshotDiff
        The verdict, the changes (tags in key order, then the name, then read-only
        problems) and the minimal PATCH body (`PlanEntry.body` with the current state).

    Examples
    --------
    >>> e = PlanEntry(1, 1, "id", tags={"env": "prod"})
    >>> d = diff_entry(e, {"name": "db-1", "task_id": None,
    ...                    "tags": [{"key": "env", "value": "dev", "read_only": False}]})
    >>> d.verdict, d.body
    ('change', {'tags': {'env': 'prod'}})
    """
    if snapshot is None:
        return SnapshotDiff(entry, NOT_FOUND)
    return _with_name(entry, snapshot, _tag_part(entry, snapshot))


@dataclass(frozen=True)
class _TagPart:
    """What a diff takes from the tags alone (the same for every snapshot with the same
    tags under the same tag operations): shared by `DiffMemo`'s diffs, never changed."""

    tags: Mapping[str, str | None]  # the entry's operations it was computed for
    renames: Mapping[str, str]
    body: dict[str, str | None] | None  # the PATCH's "tags" (None: no tag change)
    before: dict[str, str]
    after: dict[str, str]
    changes: tuple[Change, ...]  # tag lines, then read-only problems (`problems`)
    problems: tuple[Change, ...]


def _tag_part(entry: PlanEntry, snapshot: Mapping[str, Any]) -> _TagPart:
    every = tags_dict(snapshot)
    read_only = read_only_keys(snapshot)
    before = {k: v for k, v in every.items() if k not in read_only} if read_only else every
    body = entry.body(before, read_only=read_only, current_name=None).get("tags")
    after = apply_tags_patch(before, body or EMPTY)  # = entry.target_tags(before)
    problems = read_only_problems(entry, before, every, read_only) if read_only else []
    return _TagPart(
        entry.tags,
        entry.renames,
        body,
        before,
        after,
        tuple(tag_changes(before, after)),
        tuple(problems),
    )


def _with_name(entry: PlanEntry, snapshot: Mapping[str, Any], part: _TagPart) -> SnapshotDiff:
    """The whole diff: the tag part, then the name (which differs snapshot by snapshot)."""
    name = snapshot.get("name")
    body: dict[str, Any] = {"tags": part.body} if part.body else {}
    if entry.name is not None and entry.name != name:
        body["name"] = entry.name
    name_after = body.get("name", name)
    changes = list(part.changes)
    if name_after != name:
        changes.append(Change(NAME, None, MODIFY, name, name_after))
    changes += part.problems
    if not body:
        verdict = NOOP
    else:
        verdict = LOCKED if snapshot.get("task_id") else CHANGE
    return SnapshotDiff(entry, verdict, changes, body, part.before, part.after, name, name_after)


class DiffMemo:
    """`diff_entry`, with the tag part remembered per (tag operations, current tags): a big
    plan repeats a few tag states over snapshots that share a few tag sets, and the name is
    the only part that differs. Only entries whose operations are plan-held `SharedDict`s
    are remembered (their identity is checked on every hit); keep one memo per plan or run.

    Examples
    --------
    >>> from batchtag.plan import SharedDict
    >>> memo = DiffMemo()
    >>> e = PlanEntry(1, 1, "id", tags=SharedDict(env="prod"), renames=EMPTY)
    >>> snap = {"name": "db-1", "task_id": None, "tags": []}
    >>> memo(e, snap) == diff_entry(e, snap), memo(e, dict(snap, name="db-2")).name_before
    (True, 'db-2')
    """

    LIMIT = 4096  # parts held; past it the memo starts afresh

    def __init__(self) -> None:
        self._parts: dict[tuple, _TagPart] = {}

    def __call__(self, entry: PlanEntry, snapshot: Mapping[str, Any] | None) -> SnapshotDiff:
        shared = type(entry.tags) is SharedDict and type(entry.renames) is SharedDict
        if snapshot is None or not shared:
            return diff_entry(entry, snapshot)
        tags = tuple(
            (t["key"], t["value"], bool(t.get("read_only"))) for t in snapshot.get("tags") or ()
        )
        key = (id(entry.tags), id(entry.renames), entry.clear, tags)
        part = self._parts.get(key)
        if part is None or part.tags is not entry.tags or part.renames is not entry.renames:
            if len(self._parts) >= self.LIMIT:
                self._parts.clear()
            part = self._parts[key] = _tag_part(entry, snapshot)
        return _with_name(entry, snapshot, part)


def tag_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[Change]:
    """The tag lines of a diff from `before` to `after` (user tags), in key order.

    Examples
    --------
    >>> [c.change for c in tag_changes({"a": "1", "b": "2"}, {"b": "3", "c": "4"})]
    ['remove', 'change', 'add']
    """
    changes = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        kind = ADD if old is None else REMOVE if new is None else MODIFY
        changes.append(Change(TAG, key, kind, old, new))
    return changes


def read_only_problems(
    entry: PlanEntry,
    user: Mapping[str, str],
    every: Mapping[str, str],
    read_only: frozenset[str],
) -> list[Change]:
    """A READ_ONLY line for each read-only key the entry would write to a new value.

    `user` holds the current user tags, `every` all tags (read-only ones included)."""
    wanted: dict[str, str | None] = {}
    for old, new in entry.renames.items():
        if old in read_only:
            wanted[old] = None  # renaming it away would remove it
        elif new in read_only and old in user:
            wanted[new] = user[old]
    wanted.update((k, v) for k, v in entry.tags.items() if k in read_only)
    return [
        Change(TAG, key, READ_ONLY, every.get(key), value)
        for key, value in sorted(wanted.items())
        if every.get(key) != value
    ]
