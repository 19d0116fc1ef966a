"""Structured logging: one logfmt line per event that matters.

``log_event(logger, "conn.open", peer=addr)`` writes
``2026-11-25T10:00:00.123Z INFO syncrox.rooms conn.open peer=127.0.0.1:5555``.
Values that come from a peer are clipped (``MAX_VALUE_CHARS``) and escaped, so a peer can
never make us write an unbounded or multi-line log entry.
"""

from __future__ import annotations

import logging
import sys
import time

MAX_VALUE_CHARS = 120


def clip(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """Render a value for a log line: bounded, one line, quoted when it has spaces."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if len(text) > limit:
        text = f"{text[:limit]}...(+{len(text) - limit})"
    text = text.encode("unicode_escape").decode("ascii")
    if not text or any(ch in text for ch in ' "='):
        text = '"' + text.replace('"', '\\"') + '"'
    return text


def log_event(
    logger: logging.Logger, event: str, level: int = logging.INFO, **fields: object
) -> None:
    if not logger.isEnabledFor(level):
        return
    parts = [event] + [f"{key}={clip(value)}" for key, value in fields.items()]
    logger.log(level, " ".join(parts))


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        message = record.getMessage()
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname} {record.name} {message}"
        if record.exc_info:
            line += " exc=" + clip(self.formatException(record.exc_info).splitlines()[-1], 300)
        return line


def configure_logging(level: str = "INFO") -> None:
    """Send SyncroX logs to stderr at ``level``. Safe to call more than once."""
    root = logging.getLogger("syncrox")
    root.setLevel(level)
    if not any(getattr(handler, "syncrox", False) for handler in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Formatter())
        handler.syncrox = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False
