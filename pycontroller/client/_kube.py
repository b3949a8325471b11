"""The only module that touches the ``kubernetes`` package: config, auth, transport.

Objects travel as decoded JSON (orjson) straight from the HTTP response; the generated
model classes are never built.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, final
from urllib.parse import urlencode

import orjson
import structlog
import urllib3

from pycontroller import errors
from pycontroller._util._paths import check_request_path
from pycontroller.client._errors import api_error
from pycontroller.client._lazy import loads_list
from pycontroller.client._observe import Write, WriteObserver, WriteVerb
from pycontroller.client._proxy import choose_proxy
from pycontroller.client._ratelimit import TokenBucket
from pycontroller.client._request_metrics import RequestMetricsProvider
from pycontroller.client._resource import Resource
from pycontroller.client._watch import (
    MAX_EVENT_BYTES,
    WatchStalledError,
    WatchStream,
    dechunk,
)
from pycontroller.client._writes import OperationResult

_log = structlog.get_logger(__name__)
_KEEPALIVE = [
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3),
]
_PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}
Params = Mapping[str, str | int | bool | None]


class _Credential(str):
    """A header value that keeps its secret out of ``repr`` (so out of rendered frame locals).

    It is still the real string for the HTTP layer; slices stay redacted too, because
    traceback renderers truncate long strings by slicing before they ``repr``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<redacted>'"

    def __getitem__(self, key: Any) -> str:
        return _Credential(str.__getitem__(self, key))


class _UnverifiedHTTPSPool(urllib3.HTTPSConnectionPool):
    """An HTTPS pool for ``verify_tls=False``: urllib3's checks, minus its per-request warning."""

    def _validate_conn(self, conn: Any) -> None:
        urllib3.HTTPConnectionPool._validate_conn(self, conn)
        if conn.is_closed:
            conn.connect()


def _bearer(cfg: Any) -> _Credential | None:
    """The ``Authorization`` value of ``cfg``, redacted in ``repr``; None without one.

    A function of its own so that no frame of a raising caller holds the plain value.
    """
    auth = cfg.auth_settings().get("BearerToken")
    return _Credential(auth["value"]) if auth and auth.get("value") else None


def _valid_header_value(value: str) -> bool:
    """Latin-1 without control characters other than tab (what HTTP allows)."""
    return all(c == "\t" or (" " <= c <= "\xff" and c != "\x7f") for c in value)


