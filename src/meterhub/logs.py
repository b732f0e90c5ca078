"""Structured logging: JSON lines in the data folder, readable lines on the console.

A logged exception's traceback goes to the JSON log file; the console shows its last line only (the
operator reads a message, the developer the file), unless there is no log file to hold it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["JsonFormatter", "setup_logging"]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and every ``extra=`` field (device, register …)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class _ConsoleFormatter(logging.Formatter):
    def __init__(self, *, tracebacks: bool) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        tail = " ".join(f"{k}={v}" for k, v in extras.items())
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        text = f"{base} {tail}" if tail else base
        if record.exc_info:
            if self.tracebacks:
                text += "\n" + self.formatException(record.exc_info)
            elif record.exc_info[1] is not None:
                exc = record.exc_info[1]
                text += f" ({type(exc).__name__}: {exc}; traceback in meterhub.log)"
        return text


def setup_logging(data_dir: Path | None, *, level: int = logging.INFO, console: bool = True) -> None:
    """Configure the root logger once: JSON to ``DATA_DIR/meterhub.log`` and text to stderr."""
    root = logging.getLogger()
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    if console:
        ch = logging.StreamHandler(sys.stderr)
        ch.setFormatter(_ConsoleFormatter(tracebacks=data_dir is None))
        ch.setLevel(level)
        root.addHandler(ch)
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(data_dir / "meterhub.log", encoding="utf-8")
        fh.setFormatter(JsonFormatter())
        root.addHandler(fh)
    for noisy in ("pymodbus", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
