"""Column kinds: how one column's values are stored in each format and typed in a frame.

A record holds plain Python values: int, float, str, bool, dict, list, datetime or None.
Each kind turns them into a CSV cell, a JSON value, an Arrow array and a pandas Series, and
back. Values that are missing are None everywhere (an empty CSV cell).

The pandas dtypes are the dtype contract of every frame batchtag returns: text in the
string dtype (`str_dtype`), integers ``Int64``, instants `TIME_DTYPE` (UTC), booleans
``bool`` (``boolean`` with a missing cell), tags and lists as Python objects.
`Kind.to_series` makes such a Series from values, `Kind.conform` turns any Series of the
column into one. Which column has which kind is `batchtag.record.COLUMN_KINDS`.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from batchtag.model import json_text

TIME_DTYPE = "datetime64[ns, UTC]"  # every instant in every frame


def str_dtype() -> Any:
    """pandas' string dtype: ``"str"`` from pandas 3 on; pandas 2 keeps text as objects."""
    import pandas as pd

    return "str" if int(pd.__version__.split(".")[0]) >= 3 else object


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    kind = type(value)
    if kind is int or kind is str or kind is bool or kind is list or kind is dict:
        return False  # the common cells, without the generic checks below
    if kind is float:
        return math.isnan(value)
    if isinstance(value, list | dict | tuple | str | int):
        return False
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


_PLAIN = frozenset({type(None), bool, int, str, list, dict})


def plain(value: Any) -> Any:
    """A cell as a JSON-able scalar: numpy scalars unwrapped, NA to None, dicts and lists
    kept, anything else that is not a scalar as its text."""
    if type(value) in _PLAIN or isinstance(value, bool | int | str | list | dict):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "item"):
        try:
            return plain(value.item())  # numpy scalar
        except (TypeError, ValueError):
            pass
    if _is_missing(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class Kind:
    """Passthrough values: any scalar; text in CSV, JSON values in JSON Lines."""

    name = "any"
    text_as_is = True  # to_text(a str) is the str itself

    def to_text(self, value: Any) -> str:
        value = plain(value)
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, list | dict):
            return json_text(value)
        return str(value)

    def from_text(self, text: str) -> Any:
        return None if text == "" else text

    def to_json(self, value: Any) -> Any:
        return plain(value)

    def from_json(self, value: Any) -> Any:
        return value

    def from_arrow(self, value: Any) -> Any:
        return value

    def to_arrow(self, values: list[Any]):
        import pyarrow as pa

        values = [plain(v) for v in values]
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            array = None
        if array is None or pa.types.is_null(array.type) or pa.types.is_nested(array.type):
            # Mixed or empty passthrough columns are stored as text.
            return pa.array([None if v is None else self.to_text(v) for v in values], pa.string())
        return array

    def to_series(self, values: list[Any]):
        import pandas as pd

        return pd.Series(values) if values else pd.Series(values, dtype=object)

    def conform(self, series):
        """`series` (any dtype, e.g. a column a caller built) as `to_series` types it, with
        its index kept."""
        import pandas as pd

        typed = self.to_series(series.tolist())
        return pd.Series(typed.array, index=series.index, name=series.name, copy=False)

    def from_frame(self, value: Any) -> Any:
        return plain(value)


class IntKind(Kind):
    name = "int"
    text_as_is = False

    def to_text(self, value: Any) -> str:
        if type(value) is int:
            return str(value)
        return "" if _is_missing(value) else str(int(value))

    def from_text(self, text: str) -> Any:
        return None if text == "" else int(text)

    def from_json(self, value: Any) -> Any:
        return None if value is None else int(value)

    def to_arrow(self, values):
        import pyarrow as pa

        return pa.array([None if _is_missing(v) else int(v) for v in values], pa.int64())

    def to_series(self, values):
        import pandas as pd

        return pd.Series(values, dtype="Int64")

    def conform(self, series):

        if series.dtype == "Int64":
            return series
        try:
            return series.astype("Int64")
        except (TypeError, ValueError):  # text: parsed, exactly (never through float)
            return Kind.conform(self, series.map(self._parse, na_action="ignore"))

    def _parse(self, value: Any) -> Any:
        return int(value) if isinstance(value, str) else value


class BoolKind(Kind):
    """True/false: ``true``/``false`` in CSV, JSON booleans, Arrow bool; ``bool`` in a frame
    (``boolean`` when a cell is missing)."""

    name = "bool"
    text_as_is = False

    def to_text(self, value: Any) -> str:
        return "" if _is_missing(value) else ("true" if value else "false")

    def from_text(self, text: str) -> Any:
        if text == "":
            return None
        if text.lower() not in ("true", "false"):
            raise ValueError(f"not true or false: {text!r}")
        return text.lower() == "true"

    def to_arrow(self, values):
        import pyarrow as pa

        return pa.array([None if _is_missing(v) else bool(v) for v in values], pa.bool_())

    def to_series(self, values):
        import pandas as pd

        cells = [None if _is_missing(v) else bool(v) for v in values]
        return pd.Series(cells, dtype="boolean" if None in cells else bool)


