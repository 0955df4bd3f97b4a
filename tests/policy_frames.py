"""Export-shaped inventories, the reference model of applying a policy's manifest, and
strategies for generated snapshots and rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from batchtag.policy import parse_policy

BASE = ["project_id", "region_id", "snapshot_id", "name", "status", "size"]


def inventory(snapshots: list[dict], with_volume: bool | None = None) -> pd.DataFrame:
    """An export-shaped frame: each snapshot is {"tags": {...}, "ro": {...}, "size": n,
    "volume": {"name": ..., "tags": {...}}}. With the volumes (by default: when a snapshot
    has a "volume"), `volume_name` and `volume_tag:<key>` columns as `export(with_volume=
    True)` joins them; a snapshot without "volume" then has none (it was deleted). Tag and
    volume columns hold objects, None where a snapshot has no such tag."""
    if with_volume is None:
        with_volume = any("volume" in snap for snap in snapshots)
    count = len(snapshots)
    if not count:
        return _empty_inventory(with_volume)
    tags: dict[str, list] = {"volume_name": [None] * count} if with_volume else {}
    for i, snap in enumerate(snapshots):
        cells = {f"tag:{k}": v for k, v in snap.get("tags", {}).items()}
        cells.update({f"ro:{k}": v for k, v in snap.get("ro", {}).items()})
        if with_volume:
            volume = snap.get("volume")
            cells["volume_name"] = None if volume is None else volume.get("name", f"vol-{i}")
            cells.update({f"volume_tag:{k}": v for k, v in (volume or {}).get("tags", {}).items()})
        for column, value in cells.items():
            tags.setdefault(column, [None] * count)[i] = value
    columns: dict = {
        "project_id": np.ones(count, dtype=np.int64),
        "region_id": np.ones(count, dtype=np.int64),
        "snapshot_id": [f"aaaaaaaa-0000-4000-8000-{i:012d}" for i in range(count)],
        "name": [f"snap-{i}" for i in range(count)],
        "status": ["available"] * count,
        "size": np.array([snap.get("size", 10) for snap in snapshots], dtype=np.int64),
    }
    columns.update({c: pd.Series(v, dtype=object) for c, v in tags.items()})
    return pd.DataFrame(columns)


def _empty_inventory(with_volume: bool) -> pd.DataFrame:
    frame = pd.DataFrame([], columns=BASE + ["volume_name"] if with_volume else BASE)
    frame = frame.astype({"project_id": "int64", "region_id": "int64", "size": "int64"})
    return frame


def user_tags(frame: pd.DataFrame) -> list[dict[str, str]]:
    columns = [c for c in frame.columns if c.startswith("tag:")]
    return [
        {c[4:]: v for c, v in zip(columns, values, strict=True) if isinstance(v, str)}
        for values in frame[columns].itertuples(index=False)
    ]


def after(snapshots: list[dict], manifest: pd.DataFrame) -> list[dict]:
    """The reference model of applying a long set/delete manifest to the snapshots (their
    volumes stay as they are; its `rename` rows are renames the policy refused: they change
    nothing)."""
    out = [{**s, "tags": dict(s.get("tags", {}))} for s in snapshots]
    index = {f"aaaaaaaa-0000-4000-8000-{i:012d}": i for i in range(len(out))}
    for row in manifest.itertuples(index=False):
        tags = out[index[row.snapshot_id]]["tags"]
        if row.op == "rename":
            continue
        if row.op == "set":
            tags[row.key] = row.value
        else:
            assert row.op == "delete" and row.key in tags
            del tags[row.key]
    return out


def policy(text: str):
    return parse_policy(text, "p.toml")


# ---------------------------------------------------------------- hypothesis strategies

KEYS = ["a", "b", "c", "d", "e"]
VALUES = ["x", "X", "y", "Yy"]
tags_st = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=4)
snapshot_st = st.fixed_dictionaries(
    {"tags": tags_st, "size": st.sampled_from([1, 10, 100])},
    optional={"ro": st.fixed_dictionaries({"ro": st.sampled_from(VALUES)})},
)


@st.composite
def where_st(draw) -> str | None:
    key, value = draw(st.sampled_from(KEYS)), draw(st.sampled_from(VALUES))
    return draw(
        st.sampled_from(
            [
                None,
                f"`tag:{key}`.isna()",
                f"`tag:{key}`.notna()",
                f"`tag:{key}` == '{value}'",
                f"`tag:{key}`.notna() and `tag:{key}` != `tag:{key}`.str.lower()",
                "size > 5",
                "`ro:ro`.notna()",
            ]
        )
    )


@st.composite
def rules_st(draw) -> str:
    """Rules whose written keys are disjoint (no two actions write one key), so they cannot
    conflict; their `where`s read any key, so they chain."""
    pool = list(draw(st.permutations(KEYS)))
    text = []
    for n in range(draw(st.integers(1, 3))):
        lines = [f"[[rule]]\nname = 'r{n}'"]
        where = draw(where_st())
        if where:
            lines.append(f'where = "{where}"')
        for action in draw(
            st.lists(
                st.sampled_from(["set", "delete", "lower", "upper", "rename"]),
                min_size=1,
                max_size=2,
                unique=True,
            )
        ):
            need = 2 if action == "rename" else 1
            if len(pool) < need:
                break
            keys = [pool.pop() for _ in range(need)]
            if action == "set":
                lines.append(f"set = {{ {keys[0]} = '{draw(st.sampled_from(VALUES))}' }}")
            elif action == "rename":
                flag = ", overwrite = true" if draw(st.booleans()) else ""
                lines.append(f"rename = {{ {keys[0]} = '{keys[1]}'{flag} }}")
            else:
                lines.append(f"{action} = ['{keys[0]}']")
        if len(lines) > 1 + bool(where):
            text.append("\n".join(lines))
    return "\n".join(text) or "[[rule]]\nname='r'\nset={a='x'}"
