"""`where` expressions: a small, safe condition language over an inventory's columns.

One checker for ``export --where``, ``batchtag.export(where=...)`` and a policy's
``[[rule]] where``. The text is parsed with Python's `ast` and checked against a closed
grammar before anything is evaluated; evaluation walks the checked tree with vectorised
pandas operations (pandas ``eval``/``query`` are never used, nothing is ever run)::

    `tag:cost-center`.isna() and size > 100
    status in ['available', 'error'] or name.str.startswith('tmp-')
    `tag:env` != `tag:env`.str.lower()
    created_at < "2024-03-01" and created_at.dt.year >= 2023

The grammar:

- **columns**: a bare name (``size``) or any name in backticks (`` `tag:cost-center` ``);
  a ``tag:``/``ro:``/``volume_tag:`` column that no row has is all-missing, any other
  unknown column is an error naming it;
- **literals**: text, integers, floats, ``True``/``False``/``None``, and lists (or tuples)
  of them;
- **conditions**: comparisons ``== != < <= > >=`` (chained ones too), ``in`` / ``not in``
  a list (``== [...]`` is ``in``, as in pandas), ``and``/``or``/``not``, and ``&``/``|``/
  ``~``, which mean the same (``&`` and ``|`` bind like ``and`` and ``or``, as in
  ``DataFrame.query``);
- **arithmetic** on values: ``+ - * / // % **``, unary ``-``/``+``, parentheses (text only
  takes ``+``);
- **methods** on a column (their arguments are literals): ``isna()``, ``notna()``,
  ``isin([...])``, ``between(low, high)``, ``str.startswith(s)``, ``str.endswith(s)``,
  ``str.contains(pattern)``, ``str.match(pattern)``, ``str.lower()``, ``str.upper()``,
  ``str.len()``, and ``dt.year``, ``dt.month``, ``dt.day`` (text columns holding ISO dates
  are read as dates for ``dt``).

Nothing else: no ``@`` names, no other attribute or call, no subscript, lambda,
comprehension or f-string, no dunder name, no comments. The whole expression must be a
condition (``size`` alone is refused).

Missing values: a comparison or test on a missing value is false, except ``!=``, which is
true (it is ``not ==``); ``not`` inverts that. Text is compared as text (ISO dates compare
in date order); a column of datetimes compares with ISO text as dates.
"""

from __future__ import annotations

import ast
import bisect
import difflib
import functools
import operator
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from batchtag.errors import UsageError, first_line
from batchtag.model import RO_PREFIX, TAG_PREFIX, VOLUME_TAG_PREFIX

__all__ = ["METHODS", "TAG_LIKE_PREFIXES", "Where", "WhereError", "compile_where"]

# all-missing when no row has the key
TAG_LIKE_PREFIXES = (TAG_PREFIX, RO_PREFIX, VOLUME_TAG_PREFIX)
MAX_DEPTH = 200  # nesting levels; deeper is refused (a recursion guard)
MAX_BITS = 65_536  # integer ** integer literals past that size are refused (a memory guard)
SHOWN = 80  # characters of an expression part quoted in a message

COND, VALUE, LIST = "condition", "value", "list"


class WhereError(UsageError):
    """A refused or failing `where` expression; one line, exit code 2 on the command line."""

    def __init__(self, problem: str, label: str = "where"):
        self.problem, self.label = problem, label
        joiner = " " if problem.startswith(("is ", "must ")) else ": "
        super().__init__(f"{label}{joiner}{problem}")


# ---------------------------------------------------------------- methods


@dataclass(frozen=True)
class _Method:
    args: tuple[str, ...]  # kinds of the positional arguments: list, scalar, texts, pattern
    keywords: dict[str, tuple[Any, ...]]  # keyword -> its allowed literal values
    kind: str  # COND or VALUE
    what: str  # what the result is, for "must be a condition" messages
    usage: str