class FloatKind(Kind):
    name = "float"
    text_as_is = False

    def to_text(self, value: Any) -> str:
        return "" if _is_missing(value) else repr(float(value))

    def from_text(self, text: str) -> Any:
        return None if text == "" else float(text)

    def to_arrow(self, values):
        import pyarrow as pa

        return pa.array([None if _is_missing(v) else float(v) for v in values], pa.float64())

    def to_series(self, values):
        import pandas as pd

        return pd.Series([math.nan if v is None else v for v in values], dtype="float64")


class StrKind(Kind):
    name = "str"

    def to_text(self, value: Any) -> str:
        if type(value) is str:
            return value
        return "" if _is_missing(value) else str(value)

    def to_arrow(self, values):
        import pyarrow as pa

        return pa.array([None if _is_missing(v) else str(v) for v in values], pa.string())

    def to_series(self, values):
        import pandas as pd

        return pd.Series(values, dtype=str_dtype())

    def conform(self, series):
        dtype = str_dtype()
        if series.dtype == dtype:
            return series
        return series.astype(object).where(series.notna(), None).astype(dtype)


class TimeKind(StrKind):
    """ISO 8601 instants: text in CSV / JSON Lines, timestamp (UTC) in Parquet and frames."""

    name = "time"

    def to_text(self, value: Any) -> str:
        if type(value) is str:
            return value
        if _is_missing(value):
            return ""
        return value.isoformat() if isinstance(value, datetime) else str(value)

    def to_json(self, value: Any) -> Any:
        return self.to_text(value) or None

    def to_arrow(self, values):
        import pyarrow as pa

        texts = pa.array([self.to_text(v) or None for v in values], pa.string())
        return texts.cast(pa.timestamp("us", tz="UTC"))

    def to_series(self, values):
        import pandas as pd

        return self.conform(pd.Series(values, dtype=object))

    def conform(self, series):
        import pandas as pd

        if series.dtype == TIME_DTYPE:
            return series
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            return pd.to_datetime(series, utc=True).astype(TIME_DTYPE)
        return pd.to_datetime(series, utc=True, format="ISO8601").astype(TIME_DTYPE)

    def from_frame(self, value: Any) -> Any:
        if _is_missing(value):
            return None
        return value if isinstance(value, str) else value.isoformat()


class JsonKind(Kind):
    """Lists and dicts: JSON text in CSV and Parquet, JSON values in JSON Lines."""

    name = "json"
    text_as_is = False

    def to_text(self, value: Any) -> str:
        return "" if value is None else json_text(value)

    def from_text(self, text: str) -> Any:
        return None if text == "" else json.loads(text)

    def to_json(self, value: Any) -> Any:
        return value

    def from_json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def from_arrow(self, value: Any) -> Any:
        return self.from_json(value)

    def to_arrow(self, values):
        import pyarrow as pa

        return pa.array([None if v is None else json_text(v) for v in values], pa.string())

    def to_series(self, values):
        import pandas as pd

        return pd.Series([JsonKind.from_frame(self, v) for v in values], dtype=object)

    def from_frame(self, value: Any) -> Any:
        value = _listify(value)
        return None if not isinstance(value, list | dict) and _is_missing(value) else value


def _listify(value: Any) -> Any:
    # pandas reads Parquet lists as numpy arrays
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, list) else value


class JsonTextKind(JsonKind):
    """A JSON document shown as its text in a frame (a request body: a merge patch whose
    nulls mean "delete", which no struct type could keep apart from a missing key). A
    record may hold the document or its text already encoded (written as is)."""

    name = "json_text"
    text_as_is = True

    def to_text(self, value: Any) -> str:
        return value if isinstance(value, str) else JsonKind.to_text(self, value)

    def to_json(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def to_arrow(self, values):
        return StrKind().to_arrow([None if v is None else self.to_text(v) for v in values])

    def to_series(self, values):
        # The text of the document, one spelling whatever the source (compact JSON).
        docs = (json.loads(v) if isinstance(v, str) else v for v in values)
        return StrKind().to_series([None if v is None else json_text(v) for v in docs])

    def from_frame(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else None


class TagsKind(JsonKind):
    """Tag sets (str -> str): JSON text in CSV, objects in JSON Lines, `map<string,
    string>` in Parquet, dicts in frames. Reads also a struct column (what `to_parquet`
    makes of dicts: a null field is a key the row does not have; tag values are never
    null) and JSON text (older Parquet reports)."""

    name = "tags"

    def from_arrow(self, value: Any) -> Any:
        if isinstance(value, list):  # a map arrives as (key, value) pairs
            return dict(value)
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if v is not None}
        return self.from_json(value)

    def from_frame(self, value: Any) -> Any:
        value = _listify(value)
        if isinstance(value, str):
            return self.from_json(value)
        return self.from_arrow(value) if isinstance(value, dict | list) else None

    def to_arrow(self, values):
        import pyarrow as pa

        pairs = [None if v is None else list(v.items()) for v in values]
        return pa.array(pairs, pa.map_(pa.string(), pa.string()))


ANY = Kind()
BOOL = BoolKind()
INT = IntKind()
FLOAT = FloatKind()
STR = StrKind()
TIME = TimeKind()
JSON = JsonKind()
JSON_TEXT = JsonTextKind()
TAGS = TagsKind()
