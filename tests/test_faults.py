"""The HTTP client and engine against hostile servers on loopback (issue 16).

Each test starts its own tiny server (aiohttp or raw asyncio) on 127.0.0.1 and bounds itself
with `asyncio.timeout`, so a regression fails instead of hanging. No wall-clock asserts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from helpers import API_KEY

from batchtag.config import Settings
from batchtag.errors import ApiError
from batchtag.gcore import Client, RetrySettings
from batchtag.model import PlanEntry
from batchtag.send import Engine, EngineOptions

pytestmark = pytest.mark.timeout(60)
SID = "6f1c2a43-5b8e-4d2e-9a47-0c1d2e3f4a5b"
BOUND = 20  # seconds: the most any test here may take before it counts as hung


def catch_all(handler) -> web.Application:
    """An app answering every method and path with `handler`."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


@contextlib.asynccontextmanager
async def client_of(handler, ssl_context: ssl.SSLContext | None = None):
    """A `Client` of a loopback server answering everything with `handler` (BOUND in time)."""
    runner, port = await serve(catch_all(handler), ssl_context)
    scheme = "http" if ssl_context is None else "https"
    try:
        settings = Settings(f"{scheme}://127.0.0.1:{port}", API_KEY)
        async with asyncio.timeout(BOUND), Client(settings) as client:
            yield client
    finally:
        await runner.cleanup()


async def serve(app: web.Application, ssl_context: ssl.SSLContext | None = None):
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, port


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def run_engine(client: Client, count: int, **options) -> tuple[Engine, list]:
    results: list = []
    entries = [PlanEntry(1, 1, f"{SID[:-4]}{i:04d}", tags={"a": "b"}) for i in range(count)]
    engine = Engine(client, EngineOptions(rate=1000, **options), results.append)
    await engine.run(entries)
    return engine, results


# -- #4: a body trickled a byte at a time --------------------------------------------


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 999\r\n\r\n"
    )
    try:
        while True:  # one byte every 50 ms: the 0.3 s read timeout never fires
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)
    except (ConnectionError, asyncio.CancelledError):
        writer.close()


def test_a_trickled_body_hits_the_request_deadline():
    async def main():
        server = await asyncio.start_server(trickle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings = Settings(f"http://127.0.0.1:{port}", API_KEY)
        try:
            async with asyncio.timeout(BOUND):
                async with Client(settings, timeout=0.3, request_deadline=0.6) as client:
                    with pytest.raises(ApiError) as info:
                        await client.get_snapshot(1, 1, SID)
        finally:
            server.close()
        return info.value

    error = asyncio.run(main())
    assert (error.status, error.exception_class) == (0, "Timeout")
    assert "0.6 s request deadline" in error.message


# -- #7: the breaker names its cause; TLS fails fast ------------------------------------


def test_a_closed_port_aborts_naming_the_connection_error():
    port = closed_port()

    async def main():
        settings = Settings(f"http://127.0.0.1:{port}", API_KEY)
        async with asyncio.timeout(BOUND), Client(settings) as client:
            return await run_engine(
                client,
                60,
                concurrency=8,
                breaker={"cooldown": 0.01},
            )

    engine, results = asyncio.run(main())
    cause = f"ClientConnectorError: Cannot connect to host 127.0.0.1:{port}"
    assert engine.abort_reason.startswith(
        f"circuit breaker: most recent requests kept failing: {cause}"
    )
    assert len(results) == 60
    skipped = [r for r in results if r.status == "skipped"]
    assert skipped and all(cause in r.error for r in skipped)


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (cryptography, else openssl)."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl CLI is available")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


def test_an_untrusted_certificate_aborts_at_once(tmp_path):
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    hits = Counter()

    async def handler(request):
        hits[request.method] += 1
        return web.json_response({})

    async def main():
        async with client_of(handler, context) as client:
            return await run_engine(client, 30, concurrency=1)

    engine, results = asyncio.run(main())
    assert engine.abort_reason.startswith(
        "TLS handshake failed, not retried: ClientConnectorCertificateError"
    )
    assert "certificate verify failed" in engine.abort_reason
    assert [r.attempts for r in results if r.attempts] == [1]
    assert len(results) == 30 and not hits


