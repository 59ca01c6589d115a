"""How both daemons write their logs: the usual text lines, or one JSON object per line
(`--log-format json`, or `[logging] format = "json"` in agent.toml / hub.toml) for log
shippers that would otherwise parse free text with regular expressions.

A JSON line holds `time` (UTC, ISO 8601, milliseconds), `level`, `logger`, `message`
(the formatted message, exactly the text line's), any `extra=` fields the call passed,
and `exception` with the traceback when there is one. The message is the one the text
format would print, so what the daemons already keep out of their logs (the hub's
tracker secret, enrollment tokens, keys) stays out of the JSON too; an extra field whose
name says it holds a secret (token, secret, password, key) is written as `***`.

Under systemd (stderr is the journal: JOURNAL_STREAM) the text lines drop their time
stamp, which journald adds, and carry their syslog priority instead (JournalFormatter).

Shared with the hub (agent/__init__.py SHARED_WITH_HUB): both must write the same shape.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"
"""Text lines when stderr is the journal (systemd's JOURNAL_STREAM names it): journald
stamps every line itself, so no second time stamp; each line starts with its syslog
priority (`<3>`), which journald strips and records as the entry's PRIORITY, so
`journalctl -p warning` works."""

_SYSLOG_PRIORITY = {"CRITICAL": 2, "ERROR": 3, "WARNING": 4, "INFO": 6, "DEBUG": 7}

_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName",
}
_SECRET_NAME = re.compile(r"token|secret|password|passphrase|key", re.IGNORECASE)
_BASE_KEYS = ("time", "level", "logger", "message", "exception", "stack")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name in _RECORD_FIELDS or name.startswith("_"):
                continue
            key = f"extra_{name}" if name in _BASE_KEYS else name
            entry[key] = "***" if _SECRET_NAME.search(name) else value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class JournalFormatter(logging.Formatter):
    """JOURNAL_FORMAT with the syslog priority prefix on every line of the record (a
    traceback's lines too: journald reads each line of the stream as an entry)."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_SYSLOG_PRIORITY.get(record.levelname, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def stderr_is_journal(environ: dict[str, str] | None = None, stream: Any = None) -> bool:
    """True when stderr is the journal stream systemd connected (JOURNAL_STREAM is
    `DEVICE:INODE` of it; a child with stderr redirected elsewhere inherits the variable
    but not the stream, hence the comparison)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, sep, inode = value.partition(":")
    if not sep or not device.isdigit() or not inode.isdigit():
        return False
    try:
        status = os.fstat((sys.stderr if stream is None else stream).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


def formatter_for(log_format: LogFormat) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return JournalFormatter() if stderr_is_journal() else logging.Formatter(TEXT_FORMAT)


_given_format: list[LogFormat] = []
"""The format the command line asked for, if it did (it wins over the config file)."""


def configure_logging(level: int, log_format: LogFormat | None = None) -> None:
    """Log to stderr at `level` in `log_format` (text if None: the config file may ask
    for JSON later, `use_configured_format`), like `logging.basicConfig`, which adds its
    handler only to a root logger that has none (not under pytest's capture, say)."""
    _given_format[:] = [log_format] if log_format else []
    _set_format(log_format or "text")
    logging.getLogger().setLevel(level)


def use_configured_format(log_format: LogFormat) -> None:
    """The daemon's config file's `[logging] format`, unless the command line chose."""
    if not _given_format:
        _set_format(log_format)


def _set_format(log_format: LogFormat) -> None:
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_meisitong", False)), None)
    if handler is None and not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler._meisitong = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    if handler is not None:
        handler.setFormatter(formatter_for(log_format))
