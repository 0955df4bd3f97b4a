"""Logging setup for the CLI: levels from -v/-q, plain or JSON lines, secrets masked; and
whether to colour (``--color/--no-color``, else ``NO_COLOR``, else a terminal)."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

_SECRETS: set[str] = set()
NO_COLOR = "NO_COLOR"  # https://no-color.org: any non-empty value turns colour off
# The command's --color/--no-color (None: decide from NO_COLOR and the terminal).
COLOR: contextvars.ContextVar[bool | None] = contextvars.ContextVar("batchtag_color", default=None)


def register_secret(secret: str | None) -> None:
    """Mask this value in every log record from now on (defence in depth)."""
    if secret and len(secret) >= 4:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


def color_choice(flag: bool | None, env: Mapping[str, str] | None = None) -> bool | None:
    """Colour on (True), off (False) or only on a terminal (None).

    ``--color`` / ``--no-color`` win; without them a non-empty ``NO_COLOR`` turns colour off.

    Examples
    --------
    >>> color_choice(None, {"NO_COLOR": "1"}), color_choice(True, {"NO_COLOR": "1"})
    (False, True)
    >>> color_choice(None, {}) is None
    True
    """
    if flag is not None:
        return flag
    env = os.environ if env is None else env
    return False if env.get(NO_COLOR) else None


def color_allowed() -> bool:
    """False when this command's colour is off (`COLOR`, ``NO_COLOR``); for output that
    colours on its own (the progress bar)."""
    return color_choice(COLOR.get()) is not False


def json_line(data: Mapping[str, Any]) -> str:
    """One JSON object on one line, secrets masked (numpy numbers as numbers, missing
    values as null, anything else JSON does not know as text)."""
    return redact(json.dumps(data, default=_plain, ensure_ascii=False))


def _plain(value: Any) -> Any:
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: ``{"event": "log", "time", "level", "logger",
    "message"}`` (plus ``exception``: the traceback, in one string); `event` names it
    otherwise (the CLI's error lines are ``"error"`` events)."""

    def __init__(self, event: str = "log"):
        super().__init__()
        self.event = event

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "event": self.event,
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json_line(data)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record comes (not when it was made)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


# Other loggers whose records would otherwise print as plain text (Python's warnings, the
# event loop, aiohttp): under --log-format json they go out as JSON too.
OTHER_LOGGERS = ("py.warnings", "asyncio", "aiohttp")


def setup_logging(verbosity: int = 0, fmt: str = "text") -> None:
    """verbosity: -1 quiet (errors), 0 warnings, 1 info, 2+ debug.

    With ``fmt="json"`` every record goes out as one JSON object, Python's warnings and
    other libraries' records too (they would otherwise print plain text on stderr)."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("batchtag")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    if fmt == "json":
        logging.captureWarnings(True)
        for name in OTHER_LOGGERS:
            other = logging.getLogger(name)
            other.handlers[:] = [handler]
            other.propagate = False
            other.setLevel(max(level, logging.WARNING))
    else:
        release_other_loggers()


def release_other_loggers() -> None:
    """Hand Python's warnings and the other libraries' records back to Python's defaults
    (after a command that logged them as JSON)."""
    logging.captureWarnings(False)
    for name in OTHER_LOGGERS:
        other = logging.getLogger(name)
        other.handlers[:] = []
        other.propagate = True
        other.setLevel(logging.NOTSET)
