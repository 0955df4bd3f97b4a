"""batchtag: bulk-edit the tags of Gcore Cloud volume snapshots.

import batchtag
report = batchtag.apply("manifest.csv", report="out.csv")   # -> DataFrame
summary = batchtag.validate(df)                             # no network
"""

__version__ = "0.1.0"

__all__ = ["apply", "apply_async", "validate", "sandbox", "__version__"]


def __getattr__(name: str):
    # Lazy: `batchtag --version` and the sandbox should not pay for pandas at import.
    if name in ("apply", "apply_async", "validate"):
        from batchtag import api

        return getattr(api, name)
    if name == "sandbox":  # the subpackage, itself callable: batchtag.sandbox(snapshots=10)
        from importlib import import_module

        return import_module("batchtag.sandbox")
    raise AttributeError(f"module 'batchtag' has no attribute {name!r}")
