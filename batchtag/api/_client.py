"""`batchtag.Client`: the connection and default options held once, the calls made on it.

Like boto3's Session or sqlite-utils' Database: a notebook makes one client and calls
``client.export()``, ``client.plan(df)``, ``client.apply(df)`` ... without repeating the base
URL, the key, the scope and the run options each time. Each method is the module function of
the same name (`batchtag.apply`, ...) with the client's settings filled in; an option given
to the call wins over the client's default for it. The key is held in a `Secret`: the
client's repr, str and ``vars()`` never show it.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable
from typing import Any

from batchtag.api._enforce import enforce, enforce_async
from batchtag.api._export import export, export_async
from batchtag.api._functions import (
    OptionError,
    apply,
    apply_async,
    plan,
    plan_async,
    refuse_unknown,
    resume_options,
    undo,
    undo_async,
    validate,
)
from batchtag.api._interrupt import Resume, finish
from batchtag.api._keys import keys, keys_async
from batchtag.config import (
    DEFAULT_BASE_URL,
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_PROJECT_ID,
    ENV_REGION_ID,
    Secret,
    check_base_url,
)
from batchtag.defaults import CONNECTION_OPTIONS, SCOPE_OPTIONS
from batchtag.errors import BatchtagError, Interrupted, UsageError

# What a client holds for good: where it connects and with which key (and how: TLS options).
HELD = CONNECTION_OPTIONS  # base_url, api_key, insecure_http, ca_bundle

# method name -> (the module function, its first positional parameter, or None)
METHODS: dict[str, tuple[Callable[..., Any], str | None]] = {
    "export": (export, None),
    "export_async": (export_async, None),
    "validate": (validate, "manifest"),
    "plan": (plan, "manifest"),
    "plan_async": (plan_async, "manifest"),
    "apply": (apply, "manifest"),
    "apply_async": (apply_async, "manifest"),
    "undo": (undo, "report"),
    "undo_async": (undo_async, "report"),
    "enforce": (enforce, "policy"),
    "enforce_async": (enforce_async, "policy"),
    "keys": (keys, None),
    "keys_async": (keys_async, None),
}


def _keywords(func: Callable[..., Any]) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(func).parameters.values() if p.kind is p.KEYWORD_ONLY]


class _Method:
    """A client method: the module function with the client's settings filled in.

    On the class it is a plain function (``help(batchtag.Client)`` documents it); on a
    client it is made per access, so its signature shows that client's defaults."""

    def __init__(self, name: str):
        self.name = name
        self.func, self.first = METHODS[name]
        self.takes = [p.name for p in _keywords(self.func)]
        self.doc = _client_doc(self.func.__doc__ or "", name)
        self.is_async = inspect.iscoroutinefunction(self.func)

    def options(self, client: Client, given: dict[str, Any]) -> dict[str, Any]:
        """The call's options: the client's defaults for what this method takes, then
        `given`, then the connection."""
        held = sorted(set(given) & set(HELD))
        if held:
            raise OptionError(
                f"client.{self.name}() got {', '.join(held)}: the client holds the connection;"
                f" make another batchtag.Client(...) for another one"
            )
        merged = {k: v for k, v in client.settings().items() if k in self.takes}
        merged.update(given)
        return merged

    def resume(self, client: Client, args: tuple, given: dict, error: Interrupted) -> Resume:
        again = resume_options(error, given) if self.name == "apply" else dict(given)
        method = getattr(client, self.name)
        first = args[0] if args else None
        return Resume(method, f"client.{self.name}", first, again)

    def __get__(self, client: Client | None, owner: type | None = None) -> Any:
        if client is None:
            return self.template()
        spec = self

        if self.is_async:

            async def method(*args: Any, **given: Any) -> Any:
                try:
                    return await spec.func(*args, **spec.options(client, given))
                except BatchtagError as error:
                    raise error.with_traceback(None) from None

        else:

            def method(*args: Any, **given: Any) -> Any:
                try:
                    return spec.func(*args, **spec.options(client, given))
                except Interrupted as error:
                    resume = spec.resume(client, args, given, error)
                    raise finish(error, resume, spec.name).with_traceback(None) from None
                except BatchtagError as error:
                    raise error.with_traceback(None) from None

        method.__name__ = method.__qualname__ = self.name
        method.__doc__ = self.doc
        method.__signature__ = self.signature(client)  # type: ignore[attr-defined]
        return method

    def signature(self, client: Client | None) -> inspect.Signature:
        """The module function's signature less the connection; with a client, its
        defaults in place of the table's."""
        held = {} if client is None else client.settings()
        base = inspect.signature(self.func)
        params = [
            p.replace(default=held[p.name]) if p.name in held else p
            for p in base.parameters.values()
            if p.name not in HELD
        ]
        return base.replace(parameters=params)

    def template(self) -> Callable[..., Any]:
        def method(self_: Client, *args: Any, **given: Any) -> Any:
            return getattr(self_, name)(*args, **given)

        name = self.name
        method.__name__ = self.name
        method.__qualname__ = f"Client.{self.name}"
        method.__doc__ = self.doc
        own = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
        signature = self.signature(None)
        method.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[own, *signature.parameters.values()]
        )
        return method


