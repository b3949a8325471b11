"""Logging an exception without handing its frames to the application's structlog setup."""

from __future__ import annotations

import sys
import traceback
from typing import Any, Protocol


class _ErrorLogger(Protocol):
    def error(self, event: str, **kw: Any) -> Any: ...


def exception_fields(exc: BaseException) -> dict[str, str]:
    """``error``, ``error_type`` and ``exception``: the exception as plain text.

    ``exception`` is the formatted traceback (chained causes included) with source lines
    but no frame locals: structlog renders a string ``exception`` as it is, whatever the
    configuration, while an ``exc_info`` lets rich or ``dict_tracebacks`` print every local
    of every frame (request headers, the object being processed).
    """
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not break logging
        message = f"<{type(exc).__name__} str() failed>"
    text = "".join(traceback.format_exception(exc)).rstrip("\n")
    return {"error": message, "error_type": type(exc).__name__, "exception": text}


def log_exception(log: _ErrorLogger, event: str, **kw: Any) -> None:
    """Log the exception being handled at error level, as ``exception_fields`` (no locals).

    Use instead of ``log.exception(event, ...)`` inside an ``except`` block.
    """
    exc = sys.exc_info()[1]
    if exc is None:
        log.error(event, **kw)
        return
    log.error(event, **kw, **exception_fields(exc))
