"""The server's log: readable lines by default, or one JSON object per line
(`log_format = "json"`) for a log pipeline, with the call's fields and trace id."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from opentelemetry import trace

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Fields a log call may add with `extra=`, written when present.
CALL_FIELDS = ("method", "collection", "encoder", "status", "duration_ms", "trace_id")


class JsonFormatter(logging.Formatter):
    """time (ISO 8601, UTC, milliseconds), level, logger, message, the call's fields, the
    trace id of the current span, and the exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CALL_FIELDS:
            value = record.__dict__.get(name)
            if value not in (None, ""):
                out[name] = value
        if "trace_id" not in out:
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                out["trace_id"] = format(context.trace_id, "032x")
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(level: str, fmt: str) -> None:
    """Logs to stderr at `level`, as text or JSON. FAISS's loader logs, at INFO, each SIMD
    build it tries and cannot import before it settles on one (it dispatches at run time):
    lines that read as errors, kept to DEBUG (the server logs the level FAISS runs at).

    Nothing else writes to the log unformatted: Python's warnings go through logging, and
    the progress bars Hugging Face draws while a model loads are off (unless
    HF_HUB_DISABLE_PROGRESS_BARS says otherwise), since a log is no terminal."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when it is imported
    logging.captureWarnings(True)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)
