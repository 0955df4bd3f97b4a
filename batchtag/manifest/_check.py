"""Checking a loaded manifest, all before any network, with every problem found at once.

Per-cell rules run vectorised over whole columns (pyarrow regexes and lengths); Python only
looks at the rows that failed, to word their messages. Every form is first turned into one
table of operations (pos, op, key, value), so the rules and conflict checks are shared.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from batchtag.errors import Problem
from batchtag.manifest._conflicts import check_conflicts
from batchtag.manifest._detect import READ_AS_IS, CheckOptions, detect_form, form_columns
from batchtag.manifest._forms import form_ops, tags_copy_problem
from batchtag.manifest._ids import check_scope, check_snapshot_ids, snapshot_groups
from batchtag.manifest._messages import Collector
from batchtag.manifest._model import Manifest
from batchtag.manifest._operations import Coded, encode
from batchtag.memory import release_memory
from batchtag.model import SNAPSHOT_COLUMN, TAGS_COLUMN


@dataclass
class Checked:
    """A validated manifest, ready to plan when `problems` is empty."""

    manifest: Manifest
    form: str | None
    problems: list[Problem]
    ops: Coded | None  # one per operation, in file order; build_plan drops it when done
    group: np.ndarray  # snapshot group of every frame row, first-seen order (-1 if bad ids)
    project: np.ndarray  # int64 per frame row
    region: np.ndarray
    snapshot: pd.Series  # normalised (lowercase) snapshot ids
    passthrough: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for the user, not problems


def check_manifest(manifest: Manifest, options: CheckOptions = READ_AS_IS) -> Checked:
    """Check every row of `manifest` and code its operations.

    Parameters
    ----------
    manifest : Manifest
        From `load_manifest`.
    options : CheckOptions
        Form, delete marker, scope defaults.

    Returns
    -------
    Checked
        With `problems` empty when the manifest can be planned.

    Examples
    --------
    >>> from batchtag.manifest._load import load_manifest
    >>> manifest = load_manifest(pd.DataFrame({"snapshot_id": ["x"], "tags": ["{}"]}))
    >>> check_manifest(manifest, CheckOptions(project_id=1, region_id=2)).problems[0].message
    "snapshot_id 'x' is not a uuid (8-4-4-4-12 hex digits)"
    """
    frame = manifest.frame
    if not len(frame) and not len(frame.columns):
        # Nothing in it at all (a JSON Lines file without lines: `undo` of a run that
        # changed nothing; an empty frame): an empty manifest, whatever its form.
        frame = manifest.frame = pd.DataFrame({SNAPSHOT_COLUMN: pd.Series([], dtype=str)})
        options = replace(options, form=options.form or "wide")
    columns = [str(c) for c in frame.columns]
    if options.form is None and manifest.tags_copy:
        columns.remove(TAGS_COLUMN)  # export()'s dict copy of the tag: columns: not read
    out = Collector(manifest)
    if options.form is None and manifest.tags_copy_edited:  # which of the two was edited?
        out.problems.append(tags_copy_problem(manifest.tags_copy_edited))
    form, form_problems = detect_form(columns, options.form)
    out.problems.extend(form_problems)
    snapshot, sid_ok = check_snapshot_ids(frame, out)
    env = os.environ if options.env is None else options.env
    project = check_scope(frame, "project_id", options.project_id, env, out)
    region = check_scope(frame, "region_id", options.region_id, env, out)
    release_memory()  # the regex scratch, before the sort's
    group = _groups(project, region, snapshot, sid_ok)  # first: its sort's scratch is freed
    release_memory()
    ops = form_ops(form, frame, out, options.delete_marker, options.empty_deletes)
    ops_ok = ops.pop("ok").to_numpy(dtype=bool) & (group[ops["pos"].to_numpy()] >= 0)
    ops = ops if ops_ok.all() else ops[ops_ok].reset_index(drop=True)
    coded = encode(ops, group)
    if _some_snapshot_repeats(group):  # else no two rows write to one snapshot
        check_conflicts(ops, coded, snapshot, out)
    used = form_columns(form, columns) if form is not None else set(columns)
    passthrough = [c for c in columns if c not in used]
    problems = out.result()
    return Checked(
        manifest, form, problems, coded, group, project, region, snapshot, passthrough, out.notes
    )


def _groups(
    project: np.ndarray, region: np.ndarray, snapshot: pd.Series, sid_ok: np.ndarray
) -> np.ndarray:
    """Snapshot groups; rows are grouped even when project or region is bad, so conflicts
    still show up. Rows without a valid snapshot id get -1."""
    if sid_ok.all():  # no copies of the columns in the usual case
        return snapshot_groups(project, region, snapshot)
    group = np.full(len(snapshot), -1, dtype=np.int64)
    if sid_ok.any():
        group[sid_ok] = snapshot_groups(project[sid_ok], region[sid_ok], snapshot[sid_ok])
    return group


def _some_snapshot_repeats(group: np.ndarray) -> bool:
    """Whether two rows share a snapshot group. One row never conflicts with itself: its
    writes are to distinct keys (distinct columns, or a patch whose keys are unique)."""
    grouped = group[group >= 0]
    return len(grouped) > 0 and int(grouped.max()) + 1 < len(grouped)
