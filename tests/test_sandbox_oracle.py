"""The sandbox is the tests' oracle: it shares no code with the client it checks.

A merge patch or id parser shared by both would let one bug pass on both sides, so the
sandbox has its own, held here to the RFC's examples and to Python's `uuid` module.
"""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import batchtag.sandbox
from batchtag.sandbox import merge, uuids

SANDBOX = Path(batchtag.sandbox.__file__).parent
ALLOWED_OUTSIDE = {"batchtag.errors"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file: top level, in functions and under
    TYPE_CHECKING alike; relative imports resolved against the sandbox package."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = ["batchtag", "sandbox"][: max(0, 3 - node.level)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def test_the_sandbox_imports_nothing_else_from_batchtag():
    sources = sorted(SANDBOX.rglob("*.py"))
    assert len(sources) >= 10
    outside = [
        f"{path.name}:{line}: {module}"
        for path in sources
        for line, module in imported_modules(path)
        if module.split(".")[0] == "batchtag"
        and module not in ("batchtag", "batchtag.sandbox")
        and not module.startswith("batchtag.sandbox.")
        and not any(module == m or module.startswith(m + ".") for m in ALLOWED_OUTSIDE)
    ]
    bare = [
        f"{path.name}:{line}"
        for path in sources
        for line, module in imported_modules(path)
        if module == "batchtag"  # `import batchtag` would reach the whole client
    ]
    assert outside == [] and bare == []


# RFC 7386 Appendix A, every example: (original, patch, result).
RFC_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize("original, patch, result", RFC_EXAMPLES)
def test_merge_patch_gives_every_result_of_rfc_7386_appendix_a(original, patch, result):
    copy = repr(original)
    assert merge.merge_patch(original, patch) == result
    assert repr(original) == copy  # the target is not changed in place


def test_tag_patches_never_touch_read_only_tags_and_keep_the_order():
    tags = {"team": "data", "created-by": "gcore-backup", "env": "prod"}
    read_only = {"created-by"}
    patched = merge.patch_tags(tags, {"env": None, "created-by": "me", "new": "v"}, read_only)
    assert list(patched.items()) == [("team", "data"), ("created-by", "gcore-backup"), ("new", "v")]
    assert merge.patch_tags(tags, None, read_only) == {"created-by": "gcore-backup"}
    assert merge.patch_tags(tags, {}, read_only) == tags


@given(st.uuids(), st.booleans())
def test_ids_parse_like_pythons_uuid_module(value, upper):
    text = str(value).upper() if upper else str(value)
    assert uuids.parse(text) == value.bytes


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not-a-uuid",
        "0b7f3f387d534a3e9e0b8f4d2c1e5a66",  # no dashes
        "{0b7f3f38-7d53-4a3e-9e0b-8f4d2c1e5a66}",
        "0b7f3f38-7d53-4a3e-9e0b-8f4d2c1e5a6g",
        "0b7f3f38-7d53-4a3e-9e0b-8f4d2c1e5a6 ",
        "0b7f3f38-7d534-a3e-9e0b-8f4d2c1e5a66",
        "0b7f3f38-7d53-4a3e-9e0b-8f4d2c1e5a66\n",
        "+b7f3f38-7d53-4a3e-9e0b-8f4d2c1e5a66",
        "0b7f3f38-7d53-4a3e-9e0b-8f4d2c1e5a6٣",  # a non-ASCII digit
    ],
)
def test_anything_else_is_no_id(text):
    assert uuids.parse(text) is None


@given(st.lists(st.uuids(), max_size=50))
def test_ids_format_like_pythons_uuid_module(values):
    raw = np.frombuffer(b"".join(v.bytes for v in values), dtype=np.uint8).reshape(-1, 16)
    assert uuids.texts(raw) == [str(v) for v in values]
    assert [uuid.UUID(t) for t in uuids.texts(raw)] == values
