"""`batchtag.sandbox(...)` (context manager, decorator, start/stop) and its pytest fixture."""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import json
import os
import pydoc
import urllib.request

import pandas as pd
import pytest

import batchtag
import batchtag.sandbox.cli  # noqa: F401  (importing a submodule must not hide the helper)
from batchtag.config import ENV_API_KEY, ENV_BASE_URL, ENV_PROJECT_ID, ENV_REGION_ID
from batchtag.errors import ManifestError
from batchtag.sandbox import SandboxServer

pytest_plugins = ["pytester"]
GCORE_ENV = (ENV_API_KEY, ENV_BASE_URL, ENV_PROJECT_ID, ENV_REGION_ID)


def manifest(ids, value="data") -> pd.DataFrame:
    return pd.DataFrame({"snapshot_id": ids, "op": "set", "key": "migrated", "value": value})


def test_the_package_is_the_helper():
    assert callable(batchtag.sandbox)
    assert batchtag.sandbox.SandboxServer is SandboxServer  # still the subpackage
    assert "lock_rate" not in inspect.signature(batchtag.sandbox).parameters  # **knobs
    assert list(inspect.signature(batchtag.sandbox).parameters)[:3] == ["config", "env", "port"]
    shown = pydoc.render_doc(batchtag.sandbox, renderer=pydoc.plaintext)
    assert "Call it: batchtag.sandbox(" in shown and "lock_rate" in shown  # help() explains


def test_with_block_runs_a_real_apply_and_stops(tmp_path):
    with batchtag.sandbox(snapshots=5, seed=3) as sb:
        ids = [snap["id"] for snap in sb.snapshots()]
        report = batchtag.apply(
            manifest(ids[:3]),
            base_url=sb.url,
            api_key=sb.api_key,
            project_id=sb.project_id,
            region_id=sb.region_id,
            report=str(tmp_path / "r.csv"),
        )
        assert list(report.status) == ["ok"] * 3
        assert sb.stats()["writes"] == 3
        assert [sb.store.find(1, 1, i).tags.get("migrated") for i in ids] == ["data"] * 3 + [
            None
        ] * 2
        url, key = sb.url, sb.api_key
        assert list_ids(url, key) == ids
    assert len(ids) == 5
    with pytest.raises(RuntimeError, match="not running"):
        sb.url  # noqa: B018
    with pytest.raises(OSError):  # the port is closed
        list_ids(url, key)


def test_env_points_at_the_sandbox_and_comes_back(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_API_KEY, "real-key-never-used")
    monkeypatch.delenv(ENV_BASE_URL, raising=False)
    with batchtag.sandbox(snapshots=2) as sb:
        assert os.environ[ENV_BASE_URL] == sb.url and os.environ[ENV_API_KEY] == sb.api_key
        assert os.environ[ENV_PROJECT_ID] == "1" and os.environ[ENV_REGION_ID] == "1"
        ids = [s["id"] for s in sb.snapshots()]
        report = batchtag.apply(manifest(ids), report=str(tmp_path / "r.csv"))  # env only
        assert list(report.status) == ["ok", "ok"]
    assert os.environ[ENV_API_KEY] == "real-key-never-used"
    assert ENV_BASE_URL not in os.environ


def test_only_its_own_key_is_accepted(tmp_path):
    with batchtag.sandbox(snapshots=1, env=False) as sb:
        assert os.environ.get(ENV_BASE_URL) != sb.url
        with pytest.raises(batchtag.AbortRun, match="credentials rejected") as info:
            batchtag.apply(
                manifest([sb.snapshots()[0]["id"]]),
                base_url=sb.url,
                api_key="some-other-key",
                project_id=1,
                region_id=1,
                report=str(tmp_path / "r.csv"),
            )
        assert info.value.report.attrs["summary"]["exit_code"] == 3
        assert sb.stats()["responses"] == {"401": 1}


def test_knobs_reach_the_emulator_and_reset_restores(tmp_path):
    with batchtag.sandbox(snapshots=20, lock_rate=1.0, lock_ms=60_000) as sb:
        assert all(s["task_id"] for s in sb.snapshots())
        report = batchtag.apply(
            manifest([sb.snapshots()[0]["id"]]),
            report=str(tmp_path / "r.csv"),
            lock_budget=0.01,  # give up on the lock at once
        )
        assert list(report.status) == ["failed"] and report.http_status.iloc[0] == 409
        assert sb.end_tasks() == 20 and not any(s["task_id"] for s in sb.snapshots())
        again = batchtag.apply(manifest([sb.snapshots()[0]["id"]]), resume=str(tmp_path / "r.csv"))
        assert list(again.status) == ["ok"]
        sb.reset()
        assert sb.stats()["total_requests"] == 0
        assert all(s["task_id"] for s in sb.snapshots())  # locks are part of the seeded state


