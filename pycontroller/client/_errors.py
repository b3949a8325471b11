"""Turn HTTP failures into ``pycontroller.errors`` types."""

from __future__ import annotations

from typing import Any

import orjson

from pycontroller import errors

_BY_STATUS: dict[int, type[errors.APIError]] = {
    400: errors.BadRequestError,
    401: errors.UnauthorizedError,
    403: errors.ForbiddenError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    410: errors.ResourceExpiredError,
    422: errors.InvalidError,
    429: errors.TooManyRequestsError,
}


def api_error(status: int, body: bytes | dict[str, Any] | None,
              retry_after: str | None = None) -> errors.APIError:
    """Build the typed error for an HTTP status and its (Status) body.

    A ``Status`` with reason ``Expired``/``Gone`` or code 410 becomes
    ``ResourceExpiredError`` whatever the HTTP status (watch ERROR events carry 200).
    """
    decoded: dict[str, Any] | None
    if isinstance(body, bytes):
        try:
            loaded = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            loaded = None
        decoded = loaded if isinstance(loaded, dict) else None
        message = "" if decoded else body[:500].decode(errors="replace")
    else:
        decoded, message = body, ""
    reason = ""
    if decoded is not None:
        reason = str(decoded.get("reason", ""))
        message = str(decoded.get("message", message))
        status = int(decoded.get("code") or status)
    if reason in ("Expired", "Gone"):
        status = 410
    cls = _BY_STATUS.get(status, errors.ServerError if status >= 500 else errors.APIError)
    err = cls(status, reason, message, decoded)
    if isinstance(err, errors.TooManyRequestsError):
        err.retry_after = _retry_after(retry_after, decoded)
    return err


def _retry_after(header: str | None, status: dict[str, Any] | None) -> float | None:
    """Seconds from the ``Retry-After`` header, else the Status ``details.retryAfterSeconds``.

    Only a non-negative number of seconds is accepted (the API server never sends an HTTP
    date here); anything else is ignored.
    """
    candidates: list[object] = [header]
    details = status.get("details") if status else None
    if isinstance(details, dict):
        candidates.append(details.get("retryAfterSeconds"))
    for value in candidates:
        if value is None or isinstance(value, bool):
            continue
        try:
            seconds = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if 0 <= seconds < 86400:
            return seconds
    return None
