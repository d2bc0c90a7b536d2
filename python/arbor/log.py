"""Logs in the format an arbor parent reads from a child's stderr
(PROTOCOL.md section 12.4): one hclog JSON record per line."""

import datetime
import json
import logging
import sys

LEVELS = {"trace": 5, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "error": logging.ERROR}
_NAMES = {5: "trace", logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn",
          logging.ERROR: "error", logging.CRITICAL: "error"}


def level_name(levelno):
    for n in sorted(_NAMES, reverse=True):
        if levelno >= n:
            return _NAMES[n]
    return "trace"


class JSONLineHandler(logging.Handler):
    """Writes each record as an hclog JSON line: @level, @message, @module,
    @timestamp, and the record's `fields` (extra={"fields": {...}})."""

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream or sys.stderr

    def emit(self, record):
        try:
            rec = {"@level": level_name(record.levelno), "@message": record.getMessage(),
                   "@timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat()}
            if record.name and record.name != "root":
                rec["@module"] = record.name
            for k, v in (getattr(record, "fields", None) or {}).items():
                rec[str(k)] = v
            if record.exc_info:
                rec["error"] = self.formatException(record.exc_info)
            self.stream.write(json.dumps(rec, default=str) + "\n")
            self.stream.flush()
        except Exception:  # a log line must never break the actor
            self.handleError(record)


def parse_line(line):
    """A child's stderr line as (level, message, fields), the way the parent
    reads it: an hclog JSON record, or a plain line at info level."""
    if line.startswith("{"):
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if isinstance(rec, dict) and isinstance(rec.get("@level"), str):
            fields = {k: v for k, v in rec.items() if not k.startswith("@")}
            if rec.get("@module"):
                fields["module"] = rec["@module"]
            level = LEVELS.get(rec["@level"], logging.INFO)
            return level, str(rec.get("@message", "")), fields
    return logging.INFO, line, {"stream": "stderr"}
