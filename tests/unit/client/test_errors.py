from __future__ import annotations

import pytest

from pycontroller import errors
from pycontroller.client._errors import api_error


@pytest.mark.parametrize(("status", "cls"), [
    (400, errors.BadRequestError), (401, errors.UnauthorizedError),
    (403, errors.ForbiddenError), (404, errors.NotFoundError), (409, errors.ConflictError),
    (410, errors.ResourceExpiredError), (422, errors.InvalidError),
    (429, errors.TooManyRequestsError), (500, errors.ServerError),
    (503, errors.ServerError), (418, errors.APIError),
])
def test_status_maps_to_type(status: int, cls: type[errors.APIError]) -> None:
    err = api_error(status, b"")
    assert type(err) is cls and err.status == status


def test_status_body_fills_reason_and_message() -> None:
    body = b'{"kind":"Status","reason":"NotFound","message":"pods x not found","code":404}'
    err = api_error(404, body)
    assert err.reason == "NotFound" and "not found" in err.message
    assert err.body is not None and err.body["code"] == 404


def test_watch_error_event_with_expired_reason_is_410() -> None:
    err = api_error(200, {"kind": "Status", "reason": "Expired", "message": "too old"})
    assert isinstance(err, errors.ResourceExpiredError) and err.status == 410


def test_retry_after_is_parsed() -> None:
    err = api_error(429, b"", "3")
    assert isinstance(err, errors.TooManyRequestsError) and err.retry_after == 3.0
    assert api_error(429, b"", "soon").retry_after is None  # type: ignore[attr-defined]


def test_non_json_body_becomes_message() -> None:
    assert api_error(502, b"<html>bad gateway</html>").message == "<html>bad gateway</html>"
