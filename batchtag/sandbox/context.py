"""`batchtag.sandbox(...)`: the emulator as a context manager, decorator or notebook object.

Like moto's `mock_aws` for AWS users: the block (or decorated function) runs against a fresh
sandbox on a free loopback port, with the Gcore environment variables pointing at it, and the
previous environment comes back on exit.

This module imports nothing heavy at import time: `batchtag.sandbox` (the package) loads it
to become callable, and `batchtag --version` should not pay for aiohttp.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import secrets
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from batchtag.sandbox.rules import SandboxError

if TYPE_CHECKING:
    from batchtag.sandbox.app import SandboxConfig
    from batchtag.sandbox.server import SandboxServer
    from batchtag.sandbox.store import SnapshotStore

LOOPBACK = "127.0.0.1"
# The official SDK's environment variables (the sandbox sets them while it runs).
ENV_API_KEY = "GCORE_API_KEY"
ENV_BASE_URL = "GCORE_BASE_URL"
ENV_PROJECT_ID = "GCORE_CLOUD_PROJECT_ID"
ENV_REGION_ID = "GCORE_CLOUD_REGION_ID"


class Sandbox:
    """A sandbox that starts on `__enter__` / `start()` and stops on `__exit__` / `stop()`.

    Make one with :func:`sandbox`; see there for the parameters.
    """

    def __init__(self, config: SandboxConfig, *, env: bool = True, port: int = 0):
        self.config = config
        self.env = env
        self.port = port
        self.server: SandboxServer | None = None
        self._saved_env: dict[str, str | None] = {}

    # ---- life cycle

    def start(self) -> Sandbox:
        """Start the emulator (in a background thread) and return `self`.

        For notebooks, where a `with` block cannot span cells; call :meth:`stop` at the end.
        """
        if self.server is not None:
            raise RuntimeError("this sandbox is already running; stop() it first")
        from batchtag.sandbox.server import SandboxServer

        self.server = SandboxServer(self.config, port=self.port, host=LOOPBACK)
        if self.env:
            self._set_env()
        return self

    def stop(self) -> None:
        """Stop the emulator and restore the environment variables it set (idempotent)."""
        if self.server is None:
            return
        server, self.server = self.server, None
        try:
            server.close()
        finally:
            self._restore_env()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __call__(self, func: Callable) -> Callable:
        """Use as a decorator: each call of `func` runs against a fresh sandbox."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return run_async

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return run

    def __repr__(self) -> str:
        where = self.url if self.server is not None else "stopped"
        return (
            f"<batchtag sandbox {where}, {self.config.snapshots} snapshots a scope,"
            f" project_ids {self.project_ids}, region_ids {self.region_ids}>"
        )

    # ---- what a caller needs

    @property
    def running(self) -> SandboxServer:
        if self.server is None:
            raise RuntimeError("the sandbox is not running: use `with` or call start()")
        return self.server

    @property
    def url(self) -> str:
        """The base URL to pass as `base_url` (``http://127.0.0.1:PORT``)."""
        return self.running.base_url

    @property
    def api_key(self) -> str:
        """The key the sandbox accepts (any other key gets 401, like Gcore)."""
        return self.config.api_key or ""

    @property
    def project_id(self) -> int:
        """The first seeded project (the only one by default; with several, this is
        ``project_ids[0]``: use `project_ids` to reach them all)."""
        return self.project_ids[0]

    @property
    def region_id(self) -> int:
        """The first seeded region (the only one by default; with several, this is
        ``region_ids[0]``: use `region_ids` to reach them all)."""
        return self.region_ids[0]

    @property
    def project_ids(self) -> list[int]:
        """Every seeded project, in the order given (``GET /cloud/v1/projects`` lists them)."""
        return list(dict.fromkeys(self.config.project_ids)) or [1]

    @property
    def region_ids(self) -> list[int]:
        """Every seeded region, in the order given (``GET /cloud/v1/regions`` lists them);
        each project has every region."""
        return list(dict.fromkeys(self.config.region_ids)) or [1]

    @property
    def store(self) -> SnapshotStore:
        """The in-memory store (read it between runs, not during one)."""
        return self.running.store

    def stats(self) -> dict[str, Any]:
        """Request and response counts, as ``GET /_sandbox/stats`` returns them."""
        return self.running.stats()

    def reset(self) -> None:
        """Back to the seeded state: snapshots, locks, fault dice and stats."""
        self.running.reset()

    def end_tasks(self) -> int:
        """End every running task now, so locked snapshots accept writes (no more 409).

        Rehearses "the backups have finished" without waiting for ``lock_ms``.

        Returns
        -------
        int
            How many snapshots were locked.
        """

        async def unlock() -> int:
            return self.running.store.end_tasks()

        return self.running.call(unlock())

    def snapshots(
        self, project_id: int | None = None, region_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The snapshots of one scope as the API's JSON objects (no lock clock started).

        Parameters
        ----------
        project_id, region_id : int, optional
            The scope; by default the first seeded project and region.

        Returns
        -------
        list of dict
            One snapshot object per snapshot, in list-endpoint order.
        """
        scope = (project_id or self.project_id, region_id or self.region_id)

        async def read() -> list[dict[str, Any]]:
            return [snap.to_json() for snap in self.running.store.snapshots(*scope)]

        return self.running.call(read())

    def frame(
        self,
        project_id: int | list[int] | None = None,
        region_id: int | list[int] | None = None,
    ) -> Any:
        """The sandbox's snapshots as an export-shaped DataFrame, read from the store.

        What ``batchtag.export(...)`` of the same scopes returns, made independently of it
        (the sandbox shares no code with the client): one row per snapshot, columns
        ``project_id, region_id, snapshot_id, name, status, size, volume_id, created_at,
        updated_at, task_id``, ``tag:<key>`` per user tag key and ``ro:<key>`` per read-only
        one (sorted; missing where a snapshot lacks it), and the user tags as a ``tags``
        dict. ids and texts in the string dtype, ``project_id``/``region_id``/``size``
        Int64, the times UTC datetimes. Counts as no request (not in :meth:`stats`).

        Parameters
        ----------
        project_id, region_id : int or list of int, optional
            The scopes (every project x region given); by default every seeded one.

        Returns
        -------
        pandas.DataFrame
            In export order: scope by scope (projects, then regions, as given), each in
            list-endpoint order.
        """
        projects = _as_list(project_id, self.project_ids)
        regions = _as_list(region_id, self.region_ids)

        async def read() -> list[Any]:
            store = self.running.store
            return [snap for p in projects for r in regions for snap in store.snapshots(p, r)]

        return snapshots_frame(self.running.call(read()))

    def volumes(
        self, project_id: int | None = None, region_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The volumes of one scope as the API's JSON objects, in list-endpoint order.

        A few snapshots name a volume that is not among them: it has been deleted (a GET
        of it answers 404).

        Parameters
        ----------
        project_id, region_id : int, optional
            The scope; by default the first seeded project and region.
        """
        scope = (project_id or self.project_id, region_id or self.region_id)

        async def read() -> list[dict[str, Any]]:
            return self.running.store.volumes(*scope)

        return self.running.call(read())

    def set_volume_tags(self, volume_id: str, tags: Mapping[str, str | None] | None) -> dict:
        """Change a volume's tags as someone else would between two runs.

        `tags` is a JSON merge patch, as ``PATCH /cloud/v1/volumes/...`` takes it:
        ``{"team": "web"}`` sets a tag, ``{"team": None}`` removes one, ``None`` removes
        every user tag; read-only tags never change. Not counted in :meth:`stats`.

        Returns
        -------
        dict
            The volume after the change, as the API's JSON object.

        Raises
        ------
        KeyError
            No scope of this sandbox has that volume.
        ValueError
            A key or value the API would refuse (the message names them).
        """

        async def change() -> dict[str, Any]:
            store = self.running.store
            try:
                home = store.volume_home(volume_id)
                return store.patch_volume(*home, volume_id, {"tags": tags})[0]
            except SandboxError as error:
                if error.status == 404:
                    raise KeyError(f"no volume {volume_id} in this sandbox") from None
                raise ValueError(f"{error.message}: {error.invalid_fields}") from None

        return self.running.call(change())

    # ---- environment

    def _env_values(self) -> dict[str, str]:
        values = {ENV_BASE_URL: self.url, ENV_API_KEY: self.api_key}
        if len(self.config.project_ids) == 1 and len(self.config.region_ids) == 1:
            values[ENV_PROJECT_ID] = str(self.project_id)
            values[ENV_REGION_ID] = str(self.region_id)
        return values

    def _set_env(self) -> None:
        values = self._env_values()
        self._saved_env = {name: os.environ.get(name) for name in values}
        os.environ.update(values)

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}


