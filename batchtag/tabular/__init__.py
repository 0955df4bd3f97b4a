"""Tabular files: CSV, JSON Lines and Parquet, chosen by suffix, with one object per format.

Records are dicts of plain Python values. A table's columns may carry a *kind* (see `Kind`)
that says how a cell is stored: CSV cells are text, JSON Lines cells are JSON values,
Parquet columns get an Arrow type. Every reader gives back the same Python values, so a
record survives a round trip through any format.

Appending (`open_rows`) hands each batch of rows to the OS before it returns, so a
``kill -9`` loses nothing already written; a crash can only tear the last line, which the
readers drop. Any other unreadable line is an error naming the file and the line.
Whole files are replaced with `atomic_write`: a crash leaves the old file or the new one.

Big tables go through pyarrow without a Python object per cell: `read_columns` reads a few
columns a batch at a time (`NotColumnar` where pyarrow would not read the file as the row
readers do: the caller reads it with those), and `csv_lines` / `jsonl_lines` make the text of Arrow columns, the bytes
the row writers give.

Examples
--------
>>> fmt = table_format("out.csv")
>>> fmt.name
'csv'
"""

from __future__ import annotations

from batchtag.tabular._append import RowAppender, write_all
from batchtag.tabular._arrow_text import csv_lines, joined_text, jsonl_lines
from batchtag.tabular._columns import Columns, NotColumnar, read_columns
from batchtag.tabular._formats import (
    CSV,
    FORMATS,
    JSONL,
    PARQUET,
    STDOUT,
    STDOUT_FORMAT,
    CsvFormat,
    JsonlFormat,
    ParquetFormat,
    TextFormat,
    atomic_write,
    is_stdout,
    read_table,
    table_format,
    write_output,
    write_table,
)
from batchtag.tabular._kinds import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    JSON,
    JSON_TEXT,
    STR,
    TAGS,
    TIME,
    TIME_DTYPE,
    Kind,
    plain,
    str_dtype,
)
from batchtag.tabular._readers import Record, read_error

__all__ = [
    "ANY",
    "BOOL",
    "CSV",
    "Columns",
    "FLOAT",
    "FORMATS",
    "INT",
    "JSON",
    "JSONL",
    "JSON_TEXT",
    "PARQUET",
    "STDOUT",
    "STDOUT_FORMAT",
    "STR",
    "TAGS",
    "TIME",
    "TIME_DTYPE",
    "CsvFormat",
    "JsonlFormat",
    "Kind",
    "NotColumnar",
    "ParquetFormat",
    "Record",
    "RowAppender",
    "TextFormat",
    "atomic_write",
    "csv_lines",
    "is_stdout",
    "write_output",
    "joined_text",
    "jsonl_lines",
    "plain",
    "read_columns",
    "read_error",
    "read_table",
    "str_dtype",
    "table_format",
    "write_all",
    "write_table",
]
