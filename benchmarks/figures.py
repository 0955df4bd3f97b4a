"""The bench's figures, their targets, the results file and the final table.

Every section turns its measurements into `Figure`s: what is measured, the value, its unit
and a `Target` (None: shown for information only). Each section's figures are saved in the
results file as soon as the section finishes, so a partial run still gives a table of what
it measured; `table` builds the final table from that file. No measuring happens here (and
nothing heavier than the standard library is imported), so the tests use it directly.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

FORMATS = {  # unit -> how a value (and a bound) is written
    "x": "{:.2f}x",
    "": "{:.3f}",
    "MB": "{:.0f} MB",
    "s": "{:.2f} s",
    "ms": "{:.0f} ms",
    "%": "{:.1%}",
    "requests": "{:,.0f}",
}
MET, NOT_MET, INFO = "met", "NOT MET", "info"
EPSILON = 1e-9  # "within": 1.02 is within 2% of 1, whatever the float rounding


@dataclass(frozen=True)
class Target:
    """`op` is ">=", "<=" or "within" (`bound` +- `tolerance`, a share of `bound`)."""

    op: str
    bound: float
    tolerance: float = 0.0

    def met(self, value: float) -> bool:
        """Whether `value` meets the target (bounds included).

        Examples
        --------
        >>> Target(">=", 0.95).met(0.95), Target("within", 1, 0.02).met(0.97)
        (True, False)
        """
        if self.op == ">=":
            return value >= self.bound
        if self.op == "<=":
            return value <= self.bound
        if self.op == "within":
            return abs(value - self.bound) <= self.tolerance * abs(self.bound) + EPSILON
        raise ValueError(f"unknown target operator {self.op!r}")

    def text(self, unit: str) -> str:
        if self.op == "within":
            return f"{self.bound:g} +- {self.tolerance:.0%}"
        return f"{self.op} {FORMATS[unit].format(self.bound)}"


def at_least(bound: float) -> Target:
    return Target(">=", bound)


def at_most(bound: float) -> Target:
    return Target("<=", bound)


def within(bound: float, tolerance: float) -> Target:
    return Target("within", bound, tolerance)


@dataclass(frozen=True)
class Figure:
    """One row of the final table."""

    name: str  # short: "latency: batchtag / loop, whole process"
    measures: str  # what it measures, in a sentence
    value: float
    unit: str = "x"  # a key of FORMATS
    target: Target | None = None  # None: information, no target

    @property
    def result(self) -> str:
        """MET, NOT_MET, or INFO for a figure without a target."""
        if self.target is None:
            return INFO
        return MET if self.target.met(self.value) else NOT_MET

    @property
    def shown(self) -> str:
        return FORMATS[self.unit].format(self.value)

    @property
    def wanted(self) -> str:
        return "-" if self.target is None else self.target.text(self.unit)


def to_json(figure: Figure) -> dict:
    return asdict(figure)


def from_json(data: dict) -> Figure:
    target = data.get("target")
    return Figure(**{**data, "target": Target(**target) if target else None})


def load(path: Path) -> dict[str, dict]:
    """Every saved section: {name: {"figures": [Figure, ...], "error": str | None, ...}}."""
    if not path.exists():
        return {}
    sections = json.loads(path.read_text())
    for saved in sections.values():
        saved["figures"] = [from_json(f) for f in saved["figures"]]
    return sections


def save(path: Path, section: str, figures: list[Figure], **meta: object) -> None:
    """Store (or replace) one section's figures in `path`, keeping the other sections."""
    sections = load(path)
    sections[section] = {"figures": figures, "error": None, **meta}
    for saved in sections.values():
        saved["figures"] = [to_json(f) for f in saved["figures"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(sections, indent=1) + "\n")
    os.replace(partial, path)


def table(sections: dict[str, dict], order: list[str]) -> str:
    """The final table: one row per figure, grouped by section in `order`, then a line per
    section that failed or was not measured."""
    shown = [f for name in order for f in sections.get(name, {}).get("figures", [])]
    width = max([len(f.name) for f in shown] + [40])
    head = f"{'figure':{width}} {'measured':>12} {'target':>13}  {'result':7}  what it measures"
    lines, missing = [head, "-" * len(head)], []
    for name in order:
        saved = sections.get(name)
        if saved is None:
            missing.append(name)
            continue
        lines.append(f"[{name}] {section_note(saved)}")
        for f in saved["figures"]:
            lines.append(
                f"{f.name:{width}} {f.shown:>12} {f.wanted:>13}  {f.result:7}  {f.measures}"
            )
    results = [f.result for f in shown]
    lines.append(
        f"{results.count(MET)} met, {results.count(NOT_MET)} not met,"
        f" {results.count(INFO)} for information"
    )
    if missing:
        lines.append(f"not measured: {', '.join(missing)}")
    return "\n".join(lines)


def section_note(saved: dict) -> str:
    """When and on what a section was measured, or why it failed."""
    parts = [str(saved[k]) for k in ("finished", "commit") if saved.get(k)]
    if saved.get("error"):
        parts.append(f"FAILED: {saved['error']}")
    return " ".join(parts)
