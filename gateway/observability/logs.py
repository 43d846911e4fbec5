"""Log lines: JSON objects in production (one per line, for a log pipeline), text in development;
both carry the request id."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from . import requestid

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = requestid.current() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(json_lines: bool, level: int = logging.INFO) -> None:
    """Install one handler on the root logger (again on every call, so the last app's choice wins)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "gateway_handler", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.gateway_handler = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
