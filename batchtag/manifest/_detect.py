"""What a manifest is, told without reading its cells: the options that say how to read it,
its form from its column names, the scope its rows get when they name none, and the note
on the blank cells a wide manifest leaves alone.

Nothing here imports pandas or pyarrow: the full checks (`_check`) and the small-file
reader (`_small`) both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from batchtag.config import ENV_PROJECT_ID, ENV_REGION_ID
from batchtag.errors import Problem, option
from batchtag.model import (
    CHANGE_FILE,
    DELETE_MARKER,
    FORMS,
    ID_COLUMNS,
    LONG_COLUMNS,
    NAME_COLUMN,
    OVERWRITE_COLUMN,
    TAG_PREFIX,
    TAGS_COLUMN,
)
from batchtag.record import BASE_COLUMNS as REPORT_COLUMNS
from batchtag.record import CHANGE_COLUMNS, CHANGE_MARKS, is_change_file

REPORT_OWN = [c for c in REPORT_COLUMNS if c not in ID_COLUMNS]  # what marks a report
ENV_VARS = {"project_id": ENV_PROJECT_ID, "region_id": ENV_REGION_ID}


@dataclass(frozen=True)
class CheckOptions:
    """How to read a manifest; the keyword options of `batchtag.manifest.read_plan`."""

    form: str | None = None  # long, wide or json; detected from the columns when None
    delete_marker: str = DELETE_MARKER  # the wide-form cell that removes a tag
    empty_deletes: bool = False  # wide form: an empty cell removes its tag
    project_id: int | None = None  # scope of rows without one, before the environment
    region_id: int | None = None
    env: Mapping[str, str] | None = None  # the environment (default: os.environ)


READ_AS_IS = CheckOptions()  # the defaults: the form detected, the scope from the environment


def detect_form(columns: list[str], form: str | None) -> tuple[str | None, list[Problem]]:
    """The form named by `form`, else the one whose columns are present.

    Parameters
    ----------
    columns : list of str
        The manifest's column names.
    form : {"long", "wide", "json"}, optional
        The form the caller named, if any.

    Returns
    -------
    tuple
        The form (`CHANGE_FILE` for a change file; None when it cannot be told) and the
        problems found.

    Examples
    --------
    >>> detect_form(["snapshot_id", "tag:env"], None)
    ('wide', [])
    >>> detect_form(["snapshot_id", "field", "key", "old", "new"], None)
    ('changes', [])
    """
    if is_change_file(columns):
        if form is not None:
            marks = ", ".join(CHANGE_MARKS)
            text = f"this is a change file (columns {marks}): it is applied as it is; drop"
            return None, [Problem(f"{text} {option('form', form)}")]
        return CHANGE_FILE, []
    if form is not None:
        if form not in FORMS:
            return None, [Problem(f"unknown form {form!r}: use {_choices(FORMS)}")]
        return form, []
    found = []
    if any(c in LONG_COLUMNS for c in columns):
        found.append("long")
    if any(c.startswith(TAG_PREFIX) for c in columns):
        found.append("wide")
    if TAGS_COLUMN in columns:
        found.append("json")
    if len(found) == 1:
        return found[0], []
    if not found and NAME_COLUMN in columns:
        return "wide", []  # only names change: a wide manifest without tag columns
    if not found:
        return None, [_report_problem(columns) or _no_form_problem()]
    return None, [
        Problem(
            f"ambiguous manifest form: it has columns of the {' and '.join(found)} forms;"
            f" choose one: {_choices(found)}"
        )
    ]


def _no_form_problem() -> Problem:
    return Problem(
        "cannot tell the manifest form: expected op/key/value columns (long), tag:<key>"
        f" columns (wide) or a tags column (json); name the form: {_choices(FORMS)}"
    )


def _choices(forms) -> str:
    """How to name each of `forms`: "--form long or --form json" / "form='long' or ..."."""
    spelled = [option("form", f) for f in forms]
    return ", ".join(spelled[:-1]) + " or " + spelled[-1]


def _report_problem(columns: list[str]) -> Problem | None:
    """A report passed back as a manifest (it has most of the report's own columns)."""
    present = [c for c in REPORT_OWN if c in columns]
    if len(present) * 2 < len(REPORT_OWN):
        return None
    return Problem(
        f"this is a batchtag report (columns {', '.join(present[:3])}, ...), not a manifest:"
        f" to finish an earlier run, pass the report with {option('resume')} and the"
        " original manifest"
    )


def form_columns(form: str, columns: list[str]) -> set[str]:
    """Columns a form reads; the rest are passthrough.

    Parameters
    ----------
    form : {"long", "wide", "json"}
        The manifest's form.
    columns : list of str
        The manifest's column names.

    Returns
    -------
    set of str
        The columns the form reads (ids included).

    Examples
    --------
    >>> sorted(form_columns("wide", ["snapshot_id", "tag:env", "ticket"]))
    ['name', 'project_id', 'region_id', 'snapshot_id', 'tag:env']
    """
    used = set(ID_COLUMNS)
    if form == CHANGE_FILE:
        used.update(CHANGE_COLUMNS)
    elif form == "long":
        used.update(LONG_COLUMNS)
        used.add(OVERWRITE_COLUMN)
    elif form == "wide":
        used.update(c for c in columns if c.startswith(TAG_PREFIX))
        used.add(NAME_COLUMN)
    else:
        used.update((TAGS_COLUMN, NAME_COLUMN))
    return used


def scope_default(column: str, given: int | None, env: Mapping[str, str]) -> int | str | None:
    """The scope number of rows that name none: the option `given`, else the environment's
    variable; None when neither is set, and the problem's text (a str) when the one that is
    set is not a positive integer."""
    var = ENV_VARS[column]
    if given is not None:
        if isinstance(given, int) and not isinstance(given, bool) and given > 0:
            return given
        return f"{option(column, given)} is not a positive integer"
    text = env.get(var, "").strip()
    if not text:
        return None
    if text.isascii() and text.isdigit() and int(text) > 0 and len(text.lstrip("0")) <= 18:
        return int(text)
    return f"{var}={text!r} is not a positive integer"


def blank_cells_note(count: int) -> str:
    """The note of a wide manifest whose blank tag cells leave their tags alone.

    Examples
    --------
    >>> blank_cells_note(3)
    '3 blank tag cells ignored; empty_deletes=True deletes those tags'
    """
    noun = "cell" if count == 1 else "cells"
    return f"{count} blank tag {noun} ignored; {option('empty_deletes', True)} deletes those tags"
