"""The plan: one entry per (project, region, snapshot), built from the manifest rows."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchtag.model._mergepatch import apply_tags_patch


class SharedDict(dict):
    """A read-only dict that many plan entries can share (a 1M-row manifest repeats the same
    tags and passthrough values over and over, and a dict per entry costs ~200 bytes)."""

    __slots__ = ()

    def _read_only(self, *args, **kwargs):
        raise TypeError("this dict is shared between plan entries: copy it to change it")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self):
        return (SharedDict, (dict(self),))


EMPTY = SharedDict()


@dataclass(slots=True)
class PlanEntry:
    """What one snapshot should get. Applied in this order: clear, renames, tags, name.

    Entries built by `batchtag.manifest._build` hold SharedDicts (read-only) for tags, renames
    and extra."""

    project_id: int
    region_id: int
    snapshot_id: str
    tags: dict[str, str | None] = field(default_factory=dict)  # set (str) / delete (None)
    clear: bool = False
    renames: dict[str, str] = field(default_factory=dict)  # old key -> new key
    name: str | None = None
    rows: list[int] = field(default_factory=list)  # 1-based manifest data rows
    extra: dict[str, Any] = field(default_factory=dict)  # passthrough columns

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.project_id, self.region_id, self.snapshot_id)

    @property
    def needs_current(self) -> bool:
        """True when the request can only be computed from the snapshot's current tags."""
        sets_after_clear = self.clear and any(v is not None for v in self.tags.values())
        return bool(self.renames) or sets_after_clear

    def target_tags(
        self, current: dict[str, str], read_only: frozenset[str] = frozenset()
    ) -> dict[str, str]:
        """The user tags this entry leads to, starting from `current` user tags.

        The API never writes `read_only` keys: sets and deletes of them are dropped, and a
        rename onto one is skipped (the old key stays rather than being lost)."""
        tags: dict[str, str] = {} if self.clear else dict(current)
        for old, new in self.renames.items():
            if old in tags and new not in read_only:
                tags[new] = tags.pop(old)
        return apply_tags_patch(tags, self.tags, read_only)

    def body(
        self,
        current: dict[str, str] | None = None,
        *,
        read_only: frozenset[str] = frozenset(),
        current_name: str | None = None,
    ) -> dict[str, Any]:
        """The PATCH body. With `current` user tags known, only real changes are sent
        (an empty body means a no-op; the name is left out when it equals `current_name`);
        without, the blind merge patch."""
        body: dict[str, Any] = {}
        if current is None:
            if self.needs_current:
                raise ValueError("this entry needs the snapshot's current tags")
            if self.clear:
                body["tags"] = None
            elif self.tags:
                body["tags"] = dict(self.tags)
        else:
            target = self.target_tags(current, read_only)
            patch: dict[str, str | None] = {k: None for k in current if k not in target}
            patch.update({k: v for k, v in target.items() if current.get(k) != v})
            if patch:
                body["tags"] = patch
        if self.name is not None and (current is None or self.name != current_name):
            body["name"] = self.name
        return body

    def as_json(self) -> dict[str, Any]:
        """A stable, JSON-able description (used for fingerprints and dry-run output)."""
        return {
            "project_id": self.project_id,
            "region_id": self.region_id,
            "snapshot_id": self.snapshot_id,
            "clear": self.clear,
            "renames": self.renames,
            "tags": self.tags,
            "name": self.name,
        }


@dataclass
class Plan:
    """What a run would do. `entries` is a list, or (from a manifest) a `PlanEntries`
    sequence that makes each entry when asked for; treat it as read-only."""

    entries: Sequence[PlanEntry]
    form: str = "long"
    rows: int = 0
    passthrough: list[str] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)  # operation counts by kind
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    @property
    def scopes(self) -> dict[tuple[int, int], int]:
        if hasattr(self.entries, "scopes"):  # counted on its columns
            return self.entries.scopes()
        return dict(Counter((e.project_id, e.region_id) for e in self.entries))

    def fingerprint(self) -> str:
        """A digest of what the plan would do; a resumed run must match it.

        It hashes one line per entry, `_SORTED(entry.as_json())` (so reports of earlier
        versions still resume), as `FINGERPRINT_LINE` writes it out: the shared dicts are
        encoded once each instead of once per entry, and a plan held as columns (a
        manifest's `PlanEntries`) writes its lines a column at a time."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            chunks = getattr(self.entries, "fingerprint_lines", None)
            for chunk in chunks() if chunks is not None else fingerprint_lines(self.entries):
                digest.update(chunk)
            self._fingerprint = digest.hexdigest()[:32]
        return self._fingerprint


def fingerprint_lines(entries: Iterable[PlanEntry]) -> Iterator[bytes]:
    """`Plan.fingerprint`'s lines (`FINGERPRINT_LINE`), entry by entry, a few thousand at a
    time, as UTF-8 text."""
    shared: dict[int, str] = {}  # id of a SharedDict -> its JSON

    def text(value: dict) -> str:
        if type(value) is not SharedDict:
            return _SORTED(value)
        known = shared.get(id(value))  # entries keep their dicts alive: ids are stable
        if known is None:
            known = shared[id(value)] = _SORTED(value)
        return known

    lines = (
        FINGERPRINT_LINE.format(
            clear="true" if e.clear else "false",
            name="null" if e.name is None else _SORTED(e.name),
            project_id=int(e.project_id),
            region_id=int(e.region_id),
            renames=text(e.renames),
            snapshot_id=_SORTED(e.snapshot_id),
            tags=text(e.tags),
        )
        for e in entries
    )
    for chunk in iter(lambda: "".join(itertools.islice(lines, 4096)), ""):
        yield chunk.encode()


_SORTED = json.JSONEncoder(sort_keys=True).encode  # the fingerprint's encoding
fingerprint_json = _SORTED
# One entry's line of the fingerprint: `as_json()` encoded with sorted keys, each field
# filled in with its `_SORTED` text.
FINGERPRINT_LINE = (
    '{{"clear": {clear}, "name": {name}, "project_id": {project_id}, '
    '"region_id": {region_id}, "renames": {renames}, "snapshot_id": {snapshot_id}, '
    '"tags": {tags}}}\n'
)
