"""Keep secrets out of the server's logs.

uvicorn's access log prints each request line with its full query string; a credential
in a URL (an old ``?token=`` link, a stream ``?ticket=``, a login ``?code=``) would land
in the log files. :func:`install_redaction` adds a filter to the ``uvicorn.access`` and
``uvicorn.error`` loggers that replaces those parameters' values with ``***``.
"""

from __future__ import annotations

import logging
import re

#: query parameters whose values never reach a log
SECRET_PARAMS = ("token", "ticket", "code", "access_token", "api_key")
_SECRET_RE = re.compile(r"(?i)([?&;](?:" + "|".join(SECRET_PARAMS) + r")=)[^&#\s\"']*")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """``text`` with secret query values and bearer tokens replaced by ``***``."""
    return _BEARER_RE.sub(r"\1***", _SECRET_RE.sub(r"\1***", text))


class RedactSecrets(logging.Filter):
    """Rewrites a record's message arguments (and message) through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_redaction(names: tuple[str, ...] = ("uvicorn.access", "uvicorn.error", "uvicorn")) -> None:
    """Add :class:`RedactSecrets` to the named loggers (once each)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
