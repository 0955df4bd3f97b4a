"""Corporate networks: an https API signed by a private CA (--ca-bundle, SSL_CERT_FILE) and
reached through a CONNECT proxy (HTTPS_PROXY, NO_PROXY). Everything on loopback: the
sandbox serves https with a certificate from a CA made here, in tmp_path."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import API_KEY, invoke, patches

from batchtag.config import ENV_CA_BUNDLE
from batchtag.sandbox import SandboxConfig, SandboxServer

pytestmark = pytest.mark.timeout(120)
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
EXT = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def private_ca(tmp: Path) -> dict[str, Path]:
    """A CA and a server certificate it signed for 127.0.0.1 / localhost (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not available")
    p = {n: tmp / f"{n}.pem" for n in ("ca", "ca_key", "cert", "key", "csr", "other_ca")}
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for name, key in (("ca", "ca_key"), ("other_ca", "key")):  # other_ca: a stranger
        openssl("req", "-x509", *ec, "-days", "2", "-subj", f"/CN=batchtag test {name}",
                "-keyout", str(p[key]), "-out", str(p[name]),
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    openssl("req", *ec, "-subj", "/CN=127.0.0.1", "-keyout", str(p["key"]), "-out", str(p["csr"]))
    (tmp / "ext.cnf").write_text(EXT)
    openssl("x509", "-req", "-in", str(p["csr"]), "-CA", str(p["ca"]), "-CAkey", str(p["ca_key"]),
            "-CAcreateserial", "-days", "2", "-out", str(p["cert"]),
            "-extfile", str(tmp / "ext.cnf"))  # fmt: skip
    return p


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    return private_ca(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def https_sandbox(pki, monkeypatch) -> Iterator[SandboxServer]:
    for name in (*PROXY_VARS, ENV_CA_BUNDLE):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    config = SandboxConfig(snapshots=20, tls_cert=str(pki["cert"]), tls_key=str(pki["key"]))
    with SandboxServer(config) as server:
        yield server


@pytest.fixture
def manifest(https_sandbox, tmp_path) -> Path:
    path = tmp_path / "m.csv"
    ids = https_sandbox.store.ids()[:3]
    path.write_text("snapshot_id,op,key,value\n" + "".join(f"{i},set,team,blue\n" for i in ids))
    return path


def apply(sandbox, manifest: Path, *args: str, **env: str):
    report = manifest.with_suffix(".report.csv")
    args = ("apply", str(manifest), "--report", str(report), "--overwrite", "-y", *args)
    return invoke(list(args), sandbox, **env)


class ConnectProxy:
    """A loopback HTTPS proxy: answers CONNECT host:port and pipes bytes both ways; keeps
    each CONNECT's request line and headers (to show what the proxy could see)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self.call(asyncio.start_server(self.handle, "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def handle(self, reader, writer) -> None:
        line = (await reader.readline()).decode().strip()
        headers = {}
        while (header := (await reader.readline()).decode().strip()) != "":
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.seen.append((line, headers))
        host, _, port = line.split()[1].rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def close(self) -> None:
        self.server.close()
        self.call(self.server.wait_closed())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    server = ConnectProxy()
    yield server
    server.close()


def test_without_the_private_ca_the_run_fails_fast_with_the_cause_named(https_sandbox, manifest):
    result = apply(https_sandbox, manifest)
    assert result.exit_code == 3
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "TLS handshake failed, not retried" in lines[0]
    assert "certificate verify failed" in lines[0]
    assert "Traceback" not in result.stderr + result.output
    assert sum(https_sandbox.stats()["requests"].values()) == 0  # no request got through


def test_ca_bundle_option_trusts_the_private_ca(https_sandbox, manifest, pki):
    result = apply(https_sandbox, manifest, "--ca-bundle", str(pki["ca"]))
    assert result.exit_code == 0, result.stderr
    assert patches(https_sandbox) == 3


def test_ssl_cert_file_trusts_the_private_ca(https_sandbox, manifest, pki):
    result = apply(https_sandbox, manifest, **{ENV_CA_BUNDLE: str(pki["ca"])})
    assert result.exit_code == 0, result.stderr
    assert patches(https_sandbox) == 3


def test_a_bundle_of_another_ca_is_refused_by_the_handshake(https_sandbox, manifest, pki):
    result = apply(https_sandbox, manifest, "--ca-bundle", str(pki["other_ca"]))
    assert result.exit_code == 3 and "certificate verify failed" in result.stderr
    assert sum(https_sandbox.stats()["requests"].values()) == 0


@pytest.mark.parametrize("how", ["option", "env"])
@pytest.mark.parametrize("problem", ["missing", "not PEM"])
def test_a_bad_ca_bundle_is_one_line_exit_2_before_sending(
    https_sandbox, manifest, tmp_path, how, problem
):
    path = tmp_path / "ca.pem"
    if problem == "not PEM":
        path.write_text("this is not a certificate\n")
    args = ("--ca-bundle", str(path)) if how == "option" else ()
    env = {ENV_CA_BUNDLE: str(path)} if how == "env" else {}
    result = apply(https_sandbox, manifest, *args, **env)
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    named = f"--ca-bundle {path}" if how == "option" else f"{ENV_CA_BUNDLE}={path}"
    assert f"cannot read {named}: " in result.stderr
    assert ("no such file" if problem == "missing" else "not a PEM CA bundle") in result.stderr
    assert sum(https_sandbox.stats()["requests"].values()) == 0


def test_https_proxy_sees_only_a_connect_never_the_key(https_sandbox, manifest, pki, proxy):
    result = apply(https_sandbox, manifest, "--ca-bundle", str(pki["ca"]), HTTPS_PROXY=proxy.url)
    assert result.exit_code == 0, result.stderr
    assert patches(https_sandbox) == 3
    port = https_sandbox.port
    assert proxy.seen and {line for line, _ in proxy.seen} == {f"CONNECT 127.0.0.1:{port} HTTP/1.1"}
    assert all("authorization" not in map(str.lower, headers) for _, headers in proxy.seen)
    assert all(API_KEY not in str(headers) for _, headers in proxy.seen)


def test_no_proxy_bypasses_the_proxy(https_sandbox, manifest, pki, proxy):
    env = {"HTTPS_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"}
    result = apply(https_sandbox, manifest, "--ca-bundle", str(pki["ca"]), **env)
    assert result.exit_code == 0, result.stderr
    assert patches(https_sandbox) == 3 and proxy.seen == []


@pytest.mark.parametrize("command", ["export", "enforce"])
def test_every_connecting_command_takes_the_ca_bundle(https_sandbox, pki, tmp_path, command):
    policy = Path(__file__).parent.parent / "samples" / "cost-policy.toml"
    args = {
        "export": ["export", "-o", str(tmp_path / "inventory.csv")],
        "enforce": ["enforce", str(policy), "--check"],
    }[command]
    untrusted = invoke(args, https_sandbox)
    # aborted: a TLS failure is not retried, by reads or writes (enforce --check: any error 1)
    assert untrusted.exit_code == (1 if command == "enforce" else 3)
    assert "certificate verify failed" in untrusted.stderr
    assert untrusted.stderr.strip().count("\n") == 0, untrusted.stderr
    trusted = invoke([*args, "--ca-bundle", str(pki["ca"])], https_sandbox)
    assert trusted.exit_code in (0, 2), trusted.stderr  # enforce --check: 2 = drift
    assert https_sandbox.stats()["requests"].get("GET", 0) >= 1


def test_sandbox_cli_serves_https_with_tls_cert_and_key(pki):
    import sys

    from click.testing import CliRunner

    from batchtag.cli import main

    alone = CliRunner().invoke(main, ["sandbox", "--tls-key", str(pki["key"])])
    assert alone.exit_code == 2 and "--tls-key needs --tls-cert" in alone.output
    args = ["--port", "0", "--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"])]
    server = subprocess.Popen(
        [sys.executable, "-m", "batchtag", "sandbox", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        first = server.stdout.readline()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert first.startswith("batchtag sandbox listening on https://127.0.0.1:")


def test_python_api_takes_ca_bundle(https_sandbox, pki, tmp_path):
    import batchtag

    connection = {"base_url": https_sandbox.base_url, "api_key": API_KEY}
    frame = batchtag.export(project_id=1, region_id=1, ca_bundle=str(pki["ca"]), **connection)
    assert len(frame) == 20
    manifest = frame[["snapshot_id"]].head(2).assign(op="set", key="team", value="blue")
    report = batchtag.apply(
        manifest,
        project_id=1,
        region_id=1,
        ca_bundle=pki["ca"],  # a Path works too
        report=str(tmp_path / "r.csv"),
        **connection,
    )
    assert set(report["status"]) == {"ok"} and patches(https_sandbox) == 2
    with pytest.raises(batchtag.UsageError, match=r"cannot read ca_bundle="):
        batchtag.apply(
            manifest, project_id=1, region_id=1, ca_bundle=str(tmp_path / "no.pem"), **connection
        )
    assert patches(https_sandbox) == 2
