"""A tiny HTTPS client for the control plane's own housekeeping (readiness, nodes, etcd).

Users talk to the apiserver through ``pycontroller.client``; this exists so that starting
a control plane needs nothing but the standard library.
"""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from pycontroller._util._paths import check_request_path


@dataclass(frozen=True, slots=True)
class Response:
    """Status code and decoded JSON body (None when the body is not JSON)."""

    status: int
    body: Any
    text: str


def request(
    host: str, port: int, method: str, path: str, *, body: Any = None,
    content_type: str = "application/json", ca: Path | None = None,
    cert: tuple[Path, Path] | None = None, token: str | None = None, timeout: float = 10.0,
) -> Response:
    """Send one request (HTTPS when ``ca`` is given, else HTTP) and read the whole answer.

    Raises:
        ValueError: ``path`` is not absolute or has a dot segment (nothing is sent).
    """
    check_request_path(path)
    conn: http.client.HTTPConnection
    if ca is not None:
        ctx = ssl.create_default_context(cafile=str(ca))
        if cert is not None:
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = orjson.dumps(body)
        headers["Content-Type"] = content_type
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    text = raw.decode(errors="replace")
    try:
        decoded = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        decoded = None
    return Response(resp.status, decoded, text)
