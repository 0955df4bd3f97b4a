"""JSON Merge Patch (RFC 7386) as the sandbox applies it to a resource's tags.

Written from the RFC's text for the sandbox alone: the sandbox is the oracle the client's
own merge patch is tested against, so the two must not share code.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 section 2: the result of applying `patch` to `target` (neither is changed).

    A patch that is not an object replaces the target. An object patch turns a non-object
    target into an empty object first; then each member set to null is removed, and every
    other member is merged, recursively, into the target's member of that name.

    >>> merge_patch({"a": "b", "c": {"d": "e"}}, {"a": "z", "c": {"d": None}})
    {'a': 'z', 'c': {}}
    """
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def patch_tags(
    tags: Mapping[str, str], patch: Mapping[str, str | None] | None, read_only: Set[str]
) -> dict[str, str]:
    """All of a resource's tags after a PATCH body's `tags` member.

    `tags` holds every tag, read-only ones included; those are never changed: a patch
    naming one is ignored for that key, and ``"tags": null`` (remove every tag) removes the
    user tags only. Tags keep their order; new ones come last.
    """
    if patch is None:
        writable = {key: None for key in tags if key not in read_only}
    else:
        writable = {key: value for key, value in patch.items() if key not in read_only}
    return merge_patch(tags, writable)
