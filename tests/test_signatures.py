"""`help()` and `inspect.signature` of the Python API list every real parameter."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

import batchtag

PUBLIC = ("apply", "validate", "plan", "undo", "export", "enforce")
ALL = [*PUBLIC, *(f"{n}_async" for n in PUBLIC if n != "validate")]


def documented(doc: str) -> set[str]:
    """The names a numpydoc ``Parameters`` section describes (``a, b : type`` counts both)."""
    section = doc.split("\nParameters\n----------\n", 1)[1].split("\n\n", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line and not line[0].isspace():
            names.update(n.strip() for n in line.split(" : ")[0].split(","))
    return names


@pytest.mark.parametrize("name", ALL)
def test_every_parameter_is_in_the_signature_and_documented(name):
    func = getattr(batchtag, name)
    params = inspect.signature(func).parameters
    kinds = {p.kind for p in params.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds, f"{name} shows **options"
    keywords = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    assert {"base_url", "api_key"} <= keywords or name == "validate"
    assert set(params) <= documented(inspect.getdoc(func))
    assert re.search(r"^Returns\n-------\n", inspect.getdoc(func), re.M)


def test_the_public_functions_stay_functions_after_importing_every_subpackage():
    import pkgutil

    for info in pkgutil.walk_packages(batchtag.__path__, "batchtag."):
        if info.ispkg:
            importlib.import_module(info.name)
    for name in ALL:
        assert inspect.isfunction(getattr(batchtag, name)), name
        assert getattr(batchtag, name).__name__ == name


def test_an_unknown_export_option_names_close_matches():
    with pytest.raises(TypeError, match=r"'concurency' \(did you mean concurrency\?\)"):
        batchtag.export(project_id=1, region_id=1, concurency=4)
