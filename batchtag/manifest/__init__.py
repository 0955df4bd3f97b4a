"""Manifests: reading them, checking them, and turning them into a Plan.

Private modules, in the order a manifest goes through them (the column names and cell
patterns are facts of `batchtag.model`):

- `_load` (`_csvfile`, `_jsonl`, `_frames`, `_cells`, `_model`): a file or DataFrame into a
  `Manifest`, every cell as text;
- `_check`: every problem at once, using `_detect` (the options, the form from the
  column names, the scope defaults: no pandas), `_forms` (form -> operations),
  `_ids` (snapshot ids and scopes), `_rules` (the per-operation rule table), `_conflicts`,
  `_operations` (the operations table), `_columnar` (whole-column helpers) and `_messages`;
- `_build`: `plan_manifest`, the whole way from a manifest to a `batchtag.model.Plan`
  (its entries as columns: `_entries`);
- `_read`: `read_plan`, which takes a small, plainly valid CSV file the short way (`_small`,
  the standard library, no pandas) and any other manifest the whole way (`_build`);
- `_describe`: what a plan holds (the `validate` command's output).

The names below are loaded on first use, so importing `batchtag.manifest` stays cheap.
"""

from __future__ import annotations

from batchtag.lazy import lazy_exports

_HOMES = {
    "build_plan": "_build",
    "read_plan": "_read",
    "Checked": "_check",
    "check_manifest": "_check",
    "fullmatch": "_columnar",
    "describe_manifest": "_describe",
    "format_validation": "_describe",
    "PlanEntries": "_entries",
    "join_entries": "_entries",
    "detect_form": "_detect",
    "form_columns": "_detect",
    "load_manifest": "_load",
    "tag_text_problem": "_messages",
    "Manifest": "_model",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
