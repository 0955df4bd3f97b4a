"""The compliance summary of `enforce`: how big the inventory is and, per rule, how many
snapshots it matched, how many broke it (``noncompliant``: the rule would change them) and,
after a run, how many it changed.

    compliance: 200 snapshots in the inventory
      default cost-center: 180 matched, 20 noncompliant, 20 changed
      no tmp tags: 2 matched, 2 noncompliant, 2 changed

The same figures go into the ``compliance`` JSON event, ``--summary-json`` and the Python
summary as ``"inventory": N, "rules": [{"name", "matched", "noncompliant", "changed"}]``
(a copy rule also has ``orphans``: matched snapshots whose volume is gone, left alone; a
rule with renames ``refused``: snapshots whose new key holds another value, left alone as a
conflict).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

from batchtag.model import OK
from batchtag.policy import RULE_COLUMN, RULE_SEPARATOR
from batchtag.record import scan_records


def compliance(
    rules: Mapping[str, Mapping[str, int]],
    inventory_size: int,
    changed: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The figures of one evaluation (and run).

    Parameters
    ----------
    rules : Mapping
        `batchtag.policy.evaluate`'s ``attrs["rules"]``: each rule's ``matched`` and
        ``noncompliant`` (and ``orphans``, ``refused``).
    inventory_size : int
        Snapshots in the inventory the policy was evaluated on.
    changed : Mapping, optional
        Per rule name, the snapshots the run changed (`changed_by_rule`); none for a
        check or a dry run.

    Returns
    -------
    dict
        ``{"inventory": N, "rules": [{"name", "matched", "noncompliant", "changed"}]}``.
    """
    by_rule = changed or {}
    out = []
    for name, counts in rules.items():
        rule = {
            "name": name,
            "matched": int(counts["matched"]),
            "noncompliant": int(counts["noncompliant"]),
            "changed": int(by_rule.get(name, 0)),
        }
        if "orphans" in counts:  # a copy rule: matched, but the volume is gone
            rule["orphans"] = int(counts["orphans"])
        if "refused" in counts:  # renames onto another value: left alone (a conflict)
            rule["refused"] = int(counts["refused"])
        out.append(rule)
    return {"inventory": int(inventory_size), "rules": out}


def changed_by_rule(report: str | os.PathLike) -> dict[str, int]:
    """Per rule name, the snapshots a run's report shows written (``ok``), from the rules
    behind each (its `RULE_COLUMN`). The report is read as a stream, once: an enforce run
    writes it afresh (no resume), one row per snapshot."""
    per_text: Counter = Counter()
    for record in scan_records(report):
        if record.get("status") == OK:
            per_text[record.get(RULE_COLUMN)] += 1
    out: Counter = Counter()
    for names, count in per_text.items():
        for name in str(names).split(RULE_SEPARATOR) if names else ():
            out[name] += count
    return dict(out)


def format_compliance(figures: Mapping[str, Any], *, ran: bool) -> str:
    """The text lines (see the module docstring); `ran`: with the ``changed`` column."""
    lines = [f"compliance: {figures['inventory']} snapshots in the inventory"]
    for rule in figures["rules"]:
        text = f"  {rule['name']}: {rule['matched']} matched, {rule['noncompliant']} noncompliant"
        text += f", {rule['changed']} changed" if ran else ""
        if "orphans" in rule:
            text += f", {rule['orphans']} whose volume is gone (left alone)"
        if rule.get("refused"):
            text += f", {rule['refused']} refused (a rename onto another value: a conflict)"
        lines.append(text)
    return "\n".join(lines)
