"""`batchtag.Client`: the connection, scope and default options held once, the calls made on
it with the same options less what it holds; the key never shows."""

from __future__ import annotations

import asyncio
import inspect
import pprint
import pydoc

import pandas as pd
import pytest
from helpers import API_KEY

import batchtag
from batchtag.config import ENV_API_KEY, ENV_BASE_URL, ENV_PROJECT_ID, ENV_REGION_ID


@pytest.fixture
def scoped(make_sandbox):
    """A sandbox whose one scope is project 7 / region 3 (no call reaches it by accident)."""
    return make_sandbox(snapshots=40, project_ids=[7], region_ids=[3], api_key=API_KEY)


def manifest(ids, value: str = "cc-1") -> pd.DataFrame:
    return pd.DataFrame({"snapshot_id": ids, "op": "set", "key": "cost-center", "value": value})


def patches(server) -> int:
    return server.stats()["requests"].get("PATCH", 0)


def test_the_calls_take_the_clients_connection_scope_and_defaults(scoped, tmp_path):
    client = batchtag.Client(scoped.base_url, API_KEY, 7, 3, dry_run=True, progress=False)
    ids = client.export()["snapshot_id"].tolist()[:4]
    assert len(ids) == 4 and client.validate(manifest(ids)).ok
    assert client.plan(manifest(ids)).attrs["summary"]["verdicts"]["change"] == 4
    planned = client.apply(manifest(ids))  # dry_run=True from the client
    assert set(planned["status"]) == {"planned"} and patches(scoped) == 0
    report = tmp_path / "run1.csv"
    done = client.apply(manifest(ids), dry_run=False, report=str(report), check_current=True)
    assert set(done["status"]) == {"ok"} and patches(scoped) == 4  # the call's option wins
    inverse = client.undo(str(report))
    assert sorted(inverse["snapshot_id"]) == sorted(ids)


def test_a_call_may_name_another_scope(make_sandbox):
    server = make_sandbox(snapshots=10, project_ids=[1], region_ids=[1, 2], api_key=API_KEY)
    client = batchtag.Client(server.base_url, API_KEY, project_id=1, region_id=1, progress=False)
    assert set(client.export()["region_id"]) == {1}
    assert set(client.export(region_id=[1, 2])["region_id"]) == {1, 2}


def test_the_environment_fills_what_is_not_given(scoped, monkeypatch):
    monkeypatch.setenv(ENV_BASE_URL, scoped.base_url)
    monkeypatch.setenv(ENV_API_KEY, API_KEY)
    monkeypatch.setenv(ENV_PROJECT_ID, "7")
    monkeypatch.setenv(ENV_REGION_ID, "3")
    client = batchtag.Client(progress=False)
    for name in (ENV_BASE_URL, ENV_API_KEY, ENV_PROJECT_ID, ENV_REGION_ID):
        monkeypatch.delenv(name)  # read when the client was made
    assert (client.base_url, client.project_id, client.region_id) == (scoped.base_url, 7, 3)
    assert len(client.export()) == 40


def test_the_key_never_shows(scoped):
    client = batchtag.Client(scoped.base_url, API_KEY, 7, 3, rate=50)
    shown = [
        repr(client),
        str(client),
        repr(vars(client)),
        pprint.pformat(client.__dict__),
        pydoc.render_doc(client.apply, renderer=pydoc.plaintext),
        str(inspect.signature(client.apply)),
    ]
    for text in shown:
        assert API_KEY not in text and "Zq9" not in text
    assert "api_key=***" in repr(client) and "rate=50" in repr(client)
    assert "api_key" not in inspect.signature(client.apply).parameters


def test_signatures_show_the_clients_defaults_and_no_connection(scoped):
    client = batchtag.Client(scoped.base_url, API_KEY, 7, 3, rate=50.0)
    params = inspect.signature(client.apply).parameters
    assert params["rate"].default == 50.0 and params["project_id"].default == 7
    assert params["retries"].default == 3  # not held: the table's default
    assert not {"base_url", "api_key", "insecure_http", "ca_bundle"} & set(params)
    assert list(inspect.signature(batchtag.Client.plan).parameters)[:2] == ["self", "manifest"]
    assert "client.apply_async(" in inspect.getdoc(client.apply_async)
    assert inspect.iscoroutinefunction(client.apply_async)


def test_the_connection_is_the_clients_and_unknown_defaults_are_refused(scoped):
    client = batchtag.Client(scoped.base_url, API_KEY, 7, 3)
    with pytest.raises(batchtag.UsageError, match="the client holds the connection") as caught:
        client.apply(manifest(scoped.store.ids(7, 3)[:1]), api_key="other")
    assert caught.value.__cause__ is None and patches(scoped) == 0
    with pytest.raises(batchtag.UsageError, match=r"'rte' \(did you mean rate"):
        batchtag.Client(scoped.base_url, API_KEY, rte=5)
    with pytest.raises(batchtag.UsageError, match="refusing plain http"):
        batchtag.Client("http://example.com", API_KEY)
    with pytest.raises(batchtag.UsageError, match="GCORE_CLOUD_PROJECT_ID='one'"):
        with pytest.MonkeyPatch.context() as env:
            env.setenv(ENV_PROJECT_ID, "one")
            batchtag.Client(scoped.base_url, API_KEY)


def test_async_calls_run_in_the_callers_loop(scoped, tmp_path):
    client = batchtag.Client(scoped.base_url, API_KEY, 7, 3, progress=False)
    ids = scoped.store.ids(7, 3)[:3]

    async def cell() -> tuple[pd.DataFrame, pd.DataFrame]:
        inventory = await client.export_async()
        report = await client.apply_async(manifest(ids), report=str(tmp_path / "r.csv"))
        return inventory, report

    inventory, report = asyncio.run(cell())
    assert len(inventory) == 40 and set(report["status"]) == {"ok"}


def test_the_module_functions_stay(scoped):
    options = dict(base_url=scoped.base_url, api_key=API_KEY, project_id=7, region_id=3)
    assert len(batchtag.export(progress=False, **options)) == 40