BOOLS = (True, False)
METHODS: dict[str, _Method] = {
    "isna": _Method((), {}, COND, "a test", "isna()"),
    "notna": _Method((), {}, COND, "a test", "notna()"),
    "isin": _Method(("list",), {}, COND, "a test", "isin(['a', 'b'])"),
    "between": _Method(
        ("scalar", "scalar"),
        {"inclusive": ("both", "neither", "left", "right")},
        COND,
        "a test",
        "between(low, high)",
    ),
    "str.startswith": _Method(("texts",), {}, COND, "a test", "str.startswith('text')"),
    "str.endswith": _Method(("texts",), {}, COND, "a test", "str.endswith('text')"),
    "str.contains": _Method(
        ("pattern",), {"case": BOOLS, "regex": BOOLS}, COND, "a test", "str.contains('pattern')"
    ),
    "str.match": _Method(("pattern",), {"case": BOOLS}, COND, "a test", "str.match('pattern')"),
    "str.lower": _Method((), {}, VALUE, "text", "str.lower()"),
    "str.upper": _Method((), {}, VALUE, "text", "str.upper()"),
    "str.len": _Method((), {}, VALUE, "a number", "str.len()"),
}
DATE_PARTS = ("dt.year", "dt.month", "dt.day")
ALLOWED = ", ".join([*METHODS, *DATE_PARTS])
ARITHMETIC: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", operator.mod),
    ast.Pow: ("**", operator.pow),
}
COMPARISONS: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.In: ("in", operator.eq),  # membership: evaluated as isin
    ast.NotIn: ("not in", operator.ne),
}
REFUSED: dict[type, str] = {  # node types outside the grammar -> what the message calls them
    ast.Subscript: "subscripts",
    ast.Slice: "subscripts",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.JoinedStr: "f-strings",
    ast.FormattedValue: "f-strings",
    ast.IfExp: "if/else expressions",
    ast.NamedExpr: "assignments",
    ast.Dict: "dicts",
    ast.Set: "sets (use a list)",
    ast.Starred: "* unpacking",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


# ---------------------------------------------------------------- the source text


class _Source:
    """The expression as Python can parse it, and the way back to the user's text.

    Backticked names become placeholder identifiers, ``&``/``|`` become ``and``/``or``
    (pandas' precedence), line breaks and tabs become spaces; `@` and `#` are refused.
    Inside string literals nothing changes."""

    def __init__(self, text: str):
        self.text = text
        prefix = "_bt"
        while prefix in text:
            prefix += "x"
        self.prefix = prefix
        self.names: dict[str, str] = {}  # placeholder -> column name
        self.spans: list[tuple[int, int, int, int]] = []  # (parsed from, to, text from, to)
        self.parsed = self._scan()
        self.body = self.parsed.strip()  # what is parsed (a leading space is an indent)
        self.lead = len(self.parsed) - len(self.parsed.lstrip())
        self.lines = self.body.split("\n")
        self.line_starts = [0]
        for line in self.lines:
            self.line_starts.append(self.line_starts[-1] + len(line) + 1)
        self.span_starts = [span[0] for span in self.spans]
        self._chars: dict[int, list[int]] = {}  # line -> character index of each UTF-8 byte

    def _scan(self) -> str:
        text, out, i, n = self.text, [], 0, len(self.text)
        length = 0  # characters written to out so far

        def put(piece: str, start: int, end: int, replaced: bool) -> None:
            nonlocal length
            if replaced:
                self.spans.append((length, length + len(piece), start, end))
            out.append(piece)
            length += len(piece)

        while i < n:
            ch = text[i]
            if ch in "'\"":
                end = _string_end(text, i)
                put(text[i:end], i, end, False)
                i = end
            elif ch == "`":
                close = text.find("`", i + 1)
                if close < 0:
                    raise WhereError(f"unclosed backtick in {_quote(text[i:])}")
                name = text[i + 1 : close]
                if not name.strip():
                    raise WhereError("`` is not a column name (an empty backticked name)")
                if "\n" in name or "\r" in name:
                    raise WhereError(f"{_quote(text[i : close + 1])}: a line break in a name")
                placeholder = f"{self.prefix}{len(self.names)}"
                self.names[placeholder] = name
                put(placeholder, i, close + 1, True)
                i = close + 1
            elif ch == "@":
                match = re.match(r"@\s*\w*", text[i:])
                shown = match.group(0) if match and match.group(0) != "@" else "@"
                raise WhereError(f"{_quote(shown)} is not allowed (no @ names)")
            elif ch == "#":
                raise WhereError("# is not allowed (no comments)")
            elif ch in "&|":
                put(f" {'and' if ch == '&' else 'or'} ", i, i + 1, True)
                i += 1
            elif ch in "\n\r\t\f\v":
                put(" ", i, i + 1, False)
                i += 1
            else:
                put(ch, i, i + 1, False)
                i += 1
        return "".join(out)

    def column(self, identifier: str) -> str:
        return self.names.get(identifier, identifier)

    def original(self, start: int, end: int) -> str:
        """The user's text behind parsed[start:end]."""

        def back(at: int, is_end: bool) -> int:
            # the last replacement starting before `at` (at or before it, for a start)
            find = bisect.bisect_left if is_end else bisect.bisect_right
            k = find(self.span_starts, at) - 1
            if k < 0:
                return at
            _, p_to, t_from, t_to = self.spans[k]
            if at < p_to or (is_end and at == p_to):  # inside it: all of it
                return t_to if is_end else t_from
            return at + t_to - p_to

        return self.text[back(start, False) : back(end, True)].strip()

    def segment(self, node: ast.AST) -> str:
        """The user's text of `node`, on one line."""
        start = self._offset(node.lineno, node.col_offset)
        end = self._offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
        return " ".join(self.original(start, end).split())

    def _offset(self, lineno: int, col: int) -> int:
        """A character offset into `parsed` from ast's (line, UTF-8 byte column) in `body`."""
        line = self.lines[lineno - 1]
        if not line.isascii():
            if lineno not in self._chars:
                self._chars[lineno] = [
                    i for i, ch in enumerate(line) for _ in range(len(ch.encode("utf-8")))
                ] + [len(line)]
            col = self._chars[lineno][col]
        return self.lead + self.line_starts[lineno - 1] + col


def _string_end(text: str, start: int) -> int:
    """The index after the string literal opening at `start` (or the end of the text)."""
    quote = text[start]
    triple = text[start : start + 3] == quote * 3
    delimiter = quote * 3 if triple else quote
    i = start + len(delimiter)
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(delimiter, i):
            return i + len(delimiter)
        if not triple and text[i] == "\n":
            return i  # unterminated: let the parser say so
        i += 1
    return len(text)


def _quote(text: str) -> str:
    """`text` in backticks, on one line, shortened."""
    text = " ".join(text.split())
    if len(text) > SHOWN:
        text = text[: SHOWN - 3] + "..."
    return f"`` {text} ``" if "`" in text else f"`{text}`"


# ---------------------------------------------------------------- the checked tree


@dataclass(eq=False)
class _Node:
    text: str  # the user's text of this part
    kind: str  # COND, VALUE or LIST
    what: str  # "a column", "text", "a number", ... (for messages)
    column: bool  # depends on a column (a Series when evaluated)

    def evaluate(self, env: _Env) -> Any:
        try:
            return self.run(env)
        except WhereError:
            raise
        except Exception as error:  # pandas and numpy raise many types for bad operands
            raise WhereError(f"{_quote(self.text)} fails: {first_line(error)}") from None

    def run(self, env: _Env) -> Any:  # pragma: no cover - every node type overrides it
        raise NotImplementedError


@dataclass(eq=False)
class _Column(_Node):
    name: str = ""

    def run(self, env: _Env) -> Any:
        return env.columns[self.name]


@dataclass(eq=False)
class _Literal(_Node):
    value: Any = None

    def run(self, env: _Env) -> Any:
        return self.value


@dataclass(eq=False)
class _Logic(_Node):
    op: str = "and"
    items: tuple[_Node, ...] = ()

    def run(self, env: _Env) -> Any:
        join = operator.and_ if self.op == "and" else operator.or_
        return functools.reduce(join, (env.truth(item.evaluate(env)) for item in self.items))


@dataclass(eq=False)
class _Not(_Node):
    item: _Node | None = None

    def run(self, env: _Env) -> Any:
        value = env.truth(self.item.evaluate(env))
        return ~value if isinstance(value, pd.Series) else not value


@dataclass(eq=False)
class _Arith(_Node):
    op: str = "+"
    left: _Node | None = None
    right: _Node | None = None

    def run(self, env: _Env) -> Any:
        left, right = self.left.evaluate(env), self.right.evaluate(env)
        if self.op != "+" and (_is_text(left) or _is_text(right)):
            raise WhereError(f"{_quote(self.text)}: text only takes + (no {self.op})")
        if self.op == "**" and not isinstance(left, pd.Series) and not isinstance(right, pd.Series):
            if _too_large(left, right):
                raise WhereError(f"{_quote(self.text)}: the result is too large")
        with np.errstate(all="ignore"):
            return ARITHMETIC_BY_SYMBOL[self.op](left, right)


def _too_large(base: Any, exponent: Any) -> bool:
    """An integer power with more than MAX_BITS bits (Python would compute it, slowly)."""
    if not (isinstance(base, int) and isinstance(exponent, int)) or abs(base) < 2:
        return False
    return exponent > 0 and abs(base).bit_length() * exponent > MAX_BITS


ARITHMETIC_BY_SYMBOL = dict(ARITHMETIC.values())
COMPARE_BY_SYMBOL = dict(COMPARISONS.values())


@dataclass(eq=False)
class _Sign(_Node):
    negative: bool = True
    item: _Node | None = None

    def run(self, env: _Env) -> Any:
        value = self.item.evaluate(env)
        if _is_text(value):
            raise WhereError(f"{_quote(self.text)}: text has no sign")
        return -value if self.negative else +value


@dataclass(eq=False)
class _Compare(_Node):
    ops: tuple[str, ...] = ()
    operands: tuple[_Node, ...] = ()

    def run(self, env: _Env) -> Any:
        values = [node.evaluate(env) for node in self.operands]
        result: Any = True
        for op, left, right in zip(self.ops, values, values[1:], strict=False):
            result = result & env.truth(self._pair(op, left, right))
        return result

    @staticmethod
    def _pair(op: str, left: Any, right: Any) -> Any:
        if isinstance(left, tuple) or isinstance(right, tuple):  # membership
            value, members = (right, left) if isinstance(left, tuple) else (left, right)
            found = value.isin(list(members)) if isinstance(value, pd.Series) else value in members
            return ~found if op in ("!=", "not in") else found
        if op == "!=":  # `not ==`: true where a value is missing, whatever the dtype
            equal = _Compare._pair("==", left, right)
            return ~_truth(equal) if isinstance(equal, pd.Series) else not equal
        left, right = _as_dates(left, right), _as_dates(right, left)
        with np.errstate(all="ignore"):
            return COMPARE_BY_SYMBOL[op](left, right)


@dataclass(eq=False)
class _Call(_Node):
    method: str = ""
    receiver: _Node | None = None
    args: tuple[Any, ...] = ()
    keywords: tuple[tuple[str, Any], ...] = ()

    def run(self, env: _Env) -> Any:
        series = self.receiver.evaluate(env)
        args, keywords = self.args, dict(self.keywords)
        name = self.method
        if name in ("isna", "notna"):
            return getattr(series, name)()
        if name == "isin":
            return series.isin(list(args[0]))
        if name == "between":
            low, high = (_as_dates(a, series) for a in args)
            return series.between(low, high, **keywords)
        if name in DATE_PARTS:
            return getattr(_dates(series, self.text).dt, name[3:])
        text = _strings(series)
        method = getattr(text.str, name[4:])
        if name == "str.contains":
            with warnings.catch_warnings():  # a pattern with groups: pandas' UserWarning
                warnings.simplefilter("ignore", UserWarning)
                return method(*args, **keywords)
        return method(*args, **keywords)


class _Env:
    """One evaluation: the frame's columns by name, and its index."""

    def __init__(self, columns: dict[str, pd.Series], index: pd.Index):
        self.columns, self.index = columns, index

    def truth(self, value: Any) -> Any:
        """A condition's value as a bool Series without missing values (or a Python bool)."""
        if isinstance(value, pd.Series):
            return _truth(value)
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            return False
        return bool(value)


def _truth(series: pd.Series) -> pd.Series:
    if series.dtype == bool:
        return series
    return series.eq(True).fillna(False).astype(bool)  # NA, None, NaN: false


def _is_text(value: Any) -> bool:
    if not isinstance(value, pd.Series):
        return isinstance(value, str)
    if pd.api.types.is_object_dtype(value.dtype):
        return pd.api.types.infer_dtype(value, skipna=True) == "string"
    return pd.api.types.is_string_dtype(value.dtype) and not value.isna().all()


def _strings(series: pd.Series) -> pd.Series:
    """`series` ready for `.str`: an all-missing column of another type becomes objects."""
    if not pd.api.types.is_object_dtype(series.dtype) and series.isna().all():
        return series.astype(object)
    return series


def _dates(series: pd.Series, text: str) -> pd.Series:
    """`series` as datetimes: ISO text is parsed (unparsable text is missing)."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series
    if pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype):
        return pd.to_datetime(series, errors="coerce", utc=True, format="ISO8601")
    raise WhereError(f"{_quote(text)}: the column does not hold dates ({series.dtype})")


def _as_dates(value: Any, other: Any) -> Any:
    """A text literal compared with a datetime column, as a Timestamp in the column's zone."""
    if not isinstance(value, str) or not isinstance(other, pd.Series):
        return value
    if not pd.api.types.is_datetime64_any_dtype(other.dtype):
        return value
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise WhereError(f"{value!r} is not a date (it is compared with dates)") from None
    zone = getattr(other.dtype, "tz", None)
    if stamp is pd.NaT:
        return stamp
    if stamp.tzinfo is None and zone is not None:
        return stamp.tz_localize(zone)
    if stamp.tzinfo is not None and zone is None:
        return stamp.tz_convert("UTC").tz_localize(None)
    return stamp


# ---------------------------------------------------------------- checking


class _Checker:
    """Turns a parsed expression into the closed set of node types above, or refuses it."""

    def __init__(self, source: _Source):
        self.source = source
        self.columns: set[str] = set()

    def refuse(self, node: ast.AST, why: str) -> WhereError:
        return WhereError(f"{_quote(self.source.segment(node))} is not allowed ({why})")

    def build(self, node: ast.AST, depth: int = 0) -> _Node:
        if depth > MAX_DEPTH:
            raise WhereError(f"is nested too deeply (more than {MAX_DEPTH} levels)")
        text = self.source.segment(node)
        deeper = depth + 1
        if isinstance(node, ast.Name):
            name = self.source.column(node.id)
            self.columns.add(name)
            return _Column(text, VALUE, "a column", True, name=name)
        if isinstance(node, ast.Constant):
            value = self.literal(node)
            kind = COND if isinstance(value, bool) else VALUE
            return _Literal(text, kind, _describe(value), False, value=value)
        if isinstance(node, (ast.List, ast.Tuple)):
            return _Literal(text, LIST, "a list", False, value=self.literal(node))
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            items = tuple(self.condition(self.build(v, deeper), op) for v in node.values)
            return _Logic(text, COND, "a condition", any(i.column for i in items), op, items)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node, text, deeper)
        if isinstance(node, ast.BinOp):
            return self.binary(node, text, deeper)
        if isinstance(node, ast.Compare):
            return self.compare(node, text, deeper)
        if isinstance(node, ast.Call):
            return self.call(node, text, deeper)
        if isinstance(node, ast.Attribute):
            return self.attribute(node, text, deeper)
        why = REFUSED.get(type(node), type(node).__name__)
        raise self.refuse(node, f"no {why}")

    def condition(self, item: _Node, op: str) -> _Node:
        if item.kind != COND:
            shown = {"and": "and/&", "or": "or/|", "not": "not/~"}[op]
            raise WhereError(
                f"{_quote(item.text)} is {item.what}, not a condition ({shown} take conditions)"
            )
        return item

    def value(self, item: _Node, op: str) -> _Node:
        if item.kind == LIST:
            raise WhereError(f"{_quote(item.text)}: a list goes only after in / not in or ==")
        if item.kind == COND:
            raise WhereError(f"{_quote(item.text)} is a condition, not a value for {op}")
        return item

    def unary(self, node: ast.UnaryOp, text: str, depth: int) -> _Node:
        if isinstance(node.op, (ast.Not, ast.Invert)):
            item = self.condition(self.build(node.operand, depth), "not")
            return _Not(text, COND, "a condition", item.column, item=item)
        negative = isinstance(node.op, ast.USub)
        item = self.value(self.build(node.operand, depth), "-" if negative else "+")
        if isinstance(item, _Literal) and isinstance(item.value, str):
            raise WhereError(f"{_quote(text)}: text has no sign")
        return _Sign(text, VALUE, "a calculation", item.column, negative=negative, item=item)

    def binary(self, node: ast.BinOp, text: str, depth: int) -> _Node:
        if type(node.op) not in ARITHMETIC:
            symbol = {ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@"}
            raise self.refuse(node, f"no operator {symbol.get(type(node.op), '?')}")
        op = ARITHMETIC[type(node.op)][0]
        left = self.value(self.build(node.left, depth), op)
        right = self.value(self.build(node.right, depth), op)
        for side in (left, right):
            if op != "+" and isinstance(side, _Literal) and isinstance(side.value, str):
                raise WhereError(f"{_quote(text)}: text only takes + (no {op})")
        column = left.column or right.column
        return _Arith(text, VALUE, "a calculation", column, op=op, left=left, right=right)

    def compare(self, node: ast.Compare, text: str, depth: int) -> _Node:
        operands = [self.build(n, depth) for n in (node.left, *node.comparators)]
        ops = []
        for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
            if isinstance(op, (ast.Is, ast.IsNot)):
                raise self.refuse(node, "no `is`; use isna() / notna() or ==")
            symbol = COMPARISONS[type(op)][0]
            lists = (left.kind == LIST) + (right.kind == LIST)
            if symbol in ("in", "not in") and (right.kind != LIST or left.kind == LIST):
                raise WhereError(
                    f"{_quote(text)}: {symbol} takes a list on its right, "
                    "e.g. status in ['available', 'error']"
                )
            if lists and (lists == 2 or symbol not in ("==", "!=", "in", "not in")):
                raise WhereError(f"{_quote(text)}: a list goes only after in / not in or ==")
            ops.append(symbol)
        column = any(o.column for o in operands)
        return _Compare(text, COND, "a comparison", column, tuple(ops), tuple(operands))

    def call(self, node: ast.Call, text: str, depth: int) -> _Node:
        func = node.func
        if isinstance(func, ast.Name):
            raise self.refuse(
                node, f"no calls of names like {func.id}(); only the methods {ALLOWED}"
            )
        if not isinstance(func, ast.Attribute):
            raise self.refuse(node, "no calls other than the listed methods")
        name, receiver = self.method_name(func)
        if name in DATE_PARTS:
            raise WhereError(f"{_quote(text)}: {name} takes no parentheses (write .{name})")
        if name not in METHODS:
            raise WhereError(f"method {name!r} is not allowed; allowed: {ALLOWED}")
        spec = METHODS[name]
        item = self.receiver(receiver, name, depth)
        if any(isinstance(a, ast.Starred) for a in node.args) or len(node.args) != len(spec.args):
            raise WhereError(f"{_quote(text)}: write {spec.usage}")
        args = tuple(
            self.argument(a, kind, name, spec) for a, kind in zip(node.args, spec.args, strict=True)
        )
        keywords = []
        for keyword in node.keywords:
            if keyword.arg is None or keyword.arg not in spec.keywords:
                allowed = ", ".join(spec.keywords) or "none"
                raise WhereError(
                    f"{_quote(text)}: {name} takes no keyword {keyword.arg or '**'!r} "
                    f"(keywords: {allowed})"
                )
            value = self.literal(keyword.value)
            if value not in spec.keywords[keyword.arg] or type(value) is not type(
                spec.keywords[keyword.arg][0]
            ):
                choices = " or ".join(repr(v) for v in spec.keywords[keyword.arg])
                raise WhereError(f"{_quote(text)}: {keyword.arg} must be {choices}")
            keywords.append((keyword.arg, value))
        if name in ("str.contains", "str.match") and dict(keywords).get("regex", True):
            _check_pattern(args[0], dict(keywords).get("case", True), text)
        return _Call(text, spec.kind, spec.what, True, name, item, args, tuple(keywords))

    def method_name(self, func: ast.Attribute) -> tuple[str, ast.AST]:
        """`x.str.lower` -> ("str.lower", x); `x.isna` -> ("isna", x)."""
        inner = func.value
        if isinstance(inner, ast.Attribute) and inner.attr in ("str", "dt"):
            return f"{inner.attr}.{func.attr}", inner.value
        return func.attr, inner

    def receiver(self, node: ast.AST, name: str, depth: int) -> _Node:
        item = self.build(node, depth)
        if not item.column or item.kind == LIST:
            raise WhereError(f"{_quote(item.text)}: {name} applies to a column")
        return item

    def attribute(self, node: ast.Attribute, text: str, depth: int) -> _Node:
        name, receiver = self.method_name(node)
        if name in DATE_PARTS:
            item = self.receiver(receiver, name, depth)
            return _Call(text, VALUE, "a number", True, name, item)
        if name in METHODS:
            raise WhereError(f"{_quote(text)}: {name} is a method (write {METHODS[name].usage})")
        raise WhereError(f"attribute {node.attr!r} is not allowed; allowed: {ALLOWED}")

    def argument(self, node: ast.AST, kind: str, name: str, spec: _Method) -> Any:
        value = self.literal(node, f"the arguments of {name}")
        ok = {
            "list": isinstance(value, tuple),
            "scalar": isinstance(value, (str, int, float)) and not isinstance(value, bool),
            "texts": isinstance(value, str)
            or (isinstance(value, tuple) and value and all(isinstance(v, str) for v in value)),
            "pattern": isinstance(value, str),
        }[kind]
        if not ok:
            raise WhereError(f"{_quote(self.source.segment(node))}: write {spec.usage}")
        return value

    def literal(self, node: ast.AST, where: str = "literals") -> Any:
        """A literal's value: str, int, float, bool, None; a list or tuple of them as a tuple;
        a sign on a number is folded."""
        if isinstance(node, ast.Constant):
            value = node.value
            if value is None or isinstance(value, (str, int, float)):  # bool is an int
                return value
            raise self.refuse(node, "literals are text, numbers, True, False, None")
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) in (int, float)
        ):
            value = node.operand.value
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, (ast.List, ast.Tuple)):
            values = []
            for item in node.elts:
                if isinstance(item, (ast.List, ast.Tuple)):
                    raise self.refuse(item, "no lists inside lists")
                values.append(self.literal(item, "list items"))
            return tuple(values)
        raise WhereError(
            f"{_quote(self.source.segment(node))}: {where} must be literals "
            "(text, numbers, True, False, None, lists of them)"
        )


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "a condition"
    return "text" if isinstance(value, str) else "a number"


