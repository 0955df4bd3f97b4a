"""The Python API explains itself: signatures, docstrings, dir(), short errors in Python spelling."""

from __future__ import annotations

import asyncio
import inspect
import pydoc
import traceback

import pytest
from helpers import API_KEY, set_rows, write_long_csv

import batchtag
from batchtag.defaults import MANIFEST_OPTIONS, PYTHON_OPTIONS


def test_every_option_is_a_documented_keyword_only_parameter():
    for func, names in [
        (batchtag.apply, [o.name for o in PYTHON_OPTIONS]),
        (batchtag.apply_async, [o.name for o in PYTHON_OPTIONS]),
        (batchtag.validate, list(MANIFEST_OPTIONS)),
    ]:
        params = inspect.signature(func).parameters
        assert list(params)[1:] == names
        assert all(params[n].kind is inspect.Parameter.KEYWORD_ONLY for n in names)
        text = pydoc.render_doc(func, renderer=pydoc.plaintext)
        for name in names:
            assert f"{name} : " in text, (func.__name__, name)
    assert inspect.signature(batchtag.apply).parameters["retries"].default == 3


def test_dir_and_top_level_exceptions():
    names = dir(batchtag)
    for name in ["apply", "apply_async", "validate", "ManifestError", "UsageError", "AbortRun"]:
        assert name in names
    assert "importlib" not in names and "_LAZY" not in names
    assert issubclass(batchtag.ManifestError, batchtag.BatchtagError)


def test_an_unknown_keyword_names_close_matches_and_the_valid_ones(tmp_path):
    manifest = write_long_csv(
        tmp_path / "m.csv", set_rows(["2a698d8b-9d9a-40eb-981c-120fc2cf11b4"])
    )
    with pytest.raises(TypeError) as caught:
        batchtag.apply(manifest, transient_retries=1)
    message = str(caught.value)
    assert "'transient_retries' (did you mean retries?)" in message
    assert "valid: report, resume" in message
    assert isinstance(caught.value, batchtag.UsageError)
    with pytest.raises(batchtag.UsageError, match="did you mean form"):
        batchtag.validate(manifest, fomr="long")


def apply_twice_in_a_loop(sandbox, tmp_path) -> BaseException:
    """Re-run a notebook cell: the second apply() into the same report, inside a loop."""
    manifest = write_long_csv(tmp_path / "m.csv", set_rows(sandbox.store.ids()[:2]))
    options = dict(report=tmp_path / "run1.csv", base_url=sandbox.base_url, api_key=API_KEY)
    options.update(project_id=1, region_id=1)

    async def cell() -> BaseException:
        batchtag.apply(manifest, **options)
        try:
            batchtag.apply(manifest, **options)
        except batchtag.UsageError as error:
            return error
        raise AssertionError("the second run should be refused")

    return asyncio.run(cell())


def test_report_exists_error_is_short_and_spelled_for_python(sandbox, tmp_path):
    error = apply_twice_in_a_loop(sandbox, tmp_path)
    assert f"resume='{tmp_path / 'run1.csv'}'" in str(error) and "overwrite=True" in str(error)
    assert "--" not in str(error)
    frames = traceback.extract_tb(error.__traceback__)
    internal = [f for f in frames if "/batchtag/" in f.filename.replace("\\", "/")]
    # only the public function the caller called shows: no runner/helper-thread frames
    assert [f.name for f in internal] == ["apply"]
    assert error.__suppress_context__ and error.__cause__ is None
    assert sandbox.stats()["requests"].get("PATCH", 0) == 2  # the refused run sent nothing


def test_bad_option_values_name_the_python_parameter(tmp_path):
    manifest = write_long_csv(
        tmp_path / "m.csv", set_rows(["2a698d8b-9d9a-40eb-981c-120fc2cf11b4"])
    )
    with pytest.raises(batchtag.UsageError, match=r"^concurrency must be at least 1$"):
        batchtag.apply(manifest, concurrency=0)
    with pytest.raises(batchtag.UsageError, match=r"^connect_timeout must be greater than 0$"):
        batchtag.apply(manifest, connect_timeout=0)
    with pytest.raises(batchtag.UsageError, match=r"max_changes must be N or N%"):
        batchtag.apply(manifest, max_changes="lots", project_id=1, region_id=1, api_key="k")


def test_credentials_in_a_base_url_are_refused_and_never_echoed(tmp_path):
    manifest = write_long_csv(
        tmp_path / "m.csv", set_rows(["2a698d8b-9d9a-40eb-981c-120fc2cf11b4"])
    )
    for url in ["http://u:hunter2-pw@127.0.0.1:1", "ftp://u:hunter2-pw@h"]:
        with pytest.raises(batchtag.UsageError, match="must not contain credentials") as caught:
            batchtag.apply(manifest, base_url=url, api_key="k", project_id=1, region_id=1)
        assert "hunter2" not in str(caught.value) and "api_key" in str(caught.value)


def test_the_cli_spelling_does_not_leak_into_later_python_calls(tmp_path):
    from click.testing import CliRunner

    from batchtag.cli import main

    manifest = write_long_csv(
        tmp_path / "m.csv", set_rows(["2a698d8b-9d9a-40eb-981c-120fc2cf11b4"])
    )
    cli = CliRunner().invoke(main, ["apply", str(manifest), "--concurrency", "0"])
    assert cli.exit_code == 2 and "--concurrency must be at least 1" in cli.output
    with pytest.raises(batchtag.UsageError, match="^concurrency must be at least 1$"):
        batchtag.apply(manifest, concurrency=0)
