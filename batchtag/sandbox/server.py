"""Running the sandbox: in a background thread (tests, notebooks) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys
import threading
from typing import Any

from aiohttp import web

from batchtag.sandbox.app import STATE, SandboxConfig, SandboxState, make_app
from batchtag.sandbox.scopes import failing_scopes
from batchtag.sandbox.store import SnapshotStore
from batchtag.sandbox.volumes import default_count

SHUTDOWN_TIMEOUT = 1.0  # seconds to let in-flight requests finish when stopping


def tls_context(config: SandboxConfig) -> ssl.SSLContext | None:
    """The server's TLS context when `config` names a certificate (and key), else None."""
    if config.tls_cert is None and config.tls_key is None:
        return None
    if config.tls_cert is None:
        raise ValueError("tls_key needs tls_cert (the certificate chain, PEM)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


async def start_site(
    app: web.Application, host: str, port: int, tls: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, bound


def url_for(host: str, port: int, tls: bool = False) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


class SandboxServer:
    """The sandbox on 127.0.0.1 in a background thread with its own event loop.

    >>> with SandboxServer(SandboxConfig()) as sandbox:
    ...     sandbox.base_url  # 'http://127.0.0.1:PORT'

    With ``SandboxConfig(tls_cert=..., tls_key=...)`` it serves https (``base_url``
    starts with ``https://``).
    """

    def __init__(self, config: SandboxConfig | None = None, port: int = 0, host: str = "127.0.0.1"):
        self.config = config or SandboxConfig()
        self.host = host
        self.tls = tls_context(self.config)
        self.app = make_app(self.config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = port
        self.start()

    @property
    def state(self) -> SandboxState:
        return self.app[STATE]

    @property
    def store(self) -> SnapshotStore:
        return self.state.store

    @property
    def base_url(self) -> str:
        return url_for(self.host, self.port, self.tls is not None)

    def start(self) -> None:
        self.thread.start()
        try:
            self.runner, self.port = self.call(start_site(self.app, self.host, self.port, self.tls))
        except BaseException:
            self.close()  # e.g. the port is taken: leave no thread behind
            raise

    def call(self, coro) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def stats(self) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            return self.state.stats.to_json()

        return self.call(read())

    def mutate(self, project_id: int = 1, region_id: int = 1, create: int = 0, delete: int = 0):
        """Someone else deletes `delete` snapshots and creates `create` (see store.mutate)."""

        async def mutate() -> dict[str, Any]:
            return self.store.mutate(project_id, region_id, create, delete)

        return self.call(mutate())

    def reset(self) -> None:
        async def reset() -> None:
            self.state.reset()

        self.call(reset())

    def close(self) -> None:
        if self.runner is not None:
            self.call(self.runner.cleanup())
            self.runner = None
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        if not self.loop.is_closed() and not self.thread.is_alive():
            self.loop.close()

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def serve(config: SandboxConfig, port: int = 8080, host: str = "127.0.0.1") -> None:
    """Run the sandbox in the foreground until SIGINT or SIGTERM."""
    asyncio.run(serve_async(config, port, host))


async def serve_async(config: SandboxConfig, port: int, host: str) -> None:
    tls = tls_context(config)
    runner, bound = await start_site(make_app(config), host, port, tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"batchtag sandbox listening on {url_for(host, bound, tls is not None)}", flush=True)
    print(describe(config), file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    print("batchtag sandbox stopped", file=sys.stderr, flush=True)


def describe(config: SandboxConfig) -> str:
    scopes = ", ".join(f"{p}/{r}" for p in config.project_ids for r in config.region_ids)
    volumes = default_count(config.snapshots) if config.volumes is None else config.volumes
    parts = [
        f"seed {config.seed}",
        f"{config.snapshots} snapshots and {volumes} volumes in project/region {scopes}",
    ]
    knobs = {
        "latency_ms": config.latency_ms,
        "rate_limit": config.rate_limit,
        "lock_rate": config.lock_rate,
        "error_rate": config.error_rate,
        "drop_rate": config.drop_rate,
    }
    parts += [f"{name}={value}" for name, value in knobs.items() if value]
    failing = failing_scopes(config.fail_scopes, config.project_ids, config.region_ids)
    parts += [f"scope {p}/{r} fails with {status}" for (p, r), status in failing.items()]
    if config.api_key is not None:
        parts.append("api key required")
    return "; ".join(parts)
