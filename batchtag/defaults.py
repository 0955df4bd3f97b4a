"""Every option of batchtag, with its default and help text, written once.

A plain-Python table (no click, pandas or aiohttp here, so anything may import it cheaply):

- the click options are built from it (`batchtag.options.click_options`),
- `ApplyOptions` (`batchtag.commands`) is generated from the entries whose ``python`` is true,
- the engine, retry and HTTP-client dataclasses take their defaults via `default(name)`,
- the Python API's signatures and numpydoc docstrings are generated from it.

To add an option: add one `Option(...)` to `OPTIONS`; a command picks it up by naming it in
its ``@click_options(...)`` call (``batchtag.options``). Only ``python=True`` options reach
`ApplyOptions` and the apply API; CLI-only switches (``--yes``, ``-v``) say ``python=False``.
A command with options of its own (export's ``--where``, plan's ``--detailed-exitcode``)
adds them here too, with ``python=False`` unless they belong to an apply run; its Python
function can reuse `numpydoc_parameters(names)` for its docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from batchtag.config import ENV_API_KEY, ENV_BASE_URL, ENV_CA_BUNDLE
from batchtag.model import DELETE_MARKER


@dataclass(frozen=True)
class Option:
    """One option: its Python name (the CLI flag is derived: ``dry_run`` -> ``--dry-run``).

    ``kind`` is one of ``str``, ``int``, ``float``, ``path``, ``flag`` (a boolean switch),
    ``toggle`` (``--x/--no-x``, default None = auto) or ``count`` (``-vv``).
    """

    name: str
    default: Any
    kind: str
    help: str
    annotation: str = "Any"
    choices: tuple[str, ...] | None = None
    short: str | None = None  # e.g. "-y"
    dest: str | None = None  # click parameter name when it differs from `name`
    flag: str | None = None  # CLI spelling when it differs from `--name`
    envvar: str | None = None
    secret: bool = False  # never shown in reprs
    python: bool = True  # part of ApplyOptions and the Python API

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


def _opts(*options: Option) -> dict[str, Option]:
    return {o.name: o for o in options}


OPTIONS: dict[str, Option] = _opts(
    # -- the report ---------------------------------------------------------------------
    Option("report", None, "path", "Report path (.csv/.parquet/.jsonl).", "str | Path | None"),
    Option("resume", None, "path", "Continue this report's run.", "str | Path | None"),
    Option(
        "overwrite",
        False,
        "flag",
        "Replace an existing report or -o file; an existing undo file is kept and a new one"
        " written beside it.",
        "bool",
    ),
    Option("dry_run", False, "flag", "Send no writes; report rows are `planned`.", "bool"),
    Option("summary_json", None, "path", "Also write the summary here.", "str | Path | None"),
    # -- sending ------------------------------------------------------------------------
    Option("concurrency", 16, "int", "Requests in flight.", "int"),
    Option("rate", 20.0, "float", "Requests per second.", "float"),
    Option(
        "timeout",
        30.0,
        "float",
        "Read timeout (s): the longest silence while waiting for an answer.",
        "float",
    ),
    Option("connect_timeout", 10.0, "float", "Connect timeout per request (s).", "float"),
    Option(
        "request_deadline",
        None,
        "float",
        "Total time (s) one request may take, however slowly data trickles in"
        " [default: max(2 x timeout, 60)].",
        "float | None",
    ),
    Option(
        "lock_budget",
        300.0,
        "float",
        "Seconds to keep retrying a snapshot locked by a task (409).",
        "float",
    ),
    Option("retries", 3, "int", "Retries for 5xx, timeouts and dropped connections.", "int"),
    Option(
        "check_current",
        None,
        "toggle",
        "Read the snapshots first (list pages or GETs, whichever are fewer requests): send"
        " only the keys that change, skip no-op writes, keep the before-state for undo"
        " [default: on; off for --dry-run]. --no-check-current writes blind: the run"
        " cannot be undone.",
        "bool | None",
    ),
    Option(
        "force",
        False,
        "flag",
        "Write snapshots that are a conflict too: a change file's keys changed since it was"
        " written, or (undo) snapshots changed since the run. Overwrites the later change.",
        "bool",
    ),
    Option(
        "undo_file",
        None,
        "path",
        "Write the change file that reverts every applied change, as the run goes (.csv,"
        " .jsonl or .parquet; `batchtag apply` it to undo). An existing one is never replaced.",
        "str | Path | None",
    ),
    Option(
        "max_changes",
        None,
        "str",
        "Refuse (exit 3) when more than N or N% would change.",
        "str | int | None",
    ),
    Option(
        "progress",
        None,
        "toggle",
        "Progress bar (default: on a terminal or in a Jupyter kernel).",
        "bool | None",
    ),
    # -- the manifest -------------------------------------------------------------------
    Option(
        "form",
        None,
        "str",
        "Manifest form (default: detected from the columns).",
        "str | None",
        choices=("long", "wide", "json"),
    ),
    Option(
        "delete_marker",
        DELETE_MARKER,
        "str",
        "Wide form: the cell value that deletes a tag.",
        "str",
    ),
    Option(
        "empty_deletes",
        False,
        "flag",
        "Wide form: an empty cell deletes that tag (for edited exports).",
        "bool",
    ),
    Option(
        "project_id", None, "int", "Project for rows without a project_id column.", "int | None"
    ),
    Option("region_id", None, "int", "Region for rows without a region_id column.", "int | None"),
    Option(
        "all_regions",
        False,
        "flag",
        "Every region the API lists (GET /cloud/v1/regions) for the project(s); a manifest"
        " without a region_id column: each snapshot where it is found.",
        "bool",
    ),
    Option(
        "all_projects",
        False,
        "flag",
        "Every project the API lists (GET /cloud/v1/projects); a manifest without a"
        " project_id column: each snapshot where it is found.",
        "bool",
    ),
    # -- the connection -----------------------------------------------------------------
    Option(
        "base_url",
        None,
        "str",
        f"API base URL [env {ENV_BASE_URL}].",
        "str | None",
        envvar=ENV_BASE_URL,
    ),
    Option(
        "api_key",
        None,
        "str",
        f"API key [env {ENV_API_KEY}]; prefer the env var (options show in `ps`).",
        "str | None",
        envvar=ENV_API_KEY,
        secret=True,
    ),
    Option(
        "insecure_http",
        False,
        "flag",
        "Allow plain http:// to a non-loopback host (sends the key unencrypted).",
        "bool",
    ),
    Option(
        "ca_bundle",
        None,
        "path",
        f"CA bundle (PEM) to trust for https, e.g. a private or proxy CA [env {ENV_CA_BUNDLE}].",
        "str | Path | None",
    ),
    # -- command line only --------------------------------------------------------------
    Option("yes", False, "flag", "Do not ask for confirmation.", short="-y", python=False),
    Option("verbose", 0, "count", "More logging (-vv for debug).", short="-v", python=False),
    Option("quiet", False, "flag", "Only errors and the summary.", short="-q", python=False),
    Option(
        "log_format",
        "text",
        "str",
        "json: every line printed is one JSON object (logs, results, errors), the last"
        ' {"event": "finished", ...}; for schedulers.',
        choices=("text", "json"),
        python=False,
    ),
    Option(
        "color",
        None,
        "toggle",
        "Colour the output (default: on a terminal, unless NO_COLOR is set).",
        python=False,
    ),
    Option("as_json", False, "flag", "Print the result as JSON.", flag="--json", python=False),
    Option(
        "values",
        None,
        "str",
        "List this tag key's values (with the number of snapshots having each), not the keys.",
        "str | None",
        python=False,
    ),
    Option(
        "check",
        False,
        "flag",
        "Only evaluate the policy: exit 2 when anything would change (drift), 0 when clean.",
        python=False,
    ),
    # -- plan, undo and export (their Python functions take them as keywords) -------------
    Option(
        "output",
        None,
        "path",
        "Write the result to this file (.csv, .parquet or .jsonl, by its suffix).",
        "str | Path | None",
        short="-o",
        python=False,
    ),
    Option(
        "detailed_exitcode",
        False,
        "flag",
        "Exit 0 when nothing would change, 2 when something would, 1 on errors.",
        "bool",
        python=False,
    ),
    Option(
        "limit",
        20,
        "int",
        "Snapshots shown in full in the printed plan (or drift).",
        "int",
        python=False,
    ),
    Option(
        "where",
        None,
        "str",
        "Condition over the columns (a safe subset of Python; see README), e.g. "
        "\"`tag:env` == 'prod' and size > 100\".",
        "str | None",
        python=False,
    ),
    Option(
        "columns",
        None,
        "str",
        "Comma-separated columns to keep; patterns like 'tag:*' work.",
        "str | list[str] | None",
        python=False,
    ),
    Option(
        "long",
        False,
        "flag",
        "One row per (snapshot, tag): key, value, read_only (an untagged snapshot: one row"
        " with an empty key).",
        "bool",
        python=False,
    ),
    Option(
        "with_volume",
        None,
        "str",
        "Join each snapshot's volume: volume_name and volume_tag:<key> columns (one more"
        " listing per scope).",
        "bool",
        choices=("volume",),
        flag="--with",
        python=False,
    ),
    Option(
        "scopes",
        None,
        "path",
        "CSV/JSONL file with project_id,region_id pairs (instead of the two options).",
        "str | Path | None",
        python=False,
    ),
)

# The options a Python caller (and `ApplyOptions`) has, in table order.
PYTHON_OPTIONS: tuple[Option, ...] = tuple(o for o in OPTIONS.values() if o.python)
# Apply options `enforce` does not take, and why: it re-reads the state every run, so running
# it again is the resume; a rule's own `overwrite = true` is how it replaces values.
NOT_FOR_ENFORCE = {
    "resume": "run it again, it re-reads the state and sends only what still differs",
    "force": "a rename replaces a different value only with overwrite = true in its rule",
}

# Named groups, for commands to stack: how a manifest is read, its default scope, the
# connection, logging. MANIFEST_OPTIONS is what `validate` accepts.
FORM_OPTIONS = ("form", "delete_marker", "empty_deletes")
SCOPE_OPTIONS = ("project_id", "region_id")
MANIFEST_OPTIONS = FORM_OPTIONS + SCOPE_OPTIONS
# Scopes listed from the API instead of named (export, keys, enforce; plan and apply locate
# the snapshots of a manifest without the column).
DISCOVERY_OPTIONS = ("all_projects", "all_regions")
CONNECTION_OPTIONS = ("base_url", "api_key", "insecure_http", "ca_bundle")
LOGGING_OPTIONS = ("verbose", "quiet", "log_format", "color")
# How reads are sent (plan, undo, export): the engine's pacing, timeouts and retries.
READ_OPTIONS = (
    "concurrency",
    "rate",
    "timeout",
    "connect_timeout",
    "request_deadline",
    "retries",
    "progress",
)


def default(name: str) -> Any:
    """The default of option `name`, for dataclasses outside this module.

    Parameters
    ----------
    name : str
        The option's Python name.

    Returns
    -------
    Any
        Its default value.

    Examples
    --------
    >>> default("concurrency")
    16
    """
    return OPTIONS[name].default


def numpydoc_parameters(
    names: tuple[str, ...] | None = None, helps: dict[str, str] | None = None
) -> str:
    """A numpydoc ``Parameters`` body for the given options (default: every Python one);
    `helps` gives an option a function's own text instead of the table's help."""
    chosen = PYTHON_OPTIONS if names is None else tuple(OPTIONS[n] for n in names)
    lines = []
    for o in chosen:
        lines.append(f"{o.name} : {o.annotation}, default {o.default!r}")
        lines.append(f"    {(helps or {}).get(o.name, o.help)} (CLI: ``{o.cli_flag}``)")
    return "\n".join(lines)


def document_options(
    func: Any, names: tuple[str, ...] = (), like: Any = None, summary: str = "", example: str = ""
):
    """Give `func`, which takes the options `names` as ``**options``, their real signature.

    Parameters
    ----------
    func : callable
        The function to document (its ``__signature__`` and ``__doc__`` are set).
    names : tuple of str
        The options its ``**options`` accepts, in the order to list them.
    like : callable, optional
        A function documented already (the async twin of a blocking one): `func` gets its
        signature and docstring, `summary` replacing the docstring's first paragraph.
    summary : str
        With `like`: `func`'s own first paragraph.
    example : str
        With `like`: `func`'s own ``Examples`` body (the async twin's shows ``await``).

    Returns
    -------
    callable
        `func`: ``inspect.signature`` shows keyword-only parameters with their defaults and
        ``help`` lists them with their meaning, after the function's own parameters.

    Examples
    --------
    >>> def read(*, where=None, **options):
    ...     "Read.\\n\\nParameters\\n----------\\nwhere : str\\n    A query.\\n\\nReturns\\n-------\\nNone"
    >>> import inspect
    >>> inspect.signature(document_options(read, ("rate",)))
    <Signature (*, where=None, rate: 'float' = 20.0)>
    """
    import inspect

    if like is not None:
        doc = inspect.cleandoc(like.__doc__)
        func.__signature__ = inspect.signature(like)
        doc = summary + doc[doc.find("\n\n") :]
        if example:
            doc = doc[: doc.index("Examples\n--------\n")] + f"Examples\n--------\n{example}\n"
        func.__doc__ = doc
        return func
    base = inspect.signature(func)
    params = [p for p in base.parameters.values() if p.kind is not p.VAR_KEYWORD]
    for name in names:
        o = OPTIONS[name]
        kind = inspect.Parameter.KEYWORD_ONLY
        params.append(inspect.Parameter(name, kind, default=o.default, annotation=o.annotation))
    func.__signature__ = base.replace(parameters=params)
    head, returns, tail = inspect.cleandoc(func.__doc__).partition("\n\nReturns\n")
    func.__doc__ = f"{head}\n{numpydoc_parameters(names)}{returns}{tail}"
    return func
