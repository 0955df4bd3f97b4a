"""Manifests: reading them, checking them, and turning them into a Plan.

Modules, in the order a manifest goes through them:

- `schema`: the column names and cell patterns (plain facts, cheap to import);
- `load` (`csvfile`, `jsonl`, `frames`, `cells`, `model`): a file or DataFrame into a
  `Manifest`, every cell as text;
- `check`: every problem at once, using `forms` (form detection and form -> operations),
  `ids` (snapshot ids and scopes), `rules` (the per-operation rule table), `conflicts`,
  `operations` (the operations table), `columnar` (whole-column helpers) and `messages`;
- `build`: `read_plan`, the whole way from a manifest to a `batchtag.model._plan.Plan`;
- `describe`: what a plan holds (the `validate` command's output).

The names below are importable from `batchtag.manifest` directly; they are loaded on first
use, so importing `batchtag.manifest._schema` stays cheap.
"""

from __future__ import annotations

from batchtag.lazy import lazy_exports

_HOMES = {
    "build_plan": "_build",
    "read_plan": "_build",
    "Checked": "_check",
    "check_manifest": "_check",
    "fullmatch": "_columnar",
    "describe_manifest": "_describe",
    "format_validation": "_describe",
    "PlanEntries": "_entries",
    "detect_form": "_forms",
    "form_columns": "_forms",
    "load_manifest": "_load",
    "tag_text_problem": "_messages",
    "Manifest": "_model",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