FRAME_COLUMNS = (
    "project_id",
    "region_id",
    "snapshot_id",
    "name",
    "status",
    "size",
    "volume_id",
    "created_at",
    "updated_at",
    "task_id",
)
FRAME_INTS = ("project_id", "region_id", "size")
FRAME_TIMES = ("created_at", "updated_at")


def _as_list(value: int | list[int] | None, every: list[int]) -> list[int]:
    if value is None:
        return every
    return [value] if isinstance(value, int) else list(value)


def snapshots_frame(snapshots: list[Any]) -> Any:
    """Snapshots (the store's objects) as an export-shaped DataFrame (see `Sandbox.frame`)."""
    import pandas as pd

    text = "str"  # pandas' string dtype
    rows = [
        {
            **{c: getattr(s, "id" if c == "snapshot_id" else c) for c in FRAME_COLUMNS},
            **{("ro:" if k in s.read_only else "tag:") + k: v for k, v in s.tags.items()},
        }
        for s in snapshots
    ]
    user = sorted({k for s in snapshots for k in s.tags if k not in s.read_only})
    read_only = sorted({k for s in snapshots for k in s.tags if k in s.read_only})
    columns = [*FRAME_COLUMNS, *(f"tag:{k}" for k in user), *(f"ro:{k}" for k in read_only)]
    data = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        if column in FRAME_INTS:
            data[column] = pd.Series(values, dtype="Int64")
        elif column in FRAME_TIMES:
            data[column] = pd.to_datetime(pd.Series(values, dtype=object), utc=True).astype(
                "datetime64[ns, UTC]"
            )
        else:
            data[column] = pd.Series(values, dtype=text)
    frame = pd.DataFrame(data, columns=columns)
    frame["tags"] = pd.Series(
        [{k: v for k, v in s.tags.items() if k not in s.read_only} for s in snapshots],
        dtype=object,
    )
    return frame


