"""`batchtag enforce`: make the snapshots satisfy a TOML policy (export, rules, apply)."""

from __future__ import annotations

import sys

import click

from batchtag.cli.apply import SUMMARY_FILE_FAILED, ask
from batchtag.cli.common import CheckCommand, echo_error, fail
from batchtag.defaults import LOGGING_OPTIONS, NOT_FOR_ENFORCE, PYTHON_OPTIONS
from batchtag.errors import BatchtagError
from batchtag.options import click_options

ENFORCE_OPTIONS = tuple(o.name for o in PYTHON_OPTIONS if o.name not in NOT_FOR_ENFORCE)


@click.command(cls=CheckCommand, check_flag="--check")
@click.argument("policy")
@click_options("check", "output", *ENFORCE_OPTIONS, "yes", *LOGGING_OPTIONS)
def enforce(
    policy: str,
    check: bool,
    output: str | None,
    yes: bool,
    verbose: int,
    quiet: bool,
    log_format: str,
    **kwargs,
) -> None:
    """Make the snapshots satisfy POLICY (a TOML file of tag rules).

    Exports the policy's scopes (and their volumes, when a rule copies tags from them or
    its where reads them), evaluates every rule, plans against the exported state, and
    applies only the changes, with all of apply's options and guards (--max-changes N%
    counts the exported snapshots). A second run right after sends nothing; there is no
    --resume: running enforce again is the resume.

    A rename onto a key that holds a different value is refused there (a conflict, named
    with its rule and snapshot) unless the rule's rename says overwrite = true.

    Exit codes: as apply (0 ok, 1 some failed or a conflict, 2 bad policy or conflicting
    rules, nothing sent, 3 aborted, 130 interrupted). With --check (prints the diff, sends
    nothing; -o writes it as a change file, which `batchtag apply` applies as reviewed):
    0 clean, 2 drift, 1 any error (bad policy, missing key, unreachable API, a conflict).

    \b
    Example:
        export GCORE_API_KEY=...
        batchtag enforce cost-policy.toml --check -o drift.csv
        batchtag enforce cost-policy.toml --max-changes 10% --report run.csv \\
            --summary-json summary.json --log-format json --yes
    """
    from batchtag.commands import ApplyOptions
    from batchtag.logs import setup_logging

    setup_logging(-1 if quiet else verbose, log_format)
    options = ApplyOptions(**kwargs)
    if quiet and options.progress is None:
        options.progress = False
    try:
        outcome = run(policy, options, check=check, output=output, confirm=None if yes else ask)
    except BatchtagError as error:
        fail(error, log_format, options.summary_json, detailed=check)
    if outcome.run is None:
        print_check(outcome)
        if output is not None:
            click.echo(f"change file written to {output} ({len(outcome.diff)} rows)", err=True)
        sys.exit(outcome.exit_code)
    from batchtag.record import format_summary

    click.echo(format_summary(outcome.run.summary, resumable=False, forceable=False))
    if outcome.run.summary_json_error:
        echo_error(outcome.run.summary_json_error, log_format)
        sys.exit(outcome.exit_code or SUMMARY_FILE_FAILED)
    sys.exit(outcome.exit_code)


def run(policy: str, options, *, check: bool, output: str | None, confirm):
    """Evaluate and apply in this process's main loop, with signal handlers."""
    import asyncio

    from batchtag.commands import install_signal_handlers, run_enforce
    from batchtag.memory import gc_frozen

    with gc_frozen():
        return asyncio.run(
            run_enforce(
                policy,
                options,
                check=check,
                output=output,
                confirm=confirm,
                on_engine=install_signal_handlers,
            )
        )


def print_check(outcome) -> None:
    """What --check prints: the plan's diff, the changes per rule, then a verdict line."""
    from batchtag.diff import print_plan
    from batchtag.policy import KEY_COLUMNS

    diff = outcome.diff.copy()
    diff["rows"] = None  # positions in the generated manifest: nothing a user wrote
    print_plan(diff)
    manifest = outcome.manifest
    rules = manifest.attrs.get("rules", {})
    snapshots = manifest.drop_duplicates(list(KEY_COLUMNS))
    lines = [rule_line(name, counts) for name, counts in rules.items()]
    verdict = "drift" if len(manifest) else "clean"
    lines.append(f"{verdict}: {len(manifest)} tag changes on {len(snapshots)} snapshots")
    click.echo("\n".join(lines))


def rule_line(name: str, counts: dict) -> str:
    """One rule's counts as --check prints them (a copy rule's orphans too)."""
    line = f"{name}: {counts['selected']} selected, {counts['changed']} to change"
    if "orphans" in counts:
        line += f", {counts['orphans']} whose volume is gone (left alone)"
    if counts.get("refused"):
        line += f", {counts['refused']} refused (rename onto another value)"
    return line