def test_unknown_knob_is_named_with_the_valid_ones():
    with pytest.raises(
        TypeError, match=r"unknown sandbox option\(s\): lockrate; valid: .*lock_rate"
    ):
        batchtag.sandbox(lockrate=0.2)


def test_start_stop_for_notebooks_and_no_double_start():
    sb = batchtag.sandbox(snapshots=1).start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            sb.start()
        assert "http://127.0.0.1:" in repr(sb)
    finally:
        sb.stop()
    sb.stop()  # idempotent
    assert "stopped" in repr(sb)


def test_decorator_gives_each_call_a_fresh_sandbox(tmp_path):
    seen = []

    @batchtag.sandbox(snapshots=3)
    def job(run: int) -> tuple[int, int]:
        before = stats_from_env()["total_requests"]  # 0: nobody has used this sandbox yet
        frame = manifest(_ids_from_env(), value=f"run{run}")
        report = batchtag.apply(frame, report=str(tmp_path / f"r{run}.csv"))
        seen.append(os.environ[ENV_BASE_URL])
        return before, report.attrs["summary"]["exit_code"]

    assert job(1) == (0, 0) and job(2) == (0, 0)
    assert ENV_BASE_URL not in os.environ or os.environ[ENV_BASE_URL] not in seen


def stats_from_env() -> dict:
    url = f"{os.environ[ENV_BASE_URL]}/_sandbox/stats"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_decorator_on_a_coroutine_function(tmp_path):
    @batchtag.sandbox(snapshots=2)
    async def job() -> list[str]:
        report = await batchtag.apply_async(
            manifest(_ids_from_env()), report=str(tmp_path / "r.csv")
        )
        return list(report.status)

    assert asyncio.run(job()) == ["ok", "ok"]


def _ids_from_env() -> list[str]:
    """The running sandbox's snapshot ids, found the way user code would: via the env."""
    return list_ids(os.environ[ENV_BASE_URL], os.environ[ENV_API_KEY])


def list_ids(base_url: str, api_key: str) -> list[str]:
    """One list call over HTTP, as any client would make it."""
    request = urllib.request.Request(
        f"{base_url}/cloud/v1/snapshots/1/1", headers={"Authorization": f"APIKey {api_key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return [s["id"] for s in json.load(response)["results"]]


def test_bad_input_is_still_refused_before_sending(tmp_path):
    with batchtag.sandbox(snapshots=1) as sb:
        with pytest.raises(ManifestError, match="snapshot_id"):
            batchtag.apply(manifest(["not-a-uuid"]), report=str(tmp_path / "r.csv"))
        assert sb.stats()["total_requests"] == 0


# ---------------------------------------------------------------- the pytest plugin


def test_plugin_is_registered_as_an_entry_point():
    points = importlib.metadata.entry_points(group="pytest11")
    assert "batchtag.sandbox.pytest_plugin" in {p.value for p in points}


def test_fixture_and_marker_in_a_users_suite(pytester):
    pytester.makepyfile(
        """
        import pandas as pd
        import pytest
        import batchtag

        def frame(sb):
            ids = [s["id"] for s in sb.snapshots()][:2]
            return pd.DataFrame({"snapshot_id": ids, "op": "set", "key": "k", "value": "v"})

        def test_default(batchtag_sandbox, tmp_path):
            report = batchtag.apply(frame(batchtag_sandbox), report=str(tmp_path / "r.csv"))
            assert list(report.status) == ["ok", "ok"]
            assert batchtag_sandbox.stats()["writes"] == 2
            assert len(batchtag_sandbox.snapshots()) == 200

        @pytest.mark.batchtag_sandbox(snapshots=3, api_key="team-key")
        def test_marker(batchtag_sandbox, tmp_path):
            assert len(batchtag_sandbox.snapshots()) == 3
            assert batchtag_sandbox.api_key == "team-key"
            report = batchtag.apply(frame(batchtag_sandbox), report=str(tmp_path / "r.csv"))
            assert list(report.status) == ["ok", "ok"]
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=2)