def _client_doc(doc: str, name: str) -> str:
    """The module function's docstring for the method: the connection options left out
    (the client holds them), a line saying where defaults come from."""
    text = inspect.cleandoc(doc)
    for option in HELD:
        text = re.sub(rf"^{option} : .*\n(?:    .*\n)*", "", text, flags=re.MULTILINE)
    for method in METHODS:  # the examples call the client
        text = text.replace(f"batchtag.{method}(", f"client.{method}(")
    head, _, rest = text.partition("\n\n")
    note = (
        f"`batchtag.{name}` with the client's connection; every option not given here takes\n"
        "the client's default (its project_id, region_id and ``**defaults``), else the\n"
        "table's."
    )
    return f"{head}\n\n{note}\n\n{rest}"


def _scope(value: int | None, env: str, name: str) -> int | None:
    if value is not None:
        return value
    raw = os.environ.get(env, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"{env}={raw!r} is not a {name} (an integer)") from None


class Client:
    """A connection to the Gcore API (or a sandbox) with default options, for many calls.

    Parameters
    ----------
    base_url : str, optional
        The API; default ``GCORE_BASE_URL``, else ``https://api.gcore.com``. Checked now:
        plain ``http://`` only to loopback (unless ``insecure_http=True``), no credentials.
    api_key : str, optional
        Default ``GCORE_API_KEY``. Held out of sight: never in the repr, str or ``vars()``.
    project_id, region_id : int, optional
        The default scope of every call; default ``GCORE_CLOUD_PROJECT_ID`` /
        ``GCORE_CLOUD_REGION_ID``. A call may name another (``client.export(region_id=[1,
        2])``).
    **defaults
        Any option of the calls (``rate=50``, ``concurrency=8``, ``check_current=True``,
        ``progress=False``, ``insecure_http``, ``ca_bundle``, ...): each call that takes it
        uses it unless the call gives its own. An unknown name is refused.

    The environment is read when the client is made. The methods are the module functions
    (`batchtag.export`, `validate`, `plan`, `apply`, `undo`, `enforce`, `keys` and their
    ``_async`` forms) less the connection options; ``help(client.apply)`` shows this
    client's defaults.

    Raises
    ------
    UsageError
        A base URL that would leak the key, a scope env var that is not an integer, or an
        unknown default option.

    Examples
    --------
    >>> client = batchtag.Client(sb.url, sb.api_key, project_id=1, region_id=1, rate=50)
    >>> inventory = client.export()  # doctest: +SKIP
    >>> report = client.apply(manifest, report="run1.csv")  # doctest: +SKIP
    """

    export = _Method("export")
    export_async = _Method("export_async")
    validate = _Method("validate")
    plan = _Method("plan")
    plan_async = _Method("plan_async")
    apply = _Method("apply")
    apply_async = _Method("apply_async")
    undo = _Method("undo")
    undo_async = _Method("undo_async")
    enforce = _Method("enforce")
    enforce_async = _Method("enforce_async")
    keys = _Method("keys")
    keys_async = _Method("keys_async")

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        project_id: int | None = None,
        region_id: int | None = None,
        **defaults: Any,
    ):
        takes = sorted({n for spec, _ in METHODS.values() for n in _option_names(spec)})
        named = ("base_url", "api_key", *SCOPE_OPTIONS)  # this signature's own parameters
        refuse_unknown(defaults, tuple(n for n in takes if n not in named), "Client")
        url = base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        self.base_url = check_base_url(url, insecure_http=bool(defaults.get("insecure_http")))
        key = api_key or os.environ.get(ENV_API_KEY)
        self._api_key = Secret(key) if key else None
        self.project_id = _scope(project_id, ENV_PROJECT_ID, "project id")
        self.region_id = _scope(region_id, ENV_REGION_ID, "region id")
        self.defaults = dict(defaults)

    def settings(self) -> dict[str, Any]:
        """Every value the client fills in: connection, scope and defaults (the key
        revealed: for the calls, not for printing)."""
        held: dict[str, Any] = {"base_url": self.base_url}
        if self._api_key is not None:
            held["api_key"] = self._api_key.reveal()
        for name in SCOPE_OPTIONS:
            if getattr(self, name) is not None:
                held[name] = getattr(self, name)
        held.update(self.defaults)
        return held

    def __repr__(self) -> str:
        parts = [f"base_url={self.base_url!r}"]
        parts += [f"{n}={getattr(self, n)!r}" for n in SCOPE_OPTIONS]
        parts.append(f"api_key={'***' if self._api_key is not None else None}")
        parts += [f"{k}={v!r}" for k, v in self.defaults.items()]
        return f"batchtag.Client({', '.join(parts)})"

    __str__ = __repr__


def _option_names(func: Callable[..., Any]) -> list[str]:
    return [p.name for p in _keywords(func)]
