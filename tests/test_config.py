"""Base URLs: credentials refused and never echoed, whatever they look like; one is_loopback."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchtag.config import check_base_url, is_loopback, without_userinfo
from batchtag.errors import UsageError

# A marker no message could contain by chance, then anything URL-safe.
SECRETISH = st.text(string.ascii_letters + string.digits + "$!*-._~", max_size=20).map(
    lambda tail: "Zq9$" + tail
)


@given(
    user=SECRETISH,
    password=SECRETISH,
    scheme=st.sampled_from(["http", "https", "ftp", "file", ""]),
    host=st.sampled_from(["127.0.0.1", "api.gcore.com", "[::1]", "h"]),
)
def test_userinfo_is_refused_and_never_echoed(user, password, scheme, host):
    url = f"{scheme}://{user}:{password}@{host}/cloud" if scheme else f"//{user}:{password}@{host}"
    with pytest.raises(UsageError) as caught:
        check_base_url(url, insecure_http=True)
    assert password not in str(caught.value) and user not in str(caught.value)
    assert password not in without_userinfo(url)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("localhost", True), ("127.0.0.1", True), ("127.8.0.1", True), ("[::1]", True),
     ("::1", True), ("10.0.0.1", False), ("api.gcore.com", False), ("[::2]", False)],
)  # fmt: skip
def test_one_is_loopback_for_client_and_sandbox(host, loopback):
    from batchtag.sandbox import cli as sandbox_cli

    assert is_loopback(host) is loopback
    assert sandbox_cli.is_loopback(host) is loopback  # the sandbox's own (an independent oracle)
