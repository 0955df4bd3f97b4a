"""The export's file side: the spill of pages as they arrive, and the chunked output writers.

The format comes from `batchtag.tabular` (one list of suffixes for every file batchtag
writes). The writers stay Arrow-native rather than `batchtag.tabular.open_rows`: an export
chunk is already an Arrow table, and pyarrow's CSV/Parquet writers encode it column-wise
(the per-row Python encoders of `open_rows` are made for the report's few rows per call).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from batchtag.errors import option
from batchtag.record import kind_of
from batchtag.tabular import BOOL, INT, STDOUT, TIME, is_stdout, table_format

SPILL_ROWS = 50_000  # rows per spill row group (and per output chunk)


def output_format(output: str | os.PathLike | None) -> str:
    """The format of `output` from its suffix; stdout (`-` or None) is CSV, or JSON Lines
    under ``--log-format json`` (`batchtag.tabular.STDOUT_FORMAT`)."""
    return table_format(STDOUT if output is None else output, option("output")).name


def field_type(name: str) -> pa.DataType:
    """The Arrow type a page's field is read and spilled as (the contract's kind; instants
    stay the API's ISO text until a Parquet file stores them, see `stored_schema`)."""
    kind = kind_of(name)
    if kind is INT:
        return pa.int64()
    if kind is BOOL:
        return pa.bool_()
    return pa.string()


def stored_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` as a Parquet export stores it: instants as ``timestamp[us, UTC]``."""
    return pa.schema(
        [f.with_type(TIME.to_arrow([]).type) if kind_of(f.name) is TIME else f for f in schema]
    )


class Spill:
    """Pages as Arrow IPC batches (zstd) in a temporary file, read back one chunk at a time.

    IPC rather than Parquet: reading a batch back allocates that batch only (Parquet's
    reader buffers whole row groups) and nothing is re-encoded.
    """

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self._dir = tempfile.TemporaryDirectory(prefix="batchtag-export-")
        self.path = Path(self._dir.name) / "spill.arrows"
        # one thread: compressing a chunk's few buffers on the pool cost more CPU than it saved
        options = pa.ipc.IpcWriteOptions(compression="zstd", use_threads=False)
        self._writer = pa.ipc.new_stream(str(self.path), self.schema, options=options)
        self._pending: list[pa.Table] = []
        self._rows = 0
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._rows += table.num_rows
        self.rows += table.num_rows
        if self._rows >= SPILL_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.concat_tables(self._pending).combine_chunks())
        self._pending, self._rows = [], 0

    def batches(self) -> Iterator[pa.RecordBatch]:
        self._flush()
        self._writer.close()
        with pa.ipc.open_stream(pa.OSFile(str(self.path))) as reader:
            yield from reader

    def close(self) -> None:
        self._dir.cleanup()


class Output:
    """Writes chunks (Arrow tables with the same columns) to CSV, Parquet or JSON Lines.

    A file is written beside its target and moved into place when complete, so a failed
    export never leaves a half file under the requested name.
    """

    def __init__(self, target: str | os.PathLike | None):
        self.format = output_format(target)
        self.to_stdout = target is None or is_stdout(target)
        self.target = None if self.to_stdout else Path(target)
        self._tmp: Path | None = None
        self._sink: Any = None
        self._writer: Any = None

    def _open(self, schema: pa.Schema) -> None:
        if self.to_stdout:
            self._sink = pa.PythonFile(sys.stdout.buffer, mode="w")
        else:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = self.target.with_name(f".{self.target.name}.partial")
            self._sink = open(self._tmp, "wb")  # noqa: SIM115 - closed in close()
        if self.format == "csv":
            self._writer = pacsv.CSVWriter(self._sink, schema)
        elif self.format == "parquet":
            import pyarrow.parquet as pq  # (loaded for a Parquet output only: start-up)

            self._writer = pq.ParquetWriter(self._sink, schema)

    def write(self, table: pa.Table) -> None:
        if self.format == "parquet":
            table = table.cast(stored_schema(table.schema))
        if self._sink is None:
            self._open(table.schema)
        if self._writer is not None:
            self._writer.write_table(table)
            return
        for row in table.to_pylist():
            self._sink.write((json.dumps(row, ensure_ascii=False) + "\n").encode())

    def close(self, schema: pa.Schema) -> None:
        """Finish the file (an empty one with the header when nothing was written)."""
        if self._sink is None:
            self._open(stored_schema(schema) if self.format == "parquet" else schema)
        if self._writer is not None:
            self._writer.close()
        if self.to_stdout:
            sys.stdout.buffer.flush()
            return
        self._sink.flush()
        os.fsync(self._sink.fileno())
        self._sink.close()
        os.replace(self._tmp, self.target)

    def discard(self) -> None:
        if self._sink is not None and not self.to_stdout:
            self._sink.close()
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)
