"""Manifests: reading them, checking them, and turning them into a Plan.

Modules, in the order a manifest goes through them:

- `schema`: the column names and cell patterns (plain facts, cheap to import);
- `load` (`csvfile`, `jsonl`, `frames`, `cells`, `model`): a file or DataFrame into a
  `Manifest`, every cell as text;
- `check`: every problem at once, using `forms` (form detection and form -> operations),
  `ids` (snapshot ids and scopes), `rules` (the per-operation rule table), `conflicts`,
  `operations` (the operations table), `columnar` (whole-column helpers) and `messages`;
- `build`: `read_plan`, the whole way from a manifest to a `batchtag.plan.Plan`;
- `describe`: what a plan holds (the `validate` command's output).

The names below are importable from `batchtag.manifest` directly; they are loaded on first
use, so importing `batchtag.manifest.schema` stays cheap.
"""

from __future__ import annotations

from batchtag.lazy import lazy_exports

_HOMES = {
    "read_plan": "build",
    "build_plan": "build",
    "check_manifest": "check",
    "Checked": "check",
    "load_manifest": "load",
    "Manifest": "model",
    "describe_manifest": "describe",
    "format_validation": "describe",
    "detect_form": "forms",
    "form_columns": "forms",
    "TAG_PREFIX": "schema",
    "FORMS": "schema",
    "DELETE_MARKER": "schema",
    "LONG_COLUMNS": "schema",
    "ID_COLUMNS": "schema",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
