"""batchtag: bulk-edit the tags of Gcore Cloud volume snapshots.

import batchtag
report = batchtag.apply("manifest.csv", report="out.csv")   # -> DataFrame
summary = batchtag.validate(df)                             # no network
"""

__version__ = "0.1.0"

__all__ = ["apply", "apply_async", "export", "export_async", "validate", "__version__"]


def __getattr__(name: str):
    # Lazy: `batchtag --version` and the sandbox should not pay for pandas at import.
    if name in ("apply", "apply_async", "validate"):
        from batchtag import api

        return getattr(api, name)
    if name in ("export", "export_async"):  # batchtag/export.py; the module itself is callable
        import importlib

        return getattr(importlib.import_module("batchtag.export"), name)
    raise AttributeError(f"module 'batchtag' has no attribute {name!r}")
