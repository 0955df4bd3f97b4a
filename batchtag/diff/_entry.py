"""What a plan would change, snapshot by snapshot, given the current state: the `plan` diff.

Pure logic, no network: the caller reads the snapshots (the state reader) and hands each
plan entry with its current `batchtag.model.Snapshot` (or None when the API does not know
it) to
`diff_entry`, or streams the pairs through a `DiffCollector` to get the diff DataFrame and
the summary.

Verdicts, one per snapshot:

- ``change``: a PATCH would be sent (its minimal body is `SnapshotDiff.body`).
- ``noop``: nothing would change, no PATCH.
- ``not_found``: the snapshot does not exist (in that project/region).
- ``locked``: it would change, but a task holds a lock on it now (`task_id` set), so the
  write would get 409 and be retried; the change is still shown.
- ``conflict``: the snapshot is left alone: a rename would replace a different value (no
  ``overwrite``), or a change file's key no longer holds the value it was written against
  (`PlanEntry.conflicts`). Its rows are ``conflict`` notes, one per such key (old: what it
  holds now, new: what the change needed), never changes: a plan file applies nothing
  to it.

Read-only tags are never written (the API preserves them). A manifest that sets, deletes
or renames onto a read-only key gets a ``read_only`` row for it: a problem, not a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batchtag.model import CONFLICT, EMPTY, PlanEntry, Snapshot, apply_tags_patch
from batchtag.record import CONFLICT_NOTE, MODIFY, NAME, READ_ONLY, TAG, change_kind

CHANGE, NOOP, NOT_FOUND, LOCKED = "change", "noop", "not_found", "locked"
VERDICTS = (CHANGE, NOOP, NOT_FOUND, LOCKED, CONFLICT)
WRITES = frozenset({CHANGE, LOCKED})  # verdicts that send a PATCH


@dataclass(frozen=True, slots=True)
class Change:
    """One line of the diff: a tag added, removed or changed, the name, or a read-only key."""

    field: str  # TAG or NAME
    key: str | None  # the tag key (None for the name)
    change: str  # add, remove, change, or a note: READ_ONLY, CONFLICT_NOTE
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
    conflict: str | None = None  # why the snapshot is left alone (verdict conflict)

    @property
    def key(self) -> tuple[int, int, str]:
        return self.entry.key

    @property
    def problems(self) -> list[Change]:
        """Writes the API would ignore (read-only keys)."""
        return [c for c in self.changes if c.change == READ_ONLY]


def diff_entry(entry: PlanEntry, snapshot: Snapshot | None) -> SnapshotDiff:
    """Compare what `entry` asks for with `snapshot`, the current state.

    Parameters
    ----------
    entry : PlanEntry
        One snapshot's planned operations.
    snapshot : Snapshot or None
        Its current state (`Snapshot.from_wire` decodes the API's JSON); None when it was
        not found.

    Returns
    -------
    SnapshotDiff
        The verdict, the changes (tags in key order, then the name, then read-only
        problems) and the minimal PATCH body (`PlanEntry.body` with the current state).
        A conflict's changes are its notes; its body is what ``force`` would send.

    Examples
    --------
    >>> e = PlanEntry(1, 1, "id", tags={"env": "prod"})
    >>> d = diff_entry(e, Snapshot.from_wire({"name": "db-1", "task_id": None,
    ...     "tags": [{"key": "env", "value": "dev", "read_only": False}]}))
    >>> d.verdict, d.body
    ('change', {'tags': {'env': 'prod'}})
    """
    if snapshot is None:
        return SnapshotDiff(entry, NOT_FOUND)
    before = snapshot.user_tags
    read_only = snapshot.read_only
    name = snapshot.name
    body = entry.body(before, read_only=read_only, current_name=name)
    after = apply_tags_patch(before, body.get("tags", EMPTY))  # = entry.target_tags(before)
    name_after = body.get("name", name)
    checked = entry.renames or entry.expect is not None or entry.expect_name is not None
    conflicts = entry.conflicts(before, read_only, name) if checked else []
    if conflicts:
        notes = [Change(c.field, c.key, CONFLICT_NOTE, c.now, c.wanted) for c in conflicts]
        reason = "; ".join(map(str, conflicts))
        return SnapshotDiff(entry, CONFLICT, notes, body, before, after, name, name_after, reason)
    changes = tag_changes(before, after)
    if name_after != name:
        changes.append(Change(NAME, None, MODIFY, name, name_after))
    if read_only:
        changes += read_only_problems(entry, before, snapshot.all_tags, read_only)
    if not body:
        verdict = NOOP
    else:
        verdict = LOCKED if snapshot.task_id else CHANGE
    return SnapshotDiff(entry, verdict, changes, body, before, after, name, name_after)


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
        if old != new:
            changes.append(Change(TAG, key, change_kind(old, new), old, new))
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


# ---------------------------------------------------------------- the summary
