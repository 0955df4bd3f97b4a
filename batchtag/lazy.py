"""Names a package exports but loads on first use, so importing it stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, homes: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module `__getattr__` and `__dir__` for `package` that load `name` from its submodule
    `homes[name]` when first asked for.

    Parameters
    ----------
    package : str
        The package's `__name__`.
    homes : dict of str to str
        Exported name -> the submodule (relative to `package`) that defines it.

    Returns
    -------
    tuple
        The package's `__getattr__` and `__dir__`.

    Examples
    --------
    >>> __getattr__, __dir__ = lazy_exports(__name__, {"read_plan": "build"})  # doctest: +SKIP
    """

    def get(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{homes[name]}"), name)

    def names() -> list[str]:
        return sorted({*vars(importlib.import_module(package)), *homes})

    return get, names
