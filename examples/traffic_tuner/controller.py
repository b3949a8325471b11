"""Tune one ConfigMap key per Service from the Service's request rate.

Each managed Service (annotated with a metrics URL, see :mod:`.config`) is polled with
``Requeue(after=interval)``: the counter is read from a Prometheus text endpoint, the rate
comes from successive readings, a hysteresis state machine decides between the *high* and
the *normal* value, and the ConfigMap key is server-side applied under the field manager
``traffic-tuner`` only when the value it holds differs. A failed scrape changes nothing and
is retried with exponential backoff.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from pycontroller import (
    CONFIGMAPS,
    SERVICES,
    Controller,
    Requeue,
    Watch,
    annotations_changed,
    split_meta_namespace_key,
)
from pycontroller.errors import ConflictError, ForbiddenError, NotFoundError

from .config import ConfigError, TunerConfig, next_state, parse_config, rate, refused_address

MAX_BODY = 8 << 20  # bytes of exposition text read at most
MAX_BACKOFF = 300.0

Obj = Mapping[str, Any]


class ScrapeError(Exception):
    """The endpoint was unreachable, slow, answered an error, or sent no usable counter."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an error: the validated URL is the one we fetch


def _vetted_connection(address: tuple[str, int], timeout: float | None = None,
                       source_address: tuple[str, int] | None = None) -> socket.socket:
    """Connect to ``address`` like ``socket.create_connection``, but only to resolved
    addresses ``refused_address`` allows: a *name* that resolves to the metadata endpoint
    is refused as an address literal is, and the address checked is the one connected
    to (no second lookup a rebinding DNS server could answer differently).

    Raises:
        OSError: every address was refused or could not be reached.
    """
    host, port = address
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port,
                                                               type=socket.SOCK_STREAM):
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if refused_address(ip):
            last = OSError(f"{host} resolves to {ip}: a link-local, multicast or "
                           "unspecified address is not scraped")
            continue
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is None or isinstance(timeout, (int, float)):  # else: the default
                sock.settimeout(timeout)
            if source_address is not None:
                sock.bind(source_address)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    raise last if last is not None else OSError(f"{host}: no address")


class _VettedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _vetted_connection


class _VettedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _vetted_connection


class _VettedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_VettedHTTPConnection, req)


class _VettedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_VettedHTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


# Direct connections only (no HTTP(S)_PROXY: a proxy would resolve the name itself).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects(),
                                      _VettedHTTPHandler(), _VettedHTTPSHandler())


