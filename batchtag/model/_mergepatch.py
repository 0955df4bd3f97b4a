"""RFC 7386 JSON Merge Patch, restricted to a flat tag map (the only shape Gcore uses)."""

from __future__ import annotations

from collections.abc import Mapping


def apply_tags_patch(
    current: Mapping[str, str],
    patch: Mapping[str, str | None] | None,
    read_only: frozenset[str] | set[str] = frozenset(),
) -> dict[str, str]:
    """Return the user tags after `patch`; read-only keys are never touched.

    `patch=None` is the merge patch `"tags": null`: every user tag goes.
    """
    if patch is None:
        return {k: v for k, v in current.items() if k in read_only}
    result = dict(current)
    for key, value in patch.items():
        if key in read_only:
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result
