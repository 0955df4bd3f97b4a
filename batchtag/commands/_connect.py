"""The HTTP client of a command's connection options."""

from __future__ import annotations

from batchtag.commands._options import ApplyOptions
from batchtag.config import resolve_settings
from batchtag.gcore import Client
from batchtag.logs import register_secret


def open_client(options: ApplyOptions) -> Client:
    """The HTTP client of a run's connection and timeout options (the key registered as a
    secret, so no log line shows it)."""
    settings = resolve_settings(
        options.base_url,
        options.api_key,
        insecure_http=options.insecure_http,
        ca_bundle=options.ca_bundle,
    )
    register_secret(settings.api_key)
    return Client(
        settings,
        connections=options.concurrency,
        timeout=options.timeout,
        connect_timeout=options.connect_timeout,
        request_deadline=options.request_deadline,
    )