def safe_url(url: str) -> str:
    """The URL for logs and Events: scheme, host and path (a query may hold a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _read_until(resp: Any, deadline: float) -> bytes:
    """The body, at most ``MAX_BODY + 1`` bytes, read in chunks until ``deadline``
    (monotonic): the socket timeout bounds each read, not the whole body, so a server
    dripping bytes could otherwise hold a worker for hours.

    Raises:
        ScrapeError: the body was still arriving at the deadline.
    """
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY:
        if time.monotonic() >= deadline:
            raise ScrapeError("unreachable: timed out reading the response")
        chunk = resp.read1(MAX_BODY + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def scrape(url: str, counter: str, timeout: float) -> float:
    """The sum of the counter's samples (all label sets) at ``url``.

    Raises:
        ScrapeError: see the class.
    """
    deadline = time.monotonic() + timeout
    try:
        with _OPENER.open(urllib.request.Request(
                url, headers={"Accept": "text/plain;version=0.0.4"}), timeout=timeout) as resp:
            body = _read_until(resp, deadline)
    except urllib.error.HTTPError as exc:
        raise ScrapeError(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout, TLS
        reason = getattr(exc, "reason", exc)
        raise ScrapeError(f"unreachable: {reason}") from None
    if len(body) > MAX_BODY:
        raise ScrapeError(f"response larger than {MAX_BODY} bytes")
    names = {counter} if counter.endswith("_total") else {counter, f"{counter}_total"}
    total, found = 0.0, False
    try:
        for family in text_string_to_metric_families(body.decode("utf-8")):
            for sample in family.samples:
                if sample.name in names:
                    total += float(sample.value)
                    found = True
    except (ValueError, UnicodeDecodeError) as exc:
        raise ScrapeError(f"malformed exposition text: {str(exc)[:200]}") from None
    if not found:
        raise ScrapeError(f"counter {counter} not found")
    return total


@dataclass
class _State:
    """What the tuner remembers about one Service (memory only: rates need two readings;
    after a restart the state is taken from the ConfigMap)."""

    config: TunerConfig
    state: str | None = None  # "high" / "normal"; None until the ConfigMap was read
    since: float = 0.0
    reading: tuple[float, float] | None = None  # (time, counter)
    failures: int = 0
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


class TrafficTuner(Controller):
    """Switches a ConfigMap key between two values as a Service's traffic crosses a
    threshold. ``clock`` is monotonic seconds (tests inject one); ``scrape_timeout``
    bounds each request.

    Thread-safe: per-Service state is kept in a dict guarded by a lock, and one Service
    key is never reconciled concurrently.
    """

    resource = SERVICES
    # New Services and changed annotations; the polling itself is Requeue(after=...).
    predicates = (annotations_changed,)
    # ConfigMaps are read from the cache (the current value of the key); their own
    # events need no reconcile: the next poll looks.
    watches = (Watch(CONFIGMAPS, map_to=lambda obj: ()),)
    workers = 4

    def __init__(self, *, name: str = "traffic-tuner", scrape_timeout: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name=name)
        if scrape_timeout <= 0:
            raise ValueError("scrape_timeout must be > 0")
        self.scrape_timeout = scrape_timeout
        self.clock = clock
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def reconcile(self, key: str) -> Requeue | None:
        svc = self.lister.get_by_key(key)
        annotations = ((svc or {}).get("metadata") or {}).get("annotations") or {}
        if svc is None:
            self._forget(key)
            return None
        try:
            config = parse_config(annotations)
        except ConfigError as exc:
            self._forget(key)
            self.log.warning("invalid_configuration", error=str(exc))
            self.events.warning(svc, "InvalidConfiguration", str(exc))
            return None  # fixed by editing the annotations, which reconciles again
        if config is None:
            self._forget(key)
            return None
        with self._lock:
            st = self._states.get(key)
            if st is None or st.config != config:
                st = self._states[key] = _State(config)  # new or reconfigured: start over
        with st.lock:
            return self._poll(key, svc, st)

    def _forget(self, key: str) -> None:
        with self._lock:
            self._states.pop(key, None)

    def _poll(self, key: str, svc: Obj, st: _State) -> Requeue:
        config = st.config
        now = self.clock()
        if st.reading is not None and now - st.reading[0] < config.interval * 0.5:
            # An extra trigger (an annotation edit, a resync) between polls: the rate over
            # a tiny interval is noise, so wait for the schedule.
            return Requeue(after=config.interval - (now - st.reading[0]))
        try:
            value = scrape(config.url, config.counter, self.scrape_timeout)
        except ScrapeError as exc:
            st.failures += 1
            delay = min(config.interval * 2 ** min(st.failures, 16), MAX_BACKOFF)
            self.log.warning("scrape_failed", url=safe_url(config.url), error=str(exc),
                             failures=st.failures, retry_in=delay)
            if str(exc) != st.last_error:
                st.last_error = str(exc)
                self.events.warning(svc, "ScrapeFailed",
                                    f"{safe_url(config.url)}: {exc}; nothing changed")
            return Requeue(after=delay)
        now = self.clock()
        st.failures, st.last_error = 0, ""
        rps = rate(st.reading, (now, value))
        st.reading = (now, value)
        namespace, _ = split_meta_namespace_key(key)
        cm = self.lister_for(CONFIGMAPS).get_by_key(f"{namespace}/{config.configmap}")
        if cm is None:
            self.log.warning("configmap_missing", configmap=config.configmap)
            return Requeue(after=config.interval)
        current = (cm.get("data") or {}).get(config.key)
        if st.state is None:  # first reading since start: take the state the cluster shows
            st.state, st.since = ("high" if current == config.high else "normal"), now
        if rps is not None:
            state = next_state(st.state, st.since, now, rps, config)
            if state != st.state:
                self.log.info("traffic_state_changed", state=state, rps=round(rps, 3),
                              threshold=config.threshold)
                st.state, st.since = state, now
        want = config.high if st.state == "high" else config.normal
        if current != want:
            self._write(svc, cm, config, value=want, state=st.state, rps=rps)
        return Requeue(after=config.interval)

    def _write(self, svc: Obj, cm: Obj, config: TunerConfig, *, value: str, state: str,
               rps: float | None) -> None:
        meta = cm["metadata"]
        # Only our key, under our field manager: other keys (a person's edits) are
        # untouched. The uid keeps a deleted ConfigMap from being re-created by the apply.
        intent = {"metadata": {"name": meta["name"], "namespace": meta["namespace"],
                               "uid": meta["uid"]},
                  "data": {config.key: value}}
        try:
            self.client.apply(CONFIGMAPS, intent, field_manager=self.name, force=True)
        except (NotFoundError, ConflictError, ForbiddenError) as exc:
            # Deleted meanwhile: the uid precondition fails, or (without the create verb)
            # the apply of a missing object is refused as a create.
            self.log.info("configmap_gone", configmap=meta["name"], error=str(exc)[:200])
            return
        how = "no rate yet" if rps is None else f"{rps:.2f} req/s"
        message = (f"traffic {state} ({how}, threshold {config.threshold:g}): "
                   f"configmap {meta['name']} key {config.key} set to the {state} value")
        self.log.info("configmap_tuned", configmap=meta["name"], configmap_key=config.key,
                      state=state)
        self.events.normal(svc, "Tuned", message)
