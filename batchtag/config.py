"""Connection settings: base URL, API key, default scope. Resolves options, then env vars."""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from batchtag.errors import UsageError, option

DEFAULT_BASE_URL = "https://api.gcore.com"
ENV_API_KEY = "GCORE_API_KEY"
ENV_BASE_URL = "GCORE_BASE_URL"
ENV_PROJECT_ID = "GCORE_CLOUD_PROJECT_ID"
ENV_REGION_ID = "GCORE_CLOUD_REGION_ID"
ENV_CA_BUNDLE = "SSL_CERT_FILE"  # the CA bundle when --ca-bundle is not given (OpenSSL's name)


class Secret:
    """A value that never shows: its repr and str are ``***``, `vars()` cannot see into it.

    Objects that hold an API key for later calls (`batchtag.Client`, a run's resume call)
    keep it in one, so printing them, their ``vars()`` or their ``__dict__`` in a notebook
    shows no key.

    Examples
    --------
    >>> key = Secret("s3cret")
    >>> key, str(key), key.reveal()
    (***, '***', 's3cret')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        """The value itself, to send it where it belongs."""
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """Where and how to connect. `ssl_context` (None: the system's CAs) is built once, by
    `resolve_settings`, from the CA bundle; every connection of a client shares it."""

    base_url: str
    api_key: str = field(repr=False)  # never printed: repr hides it
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        return f"Settings(base_url={self.base_url!r}, api_key=***)"


def ca_context(
    ca_bundle: str | os.PathLike | None, env: Mapping[str, str] | None = None
) -> ssl.SSLContext | None:
    """The TLS context trusting `ca_bundle`, else the ``SSL_CERT_FILE`` file, else None.

    The bundle replaces the system's CAs (as ``curl --cacert`` does): for a private CA or a
    TLS-inspecting corporate proxy, give a file holding every CA to trust.

    Parameters
    ----------
    ca_bundle : path, optional
        A PEM file of CA certificates (the ``ca_bundle`` option).
    env : Mapping, optional
        Where to look for ``SSL_CERT_FILE`` (default: os.environ).

    Returns
    -------
    ssl.SSLContext or None
        None when neither is set: the default context (the system's CAs).

    Raises
    ------
    UsageError
        The file is missing, unreadable or holds no PEM certificate (exit 2, nothing sent).

    Examples
    --------
    >>> ca_context(None, env={}) is None
    True
    """
    env = os.environ if env is None else env
    path = ca_bundle or env.get(ENV_CA_BUNDLE) or None
    if path is None:
        return None
    shown = option("ca_bundle", str(path)) if ca_bundle else f"{ENV_CA_BUNDLE}={path}"
    if not os.path.isfile(path):
        raise UsageError(f"cannot read {shown}: no such file")
    try:
        return ssl.create_default_context(cafile=os.fspath(path))
    except ssl.SSLError as error:
        raise UsageError(f"cannot read {shown}: not a PEM CA bundle ({error.reason})") from None
    except OSError as error:
        raise UsageError(f"cannot read {shown}: {error.strerror or error}") from None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs, bracketed IPv6 included (``[::1]``).

    Examples
    --------
    >>> is_loopback("[::1]"), is_loopback("127.0.0.2"), is_loopback("example.com")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def without_userinfo(url: str) -> str:
    """`url` with any ``user:password@`` part removed, safe to show in a message."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def check_base_url(base_url: str, *, insecure_http: bool = False) -> str:
    """Refuse URLs that would leak the key: credentials in the URL, or plain http to
    anything but loopback (the API key would travel in clear). Never echoes userinfo."""
    parts = urlsplit(base_url)
    shown = without_userinfo(base_url)
    if "@" in parts.netloc:
        raise UsageError(
            f"base URL must not contain credentials (user:password@), got {shown!r}; "
            f"give the API key with {option('api_key')} or {ENV_API_KEY}"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"base URL must be http(s)://host[:port], got {shown!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not insecure_http:
        raise UsageError(
            f"refusing plain http:// to {parts.hostname}: the API key would be sent unencrypted; "
            f"use https:// or pass {option('insecure_http', True)}"
        )
    return base_url.rstrip("/")


def resolve_settings(
    base_url: str | None = None,
    api_key: str | None = None,
    *,
    insecure_http: bool = False,
    ca_bundle: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """The connection settings from the options, else the env vars; checked (exit 2).

    Examples
    --------
    >>> resolve_settings("http://127.0.0.1:8080", "k", env={})
    Settings(base_url='http://127.0.0.1:8080', api_key=***)
    """
    env = os.environ if env is None else env
    url = base_url or env.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    key = api_key or env.get(ENV_API_KEY)
    if not key:
        raise UsageError(f"no API key: set {ENV_API_KEY} or pass {option('api_key')}")
    url = check_base_url(url, insecure_http=insecure_http)
    if urlsplit(url).scheme != "https":  # no TLS: the CA bundle is not read (it is slow to load)
        return Settings(url, key)
    return Settings(url, key, ca_context(ca_bundle, env))