def sandbox(config: SandboxConfig | None = None, *, env: bool = True, port: int = 0, **knobs: Any):
    """Run the local Gcore snapshot API emulator for a block, a function or a notebook.

    Parameters
    ----------
    config : SandboxConfig, optional
        A full configuration; the keyword knobs below override its fields.
    env : bool, default True
        While running, point ``GCORE_BASE_URL`` and ``GCORE_API_KEY`` (and, with one project
        and region, ``GCORE_CLOUD_PROJECT_ID`` / ``GCORE_CLOUD_REGION_ID``) at the sandbox, so
        code that reads the environment (``batchtag.apply(df)``, the CLI in a subprocess)
        talks to it and never to the real API. The previous values come back on exit.
    port : int, default 0
        Loopback port; 0 picks a free one.
    **knobs
        Any field of :class:`batchtag.sandbox.SandboxConfig` (``help()`` of it documents
        each): ``snapshots`` (a scope), ``volumes`` (a scope), ``seed``, ``project_ids``,
        ``region_ids``, ``fail_scopes`` (``["1/2", "1/3:403"]``), ``lock_rate``,
        ``lock_ms``, ``error_rate``, ``drop_rate``, ``latency_ms``, ``rate_limit``,
        ``retry_after`` ... Without ``api_key`` a random key is made; only that key is
        accepted (``.api_key``).

    Returns
    -------
    Sandbox
        Not yet running: use it in ``with`` (yields the running sandbox), as a decorator
        (a fresh sandbox per call, sync or async), or call ``.start()`` / ``.stop()``. While
        running it has ``.url``, ``.api_key``, ``.project_id``, ``.region_id`` (the first
        of ``.project_ids`` / ``.region_ids``), ``.stats()``, ``.reset()``, ``.snapshots()``,
        ``.frame()`` (the snapshots as an export-shaped DataFrame), ``.volumes()``,
        ``.set_volume_tags()``, ``.end_tasks()`` and ``.store``.

    Examples
    --------
    >>> import batchtag, pandas as pd
    >>> with batchtag.sandbox(snapshots=10, lock_rate=0.2) as sb:
    ...     ids = [s["id"] for s in sb.snapshots()[:3]]
    ...     manifest = pd.DataFrame({"snapshot_id": ids, "op": "set", "key": "team",
    ...                              "value": "data"})
    ...     report = batchtag.apply(manifest, base_url=sb.url, api_key=sb.api_key)
    """
    from batchtag.sandbox.app import SandboxConfig
    from batchtag.sandbox.scopes import failing_scopes

    names = {f.name for f in dataclasses.fields(SandboxConfig)}
    unknown = sorted(set(knobs) - names)
    if unknown:
        raise TypeError(
            f"unknown sandbox option(s): {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
        )
    config = dataclasses.replace(config or SandboxConfig(), **knobs)
    failing_scopes(config.fail_scopes, config.project_ids or [1], config.region_ids or [1])
    if not config.api_key:
        config.api_key = f"sandbox-{secrets.token_hex(8)}"
    return Sandbox(config, env=env, port=port)


# The class of the `batchtag.sandbox` package: calling the package calls `sandbox()`.
# `batchtag.sandbox` is both a subpackage (`from batchtag.sandbox import SandboxServer`) and
# the helper (`batchtag.sandbox(snapshots=10)`). A function named `sandbox` set on `batchtag`
# would be replaced by the submodule as soon as anything imports `batchtag.sandbox.*`;
# making the module itself callable keeps one object whatever the import order.
class CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Sandbox:
        return sandbox(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(sandbox)

    @property
    def __doc__(self) -> str:  # type: ignore[override]  # help(batchtag.sandbox) shows the call
        package = self.__dict__.get("__doc__") or ""
        return f"{package}\n\nCall it: batchtag.sandbox{inspect.signature(sandbox)}\n\n{sandbox.__doc__}"
