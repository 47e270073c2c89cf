"""Structured (JSON lines) logging. Credentials never reach a log record: see ``redact``."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

_SECRET_PATTERNS = [
    re.compile(r"(?i)(authorization:\s*bearer\s+)\S+"),
    re.compile(r"(?i)((?:token|password|secret|client-key-data|client-certificate-data)"
               r"[\"']?\s*[:=]\s*[\"']?)[^\s,\"'}]+"),
    # A webhook signing secret, wherever it appears.
    re.compile(r"(whsec_)[A-Za-z0-9_-]+"),
    # The user and password of a URL (a broker's or a database's: redis://:secret@host/0).
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/\s@]+(?=@)"),
]


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1[redacted]", text)
    return text


# color_message: uvicorn's copy of a message with terminal colours, for its own formatter.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


def _field(value: object) -> object:
    if isinstance(value, (int, float, bool)):
        return value
    if hasattr(value, "META") and hasattr(value, "path") and hasattr(value, "method"):
        # An HttpRequest (Django's request and security loggers): its repr has the query
        # string, which can carry a token or a code.
        return f"{value.method} {value.path}"
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = _field(value)
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


class DropQueryStrings(logging.Filter):
    """Cuts the query string off the request targets uvicorn logs (access lines, WebSocket
    handshakes), as the portal's own request log does: a query string can carry a token or a
    code, and no pattern in ``redact`` knows every parameter name."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("uvicorn") and isinstance(record.args, tuple):
            record.args = tuple(_path_only(arg) for arg in record.args)
        return True


def _path_only(value: object) -> object:
    if isinstance(value, str) and value.startswith("/") and "?" in value:
        return value.split("?", 1)[0]
    return value