# -- #8: proxies from the environment --------------------------------------------------


async def forwarding_proxy(seen: list[str]) -> web.Application:
    """A plain-HTTP forward proxy: takes absolute-form requests and replays them."""

    async def forward(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with aiohttp.ClientSession() as session:
            body = await request.read()
            async with session.request(
                request.method, str(request.url), headers=headers, data=body or None
            ) as upstream:
                return web.Response(
                    status=upstream.status,
                    body=await upstream.read(),
                    content_type=upstream.content_type,
                )

    return catch_all(forward)


@pytest.mark.parametrize("bypass", [False, True])
def test_http_proxy_from_the_environment_and_no_proxy(sandbox, monkeypatch, bypass):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    sid = sandbox.store.ids()[0]
    seen: list[str] = []

    async def main():
        runner, port = await serve(await forwarding_proxy(seen))
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        if bypass:
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        try:
            async with asyncio.timeout(BOUND):
                async with Client(Settings(sandbox.base_url, API_KEY)) as client:
                    return await client.get_snapshot(1, 1, sid)
        finally:
            await runner.cleanup()

    assert asyncio.run(main())["id"] == sid
    assert seen == ([] if bypass else [f"{sandbox.base_url}/cloud/v1/snapshots/1/1/{sid}"])
    assert sandbox.stats()["requests"] == {"GET": 1}


# -- #11: redirects are never followed ---------------------------------------------------


def test_redirects_are_not_followed_and_the_key_stays_home():
    elsewhere: list[str | None] = []

    async def other_host(request):
        elsewhere.append(request.headers.get("Authorization"))
        return web.json_response({"id": SID, "tags": []})

    async def main():
        other_runner, other_port = await serve(catch_all(other_host))
        target = f"http://localhost:{other_port}/moved"

        async def moved(request):
            status = 303 if request.method == "PATCH" else 307
            return web.Response(status=status, headers={"Location": target})

        try:
            async with client_of(moved) as client:
                engine, results = await run_engine(client, 2, concurrency=1)
                with pytest.raises(ApiError) as get_error:
                    await client.get_snapshot(1, 1, SID)
            return results, get_error.value, target
        finally:
            await other_runner.cleanup()

    results, get_error, target = asyncio.run(main())
    assert {(r.status, r.http_status, r.attempts) for r in results} == {("failed", 303, 1)}
    assert {r.error for r in results} == {f"redirected to {target}; not followed"}
    assert (get_error.status, get_error.exception_class) == (307, "Redirect")
    assert elsewhere == []  # neither the write nor the key went to the other host


# -- siblings: 2xx answers that are not a snapshot ----------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "why"),
    [
        (200, b"<html>proxy login</html>", "not JSON"),
        (200, b"[1, 2]", "expected a snapshot object, got list"),
        (200, b'{"id": "x", "tags": "a=b"}', "'tags' is not a list"),
        (204, b"", "expected a snapshot object, got NoneType"),
    ],
)
def test_a_2xx_that_is_not_a_snapshot_fails_without_retry(status, body, why):
    async def odd(request):
        return web.Response(status=status, body=body or None)

    async def main():
        async with client_of(odd) as client:
            return await run_engine(client, 3, retry=RetrySettings(transient_retries=5))

    engine, results = asyncio.run(main())
    assert engine.abort_reason is None
    assert {(r.status, r.http_status, r.attempts, r.error_class) for r in results} == {
        ("failed", status, 1, "BadResponse")
    }
    assert all(why in r.error for r in results)


def test_https_to_a_plain_http_server_aborts_at_once(sandbox):
    async def main():
        settings = Settings(sandbox.base_url.replace("http://", "https://"), API_KEY)
        async with asyncio.timeout(BOUND), Client(settings) as client:
            return await run_engine(client, 20, concurrency=1)

    engine, results = asyncio.run(main())
    assert engine.abort_reason.startswith(
        "TLS handshake failed, not retried: ClientConnectorSSLError"
    )
    assert [r.attempts for r in results if r.attempts] == [1] and len(results) == 20
    assert sandbox.stats()["total_requests"] == 0
