"""Log output that costs the event loop only a queue put: a thread formats the records and writes them.

The standard queue handler formats every record on the caller's thread and its listener writes
and flushes each one on its own, waking for every record. Under load that was a tenth of a
till checkout's time (scripts/bench). Here the loop hands the record over as it is; the writer
thread wakes at most every GATHER_SECONDS and writes what has gathered with one write.

Every line ends with its event's context, the `extra` of the log call, as key=value: the line
format alone would drop it, and an order paid is only worth a log line with its order id. A line
logged while a request is served carries its `request_id` (read from a context variable when the
record is handed over, on the caller's side). LOG_FORMAT=json writes one JSON object a line instead.
`logging_config` is the one configuration, for the app and for uvicorn's own lines.
"""

import atexit
import json
import logging
import queue
import re
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from backend.core.requestid import current_request_id

GATHER_SECONDS = 0.01
_STOP = object()
LINE_FORMAT = "%(levelname)s - %(asctime)s - %(name)s - %(module)s - %(message)s"
# What every record carries; anything else on one was passed in `extra`: the event's context.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class ContextFormatter(logging.Formatter):
    """A line for people, then the record's context as key=value: `order paid order_id=42 member_id=7`."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = " ".join(
            f"{key}={_context_value(value)}" for key, value in vars(record).items() if key not in _RECORD_FIELDS
        )
        return f"{line} {context}" if context else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, the context, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS:
                line[key] = value if isinstance(value, int | float | bool | type(None)) else str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def logging_config(log_format: str) -> dict[str, Any]:
    """The dictConfig of every process: the root logger (uvicorn's loggers included) to the writer thread."""
    formatter = (
        {"()": "backend.core.logs.JsonFormatter"}
        if log_format == "json"
        else {"()": "backend.core.logs.ContextFormatter", "format": LINE_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"standard": formatter},
        "handlers": {
            "queue_listener": {
                "class": "backend.core.logs.GatheringQueueHandler",
                "level": "DEBUG",
                "formatter": "standard",
            }
        },
        "root": {"level": "INFO", "handlers": ["queue_listener"]},
        # uvicorn's lines go to the root's writer; its access log stays off (ACCESS_LOG is the app's own line).
        # Not "uvicorn" itself: configuring a logger resets its children, and its access logger would log again.
        "loggers": {
            "uvicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
    }


def _context_value(value: object) -> str:
    text = str(value)
    if _BARE.fullmatch(text) is None:
        return json.dumps(text, ensure_ascii=False)  # one token on one line, however the value is written
    return text


_BARE = re.compile(r"[^\s\"'=]+")


class GatheringQueueHandler(logging.Handler):
    """The `queue_listener` handler of the app's logging config: records go to a writer thread."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self._records: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, name="log-writer", daemon=True)
        self._writer.start()
        atexit.register(self.close)

    def emit(self, record: logging.LogRecord) -> None:
        if "request_id" not in record.__dict__ and (request_id := current_request_id.get()):
            record.request_id = request_id
        self._records.put(record)

    def close(self) -> None:
        """Write what is queued and stop the writer (idempotent)."""
        if self._writer.is_alive():
            self._records.put(_STOP)
            self._writer.join(timeout=5)
        super().close()

    def _write(self) -> None:
        while True:
            batch = [self._records.get()]
            while True:
                try:
                    batch.append(self._records.get_nowait())
                except queue.Empty:
                    break
            records = [record for record in batch if record is not _STOP]
            stopping = len(records) < len(batch)
            lines = []
            for record in records:
                try:
                    lines.append(self.format(record) + "\n")
                except Exception:
                    self.handleError(record)
            if lines:
                try:
                    self.stream.write("".join(lines))
                    self.stream.flush()
                except Exception:
                    self.handleError(records[-1])
            if stopping:
                return
            time.sleep(GATHER_SECONDS)  # let the next records gather: one wake-up and one write for them all
