"""Checking a loaded manifest, all before any network, with every problem found at once.

Per-cell rules run vectorised over whole columns (pyarrow regexes and lengths); Python only
looks at the rows that failed, to word their messages. Every form is first turned into one
table of operations (pos, op, key, value), so the rules and conflict checks are shared.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batchtag.errors import Problem
from batchtag.manifest import TAG_PREFIX, Manifest, detect_form, form_columns

OPS = ("set", "delete", "clear", "rename", "name")
TAG_TEXT = r"[^\s\v\x{85}\pZ=]{1,255}"  # 1-255 characters, no whitespace, no '='
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
POSITIVE_INT = r"0*[1-9][0-9]{0,17}"  # fits in int64 with room to spare
NAME_MIN, NAME_MAX = 3, 63
SCOPES = {
    "project_id": ("--project-id", "GCORE_CLOUD_PROJECT_ID"),
    "region_id": ("--region-id", "GCORE_CLOUD_REGION_ID"),
}


@dataclass
class Checked:
    """A validated manifest, ready to plan when `problems` is empty."""

    manifest: Manifest
    form: str | None
    problems: list[Problem]
    ops: Coded  # one per operation, in file order
    group: np.ndarray  # snapshot group of every frame row, first-seen order (-1 if bad ids)
    project: np.ndarray  # int64 per frame row
    region: np.ndarray
    snapshot: pd.Series  # normalised (lowercase) snapshot ids
    passthrough: list[str] = field(default_factory=list)


class Collector:
    """Problems found on frame positions, turned into data row numbers."""

    def __init__(self, manifest: Manifest):
        self.rows = manifest.rows()
        self.problems: list[Problem] = []

    def add(self, message: str, column: str | None = None, pos: int | None = None) -> None:
        row = None if pos is None else int(self.rows[pos])
        self.problems.append(Problem(message, row=row, column=column))

    def cells(self, mask, texts, word, column) -> None:
        """One problem per failing position; `word(text)` phrases it."""
        positions = np.flatnonzero(mask)
        if len(positions) == 0:
            return
        values = _take(texts, positions)
        columns = _take(column, positions) if not isinstance(column, str) else None
        for i, (pos, text) in enumerate(zip(positions.tolist(), values, strict=True)):
            self.add(word(text), column if columns is None else columns[i], pos)


def _take(values, positions: np.ndarray) -> list:
    if isinstance(values, pd.Series):
        return values.iloc[positions].tolist()
    return [values[i] for i in positions.tolist()]


# --- vectorised rules ----------------------------------------------------------------------


def _arrow(series: pd.Series) -> pa.Array | pa.ChunkedArray:
    # zero-copy for pyarrow-backed text; a pandas NA becomes null
    return pa.array(series, from_pandas=True)


def factorize(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes (first-seen order) and unique values, via pyarrow: no Python object per row."""
    encoded = _encoded(_arrow(series))
    return _codes(encoded), encoded.dictionary.to_pylist()


