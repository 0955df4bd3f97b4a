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

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from batchtag.model import OK
from batchtag.policy import KEY_COLUMNS, RULE_COLUMN, RULE_SEPARATOR


def compliance(
    manifest: pd.DataFrame, inventory_size: int, changed: Iterable[str] = ()
) -> dict[str, Any]:
    """The figures of one evaluation (and run).

    Parameters
    ----------
    manifest : DataFrame
        `batchtag.policy.evaluate`'s manifest: ``attrs["rules"]`` has each rule's
        ``matched`` and ``noncompliant``; its ``rule`` column names the rules behind each
        snapshot's changes.
    inventory_size : int
        Snapshots in the inventory the policy was evaluated on.
    changed : iterable of str
        Snapshot ids the run changed (``ok``); none for a check or a dry run.

    Returns
    -------
    dict
        ``{"inventory": N, "rules": [{"name", "matched", "noncompliant", "changed"}]}``.
    """
    done = set(changed)
    by_rule: dict[str, int] = {}
    if done and len(manifest):
        behind = manifest.drop_duplicates(list(KEY_COLUMNS))
        behind = behind[behind["snapshot_id"].isin(done)]
        for names in behind[RULE_COLUMN].dropna():
            for name in str(names).split(RULE_SEPARATOR):
                by_rule[name] = by_rule.get(name, 0) + 1
    rules = []
    for name, counts in manifest.attrs.get("rules", {}).items():
        rule = {
            "name": name,
            "matched": int(counts["matched"]),
            "noncompliant": int(counts["noncompliant"]),
            "changed": by_rule.get(name, 0),
        }
        if "orphans" in counts:  # a copy rule: matched, but the volume is gone
            rule["orphans"] = int(counts["orphans"])
        if "refused" in counts:  # renames onto another value: left alone (a conflict)
            rule["refused"] = int(counts["refused"])
        rules.append(rule)
    return {"inventory": int(inventory_size), "rules": rules}


def changed_snapshots(report: pd.DataFrame) -> set[str]:
    """The snapshot ids a run's report shows written (``ok``)."""
    if not len(report):
        return set()
    return set(report.loc[report["status"] == OK, "snapshot_id"].astype(str))


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
