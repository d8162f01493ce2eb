"""Keeping designers' preview tokens out of the logs we write.

A preview link (``/preview/<token>/``) is a bearer secret in the URL path. Django logs the
path of every 4xx answer (``Not Found: /preview/...``), runserver logs every request line, and
gunicorn's access log (when turned on) writes request lines and referrers. Each goes through
redact() here: the token is written as ``<token>``. A proxy in front of Mailroom keeps its own
access log; see README ("Security model").
"""

from __future__ import annotations

import logging
import re

from gunicorn.glogging import Logger
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

# /preview/<token>/ and /preview/<token>/email/<id>/: the token is the only secret in a path.
# Any case and repeated slashes too: /Preview//<token>/ is a 404 whose path Django logs.
_PREVIEW_TOKEN = re.compile(r"(/preview/+)[^/\s?#\"']+", re.IGNORECASE)


def redact(text: str) -> str:
    return _PREVIEW_TOKEN.sub(r"\1<token>", text) if "/preview/" in text.lower() else text


class RedactPreviewTokens(logging.Filter):
    """For settings.LOGGING's handlers: rewrites a record whose text holds a preview token.
    Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: leave it as is
            return True
        record.msg, record.args = redact(text), None
        if record.exc_info and not record.exc_text:
            # The traceback, formatted here so that the handler prints the redacted text.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        # Formatters then print the redacted text; the JSON one would format exc_info again.
        record.exc_info = None
        return True


class JsonFormatter(BaseJsonFormatter):
    """EMAILS_LOG_FORMAT=json: python-json-logger's formatter, keeping only the fields of its
    format and the extras Mailroom's own lines pass. Django adds its ``request`` to 4xx and
    5xx lines, whose repr holds the path and query string (a preview token, an admin's search
    for an address): such extras are dropped, not written."""

    EXTRAS = frozenset({"message_id", "state", "provider", "status_code", "exc_info"})

    def process_log_record(self, log_data):
        fields = {self._get_rename(name) for name in self._required_fields}
        return {key: value for key, value in log_data.items() if key in fields | self.EXTRAS}


class GunicornLogger(Logger):
    """gunicorn's logger with the request line, path and referrer of its access log redacted
    (project/gunicorn.conf.py names it)."""

    REDACTED_ATOMS = ("r", "U", "f", "{referer}i")

    def setup(self, cfg):
        super().setup(cfg)
        # Its error log too ("Error handling request /preview/..."), not only the access log.
        self.error_log.addFilter(RedactPreviewTokens())

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in self.REDACTED_ATOMS:
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms
