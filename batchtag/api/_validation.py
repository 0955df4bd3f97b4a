"""`Validation`: what `batchtag.validate` returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from batchtag.errors import ManifestError, problems_frame
from batchtag.manifest import format_validation


@dataclass(frozen=True, repr=False, eq=False)
class Validation:
    """The result of validating a manifest (no network).

    Attributes
    ----------
    ok : bool
        True when the manifest has no problem (``bool(validation)`` is the same).
    summary : dict or None
        For a valid manifest: ``form``, ``rows``, ``snapshots``, ``operations`` (count per
        op), ``scopes``, ``passthrough``, ``needs_current``, ``ids_in_several_scopes``
        (what ``batchtag validate --json`` prints); None when it has problems.
    problems : pandas.DataFrame
        One row per problem: ``row_label`` (a DataFrame's index label, or a file's
        1-based data row), ``position`` (0-based row position), ``line`` (file line),
        ``column``, ``message``; empty when ``ok``. The same frame as
        `ManifestError.problems`.

    Examples
    --------
    >>> checked = batchtag.validate(manifest)  # doctest: +SKIP
    >>> checked.problems[checked.problems.column == "key"]  # doctest: +SKIP
    >>> checked.raise_for_problems()  # doctest: +SKIP
    """

    summary: dict[str, Any] | None
    problems: pd.DataFrame
    error: ManifestError | None = None

    @classmethod
    def passed(cls, summary: dict[str, Any]) -> Validation:
        return cls(summary, problems_frame([]))

    @classmethod
    def failed(cls, error: ManifestError) -> Validation:
        return cls(None, error.problems, error)

    @property
    def ok(self) -> bool:
        return self.error is None

    def __bool__(self) -> bool:
        return self.ok

    def raise_for_problems(self) -> None:
        """Raise the `ManifestError` naming every problem; nothing when ``ok``."""
        if self.error is not None:
            raise self.error.with_traceback(None)

    def __str__(self) -> str:
        """What ``batchtag validate`` prints: the summary, or the problems."""
        return format_validation(self.summary) if self.error is None else str(self.error)

    def __repr__(self) -> str:
        if self.error is not None:
            count = len(self.error.details)
            return f"<Validation: {count} problem{'' if count == 1 else 's'}>"
        s = self.summary or {}
        return f"<Validation: ok, {s.get('form')} form, {s.get('snapshots')} snapshots>"
