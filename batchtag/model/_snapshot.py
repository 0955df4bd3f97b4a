"""A snapshot's current state, decoded once from the API's JSON: the one form every stage
reads (the state kept for a run, the diff, the engine's job, the report, undo).

The API answers a list page's row, a GET and a PATCH with the same object; of it a run
needs the name, the lock (``task_id``) and the tags, each ``{"key", "value",
"read_only"}``. `Snapshot.from_wire` keeps exactly those: the tags as one flat tuple
(user tags first, then read-only ones, each group in the API's order), so a snapshot is a
handful of Python objects, and its compact form (`Snapshot.compact`, a plain tuple of
strings, None and ints) is what `marshal` writes to the spill of an apply run and
`Snapshot.decode` reads back.

Examples
--------
>>> snap = Snapshot.from_wire({"name": "db", "task_id": None, "tags": [
...     {"key": "os", "value": "linux", "read_only": True},
...     {"key": "env", "value": "prod", "read_only": False}]})
>>> snap.user_tags, snap.read_only, snap.compact()
({'env': 'prod'}, frozenset({'os'}), ('db', None, 1, ('env', 'prod', 'os', 'linux')))
>>> Snapshot.decode(snap.compact()) == snap
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

Compact = tuple  # (name, task_id, n_user, (k1, v1, k2, v2, ...)): `Snapshot.compact`
NO_KEYS: frozenset[str] = frozenset()
_make = tuple.__new__  # a Snapshot from its four fields at once (once per snapshot read)


class Snapshot(NamedTuple):
    """What a run knows of one snapshot now (see the module docstring); immutable.

    Attributes
    ----------
    name : str or None
    task_id : str or None
        The task holding a lock on it (a write would get 409 now).
    n_user : int
        How many of `tags`' pairs are user tags (the rest are read-only).
    tags : tuple of str
        Keys and values, flat: the user tags, then the read-only ones.
    """

    name: str | None
    task_id: str | None
    n_user: int
    tags: tuple[str, ...]

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Snapshot:
        """The snapshot of the API's JSON object (a list page's row, a GET or PATCH answer)."""
        tags = data.get("tags")
        if not tags:
            return _make(cls, (data.get("name"), data.get("task_id"), 0, ()))
        user: list[str] = []
        ro: list[str] = []
        for tag in tags:
            (ro if tag.get("read_only") else user).extend((tag["key"], tag["value"]))
        n_user = len(user) // 2
        if ro:
            user += ro
        return _make(cls, (data.get("name"), data.get("task_id"), n_user, tuple(user)))

    @classmethod
    def decode(cls, compact: Compact) -> Snapshot:
        """The snapshot back from its `compact` form."""
        return _make(cls, compact)

    def compact(self) -> Compact:
        """A plain tuple of the fields (what `marshal` takes; `decode` reverses it)."""
        return tuple(self)

    @property
    def user_tags(self) -> dict[str, str]:
        """The user tags as {key: value}."""
        flat, end = self.tags, 2 * self.n_user
        if not end:
            return {}
        return dict(zip(flat[0:end:2], flat[1:end:2]))  # noqa: B905 (equal lengths)

    @property
    def read_only_tags(self) -> dict[str, str]:
        """The read-only tags as {key: value}."""
        flat, start = self.tags, 2 * self.n_user
        if start == len(flat):
            return {}
        return dict(zip(flat[start::2], flat[start + 1 :: 2]))  # noqa: B905 (equal lengths)

    @property
    def read_only(self) -> frozenset[str]:
        """The keys of the read-only tags (the API keeps them whatever a PATCH says)."""
        flat, start = self.tags, 2 * self.n_user
        return NO_KEYS if start == len(flat) else frozenset(flat[start::2])

    @property
    def all_tags(self) -> dict[str, str]:
        """Every tag as {key: value}, read-only ones included."""
        flat = self.tags
        return dict(zip(flat[0::2], flat[1::2]))  # noqa: B905 (equal lengths)

    def to_wire(self) -> dict[str, Any]:
        """The API's JSON form of what is kept (user tags first, then read-only ones)."""
        flat, end = self.tags, 2 * self.n_user
        tags = [
            {"key": flat[i], "value": flat[i + 1], "read_only": i >= end}
            for i in range(0, len(flat), 2)
        ]
        return {"name": self.name, "task_id": self.task_id, "tags": tags}


def as_snapshot(value: Snapshot | Mapping[str, Any] | None) -> Snapshot | None:
    """A `Snapshot` from one, or from the API's JSON object (the form callers of the public
    diff functions hand in); None stays None.

    Examples
    --------
    >>> as_snapshot({"name": "db", "tags": []}), as_snapshot(None)
    (Snapshot(name='db', task_id=None, n_user=0, tags=()), None)
    """
    if value is None or isinstance(value, Snapshot):
        return value
    return Snapshot.from_wire(value)