def _group_codes(values: pa.Array | pa.ChunkedArray | np.ndarray) -> np.ndarray:
    """Codes in first-seen order, without the unique values (which may be many).

    A dense rank sorts rather than hashes: on 500k distinct snapshot ids it needs a few MB
    where dictionary_encode's hash table and dictionary take ~100 MB."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    rank = pc.rank(
        pa.array(values) if isinstance(values, np.ndarray) else values,
        "ascending",
        tiebreaker="dense",
    )
    return _first_seen(np.asarray(rank).view(np.int64) - 1)


def _first_seen(codes: np.ndarray) -> np.ndarray:
    """Renumber dense codes by where each first appears."""
    count = int(codes.max()) + 1
    first = np.full(count, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    relabel = np.empty(count, dtype=np.int64)
    relabel[np.argsort(first)] = np.arange(count)
    return relabel[codes]


def _encoded(values: pa.Array | pa.ChunkedArray) -> pa.DictionaryArray:
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = (
            encoded.combine_chunks()
            if encoded.num_chunks
            else pa.array([], values.type).dictionary_encode()
        )
    return encoded


def _codes(encoded: pa.DictionaryArray) -> np.ndarray:
    return np.asarray(encoded.indices.fill_null(-1), dtype=np.int64)


def fullmatch(series: pd.Series, pattern: str) -> np.ndarray:
    result = pc.match_substring_regex(_arrow(series), f"^(?:{pattern})$")
    return np.asarray(pc.fill_null(result, False), dtype=bool)


def lengths(series: pd.Series) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.utf8_length(_arrow(series)), 0), dtype=np.int64)


def shown(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def tag_text_problem(text: str, what: str) -> str:
    """Why `text` is not a valid tag key or value (only called on failures)."""
    if text == "":
        return f"{what} is empty"
    if len(text) > 255:
        return f"{what} is {len(text)} characters long; the limit is 255"
    if "=" in text:
        return f"{what} {shown(text)} contains '='"
    return f"{what} {shown(text)} contains whitespace"


def name_problem(text: str) -> str:
    return f"name {shown(text)} is {len(text)} characters long; names take {NAME_MIN}-{NAME_MAX}"


# --- the whole check -----------------------------------------------------------------------


def check_manifest(
    manifest: Manifest,
    *,
    form: str | None = None,
    delete_marker: str = "<delete>",
    project_id: int | None = None,
    region_id: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Checked:
    env = os.environ if env is None else env
    frame = manifest.frame
    columns = [str(c) for c in frame.columns]
    out = Collector(manifest)
    out.problems.extend(manifest.problems)
    form, form_problems = detect_form(columns, form)
    out.problems.extend(form_problems)

    snapshot, sid_ok = check_snapshot_ids(frame, out)
    project = check_scope(frame, "project_id", project_id, env, out)
    region = check_scope(frame, "region_id", region_id, env, out)

    ops = _ops_frame([], [], [], [], "key", "value")
    ops["ok"] = np.ones(0, dtype=bool)
    if form == "long":
        ops = long_ops(frame, out)
    elif form == "wide":
        ops = wide_ops(frame, delete_marker, out)
    elif form == "json":
        ops = json_ops(frame, out)

    # rows are grouped even when project or region is bad, so conflicts still show up
    if sid_ok.all():  # no copies of the columns in the usual case
        group = snapshot_groups(project, region, snapshot)
    else:
        group = np.full(len(frame), -1, dtype=np.int64)
        if sid_ok.any():
            group[sid_ok] = snapshot_groups(project[sid_ok], region[sid_ok], snapshot[sid_ok])
    ops_ok = ops.pop("ok").to_numpy(dtype=bool) & (group[ops["pos"].to_numpy()] >= 0)
    if not ops_ok.all():
        ops = ops[ops_ok].reset_index(drop=True)
    coded = encode(ops, group)
    check_conflicts(ops, coded, snapshot, out)
    passthrough = []
    if form is not None:
        used = form_columns(form, columns)
        passthrough = [c for c in columns if c not in used]
    problems = sorted(out.problems, key=lambda p: (p.row is not None, p.row or 0, p.line or 0))
    return Checked(
        manifest,
        form,
        manifest.with_lines(problems),
        coded,
        group,
        project,
        region,
        snapshot,
        passthrough,
    )


def snapshot_groups(project: np.ndarray, region: np.ndarray, snapshot: pd.Series) -> np.ndarray:
    """A group number per row for (project, region, snapshot), numbered in first-seen order.

    Each part is factorised on its own and the codes combined into one int64, which hashes
    far cheaper than a three-column groupby over strings; the snapshot strings are never
    turned into Python objects."""
    s = _group_codes(_arrow(snapshot))
    p = _group_codes(project)
    r = _group_codes(region)
    if not p.any() and not r.any():
        return s  # one scope, the usual case: the snapshot codes are the groups
    scope = _group_codes(p * (r.max() + 1) + r)  # renumbered, so the next line cannot overflow
    return _group_codes(scope * (s.max() + 1) + s)


def check_snapshot_ids(frame: pd.DataFrame, out: Collector) -> tuple[pd.Series, np.ndarray]:
    if "snapshot_id" not in frame.columns:
        out.add("missing required column", "snapshot_id")
        return pd.Series([""] * len(frame), dtype=str), np.zeros(len(frame), dtype=bool)
    raw = frame["snapshot_id"]
    snapshot = raw
    ok = fullmatch(raw, UUID)
    if not ok.all():  # normalising copies the column, so only when some cell needs it
        snapshot = raw.str.strip().str.lower()
        ok = fullmatch(snapshot, UUID)

    def word(text: str) -> str:
        if not text.strip():
            return "snapshot_id is empty"
        return f"snapshot_id {shown(text)} is not a uuid (8-4-4-4-12 hex digits)"

    out.cells(~ok, raw, word, "snapshot_id")
    return snapshot, ok


def check_scope(
    frame: pd.DataFrame,
    column: str,
    option: int | None,
    env: Mapping[str, str],
    out: Collector,
) -> np.ndarray:
    """A column, with the option, then the env var, filling it in (or its blank cells)."""
    flag, var = SCOPES[column]
    default = _scope_default(column, option, env, out)
    n = len(frame)
    if column not in frame.columns:
        if default is None:
            if option is None and not env.get(var, "").strip():
                out.add(f"missing: give a {column} column, {flag} or {var}", column)
            return np.zeros(n, dtype=np.int64)
        return np.full(n, default, dtype=np.int64)
    raw = frame[column]
    codes, uniques = factorize(raw)  # IDs repeat: work on the few distinct values
    uniques = [u.strip() for u in uniques]
    unique_ok = fullmatch(pd.Series(uniques, dtype=str), POSITIVE_INT)
    values = np.array(
        [int(u) if good else 0 for u, good in zip(uniques, unique_ok, strict=True)] + [0],
        dtype=np.int64,
    )
    ok = np.append(unique_ok, False)[codes]
    # a bad cell still groups with its own kind, so conflicts are found in the same pass
    number = np.where(ok, values[codes], -(codes + 2))
    blank = np.array([u == "" for u in uniques] + [False])[codes]
    if default is not None:
        number[blank] = default
        ok = ok | blank

    def word(cell: str) -> str:
        if not cell.strip():
            return f"{column} is empty and neither {flag} nor {var} is set"
        return f"{column} {shown(cell)} is not a positive integer"

    out.cells(~ok, raw, word, column)
    return number


def _scope_default(
    column: str, option: int | None, env: Mapping[str, str], out: Collector
) -> int | None:
    flag, var = SCOPES[column]
    if option is not None:
        if isinstance(option, int) and not isinstance(option, bool) and option > 0:
            return option
        out.add(f"{flag} {option!r} is not a positive integer", column)
        return None
    text = env.get(var, "").strip()
    if not text:
        return None
    if text.isascii() and text.isdigit() and int(text) > 0 and len(text.lstrip("0")) <= 18:
        return int(text)
    out.add(f"{var}={text!r} is not a positive integer", column)
    return None


# --- forms into operations -----------------------------------------------------------------


def _ops_frame(pos, op, key, value, key_col, value_col) -> pd.DataFrame:
    n = len(pos)
    op, key, value = ([x] * n if isinstance(x, str) else x for x in (op, key, value))
    frame = pd.DataFrame(
        {
            "pos": np.asarray(pos, dtype=np.int64),
            "op": pd.Series(op, dtype=str),
            "key": pd.Series(key, dtype=str),
            "value": pd.Series(value, dtype=str),
        }
    )
    frame["key_col"] = _labels(key_col, n)
    frame["value_col"] = _labels(value_col, n)
    return frame


def _labels(names: str | Sequence[str], n: int) -> pd.Categorical:
    """The column every operation came from; categorical, so one byte a row."""
    if isinstance(names, str):
        return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), [names])
    return pd.Categorical(names)


def long_ops(frame: pd.DataFrame, out: Collector) -> pd.DataFrame:
    n = len(frame)
    if "op" not in frame.columns:
        out.add("missing required column (long form: op, key, value)", "op")
        return _finish(_ops_frame([], [], [], [], "key", "value"), out)
    op = frame["op"].str.strip().str.lower()
    needs_key = op.isin(["set", "delete", "rename"]).to_numpy()
    needs_value = op.isin(["set", "rename", "name"]).to_numpy()
    known = op.isin(OPS).to_numpy()
    key = frame["key"] if "key" in frame.columns else None
    value = frame["value"] if "value" in frame.columns else None
    ok = known.copy()
    if key is None and needs_key.any():
        out.add("missing column: set, delete and rename need a key", "key")
        ok &= ~needs_key
    if value is None and needs_value.any():
        out.add("missing column: set, rename and name need a value", "value")
        ok &= ~needs_value

    def word(text: str) -> str:
        if not text.strip():
            return "op is empty: use set, delete, clear, rename or name"
        return f"unknown op {shown(text)}: use set, delete, clear, rename or name"

    out.cells(~known, frame["op"], word, "op")
    blank = pd.Series([""] * n, dtype=str) if key is None or value is None else None
    ops = _ops_frame(
        np.arange(n),
        op,
        blank if key is None else key,
        blank if value is None else value,
        "key",
        "value",
    )
    ops["ok"] = ok
    return _finish(ops, out)


def wide_ops(frame: pd.DataFrame, marker: str, out: Collector) -> pd.DataFrame:
    parts = []
    for column in frame.columns:
        if not column.startswith(TAG_PREFIX):
            continue
        key = column[len(TAG_PREFIX) :]
        if not fullmatch(pd.Series([key], dtype=str), TAG_TEXT)[0]:
            out.add(f"column name: {tag_text_problem(key, 'tag key')}", column)
            continue
        cells = frame[column]
        filled = (cells != "").to_numpy()
        if not filled.any():
            continue
        positions = np.flatnonzero(filled)
        values = cells.iloc[positions].reset_index(drop=True)
        delete = (values.str.strip() == marker).to_numpy()
        part = _ops_frame(
            positions,
            np.where(delete, "delete", "set"),
            key,
            values.where(~delete, ""),
            column,
            column,
        )
        parts.append(part)
    if "name" in frame.columns:
        cells = frame["name"]
        positions = np.flatnonzero((cells != "").to_numpy())
        values = cells.iloc[positions].reset_index(drop=True)
        marked = np.flatnonzero((values.str.strip() == marker).to_numpy())
        for i in marked.tolist():
            out.add("a snapshot name cannot be deleted", "name", int(positions[i]))
        part = _ops_frame(positions, "name", "", values, "name", "name")
        part["ok"] = ~np.isin(np.arange(len(positions)), marked)
        parts.append(part)
    return _finish(_concat(parts), out)


def json_ops(frame: pd.DataFrame, out: Collector) -> pd.DataFrame:
    pos: list[int] = []
    op: list[str] = []
    key: list[str] = []
    value: list[str] = []
    if "tags" in frame.columns:
        cells = frame["tags"]
        positions = np.flatnonzero((cells.str.strip() != "").to_numpy())
        for p, text in zip(positions.tolist(), cells.iloc[positions].tolist(), strict=True):
            for o, k, v in _patch_ops(text, out, p):
                pos.append(p)
                op.append(o)
                key.append(k)
                value.append(v)
    elif "name" not in frame.columns:
        out.add("missing required column (json form: tags, optional name)", "tags")
    parts = [_ops_frame(pos, op, key, value, "tags", "tags")]
    if "name" in frame.columns:
        cells = frame["name"]
        positions = np.flatnonzero((cells != "").to_numpy())
        values = cells.iloc[positions].reset_index(drop=True)
        parts.append(_ops_frame(positions, "name", "", values, "name", "name"))
    return _finish(_concat(parts), out)


def _patch_ops(text: str, out: Collector, pos: int) -> list[tuple[str, str, str]]:
    try:
        patch = json.loads(text)
    except json.JSONDecodeError as exc:
        out.add(f"tags is not valid JSON ({exc.msg} at character {exc.pos + 1})", "tags", pos)
        return []
    if patch is None:
        return [("clear", "", "")]
    if not isinstance(patch, dict):
        kind = type(patch).__name__
        out.add(f"tags must be a JSON object or null, not {kind}", "tags", pos)
        return []
    ops = []
    for k, v in patch.items():
        if v is None:
            ops.append(("delete", k, ""))
        elif isinstance(v, str):
            ops.append(("set", k, v))
        else:
            kind = type(v).__name__
            out.add(f"tag {shown(k)}: a value must be a string or null, not {kind}", "tags", pos)
    return ops


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)] or parts[:1] or [_ops_frame([], [], [], [], "", "")]
    ops = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        ops = ops.sort_values("pos", kind="stable", ignore_index=True)
    return ops


def _finish(ops: pd.DataFrame, out: Collector) -> pd.DataFrame:
    """The per-operation rules; adds an `ok` column."""
    if "ok" not in ops.columns:
        ops["ok"] = True
    ok = ops["ok"].to_numpy(dtype=bool).copy()
    op = ops["op"]
    key, value = ops["key"], ops["value"]
    pos = ops["pos"].to_numpy()
    key_col, value_col = ops["key_col"], ops["value_col"]
    kind = {name: (op == name).to_numpy() & ok for name in OPS}
    key_valid = fullmatch(key, TAG_TEXT)
    value_valid = fullmatch(value, TAG_TEXT)
    has_key = (key != "").to_numpy()
    has_value = (value != "").to_numpy()
    value_len = lengths(value)

    def flag(mask: np.ndarray, texts, word, columns) -> None:
        nonlocal ok
        if not mask.any():
            return
        ok &= ~mask
        hits = np.flatnonzero(mask)
        cols = columns if isinstance(columns, str) else columns.iloc[hits].tolist()
        for i, h in enumerate(hits.tolist()):
            column = cols if isinstance(cols, str) else cols[i]
            out.add(word(texts.iloc[h]), column, int(pos[h]))

    for name in ("set", "delete", "rename"):
        flag(
            kind[name] & ~key_valid,
            key,
            lambda t, n=name: f"{n} needs a key" if t == "" else tag_text_problem(t, "key"),
            key_col,
        )
    flag(
        kind["set"] & ~value_valid,
        value,
        lambda t: "set needs a value" if t == "" else tag_text_problem(t, "value"),
        value_col,
    )
    flag(
        kind["rename"] & ~value_valid,
        value,
        lambda t: (
            "rename needs the new key as its value" if t == "" else tag_text_problem(t, "new key")
        ),
        value_col,
    )
    same = kind["rename"] & value_valid & (key == value).to_numpy()
    flag(same, key, lambda t: f"renames {shown(t)} to itself", value_col)
    # a stray value is an error rather than ignored: "delete env prod" reads like a
    # conditional delete, which batchtag cannot do
    flag(
        kind["delete"] & has_value,
        value,
        lambda t: f"delete takes no value (got {shown(t)}); leave value empty",
        value_col,
    )
    for name in ("clear", "name"):
        flag(
            kind[name] & has_key,
            key,
            lambda t, n=name: f"{n} takes no key (got {shown(t)})",
            key_col,
        )
    flag(
        kind["clear"] & has_value,
        value,
        lambda t: f"clear takes no value (got {shown(t)})",
        value_col,
    )
    bad_name = kind["name"] & ((value_len < NAME_MIN) | (value_len > NAME_MAX))
    flag(bad_name, value, name_problem, value_col)
    ops["ok"] = ok
    return ops


# --- conflicts ---------------------------------------------------------------------------


@dataclass
class Coded:
    """Operations as integer codes into shared string lists (cheap to compare and to plan)."""

    op: np.ndarray  # index into OPS
    group: np.ndarray
    key: np.ndarray  # index into `keys`
    value: np.ndarray  # index into `values`
    target: np.ndarray  # rename: the new key as an index into `keys`; else -1
    keys: list[str]
    values: list[str]


def encode(ops: pd.DataFrame, group: np.ndarray) -> Coded:
    codes, names = factorize(ops["op"])
    op = np.array([OPS.index(n) if n in OPS else -1 for n in names] + [-1], np.int8)[codes]
    key, keys = factorize(ops["key"])
    value, values = factorize(ops["value"])
    target = np.full(len(ops), -1, dtype=np.int64)
    renames = np.flatnonzero(op == OPS.index("rename"))
    if len(renames):
        known = {k: i for i, k in enumerate(keys)}
        for i, new in zip(renames.tolist(), ops["value"].iloc[renames].tolist(), strict=True):
            if new not in known:
                known[new] = len(keys)
                keys.append(new)
            target[i] = known[new]
    return Coded(
        op,
        group[ops["pos"].to_numpy()],
        key.astype(np.int64),
        value.astype(np.int64),
        target,
        keys,
        values,
    )


def check_conflicts(ops: pd.DataFrame, coded: Coded, snapshot: pd.Series, out: Collector):
    """Two different writes to one key (or two names) of one snapshot.

    A write is (group, key, what): set -> value code, delete -> -1, rename -> -1 on the old
    key and -(2 + old key) on the new one; names use key -1. Only writes whose (group, key)
    slot repeats are looked at closely, so the usual clean manifest costs a few arrays.
    """
    if not len(ops):
        return
    index, new = _writes(coded.op)
    repeated = pd.Series(_slots(coded, index, new)).duplicated(keep=False).to_numpy()
    if not repeated.any():
        return
    index, new = index[repeated], new[repeated]
    writes = pd.DataFrame(
        {
            "g": coded.group[index],
            "k": _written_keys(coded, index, new),
            "w": _written_values(coded, index, new),
            "i": index,
            "new": new,
        }
    )
    distinct = writes.sort_values("i", kind="stable").drop_duplicates(["g", "k", "w"])
    clash = distinct[distinct.duplicated(["g", "k"], keep=False)]
    pos = ops["pos"].to_numpy()
    key_col, value_col = ops["key_col"], ops["value_col"]
    for (_, k), rows in clash.groupby(["g", "k"], sort=False):
        first_pos = int(pos[rows["i"].iloc[0]])
        sid = snapshot.iloc[first_pos]
        subject = "names" if k == -1 else f"writes to tag {shown(coded.keys[k])}"
        listed = ", ".join(
            f"row {int(out.rows[pos[i]])} {_describe(w, coded)}"
            for i, w in zip(rows["i"].tolist(), rows["w"].tolist(), strict=True)
        )
        second, is_new = int(rows["i"].iloc[1]), bool(rows["new"].iloc[1])
        column = value_col.iloc[second] if is_new or k == -1 else key_col.iloc[second]
        out.add(f"conflicting {subject} for snapshot {sid}: {listed}", column, int(pos[second]))


def _writes(op: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The operation of every write (all but clears, then renames again for their new key),
    and which of them are a rename's new key."""
    index = np.flatnonzero(op != OPS.index("clear"))
    renames = np.flatnonzero(op == OPS.index("rename"))
    new = np.zeros(len(index) + len(renames), dtype=bool)
    if len(renames):
        index = np.concatenate([index, renames])
        new[-len(renames) :] = True
    return index, new


def _slots(coded: Coded, index: np.ndarray, new: np.ndarray) -> np.ndarray:
    """One int per (snapshot, key) written; built in place to keep temporaries few."""
    slot = coded.group[index]
    slot *= len(coded.keys) + 1
    slot += _written_keys(coded, index, new)
    slot += 1
    return slot


def _written_keys(coded: Coded, index: np.ndarray, new: np.ndarray) -> np.ndarray:
    keys = coded.key[index]
    keys[coded.op[index] == OPS.index("name")] = -1
    keys[new] = coded.target[index[new]]
    return keys


def _written_values(coded: Coded, index: np.ndarray, new: np.ndarray) -> np.ndarray:
    op = coded.op[index]
    sets = (op == OPS.index("set")) | (op == OPS.index("name"))
    what = np.where(sets, coded.value[index], -1)
    what[new] = -(2 + coded.key[index[new]])
    return what


def _describe(write: int, coded: Coded) -> str:
    if write == -1:
        return "removes it"
    if write <= -2:
        return f"renames {shown(coded.keys[-2 - write])} to it"
    return f"sets {shown(coded.values[write])}"
