"""Loading a manifest (a file, stdin or a DataFrame) into a frame of strings.

Every cell comes out as text ("" for a missing value), so IDs are never read through float.
Text files remember where each data row starts, so problems can name the file line.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from batchtag.errors import ManifestError, Problem
from batchtag.manifest._csvfile import load_csv, load_csv_bytes
from batchtag.manifest._frames import load_frame, load_parquet
from batchtag.manifest._jsonl import load_jsonl
from batchtag.manifest._model import Manifest

SUFFIXES = ".csv, .csv.gz, .parquet, .jsonl, .ndjson"


def load_manifest(source: Any) -> Manifest:
    """Read a manifest into memory.

    Parameters
    ----------
    source : str, pathlib.Path or pandas.DataFrame
        A file (.csv, .csv.gz, .parquet, .jsonl, .ndjson), "-" for CSV on stdin, or a frame.

    Returns
    -------
    Manifest
        Every column as text; problems found while reading are in `problems`.

        Raises ManifestError when the source cannot be read at all.

    Examples
    --------
    >>> load_manifest(pd.DataFrame({"snapshot_id": [], "tags": []})).kind
    'frame'
    """
    if isinstance(source, pd.DataFrame):
        return load_frame(source)
    if isinstance(source, str) and source == "-":
        return load_csv_bytes(sys.stdin.buffer.read(), "<stdin>")
    if not isinstance(source, (str, Path)):
        raise ManifestError(
            [Problem(f"a manifest is a path, '-' or a DataFrame, not {type(source).__name__}")]
        )
    path = Path(source)
    name = path.name.lower()
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ManifestError([Problem(f"manifest file {str(path)!r} {what}")])
    if name.endswith(".csv"):
        return load_csv(str(path), lambda: pa.input_stream(str(path)), path.read_bytes)
    if name.endswith(".csv.gz"):
        return load_csv(
            str(path),
            lambda: pa.input_stream(str(path), compression="gzip"),
            lambda: _gunzip(path),
        )
    if name.endswith(".parquet"):
        return load_parquet(path)
    if name.endswith((".jsonl", ".ndjson")):
        with open(path, "rb") as stream:
            return load_jsonl(stream)
    raise ManifestError([Problem(f"unknown manifest type {path.name!r}: use one of {SUFFIXES}")])


def _gunzip(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise ManifestError([Problem(f"{path.name} is not a readable gzip file: {exc}")]) from None