def _check_pattern(pattern: str, case: bool, text: str) -> None:
    try:
        re.compile(pattern, 0 if case else re.IGNORECASE)
    except re.error as error:
        raise WhereError(f"{_quote(text)}: bad pattern {pattern!r}: {error}") from None


def _check_names(tree: ast.AST, source: _Source) -> None:
    """No dunder identifier anywhere (names, attributes, keywords); backticked names are
    only ever looked up as columns."""
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Name) and node.id not in source.names:
            names.append(node.id)
        elif isinstance(node, ast.Attribute):
            names.append(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            names.append(node.arg)
        for name in names:
            if "__" in name:
                raise WhereError(f"{_quote(name)} is not allowed (no dunder names)")


# ---------------------------------------------------------------- the public face


@dataclass(frozen=True, eq=False)
class Where:
    """A checked `where` expression.

    Attributes
    ----------
    text : str
        The expression as given.
    columns : tuple of str
        The column names it references, sorted (backticked ones without the backticks).
    """

    text: str
    columns: tuple[str, ...]
    _root: _Node = field(repr=False)
    _label: str = field(default="where", repr=False)

    def evaluate(self, frame: pd.DataFrame) -> pd.Series:
        """Which rows of `frame` the condition selects.

        Parameters
        ----------
        frame : pandas.DataFrame
            An inventory: its columns by name. A ``tag:``/``ro:``/``volume_tag:`` column
            it lacks is all-missing.

        Returns
        -------
        pandas.Series
            bool, on `frame`'s index; a missing value counts as not selected.

        Raises
        ------
        WhereError
            An unknown column, or an operation the column's values do not support (one
            line naming the part of the expression).

        Examples
        --------
        >>> frame = pd.DataFrame({"size": [1, 200], "tag:env": ["prod", None]})
        >>> compile_where("size > 100 or `tag:env` == 'prod'").evaluate(frame).tolist()
        [True, True]
        """
        columns = {}
        for name in self.columns:
            if name in frame.columns:
                columns[name] = frame[name]
                if isinstance(columns[name], pd.DataFrame):
                    raise self._error(f"the frame has more than one column {name!r}")
            elif name.startswith(TAG_LIKE_PREFIXES):
                columns[name] = pd.Series(None, index=frame.index, dtype=object)
            else:
                raise self._error(_unknown(name, frame))
        env = _Env(columns, frame.index)
        try:
            value = env.truth(self._root.evaluate(env))
        except WhereError as error:
            raise self._error(error.problem) from None
        except Exception as error:  # e.g. a frame whose column is not what it seems
            raise self._error(f"{_quote(self.text)} fails: {first_line(error)}") from None
        if not isinstance(value, pd.Series):  # a condition on no column: the same for all
            return pd.Series(bool(value), index=frame.index, dtype=bool)
        return value

    def dry_run(self, frame: pd.DataFrame) -> Where:
        """Evaluate on two made-up rows with `frame`'s column types (`frame` may be empty):
        an unknown column or text compared with a number is refused before any data is
        read. Returns self; raises WhereError."""
        self.evaluate(_sample(frame, self.columns))
        return self

    def _error(self, problem: str) -> WhereError:
        return WhereError(problem, self._label)


def compile_where(text: str, *, label: str = "where") -> Where:
    """Check a `where` expression; nothing in it is evaluated.

    Parameters
    ----------
    text : str
        The expression (see the module docstring for the grammar).
    label : str
        What messages call it (``where``, ``--where``).

    Returns
    -------
    Where
        Ready to `Where.evaluate` on a frame.

    Raises
    ------
    WhereError
        A `UsageError` with a one-line message naming the offending part: ``where: `@pd`
        is not allowed (no @ names)``, ``where must be a condition: ...``, ``where is
        empty``.

    Examples
    --------
    >>> compile_where("`tag:env` == 'prod' and size > 100").columns
    ('size', 'tag:env')
    """
    if not isinstance(text, str):
        raise WhereError(f"must be text (a condition), got {type(text).__name__}", label)
    return _compile(text, label)


@functools.lru_cache(maxsize=4096)
def _compile(text: str, label: str) -> Where:
    try:
        return _check(text, label)
    except WhereError as error:
        raise WhereError(error.problem, label) from None


def _check(text: str, label: str) -> Where:
    if not text.strip():
        raise WhereError("is empty")
    source = _Source(text)
    try:
        tree = ast.parse(source.body, mode="eval")
    except SyntaxError as error:
        raise WhereError(f"cannot parse {_quote(text)}: {error.msg}") from None
    except (RecursionError, MemoryError):
        raise WhereError(f"cannot parse {_quote(text)}: it is nested too deeply") from None
    except ValueError as error:
        raise WhereError(f"cannot parse {_quote(text)}: {first_line(error)}") from None
    _check_names(tree, source)
    checker = _Checker(source)
    try:
        root = checker.build(tree.body)
    except RecursionError:
        raise WhereError(f"is nested too deeply (more than {MAX_DEPTH} levels)") from None
    if root.kind != COND:
        raise WhereError(
            f"must be a condition: {_quote(root.text)} is {root.what} "
            "(compare it, e.g. size > 100, or test it, e.g. `tag:env`.isna())"
        )
    return Where(text, tuple(sorted(checker.columns)), root, label)


def _unknown(name: str, frame: pd.DataFrame) -> str:
    known = [str(c) for c in frame.columns if not str(c).startswith(TAG_LIKE_PREFIXES)]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(known)
    return f"unknown column {name!r}{hint}; known: {listed}, `tag:<key>`, `ro:<key>`"


def _sample(frame: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """Two rows with `frame`'s types for `names`: a typical value, then a missing one
    where the type has one. Object columns, and tag columns `frame` lacks, are text."""
    columns: dict[str, pd.Series] = {}
    for name in names:
        if name not in frame.columns:
            if name.startswith(TAG_LIKE_PREFIXES):  # tags are text
                columns[name] = pd.Series(["x", None], dtype=object)
            continue
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype):
            values: list[Any] = [True, False]
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            values = [pd.Timestamp("2024-01-01", tz=getattr(dtype, "tz", None)), pd.NaT]
        elif pd.api.types.is_integer_dtype(dtype):
            values = [1, 1] if isinstance(dtype, np.dtype) else [1, None]
        elif pd.api.types.is_float_dtype(dtype):
            values = [1.5, None]
        elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            values = ["x", None]
        else:
            columns[name] = frame[name].iloc[:0].reindex(range(2))
            continue
        columns[name] = pd.Series(values, dtype=dtype)
    names = list(dict.fromkeys([*frame.columns, *columns]))
    return pd.DataFrame(columns, index=range(2), columns=names)