def _frameless(exc: BaseException) -> BaseException:
    """Drop the tracebacks of ``exc`` and its chain; return ``exc``.

    A third-party error is translated at this seam; its frames hold request headers and
    bodies (and, for config loading, kubeconfig credentials), which a traceback renderer
    showing locals would print. Its type and message stay.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__
    return exc


_WATCH_READ = 65536  # bytes per socket read of a watch (a burst of events in one call)


def _chunked_body(resp: urllib3.BaseHTTPResponse) -> Any:
    """The buffered socket reader of a chunked, unencoded response nobody has read from,
    for :func:`dechunk`; ``None`` when the response is anything else (urllib3 reads it)."""
    inner = getattr(resp, "_fp", None)  # http.client.HTTPResponse
    reader = getattr(inner, "fp", None)
    if (getattr(inner, "chunked", False) is not True
            or getattr(inner, "chunk_left", 0) is not None
            or resp.headers.get("Content-Encoding", "identity").lower() != "identity"
            or not callable(getattr(reader, "read1", None))):
        return None
    return reader


def _query(params: Params) -> str:
    clean = {k: (str(v).lower() if isinstance(v, bool) else v)
             for k, v in params.items() if v is not None and v != ""}
    return f"?{urlencode(clean)}" if clean else ""


def connect(kubeconfig: str | os.PathLike[str] | None = None, *, context: str | None = None,
            verify_tls: bool = True, request_timeout: float = 30.0,
            qps: float | None = None, burst: int | None = None,
            metrics: RequestMetricsProvider | None = None) -> Client:
    """Build a Client from a kubeconfig (path, ``KUBECONFIG``, ``~/.kube/config``) or the Pod.

    In a Pod (``KUBERNETES_SERVICE_HOST`` set) with no kubeconfig given, in-cluster config
    is used. Exec plugin tokens are refreshed by the ``kubernetes`` package once expired,
    and a 401 answered to one makes the next request run the plugin again (as client-go;
    the refused request is not retried); a kubeconfig's ``tokenFile`` is read again once
    its token is a minute old. Client certificates from an exec plugin are re-issued (by
    running the plugin again) once the credential's ``expirationTimestamp`` passes, or
    for the next request after a 401 answered to them (with or without an expiry), and
    new connections use them. ``verify_tls=False`` turns TLS verification off; otherwise
    only a kubeconfig's ``insecure-skip-tls-verify`` does, and only when it pins no
    certificate authority.

    ``qps``/``burst`` turn on client-side rate limiting (off by default, as in
    controller-runtime; ``burst`` defaults to ``max(1, 1.5 * qps)``). ``metrics`` records
    ``rest_client_*`` metrics (a ``Manager`` supplies its own if none is set).

    Raises:
        ConfigError: no usable configuration, or one with both a certificate authority and
            ``insecure-skip-tls-verify`` (client-go refuses that too).
    """
    # Imported here, not at module level: ``kubernetes`` costs ~0.5 s to import, and only
    # loading a configuration needs it.
    from kubernetes import client as k8s_client  # noqa: PLC0415
    from kubernetes import config as k8s_config  # noqa: PLC0415

    cfg = k8s_client.Configuration()
    reload: _ExecCertificateReload | None = None
    rerun: _ExecTokenRerun | None = None
    try:
        if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ \
                and not os.environ.get("KUBECONFIG"):
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call, unused-ignore]
        else:
            path = os.fspath(kubeconfig) if kubeconfig is not None else None
            expiry, loader = _load_kubeconfig(path, context, cfg)
            if expiry is not None:  # client certificates from an exec plugin
                reload = _ExecCertificateReload(path, context, expiry, verify_tls)
            rerun = _ExecTokenRerun.of(loader, cfg)
            _TokenFileReread.install(loader, cfg)
    except Exception as exc:  # malformed YAML, missing keys, exec plugin failures, ...
        raise errors.ConfigError(
            f"no usable Kubernetes configuration: {exc}") from _frameless(exc)
    if not cfg.verify_ssl and cfg.ssl_ca_cert:
        # As client-go: a pinned CA and insecure-skip-tls-verify contradict each other, and
        # honouring the skip would silently drop the pin.
        raise errors.ConfigError(
            "the kubeconfig sets both a certificate authority and insecure-skip-tls-verify; "
            "remove one (pass verify_tls=False to turn verification off explicitly)")
    if not verify_tls:
        cfg.verify_ssl = False
    client = Client(cfg, request_timeout=request_timeout, qps=qps, burst=burst,
                    metrics=metrics, reload=reload)
    client._rerun = rerun
    return client


def _load_kubeconfig(path: str | None, context: str | None,
                     cfg: Any) -> tuple[float | None, Any]:
    """Load a kubeconfig into ``cfg`` (as ``load_kube_config`` does); return the expiry
    (Unix time; ``inf`` without ``expirationTimestamp``) of client certificates an exec
    plugin issued, or None when the credentials did not come from one, and the loader.

    The ``kubernetes`` package refreshes exec *tokens* itself (its refresh hook), but not
    exec client certificates; ``_ExecCertificateReload`` does that.
    """
    from kubernetes.config import kube_config  # noqa: PLC0415

    loader = kube_config._get_kube_config_loader(  # one loader, so its exec result is ours
        filename=path if path is not None else kube_config.KUBE_CONFIG_DEFAULT_LOCATION,
        active_context=context, persist_config=True)
    cluster = getattr(loader, "_cluster", None)
    skip = cluster.safe_get("insecure-skip-tls-verify") if cluster is not None else None
    if skip is not None and not isinstance(skip, bool):
        # As client-go (a bool field); the ``kubernetes`` package would take "false" as
        # true (``not "false"``) and turn TLS verification off.
        raise ValueError(f"insecure-skip-tls-verify must be true or false, "
                         f"got {type(skip).__name__} {str(skip)[:20]!r}")
    loader.load_and_set(cfg)
    fields = vars(loader)
    user = getattr(loader, "_user", None)
    if "token" in fields or not cfg.cert_file or user is None or "exec" not in user:
        return None, loader
    expiry = fields.get("expiry")
    return (float(expiry.timestamp()) if expiry is not None else math.inf), loader


_TOKEN_FILE_PERIOD = 60.0  # seconds a token read from a tokenFile is used (≙ client-go)


class _TokenFileReread:
    """Reads a kubeconfig's ``tokenFile`` again once the token read is older than
    ``_TOKEN_FILE_PERIOD`` (≙ client-go's cached file token source), so a rotated token
    is used; surrounding whitespace (the file's trailing newline) is not part of the
    token. A file that cannot be read or is empty keeps the last token. Thread-safe.
    """

    def __init__(self, loader: Any) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._read_at = time.monotonic()

    @classmethod
    def install(cls, loader: Any, cfg: Any) -> None:
        """Make ``cfg`` re-read the token file, when the kubeconfig user has one."""
        user = getattr(loader, "_user", None)
        if (user is None or not user.safe_get("tokenFile") or user.safe_get("token")
                or "auth-provider" in user or "token" not in vars(loader)):
            return
        cfg.api_key["authorization"] = str(loader.token).strip()
        cfg.refresh_api_key_hook = cls(loader)

    def __call__(self, cfg: Any) -> None:
        if time.monotonic() - self._read_at < _TOKEN_FILE_PERIOD:
            return
        with self._lock:
            if time.monotonic() - self._read_at < _TOKEN_FILE_PERIOD:
                return
            self._read_at = time.monotonic()
            try:
                if not self._loader._load_user_token():
                    return
            except (OSError, UnicodeDecodeError) as exc:  # keep the last token
                _log.warning("token_file_unreadable", error_type=type(exc).__name__)
                return
            cfg.api_key["authorization"] = str(self._loader.token).strip()


class _ExecTokenRerun:
    """Runs the exec plugin again after a 401 (≙ client-go's exec authenticator, which
    drops a credential the server refused and runs the plugin for the next request).

    The ``kubernetes`` package re-runs the plugin only once its ``expirationTimestamp``
    passed, so a revoked token, or one without an expiry, would be sent forever.
    Thread-safe: concurrent 401s for the same token run the plugin once.
    """

    def __init__(self, loader: Any, cfg: Any) -> None:
        self._loader, self._cfg = loader, cfg
        self._lock = threading.Lock()

    @classmethod
    def of(cls, loader: Any, cfg: Any) -> _ExecTokenRerun | None:
        """The re-runner for a bearer token that came from an exec plugin, else None."""
        user = getattr(loader, "_user", None)
        fields = vars(loader)
        if (user is None or "exec" not in user or "auth-provider" in user
                or user.safe_get("token") or user.safe_get("tokenFile")
                or "token" not in fields):
            return None
        return cls(loader, cfg)

    def __call__(self, refused: str | None) -> None:
        """The server answered 401 to the ``Authorization`` value ``refused``."""
        with self._lock:
            # No local holds the plain token (a traceback showing locals would print it).
            if (self._cfg.auth_settings().get("BearerToken") or {}).get("value") != refused:
                return  # another request already replaced it
            vars(self._loader).pop("expiry", None)  # the new one sets its own, if any
            try:  # the loader logs (without raising) a failing plugin; keeps the old token
                self._loader._load_authentication()
                self._loader._set_config(self._cfg)
            except Exception as exc:  # its frames hold credentials
                raise errors.ConfigError(
                    f"exec plugin credential refresh failed: {type(exc).__name__}: {exc}",
                ) from _frameless(exc)


class _ExecCertificateReload:
    """Re-runs the exec plugin once its client certificate expired, or after the server
    answered 401 to it (≙ client-go's exec authenticator, which re-runs the plugin when
    the cached credential expired or was refused, and closes the connections that used
    the old certificate). Shared by a client and its views; thread-safe.
    """

    def __init__(self, path: str | None, context: str | None, expiry: float,
                 verify_tls: bool) -> None:
        self._path, self._context, self._verify = path, context, verify_tls
        self.lock = threading.Lock()
        self.expiry = expiry  # guarded by lock (read without it as a hint)
        self.generation = 0  # guarded by lock; +1 per rotation
        self.pool: Any = None  # guarded by lock; the newest pool and configuration
        self.cfg: Any = None

    def __call__(self) -> Any:
        """A fresh configuration with the plugin's new certificate; updates ``expiry``."""
        from kubernetes import client as k8s_client  # noqa: PLC0415

        cfg = k8s_client.Configuration()
        expiry, _ = _load_kubeconfig(self._path, self._context, cfg)
        if not self._verify:
            cfg.verify_ssl = False
        # A plugin that stops sending an expiry is asked again only after a 401.
        self.expiry = expiry if expiry is not None else math.inf
        return cfg

    def refused(self, generation: int) -> None:
        """The server answered 401 to the certificate of ``generation``: expire it, so
        the next request runs the plugin (once, however many requests were refused)."""
        with self.lock:
            if generation == self.generation:
                self.expiry = 0.0


def has_config() -> bool:
    """Whether a kubeconfig or in-cluster config looks available (without loading it)."""
    if "KUBERNETES_SERVICE_HOST" in os.environ:
        return True
    paths = os.environ.get("KUBECONFIG", "")
    candidates = [p for p in paths.split(os.pathsep) if p] or [
        os.path.expanduser("~/.kube/config")]
    return any(os.path.isfile(p) for p in candidates)


@final
class Client:
    """Raw JSON access to one API server: get, list, watch, create, update, patch, delete.

    ``max_watch_event_bytes`` caps one watch event (one line of the stream); a longer one
    ends the watch with ``WatchEventTooLargeError``, which makes a reflector relist.

    ``with_write_observer`` returns a view of the client (same connection pool) that
    reports every successful write to a callback.

    ``metrics`` (a ``RequestMetricsProvider`` or ``None``) receives one observation per
    request; a ``Manager`` sets it to its own provider when it is ``None``. Views share
    the client's rate limiter and rotated credentials.

    Thread-safety: thread-safe; one connection pool is shared by all threads and views.
    """

    def __init__(self, configuration: Any, *, request_timeout: float = 30.0,
                 max_watch_event_bytes: int = MAX_EVENT_BYTES,
                 qps: float | None = None, burst: int | None = None,
                 metrics: RequestMetricsProvider | None = None,
                 reload: _ExecCertificateReload | None = None) -> None:
        if max_watch_event_bytes < 1:
            raise ValueError("max_watch_event_bytes must be positive")
        self._max_event = max_watch_event_bytes
        cfg = configuration
        self._cfg = cfg
        self._reload = reload
        self._credentials_seen = 0  # the reload generation this client's pool belongs to
        self.host = str(cfg.host).rstrip("/")
        self._timeout = request_timeout
        self._limiter = (TokenBucket(qps, burst or max(1, int(qps * 1.5)))
                         if qps is not None else None)
        self.metrics = metrics
        self._metrics_host = urllib3.util.parse_url(self.host).netloc or self.host
        pool_kw: dict[str, Any] = {
            "num_pools": 4, "maxsize": 16, "socket_options": _KEEPALIVE,
            "cert_reqs": ssl.CERT_REQUIRED if cfg.verify_ssl else ssl.CERT_NONE,
            "ca_certs": cfg.ssl_ca_cert, "cert_file": cfg.cert_file, "key_file": cfg.key_file,
        }
        if cfg.tls_server_name:
            pool_kw["server_hostname"] = cfg.tls_server_name
        if cfg.assert_hostname is not None:
            pool_kw["assert_hostname"] = cfg.assert_hostname
        proxy = choose_proxy(cfg)
        self._pool: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, proxy_headers=cfg.proxy_headers, **pool_kw)
            if proxy else urllib3.PoolManager(**pool_kw)
        )
        if not cfg.verify_ssl:
            # Said once here, not by urllib3 on every request; for this pool only, so other
            # HTTPS clients in the process keep their InsecureRequestWarning.
            _log.warning("tls_verification_disabled", server=self.host)
            self._pool.pool_classes_by_scheme = {
                **self._pool.pool_classes_by_scheme, "https": _UnverifiedHTTPSPool}
        self._observers: tuple[WriteObserver, ...] = ()
        self._owns_pool = True
        self._rerun: _ExecTokenRerun | None = None  # set by connect(); shared by views

    def with_request_timeout(self, request_timeout: float) -> Client:
        """Return a view of this client whose requests give up after ``request_timeout`` s.

        The bound covers connecting (at most 10 s) and each wait for data. The view shares
        the connection pool, configuration and write observers; ``close()`` on it does
        nothing. Use it where one hung request must not eat a deadline, as the Manager does
        for its Lease (``max(1, renew_deadline / 2)``, as client-go does).

        Raises:
            ValueError: ``request_timeout`` is not a finite number > 0.
        """
        if not 0 < request_timeout < math.inf:
            raise ValueError(f"request_timeout must be a finite number > 0, "
                             f"got {request_timeout!r}")
        view = copy.copy(self)
        view._timeout = request_timeout
        view._owns_pool = False
        return view

    def with_write_observer(self, observer: WriteObserver) -> Client:
        """Return a view of this client that also reports successful writes to ``observer``.

        The view shares this client's connection pool, configuration and any observers
        already registered (views chain). ``observer`` is called with a ``Write`` after
        every successful ``create``, ``replace``, ``patch``, ``apply``, ``apply_status``
        and ``delete`` made through the view (and the helpers built on them, such as
        ``create_or_update``), on the writing thread, before the method returns. Failed
        writes and raw ``request`` calls are not reported. An observer that raises is
        logged and ignored: the write has happened. ``close()`` on a view does nothing;
        the client that created the pool closes it.
        """
        view = copy.copy(self)
        view._observers = (*self._observers, observer)
        view._owns_pool = False
        return view

    def _observed(self, verb: WriteVerb, resource: Resource, namespace: str | None,
                  name: str, result: Any, *, subresource: str | None = None) -> Any:
        """Report a successful write to the observers; return ``result`` unchanged."""
        if not self._observers:
            return result
        if isinstance(result, dict) and result.get("kind") != "Status":
            meta = result.get("metadata") or {}
            name = str(meta.get("name") or name)
            if resource.namespaced:
                namespace = meta.get("namespace") or namespace
        write = Write(verb, resource, namespace if resource.namespaced else None, name,
                      subresource, result)
        for observer in self._observers:
            try:
                observer(write)
            except Exception as exc:
                # No traceback: its frames hold the written object, which may be a Secret.
                _log.error("write_observer_failed", observer=getattr(
                    observer, "__qualname__", type(observer).__name__), verb=verb,
                    resource=str(resource), error=str(exc), error_type=type(exc).__name__)
        return result

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        cfg = self._cfg
        if cfg.refresh_api_key_hook is not None:
            try:  # an exec plugin or token file; its frames hold credentials
                cfg.refresh_api_key_hook(cfg)
            except Exception as exc:
                raise errors.ConfigError(
                    f"refreshing credentials failed: {type(exc).__name__}: {exc}",
                ) from _frameless(exc)
        headers = {"Accept": "application/json", "User-Agent": "pycontroller/0.1"}
        credential = _bearer(cfg)
        if credential is not None:
            if not _valid_header_value(credential):
                # http.client would refuse it with the whole value in its message.
                raise errors.ConfigError(
                    "the credential (token) contains a line break or another character "
                    "not allowed in an HTTP header; check the kubeconfig's token, "
                    "tokenFile or exec plugin")
            headers["Authorization"] = credential
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _send(self, method: str, path: str, *, body: bytes | None = None,
              content_type: str | None = None, timeout: urllib3.Timeout | None = None,
              stream: bool = False) -> urllib3.BaseHTTPResponse:
        check_request_path(path)
        reload = self._reload
        if reload is not None:
            self._sync_credentials(reload)
        generation = self._credentials_seen  # of the pool this request goes through
        metrics = self.metrics
        if self._limiter is not None:
            waited = self._limiter.acquire(method)
            if metrics is not None:
                metrics.observe_rate_limiter_wait(method, self._metrics_host, waited)
        started = time.monotonic()
        headers = self._headers(content_type)
        try:
            resp = self._pool.request(
                method, self.host + path, body=body, headers=headers,
                timeout=timeout or urllib3.Timeout(connect=min(10.0, self._timeout),
                                                   read=self._timeout),
                preload_content=not stream, retries=False, redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            if metrics is not None:
                metrics.observe_request(method, self._metrics_host, "<error>",
                                        time.monotonic() - started)
            raise errors.TransportError(f"{method} {path}: {exc}") from _frameless(exc)
        if metrics is not None:
            metrics.observe_request(method, self._metrics_host, str(resp.status),
                                    time.monotonic() - started)
        if resp.status >= 400:
            data = resp.data if not stream else resp.read()
            resp.release_conn()
            if resp.status == 401:  # new credentials for the next request (as client-go)
                if self._rerun is not None:
                    self._rerun(headers.get("Authorization"))
                if reload is not None:
                    reload.refused(generation)
            raise api_error(resp.status, data, resp.headers.get("Retry-After"))
        return resp

    def _sync_credentials(self, reload: _ExecCertificateReload) -> None:
        """Re-run the exec plugin once its certificate expired; use the newest pool.

        The reload state is shared by a client and its views: whichever sends first after
        the expiry rotates (new pool, old one closed), the others adopt the new pool on
        their next request.
        """
        if time.time() >= reload.expiry:
            with reload.lock:
                if time.time() >= reload.expiry:
                    try:
                        cfg = reload()
                    except Exception as exc:  # the plugin failed; keep the old credentials
                        reload.expiry = time.time() + 10.0  # and try again shortly
                        raise errors.ConfigError(
                            f"exec plugin credential refresh failed: {exc}") from _frameless(exc)
                    fresh = Client(cfg, request_timeout=self._timeout)  # same TLS setup
                    old = reload.pool if reload.pool is not None else self._pool
                    reload.pool, reload.cfg = fresh._pool, cfg
                    reload.generation += 1
                    old.clear()
        if self._credentials_seen != reload.generation and reload.pool is not None:
            self._pool, self._cfg = reload.pool, reload.cfg
            self._credentials_seen = reload.generation

    def request(self, method: str, path: str, *, body: Any = None,
                content_type: str = "application/json") -> Any:
        """Send one request to ``path`` (with query) and return the decoded JSON answer.

        ``path`` must start with ``/`` and have no ``.`` or ``..`` segment; build it with
        ``Resource.path``, which validates every segment.

        Raises:
            ValueError: ``path`` is not of that form (nothing is sent).
            ConfigError: refreshing the credentials (exec plugin, token file) failed.
            APIError: a typed subclass for the HTTP status.
            TransportError: no HTTP answer.
        """
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
        resp = self._send(method, path, body=data, content_type=content_type if data else None)
        raw = resp.data
        return orjson.loads(raw) if raw else None

    # -- reads -------------------------------------------------------------------------
    def get(self, resource: Resource, name: str, namespace: str | None = None) -> Any:
        """GET one object."""
        return self.request("GET", resource.path(namespace, name))

    def list(self, resource: Resource, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None,
             limit: int | None = None, continue_token: str | None = None,
             resource_version: str | None = None,
             resource_version_match: str | None = None) -> Any:
        """LIST one page; returns the decoded list (``items``, ``metadata.continue``...).

        The items are ``LazyObject``s (dicts whose nested values decode on first read)."""
        query = _query({
            "labelSelector": label_selector, "fieldSelector": field_selector, "limit": limit,
            "continue": continue_token, "resourceVersion": resource_version,
            "resourceVersionMatch": resource_version_match,
        })
        raw = self._send("GET", resource.path(namespace) + query).data
        return loads_list(raw) if raw else None

    def list_all(self, resource: Resource, namespace: str | None = None,
                 **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Yield every object across pages (a convenience; informers use the Reflector)."""
        token: str | None = None
        while True:
            page = self.list(resource, namespace, continue_token=token, **kwargs)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def watch(self, resource: Resource, namespace: str | None = None, *,
              resource_version: str | None = None, allow_bookmarks: bool = True,
              timeout_seconds: int | None = None, label_selector: str | None = None,
              field_selector: str | None = None, send_initial_events: bool | None = None,
              resource_version_match: str | None = None,
              inactivity_timeout: float = 100.0) -> WatchStream:
        """Open a WATCH; events are decoded line by line as they arrive.

        The socket has TCP keepalive, and a stream that stays silent (no bytes, not even
        a bookmark) for ``inactivity_timeout`` seconds raises ``TransportError``, so a
        stalled connection is noticed and re-watched.

        Raises:
            APIError: the watch was refused (410 when ``resource_version`` is too old).
            TransportError: no answer.
        """
        query = _query({
            "watch": True, "resourceVersion": resource_version,
            "allowWatchBookmarks": allow_bookmarks, "timeoutSeconds": timeout_seconds,
            "labelSelector": label_selector, "fieldSelector": field_selector,
            "sendInitialEvents": send_initial_events,
            "resourceVersionMatch": resource_version_match,
        })
        path = resource.path(namespace) + query
        resp = self._send("GET", path, stream=True,
                          timeout=urllib3.Timeout(connect=10.0, read=inactivity_timeout))

        body = _chunked_body(resp)

        def chunks() -> Iterator[bytes]:
            try:
                if body is not None:
                    yield from dechunk(lambda: body.read1(_WATCH_READ))
                else:
                    yield from resp.stream(_WATCH_READ, decode_content=True)
            except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
                raise WatchStalledError(
                    f"watch {resource}: silent for {inactivity_timeout:.0f}s",
                ) from _frameless(exc)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                raise errors.TransportError(f"watch {resource}: {exc}") from _frameless(exc)
            finally:
                if body is not None:
                    resp.close()  # http.client never saw the body: the connection is spent
                resp.release_conn()

        def raw_socket() -> socket.socket | None:
            reader = getattr(getattr(resp, "_fp", None), "fp", None)
            sock = getattr(getattr(reader, "raw", None), "_sock", None)
            return sock if isinstance(sock, socket.socket) else None

        def close() -> None:
            # shutdown() wakes a reader blocked in recv(); close() alone may not.
            sock = raw_socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(Exception):
                resp.close()

        def set_timeout(seconds: float) -> None:
            sock = raw_socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.settimeout(seconds)

        return WatchStream(chunks(), close, set_timeout, self._max_event)

    # -- writes ------------------------------------------------------------------------
    def create(self, resource: Resource, obj: Mapping[str, Any],
               namespace: str | None = None) -> Any:
        """POST a new object; ``namespace`` defaults to the object's own."""
        meta = obj.get("metadata") or {}
        ns = (namespace or meta.get("namespace")) if resource.namespaced else None
        result = self.request("POST", resource.path(ns), body=dict(obj))
        return self._observed("create", resource, ns, str(meta.get("name") or ""), result)

    def replace(self, resource: Resource, obj: Mapping[str, Any],
                subresource: str | None = None) -> Any:
        """PUT the object (optimistic concurrency through its resourceVersion)."""
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") if resource.namespaced else None
        result = self.request("PUT", resource.path(ns, meta["name"], subresource),
                              body=dict(obj))
        return self._observed("replace", resource, ns, meta["name"], result,
                              subresource=subresource)

    def patch(self, resource: Resource, name: str, patch: Any, namespace: str | None = None,
              *, patch_type: str = "merge", field_manager: str | None = None,
              force: bool | None = None, subresource: str | None = None) -> Any:
        """PATCH with ``patch_type`` merge, strategic, json or apply (server-side apply)."""
        if patch_type not in _PATCH_TYPES:
            raise ValueError(f"patch_type must be one of {sorted(_PATCH_TYPES)}")
        query = _query({"fieldManager": field_manager, "force": force})
        path = resource.path(namespace, name, subresource) + query
        result = self.request("PATCH", path, body=patch,
                              content_type=_PATCH_TYPES[patch_type])
        return self._observed("apply" if patch_type == "apply" else "patch", resource,
                              namespace, name, result, subresource=subresource)

    def delete(self, resource: Resource, name: str, namespace: str | None = None, *,
               grace_period_seconds: int | None = None,
               propagation_policy: str | None = None) -> Any:
        """DELETE one object."""
        query = _query({"gracePeriodSeconds": grace_period_seconds,
                        "propagationPolicy": propagation_policy})
        result = self.request("DELETE", resource.path(namespace, name) + query)
        return self._observed("delete", resource, namespace, name, result)

    # -- server-side apply and create-or-update (≙ client.Apply, CreateOrUpdate) --------
    def apply(self, resource: Resource, obj: Mapping[str, Any], *, field_manager: str,
              force: bool = False) -> Any:
        """Server-side apply ``obj``: the fields it sets become owned by ``field_manager``.

        ``obj`` is the *intent*: only the fields this manager cares about, with
        ``metadata.name`` (and ``metadata.namespace`` for a namespaced resource);
        ``apiVersion``/``kind`` default to ``resource``'s. Fields another manager owns
        with a different value make the server refuse with ``ConflictError`` unless
        ``force`` takes them over. Creates the object if it does not exist. Returns the
        object as stored. ``metadata.managedFields`` is left out of the request; a
        ``metadata.resourceVersion``, when present, makes the apply conditional on it.

        Raises:
            ConflictError: a field is owned by another manager (and ``force`` is False).
            ValueError: no name, no namespace for a namespaced resource, or a bad
                ``field_manager``.
        """
        return self._apply(resource, obj, field_manager, force, None)

    def apply_status(self, resource: Resource, obj: Mapping[str, Any], *,
                     field_manager: str, force: bool = False) -> Any:
        """Server-side apply ``obj``'s ``status`` through the status subresource.

        As ``apply``, but only ``status`` is written (the server ignores other fields
        sent to the subresource); the object must exist (else ``NotFoundError``).
        """
        return self._apply(resource, obj, field_manager, force, "status")

    def _apply(self, resource: Resource, obj: Mapping[str, Any], field_manager: str,
               force: bool, subresource: str | None) -> Any:
        if not field_manager or len(field_manager) > 128:
            raise ValueError("field_manager must be 1 to 128 characters")
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise ValueError("apply needs metadata.name")
        namespace = meta.get("namespace") if resource.namespaced else None
        if resource.namespaced and not namespace:
            raise ValueError(f"apply to namespaced {resource} needs metadata.namespace")
        body = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
        if "managedFields" in meta:  # never valid in an apply body; objects read back have it
            body["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
        return self.patch(resource, str(name), body, namespace, patch_type="apply",
                          field_manager=field_manager, force=force or None,
                          subresource=subresource)

    def create_or_update(self, resource: Resource, name: str,
                         mutate: Callable[[dict[str, Any]], None],
                         namespace: str | None = None) -> tuple[OperationResult, Any]:
        """Create or update one object so that ``mutate`` holds; write only on a change.

        ≙ ``controllerutil.CreateOrUpdate``. GETs the object; when it is missing,
        ``mutate`` fills a skeleton (``apiVersion``, ``kind``, ``metadata.name`` and
        ``namespace``) that is then created; otherwise ``mutate`` edits the fetched
        object in place and it is replaced (PUT, guarded by its resourceVersion) only if
        it now differs. Returns what happened and the object as stored (the fetched one
        when unchanged). Wrap it in ``retry_on_conflict`` to retry lost races.

        Raises:
            ConflictError: the object changed (or was created) since the GET.
            ValueError: ``mutate`` changed the name or namespace.
        """
        ns = namespace if resource.namespaced else None
        try:
            current = self.get(resource, name, ns)
        except errors.NotFoundError:
            skeleton: dict[str, Any] = {
                "apiVersion": resource.api_version, "kind": resource.kind,
                "metadata": {"name": name, **({"namespace": ns} if ns else {})}}
            mutate(skeleton)
            self._check_key(skeleton, name, ns)
            return OperationResult.CREATED, self.create(resource, skeleton, ns)
        before = copy.deepcopy(current)
        mutate(current)
        self._check_key(current, name, ns)
        if current == before:
            return OperationResult.UNCHANGED, current
        return OperationResult.UPDATED, self.replace(resource, current)

    @staticmethod
    def _check_key(obj: Mapping[str, Any], name: str, namespace: str | None) -> None:
        meta = obj.get("metadata") or {}
        if meta.get("name") != name or (meta.get("namespace") or None) != namespace:
            raise ValueError("create_or_update: mutate must not change the name or namespace")

    def close(self) -> None:
        """Close pooled connections (a no-op on a ``with_write_observer`` view)."""
        if self._owns_pool:
            self._pool.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
