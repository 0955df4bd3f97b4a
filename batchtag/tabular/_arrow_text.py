"""CSV and JSON Lines text of Arrow columns, a column at a time: the same bytes as the row
writers (`CsvFormat.line`, `JsonlFormat.line`) give for the same cells, without a Python
object per cell.

The columns are int64 (a cell is its digits) or text (a cell is its text); JSON Lines also
takes text columns that already hold JSON (`raw`: a list written as its JSON text). A null
is an empty CSV cell and a JSON null. Cells that need more than quoting — a CSV cell with a
comma, a quote or a line break is quoted, its quotes doubled; a JSON string with a quote,
a backslash or a control character is escaped — are found by one regex per column; the few
JSON strings to escape are encoded by Python's own encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from batchtag.model import json_text

if TYPE_CHECKING:
    import pyarrow as pa

CSV_SPECIAL = r'[,"\r\n]'  # what makes csv.writer quote a cell (QUOTE_MINIMAL, "\r\n" ends)
JSON_SPECIAL = r'["\\\x00-\x1f]'  # what json's string encoder escapes (non-ASCII kept)


def csv_lines(columns: Sequence[pa.Array]) -> memoryview:
    """The CSV lines (each ended by "\\n") of rows given as columns of equal length."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = [_csv_cells(column) for column in columns]
    if len(cells) == 1:
        # csv.writer writes a row of one empty cell as '""' (a bare empty line is no row)
        cells[0] = pc.if_else(pc.equal(cells[0], ""), pa.scalar('""'), cells[0])
    return joined_text(
        pc.binary_join_element_wise(pc.binary_join_element_wise(*cells, ","), "\n", "")
    )


def jsonl_lines(names: Sequence[str], columns: Sequence[pa.Array], raw: Sequence[bool]):
    """The JSON Lines (compact objects, each ended by "\\n") of rows given as columns:
    `names` the keys, `raw` whether a text column holds JSON already."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts: list = []
    for i, (name, column, is_json) in enumerate(zip(names, columns, raw, strict=True)):
        parts.append(pa.scalar(("{" if i == 0 else ",") + json_text(name) + ":"))
        parts.append(_json_values(column, is_json))
    parts.append(pa.scalar("}\n"))
    if not names:
        return memoryview(b"")
    return joined_text(pc.binary_join_element_wise(*parts, ""))


def _as_text(column: pa.Array) -> pa.Array:
    import pyarrow as pa

    if pa.types.is_integer(column.type):
        return column.cast(pa.string())
    if pa.types.is_large_string(column.type) or pa.types.is_dictionary(column.type):
        return column.cast(pa.string())
    return column


def _csv_cells(column: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    text = pc.fill_null(_as_text(column), "")
    special = pc.match_substring_regex(text, CSV_SPECIAL)
    if not pc.any(special).as_py():
        return text
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.if_else(special, quoted, text)


def _json_values(column: pa.Array, raw: bool) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    if raw or pa.types.is_integer(column.type):
        return pc.fill_null(_as_text(column), "null")
    text = _as_text(column)
    values = pc.binary_join_element_wise('"', text, '"', "")
    special = pc.fill_null(pc.match_substring_regex(text, JSON_SPECIAL), False)
    if pc.any(special).as_py():
        escaped = [json_text(v) for v in text.filter(special).to_pylist()]
        values = pc.replace_with_mask(values, special, pa.array(escaped, pa.string()))
    return pc.fill_null(values, "null")


def joined_text(cells: pa.Array) -> memoryview:
    """The UTF-8 text of a string column's cells one after the other, without a copy (a
    view of its data buffer)."""
    if not len(cells):
        return memoryview(b"")
    offsets = np.frombuffer(cells.buffers()[1], dtype=np.int32)
    first, last = int(offsets[cells.offset]), int(offsets[cells.offset + len(cells)])
    if first == last:
        return memoryview(b"")
    return memoryview(cells.buffers()[2])[first:last]
