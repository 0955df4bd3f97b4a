"""A plan's entries held as columns: a `PlanEntry` is made only when one is asked for.

A `PlanEntry` object per snapshot, with its row list and id string, would cost hundreds of
bytes a snapshot; as arrays the plan is a few bytes a snapshot (the snapshot ids in one
Arrow buffer, the rest as codes into the few distinct tag states and passthrough dicts). Iterating makes the entries in chunks,
so only what is in flight exists as Python objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from string import Formatter
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from batchtag.model import (
    CHUNK,
    EMPTY,
    FINGERPRINT_LINE,
    PlanEntry,
    PlanIndex,
    SharedDict,
    TagState,
    arrow_keys,
    canonical_keys,
    checks_text,
    fingerprint_json,
    fingerprint_lines,
    narrowed,
    smallest_uint,
    uuid_digits,
    uuid_text,
)
from batchtag.tabular import joined_text

if TYPE_CHECKING:
    import pyarrow as pa

State = TagState
LINES = 1 << 14  # fingerprint lines made at once (more: no faster, and Arrow's pool keeps more)
BY_ENTRY = 1 << 15  # plans up to this many entries: fingerprint lines entry by entry
PLAIN_ID = r"^[\x20\x21\x23-\x5b\x5d-\x7e]*$"  # printable ASCII but '"' and '\': JSON as is


@dataclass(frozen=True, eq=False)
class PlanEntries(Sequence[PlanEntry]):
    """The entries of a plan, in plan order; a read-only sequence of `PlanEntry`.

    Entries are made afresh on every access: changing one changes nothing here. Entries
    with the same tag operations or passthrough values share the same (read-only)
    `SharedDict` objects, held here, so their ids are stable while the plan lives.

    Examples
    --------
    >>> from batchtag.model import EMPTY
    >>> import pyarrow as pa
    >>> entries = PlanEntries(
    ...     projects=np.array([1]), regions=np.array([2]), snapshots=pa.array(["s"]),
    ...     state_codes=np.array([0]), states=[TagState(EMPTY, True, EMPTY)], names=None,
    ...     row_ids=np.array([3]), row_bounds=np.array([0, 1]),
    ...     extra_codes=np.array([0]), extras=[EMPTY],
    ... )
    >>> entries[0].key, entries[0].clear, entries[0].rows
    ((1, 2, 's'), True, [3])
    """

    projects: np.ndarray  # per entry
    regions: np.ndarray  # per entry
    # per entry: text, or 16-byte keys (`KEY`) of lowercase UUIDs; None once held as keys
    snapshots: pa.Array | np.ndarray | None
    state_codes: np.ndarray  # per entry, into `states`
    states: list[State]
    names: list[str | None] | None  # per entry; None when no entry renames
    # manifest rows (numbers, or a DataFrame's labels), grouped: entry i's rows are
    # row_ids[row_bounds[i]:row_bounds[i + 1]]; both None once held as `_first_row` (entry
    # i has the one row _first_row + i, as in a manifest that lists each snapshot once)
    row_ids: np.ndarray | None
    row_bounds: np.ndarray | None
    extra_codes: np.ndarray  # per entry, into `extras`
    extras: list[SharedDict]
    expect_names: list[str | None] | None = None  # per entry (a change file's); None: none

    def __post_init__(self) -> None:
        """Hold the columns in their smallest dtypes (a value shared by every entry once),
        the rows as a first row when they count up one an entry, and the ids as 16-byte
        keys when they are all lowercase UUIDs (a manifest's are): ~18 bytes an entry for a
        wide manifest of one scope, instead of ~90."""
        if any(
            type(s) is not TagState for s in self.states
        ):  # plain tuples: (tags, clear, renames)
            object.__setattr__(self, "states", [TagState(*s) for s in self.states])
        narrow = {
            "projects": narrowed(self.projects),
            "regions": narrowed(self.regions),
            "state_codes": narrowed(self.state_codes, len(self.states)),
            "extra_codes": narrowed(self.extra_codes, len(self.extras)),
            "row_ids": None,
            "row_bounds": None,
        }
        first_row = _first_row(self.row_ids, self.row_bounds)
        if first_row is None:
            narrow.update(row_ids=narrowed(self.row_ids), row_bounds=narrowed(self.row_bounds))
        else:
            object.__setattr__(self, "_first_row", first_row)
        for name, column in narrow.items():
            object.__setattr__(self, name, column)
        keys = self.snapshots
        if keys is not None and not isinstance(keys, np.ndarray):  # text: keys if all UUIDs
            keys = canonical_keys(keys)
        if keys is not None:  # the text comes back from the keys (`uuid_text`)
            object.__setattr__(self, "_keys", keys)  # until `plan_index` sorts them
            object.__setattr__(self, "snapshots", None)

    def _ids(self, start: int, stop: int) -> list[str]:
        ranks = self.__dict__.get("_ranks")
        if ranks is not None:
            return uuid_text(self.plan_index().key_at(ranks[start:stop]))
        keys = self.__dict__.get("_keys")
        if keys is not None:
            return uuid_text(keys[start:stop])
        return self.snapshots[start:stop].to_pylist()

    def ids_at(self, positions: np.ndarray) -> list[str]:
        """The snapshot ids at `positions` (int64, any order), as text."""
        ranks = self.__dict__.get("_ranks")
        if ranks is not None:
            return uuid_text(self.plan_index().key_at(ranks[positions]))
        keys = self.__dict__.get("_keys")
        if keys is not None:
            return uuid_text(keys[positions])
        import pyarrow as pa

        return self.snapshots.take(pa.array(positions)).to_pylist()

    def __len__(self) -> int:
        return len(self.projects)

    @overload
    def __getitem__(self, index: int) -> PlanEntry: ...

    @overload
    def __getitem__(self, index: slice) -> list[PlanEntry]: ...

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return self._make(start, stop)
        position = range(len(self))[index]  # negative indexes; IndexError past the end
        return self._make(position, position + 1)[0]

    def __iter__(self) -> Iterator[PlanEntry]:
        for start in range(0, len(self), CHUNK):
            yield from self._make(start, min(start + CHUNK, len(self)))

    def _make(self, start: int, stop: int) -> list[PlanEntry]:
        """Entries start..stop as objects."""
        if start >= stop:
            return []
        states, extras = self.states, self.extras
        rows = self._rows(start, stop)
        names = self.names[start:stop] if self.names is not None else [None] * (stop - start)
        parts = zip(
            self.projects[start:stop].tolist(),
            self.regions[start:stop].tolist(),
            self._ids(start, stop),
            self.state_codes[start:stop].tolist(),
            names,
            rows,
            self.extra_codes[start:stop].tolist(),
            strict=True,
        )
        out = []
        for p, r, s, code, name, row_list, extra in parts:
            state = states[code]
            out.append(
                PlanEntry(
                    p, r, s, state.tags, state.clear, state.renames, name, row_list,
                    extras[extra], state.overwrites, state.expect,
                )
            )  # fmt: skip
        if self.expect_names is not None:
            for entry, expected in zip(out, self.expect_names[start:stop], strict=True):
                entry.expect_name = expected
        return out

    def _rows(self, start: int, stop: int) -> list[list[Any]]:
        """The manifest rows of entries start..stop."""
        first_row = self.__dict__.get("_first_row")
        if first_row is not None:
            return [[row] for row in range(first_row + start, first_row + stop)]
        assert self.row_ids is not None and self.row_bounds is not None
        bounds = self.row_bounds[start : stop + 1].tolist()
        flat = self.row_ids[bounds[0] : bounds[-1]].tolist()
        first = bounds[0]
        return [flat[a - first : b - first] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def rows_at(self, positions: np.ndarray) -> list[list[Any]]:
        """The manifest rows of the entries at `positions` (int64, any order)."""
        first_row = self.__dict__.get("_first_row")
        if first_row is not None:
            return [[row] for row in (positions + first_row).tolist()]
        assert self.row_ids is not None and self.row_bounds is not None
        starts, stops = self.row_bounds[positions], self.row_bounds[positions + 1]
        if len(positions) and (stops - starts == 1).all():  # a row per entry, as usual
            return [[r] for r in self.row_ids[starts].tolist()]
        return [self.row_ids[a:b].tolist() for a, b in zip(starts, stops, strict=True)]

    def at(self, positions: np.ndarray) -> list[PlanEntry]:
        """The entries at `positions` (ascending), made in one go: runs of consecutive
        positions are sliced, the rest gathered."""
        positions = np.asarray(positions, dtype=np.int64)
        if not len(positions):
            return []
        first, last = int(positions[0]), int(positions[-1])
        if last - first + 1 == len(positions):
            return self._make(first, last + 1)
        out: list[PlanEntry] = []
        breaks = np.flatnonzero(np.diff(positions) != 1) + 1
        for run in np.split(positions, breaks):
            out += self._make(int(run[0]), int(run[-1]) + 1)
        return out

    def fingerprint_lines(self) -> Iterator[Any]:
        """The lines `Plan.fingerprint` hashes (`FINGERPRINT_LINE` per entry), made a column
        at a time by pyarrow, `LINES` entries at once, as buffers of UTF-8 text: the fields
        fixed by an entry's tag state (or the same in every entry) are joined into a few
        texts per state first, so only the ids (and names, scopes that vary) are joined
        row by row. A plan whose ids or scopes need more (ids to escape, scopes beyond
        int64) gets those lines from its entries, one by one, and so does a small plan (as
        fast that way, and without importing pyarrow's compute functions)."""
        varies = self.expect_names is not None  # a change file's names: entry by entry
        small = len(self) <= BY_ENTRY
        if self.projects.dtype == object or self.regions.dtype == object or varies or small:
            yield from fingerprint_lines(self)
            return
        import pyarrow as pa
        import pyarrow.compute as pc

        per_state = {
            "clear": ["true" if s.clear else "false" for s in self.states],
            "renames": [fingerprint_json(s.renames) for s in self.states],
            "tags": [fingerprint_json(s.tags) for s in self.states],
            "checks": [checks_text(s.overwrites, s.expect, None) for s in self.states],
        }
        for start in range(0, len(self), LINES):
            stop = min(start + LINES, len(self))
            ids = self._id_column(start, stop)
            if not pc.all(pc.match_substring_regex(ids, PLAIN_ID)).as_py():
                yield from fingerprint_lines(self._make(start, stop))
                continue
            varying: dict[str, Any] = {
                "snapshot_id": pc.binary_join_element_wise('"', ids, '"', "")
            }
            fixed: dict[str, str] = {}
            if self.names is None:
                fixed["name"] = "null"
            else:
                names = self.names[start:stop]
                texts = ["null" if n is None else fingerprint_json(n) for n in names]
                varying["name"] = pa.array(texts, pa.string())
            for field, column in (("project_id", self.projects), ("region_id", self.regions)):
                values = column[start:stop]
                if (values == values[0]).all():
                    fixed[field] = str(int(values[0]))
                else:
                    varying[field] = pa.array(np.ascontiguousarray(values)).cast(pa.string())
            codes = pa.array(np.ascontiguousarray(self.state_codes[start:stop]))
            parts: list[Any] = []
            texts = [""] * len(self.states)  # per state: the text since the last varying field
            for literal, name, _, _ in Formatter().parse(FINGERPRINT_LINE):
                texts = [text + literal for text in texts]
                if name in varying:
                    parts += [_per_state(texts, codes), varying[name]]
                    texts = [""] * len(self.states)
                elif name in fixed:
                    texts = [text + fixed[name] for text in texts]
                elif name is not None:
                    texts = [
                        text + value for text, value in zip(texts, per_state[name], strict=True)
                    ]
            parts.append(_per_state(texts, codes))
            yield joined_text(pc.binary_join_element_wise(*parts, ""))

    def _id_keys(self) -> np.ndarray:
        """Every entry's id as its 16-byte key, in plan order (ids held as keys only)."""
        ranks = self.__dict__.get("_ranks")
        if ranks is not None:
            return self.plan_index().key_at(ranks)
        return self.__dict__["_keys"]

    def _id_column(self, start: int, stop: int) -> pa.Array:
        """The snapshot ids of entries start..stop as an Arrow string column."""
        ranks = self.__dict__.get("_ranks")
        keys = self.__dict__.get("_keys")
        if ranks is None and keys is None:
            return self.snapshots[start:stop]
        import pyarrow as pa

        chosen = (
            self.plan_index().key_at(ranks[start:stop]) if ranks is not None else keys[start:stop]
        )
        digits = uuid_digits(chosen)
        offsets = np.arange(0, digits.size + 1, digits.shape[1], dtype=np.int32)
        return pa.Array.from_buffers(
            pa.string(), len(chosen), [None, pa.py_buffer(offsets), pa.py_buffer(digits)]
        )

    def _needs_per_state(self) -> np.ndarray:
        needs = [
            PlanEntry(0, 0, "", s.tags, s.clear, s.renames, expect=s.expect).needs_current
            for s in self.states
        ]
        return np.array(needs, dtype=bool)

    def needs_current_mask(self) -> np.ndarray:
        """A mask over positions: the entries that need their snapshot's current tags."""
        if not len(self):
            return np.zeros(0, dtype=bool)
        mask = self._needs_per_state()[self.state_codes]
        if self.expect_names is not None:
            mask = mask | np.fromiter((n is not None for n in self.expect_names), dtype=bool)
        return mask

    def needs_current_count(self) -> int:
        """How many entries need their snapshot's current tags (`PlanEntry.needs_current`),
        counted over the few distinct tag states, not entry by entry."""
        if self.expect_names is not None:
            return int(self.needs_current_mask().sum())
        per_state = np.bincount(self.state_codes, minlength=len(self.states))
        return int(per_state[self._needs_per_state()].sum()) if len(self) else 0

    def plan_index(self) -> PlanIndex:
        """Positions by (scope, snapshot key), built from the columns once and kept."""
        index = self.__dict__.get("_index")
        if index is None:  # built on first use: after the load's temporaries are gone
            codes, scopes = self._scope_codes()
            keys = self.__dict__.get("_keys")
            if keys is None:
                index = PlanIndex.build(codes, scopes, arrow_keys(self.snapshots))
            else:  # the index's sorted keys replace the plan-order ones (ids by rank)
                index = PlanIndex.build(codes, scopes, keys)
                object.__setattr__(self, "_ranks", index.ranks())
                del self.__dict__["_keys"], keys
            object.__setattr__(self, "_index", index)
        return index

    def _scope_codes(self) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
        """Each entry's scope as a number, and the scopes in order of first appearance.

        One scope (the usual manifest) is found without sorting: a sort of every
        (project, region) pair needs temporaries the size of the plan."""
        if not len(self):
            return np.zeros(0, dtype=np.uint8), ()
        projects, regions = self.projects, self.regions
        if (projects == projects[0]).all() and (regions == regions[0]).all():
            one = np.broadcast_to(np.zeros(1, dtype=np.uint8), (len(self),))  # held once
            return one, ((int(projects[0]), int(regions[0])),)
        pairs = np.stack([projects, regions], axis=1)
        if pairs.dtype == object:  # ids beyond int64: rare, numbered one by one
            numbers: dict = {}
            codes = [numbers.setdefault(tuple(p), len(numbers)) for p in pairs.tolist()]
            return np.array(codes, dtype=np.int64), tuple(numbers)
        uniques, first, inverse = np.unique(pairs, axis=0, return_index=True, return_inverse=True)
        ordered = np.argsort(first, kind="stable")
        rank = np.empty(len(ordered), dtype=np.int64)
        rank[ordered] = np.arange(len(ordered))
        scopes = tuple(map(tuple, uniques[ordered].tolist()))
        return rank[inverse.ravel()], scopes

    def ids_in_several_scopes(self) -> int:
        """How many snapshot ids appear in more than one entry (so in several scopes)."""
        if not len(self):
            return 0
        if self.snapshots is None:  # ids as keys: the index has them sorted
            keys = self.plan_index().sorted_keys
            same = keys[1:] == keys[:-1]  # a run of equal keys: one id in several entries
            return int((same & np.concatenate([[True], ~same[:-1]])).sum()) if len(same) else 0
        from batchtag.manifest._columnar import group_codes  # (pandas: not for a small plan)

        return int((np.bincount(group_codes(self.snapshots)) > 1).sum())

    def scopes(self) -> dict[tuple[int, int], int]:
        """Entries per (project, region), in order of first appearance."""
        if not len(self):
            return {}
        index = self.__dict__.get("_index")
        codes, scopes = (index.scope_codes, index.scopes) if index else self._scope_codes()
        counts = np.bincount(codes, minlength=len(scopes)).tolist()
        return dict(zip(scopes, counts, strict=True))


def _per_state(texts: list[str], codes: pa.Array) -> Any:
    import pyarrow as pa

    """Each entry's text by its state code: one scalar when every state has the same."""
    if len(set(texts)) == 1:
        return pa.scalar(texts[0], pa.string())
    return pa.array(texts, pa.string()).take(codes)


def _first_row(row_ids: np.ndarray | None, row_bounds: np.ndarray | None) -> int | None:
    """The first row when entry i has the one row first + i (integer rows counting up one
    an entry, each entry one row), else None. Checked a block at a time."""
    if row_ids is None or row_bounds is None or row_ids.dtype.kind not in "iu":
        return None
    count = len(row_bounds) - 1
    if not count or len(row_ids) != count or int(row_bounds[0]) != 0:
        return None
    first = int(row_ids[0])
    if not 0 <= first < 2**62:  # (rows beyond int64 stay as they are)
        return None
    for start in range(0, count, CHUNK):
        stop = min(count, start + CHUNK)
        steps = np.arange(start, stop + 1, dtype=np.int64)
        if not (row_bounds[start : stop + 1] == steps).all():
            return None
        if not (row_ids[start:stop] == steps[:-1] + first).all():
            return None
    return first


def join_entries(parts: Sequence[PlanEntries]) -> PlanEntries:
    """The entries of one plan made of `parts`, each planned apart (the plan's entries in
    runs, in order; no snapshot in two parts): the columns put end to end, equal tag states
    and passthrough dicts held once. The result holds no index (nor the parts' indexes):
    joining one part is how to keep its entries compact.

    Examples
    --------
    >>> from batchtag.model import EMPTY
    >>> import pyarrow as pa
    >>> one = PlanEntries(
    ...     projects=np.array([1]), regions=np.array([2]), snapshots=pa.array(["s"]),
    ...     state_codes=np.array([0]), states=[TagState(EMPTY, True, EMPTY)], names=None,
    ...     row_ids=np.array([3]), row_bounds=np.array([0, 1]),
    ...     extra_codes=np.array([0]), extras=[EMPTY],
    ... )
    >>> [e.key for e in join_entries([one, one])]
    [(1, 2, 's'), (1, 2, 's')]
    """
    import pyarrow as pa

    states: dict[tuple, int] = {}
    extras: dict[tuple, int] = {}
    state_list: list[State] = []
    extra_list: list[SharedDict] = []
    keyed = all(p.snapshots is None for p in parts)  # every part's ids as 16-byte keys
    columns: dict[str, list[Any]] = {
        k: [] for k in ("projects", "regions", "ids", "states", "extras", "rows", "counts")
    }
    names: list[str | None] = []
    expect_names: list[str | None] = []
    some_names = any(p.names is not None for p in parts)
    some_expected = any(p.expect_names is not None for p in parts)
    for part in parts:
        count = len(part)
        codes = [_held(states, state_list, _state_key(s), s) for s in part.states]
        more = [_held(extras, extra_list, tuple(e.items()), e) for e in part.extras]
        # (each column in a narrow dtype already: the joined plan's peak is these columns)
        columns["states"].append(np.asarray(codes, dtype=np.uint32)[part.state_codes])
        columns["extras"].append(np.asarray(more, dtype=np.uint32)[part.extra_codes])
        columns["projects"].append(np.asarray(part.projects))
        columns["regions"].append(np.asarray(part.regions))
        columns["ids"].append(part._id_keys() if keyed else part._id_column(0, count))
        first_row = part.__dict__.get("_first_row")
        if first_row is not None:
            wide = smallest_uint(first_row + count)
            columns["rows"].append(np.arange(first_row, first_row + count, dtype=wide))
            columns["counts"].append(np.ones(count, dtype=np.uint8))
        else:
            assert part.row_ids is not None and part.row_bounds is not None
            bounds = part.row_bounds
            columns["rows"].append(part.row_ids[int(bounds[0]) : int(bounds[-1])])
            columns["counts"].append(np.diff(bounds))
        if some_names:
            names += part.names if part.names is not None else [None] * count
        if some_expected:
            expected = part.expect_names
            expect_names += expected if expected is not None else [None] * count
    if not parts:
        empty = np.zeros(0, np.int64)
        columns = {k: [empty] for k in columns}
        columns["ids"] = [pa.array([], pa.string())]
    ids = columns["ids"]
    counts = np.concatenate(columns["counts"])
    total = int(counts.sum(dtype=np.int64))
    bounds = np.zeros(len(counts) + 1, dtype=smallest_uint(total + 1))
    np.cumsum(counts, out=bounds[1:])
    del counts
    return PlanEntries(
        projects=np.concatenate(columns["projects"]),
        regions=np.concatenate(columns["regions"]),
        snapshots=np.concatenate(ids) if keyed and parts else pa.concat_arrays(ids),
        state_codes=np.concatenate(columns["states"]),
        states=state_list,
        names=names if some_names else None,
        row_ids=np.concatenate(columns["rows"]),
        row_bounds=bounds,
        extra_codes=np.concatenate(columns["extras"]),
        extras=extra_list or [EMPTY],
        expect_names=expect_names if some_expected else None,
    )


def _held(known: dict[tuple, int], items: list, key: tuple, item: Any) -> int:
    """The code of `item` in `items` (added when no item with its `key` is there yet)."""
    code = known.get(key)
    if code is None:
        code = known[key] = len(items)
        items.append(item)
    return code


def _state_key(state: State) -> tuple:
    """What makes two tag states the same (their dicts' order included: it is the order a
    request names the keys in)."""
    expect = None if state.expect is None else tuple(state.expect.items())
    return (
        tuple(state.tags.items()),
        state.clear,
        tuple(state.renames.items()),
        state.overwrites,
        expect,
    )
