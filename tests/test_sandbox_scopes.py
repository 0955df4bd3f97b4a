"""The sandbox's scopes: projects and regions as the API lists them, and failing scopes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner
from sandbox_calls import BASE, VOLUMES, assert_gcore_error, call, one, volume

import batchtag
from batchtag.sandbox.cli import sandbox_command


def test_projects_and_regions_list_the_configured_scopes(make_sandbox):
    server = make_sandbox(snapshots=3, project_ids=[7, 3], region_ids=[4, 1, 99])
    projects = call(server, "GET", "/cloud/v1/projects")
    assert projects.status == 200 and projects.body["count"] == 2
    assert [p["id"] for p in projects.body["results"]] == [7, 3]
    assert [p["is_default"] for p in projects.body["results"]] == [True, False]
    regions = call(server, "GET", "/cloud/v1/regions")
    assert regions.status == 200 and regions.body["count"] == 3
    assert [r["id"] for r in regions.body["results"]] == [4, 1, 99]
    names = [r["display_name"] for r in regions.body["results"]]
    assert names == ["Singapore", "Luxembourg-2", "Region-99"]
    for region in regions.body["results"]:
        assert region["state"] == "ACTIVE"
        snaps = call(server, "GET", f"{BASE}/7/{region['id']}").body["results"]
        assert {s["region"] for s in snaps} == {region["display_name"]}

    page = call(server, "GET", "/cloud/v1/regions", params={"limit": 1, "offset": 1})
    assert page.body == {"count": 3, "results": [regions.body["results"][1]]}
    assert call(server, "GET", "/cloud/v1/projects/3").body == projects.body["results"][1]
    assert call(server, "GET", "/cloud/v1/regions/99").body == regions.body["results"][2]
    assert_gcore_error(call(server, "GET", "/cloud/v1/projects/1"), 404, "NotFoundError")
    assert_gcore_error(call(server, "GET", "/cloud/v1/regions/2"), 404, "NotFoundError")
    assert_gcore_error(
        call(server, "GET", "/cloud/v1/regions", headers={}), 401, "AuthenticationError"
    )
    assert server.stats()["resources"]["regions"]["responses"] == {"200": 3, "404": 1, "401": 1}


def test_the_sdk_parses_projects_and_regions(make_sandbox):
    gcore = pytest.importorskip("gcore")
    server = make_sandbox(snapshots=1, project_ids=[1, 2], region_ids=[1, 2, 3, 4, 5, 6])
    client = gcore.Gcore(api_key="k", base_url=server.base_url, max_retries=0)
    assert [p.id for p in client.cloud.projects.list()] == [1, 2]
    regions = list(client.cloud.regions.list())
    assert [r.id for r in regions] == [1, 2, 3, 4, 5, 6]
    assert all(r.state == "ACTIVE" for r in regions)
    assert client.cloud.regions.get(region_id=3).display_name == "Frankfurt"
    for project in call(server, "GET", "/cloud/v1/projects").body["results"]:
        gcore.types.cloud.Project.model_validate(project)
    for region in call(server, "GET", "/cloud/v1/regions").body["results"]:
        gcore.types.cloud.Region.model_validate(region)


def test_every_project_and_region_is_a_property_of_the_running_sandbox():
    with batchtag.sandbox(snapshots=2, project_ids=[5, 6], region_ids=[2, 3]) as sb:
        assert sb.project_ids == [5, 6] and sb.region_ids == [2, 3]
        assert (sb.project_id, sb.region_id) == (5, 2)
        assert len(sb.snapshots(6, 3)) == 2
    with batchtag.sandbox(snapshots=1) as sb:
        assert sb.project_ids == [1] and sb.region_ids == [1]


# ---------------------------------------------------------------- failing scopes


def test_a_failing_scope_answers_its_error_and_the_others_go_on(make_sandbox):
    server = make_sandbox(
        snapshots=4, project_ids=[1, 2], region_ids=[1, 2], fail_scopes=["1/2", "2/1:403"]
    )
    good = call(server, "GET", f"{BASE}/1/1").body["results"][0]
    vid = call(server, "GET", f"{VOLUMES}/1/1").body["results"][0]["id"]
    for (p, r), status, exception_class in (
        ((1, 2), 500, "InternalServerError"),
        ((2, 1), 403, "ForbiddenError"),
    ):
        paths = [f"{BASE}/{p}/{r}", one(good["id"], p, r), f"{VOLUMES}/{p}/{r}", volume(vid, p, r)]
        for path in paths:
            assert_gcore_error(call(server, "GET", path), status, exception_class)
        reply = call(server, "PATCH", one(good["id"], p, r), json={"name": "abc"})
        assert_gcore_error(reply, status, exception_class)
        assert str(p) in reply.body["message"] or status == 500
    for p, r in ((1, 1), (2, 2)):
        assert call(server, "GET", f"{BASE}/{p}/{r}").body["count"] == 4
        assert call(server, "GET", f"{VOLUMES}/{p}/{r}").status == 200
    assert call(server, "GET", "/cloud/v1/projects").body["count"] == 2  # still listed
    assert call(server, "GET", "/cloud/v1/regions").body["count"] == 2
    assert server.stats()["writes"] == 0


def test_fail_scopes_take_tuples_and_refuse_what_is_not_a_served_scope(make_sandbox):
    server = make_sandbox(snapshots=1, region_ids=[1, 2], fail_scopes=[(1, 2), (1, 1, 503)])
    assert call(server, "GET", f"{BASE}/1/2").status == 500
    assert call(server, "GET", f"{BASE}/1/1").status == 503
    for bad, message in (
        (["1/3"], "not served"),
        (["2/1"], "not served"),
        (["1-1"], "PROJECT/REGION"),
        (["1/1:200"], "not an HTTP error"),
        (["1/1:abc"], "PROJECT/REGION"),
    ):
        with pytest.raises(ValueError, match=message):
            batchtag.sandbox(snapshots=1, fail_scopes=bad)


def test_cli_refuses_a_bad_fail_scope():
    result = CliRunner().invoke(sandbox_command, ["--port", "0", "--fail-scope", "1/9"])
    assert result.exit_code == 2
    assert "--fail-scope" in result.output and "not served" in result.output


def test_cli_serves_volumes_scopes_and_a_failing_scope():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "batchtag.sandbox", "--port", "0", "--snapshots", "8"]
    command += ["--volumes", "3", "--region-id", "1", "--region-id", "2"]
    command += ["--fail-scope", "1/2:404"]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        line = proc.stdout.readline().strip()
        prefix = "batchtag sandbox listening on http://127.0.0.1:"
        assert line.startswith(prefix), line
        server = type("Remote", (), {"base_url": f"http://127.0.0.1:{int(line[len(prefix) :])}"})()
        assert call(server, "GET", f"{VOLUMES}/1/1").body["count"] == 3
        assert [r["id"] for r in call(server, "GET", "/cloud/v1/regions").body["results"]] == [1, 2]
        assert_gcore_error(call(server, "GET", f"{BASE}/1/2"), 404, "NotFoundError")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        described = proc.stderr.read()
        assert "3 volumes" in described and "1/2 fails with 404" in described
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
