"""Typed values (Arrow columns, Python objects) into text cells, without passing integers
through float: ints stay exact ("3"), whole floats below 2**53 read as ints ("3.0" -> "3"),
other floats keep their shortest form ("2.5"), booleans are "true"/"false", NA is "".
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batchtag.errors import Problem
from batchtag.model import EXACT_FLOAT_LIMIT, ID_COLUMNS, SNAPSHOT_COLUMN, TAGS_COLUMN

STRUCT_TAGS = (
    "is a struct column (as pandas writes a column of dicts to Parquet): a struct gives every"
    " row every key, and the keys a row did not have come back as null, which here means"
    " 'delete this tag'; store tags as JSON text or as a map column"
)


TEXT_CODES = pa.dictionary(pa.int32(), pa.string())


def column_type(name: str) -> pa.DataType:
    """How a manifest column is held: snapshot ids as plain text (nearly every one differs),
    every other column dictionary-encoded (a code a row into its few distinct texts; pandas
    reads it as a categorical).

    Examples
    --------
    >>> column_type("ticket")
    DictionaryType(dictionary<values=string, indices=int32, ordered=0>)
    """
    return pa.large_string() if name == SNAPSHOT_COLUMN else TEXT_CODES


def held_column(name: str, text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A text column as `column_type` says it is held (unchanged when it is already)."""
    kind = column_type(name)
    if text.type == kind:
        return text
    if kind != TEXT_CODES:
        return text.cast(kind)
    if pa.types.is_large_string(text.type):
        text = text.cast(pa.string())
    return pc.dictionary_encode(text)


def python_cell(value: Any) -> str:
    """Text for one Python value: ints exactly, whole floats below 2**53 as ints.

    Parameters
    ----------
    value : Any
        A cell as Python or NumPy holds it.

    Returns
    -------
    str
        Its text; "" for None, NaN and NA.

    Examples
    --------
    >>> [python_cell(v) for v in (3, 3.0, 2.5, True, None)]
    ['3', '3', '2.5', 'true', '']
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        if math.isnan(value):
            return ""
        if value.is_integer() and abs(value) < EXACT_FLOAT_LIMIT:
            return str(int(value))
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    return str(value)


def text_column(name: str, array: Any, problems: list[Problem]) -> pa.Array:
    """Any Arrow column as non-null strings; column-wide problems are appended."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = array
    elif pa.types.is_null(kind):
        text = pa.array([""] * len(array), type=pa.string())
    elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        text = pc.cast(array, pa.string())
    elif pa.types.is_floating(kind):
        text = _float_text(name, array, problems)
    elif pa.types.is_struct(kind) and name == TAGS_COLUMN:
        problems.append(Problem(STRUCT_TAGS, column=name))
        text = pa.array([""] * len(array), type=pa.string())
    elif pa.types.is_map(kind):
        text = pa.array(
            [
                None if v is None else json.dumps(dict(v), ensure_ascii=False)
                for v in array.to_pylist()
            ],
            type=pa.string(),
        )
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            text = pc.cast(array, pa.string())
        except pa.ArrowInvalid:
            problems.append(Problem("binary column is not valid UTF-8 text", column=name))
            text = pa.array([""] * len(array), type=pa.string())
    else:
        text = pa.array(
            [None if v is None else python_cell(v) for v in array.to_pylist()], type=pa.string()
        )
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        text = text.cast(pa.string())
    return pc.fill_null(text, "") if text.null_count else text  # no copy of clean text


def _float_text(name: str, array: pa.Array, problems: list[Problem]) -> pa.Array:
    """Whole floats below 2**53 become integer text; an ID column holding any other float is
    an error, since a large ID stored as float may already be rounded."""
    array = pc.cast(array, pa.float64())
    exact = pc.and_kleene(
        pc.equal(pc.floor(array), array), pc.less(pc.abs(array), float(EXACT_FLOAT_LIMIT))
    )
    exact = pc.fill_null(exact, True)
    if name in ID_COLUMNS and not pc.all(exact, min_count=0).as_py():
        problems.append(
            Problem(
                "holds floating-point numbers that are not exact integers (an integer column with"
                " blanks becomes float and rounds IDs above 2**53): store IDs as text or as a"
                " nullable integer (Int64) column",
                column=name,
            )
        )
    whole = pc.cast(pc.cast(pc.if_else(exact, array, 0.0), pa.int64()), pa.string())
    other = pc.cast(array, pa.string())
    return pc.if_else(exact, whole, other)
