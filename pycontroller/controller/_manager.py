"""Manager: the composition root (≙ controller-runtime's manager).

Builds one SharedInformerFactory for all its controllers, wires each controller's
handlers, queue and metrics, starts informers, waits for their caches, starts workers,
serves ``/healthz`` ``/readyz`` ``/metrics``, and on SIGTERM/SIGINT stops in order.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any, final

import structlog

from pycontroller.cache._gc import freeze_cache
from pycontroller.cache._informer_factory import SharedInformerFactory, wait_for_cache_sync
from pycontroller.cache._processor import Registration
from pycontroller.client._kube import Client
from pycontroller.controller._controller import Controller
from pycontroller.controller._http import ProbeServer, Route
from pycontroller.controller._metrics import ControllerMetrics
from pycontroller.errors import CacheSyncTimeoutError
from pycontroller.leaderelection import (
    LeaderElectionConfig,
    LeaderElector,
    LeaseLock,
    in_cluster_namespace,
)
from pycontroller.metrics.prometheus import PrometheusMetricsProvider, exposition
from pycontroller.workqueue import RateLimitingQueue

_log = structlog.get_logger(__name__)


@final
class Manager:
    """Runs controllers with shared informers, probes, metrics and graceful shutdown.

    ``run()`` blocks until SIGTERM/SIGINT (or ``stop`` is set) and returns the process
    exit code: 0 after a clean shutdown, 1 if the caches did not sync within
    ``sync_timeout`` (the error names the resources) or an informer died (logged as
    ``informer_failed`` with the cause; ``/healthz`` fails from then on). On the first
    signal the workers take no new keys, running reconciles get ``grace_period`` seconds,
    then informers stop; a second signal exits at once.

    Bind addresses are ``host:port``; the defaults listen on loopback (local runs). In a
    Pod pass ``":8080"``/``":8081"`` to listen on all interfaces. ``None`` disables one.

    With ``leader_election`` (and the Lease ``leader_election_id``, in
    ``leader_election_namespace``: by default the Pod's own namespace, read from its
    service-account mount; outside a Pod it must be given), every replica fills
    its caches, but only the leader runs workers; ``/readyz`` turns ready once the caches
    have synced and the replica leads. A leader that loses its Lease hands out no further
    key from that instant (the workers run with the elector's leading event) and ``run()``
    returns 1 at once, without the grace period: running reconciles are abandoned, not
    awaited (as controller-runtime does), so exit the process and let the Pod restart and
    stand for election again.

    Thread-safety: configure (``add``) from one thread before ``run``; ``ready``/``healthy``
    may be called from any thread.
    """

    def __init__(
        self, client: Client, *, namespace: str | None = None, resync_period: float = 0.0,
        metrics_bind_address: str | None = "127.0.0.1:8080",
        health_probe_bind_address: str | None = "127.0.0.1:8081",
        sync_timeout: float = 120.0, grace_period: float = 30.0,
        registry: Any = None, handle_signals: bool = True,
        leader_election: LeaderElectionConfig | None = None,
        leader_election_id: str = "", leader_election_namespace: str | None = None,
        identity: str = "",
    ) -> None:
        self._client = client
        self._metrics = (PrometheusMetricsProvider() if registry is None
                         else PrometheusMetricsProvider(registry=registry))
        if client.metrics is None:  # the client's rest_client_* metrics go to /metrics too
            client.metrics = self._metrics
        self.factory = SharedInformerFactory(client, namespace=namespace,
                                             resync_period=resync_period,
                                             metrics=self._metrics,
                                             on_failure=self._on_informer_failure)
        self._informer_failed = threading.Event()
        self._run_stop: threading.Event | None = None
        self._metrics_address = metrics_bind_address
        self._health_address = health_probe_bind_address
        self._sync_timeout = sync_timeout
        self._grace = grace_period
        self._handle_signals = handle_signals
        self._controllers: list[Controller] = []
        self._registrations: list[tuple[Controller, Registration]] = []
        self._servers: dict[str, ProbeServer] = {}
        self._started = threading.Event()
        self._log = _log.bind(component="manager")
        if leader_election is not None and not leader_election_id:
            raise ValueError("leader_election needs leader_election_id (the Lease name)")
        lease_namespace = leader_election_namespace or ""
        if leader_election is not None and not lease_namespace:
            lease_namespace = in_cluster_namespace() or ""
            if not lease_namespace:  # as controller-runtime: never guess "default"
                raise ValueError("leader_election needs leader_election_namespace when not "
                                 "running in a Pod (no service-account namespace file)")
        self._election = leader_election
        self._lease = (lease_namespace, leader_election_id)
        self._identity = identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        self._lost_leadership = threading.Event()
        self._elector_thread: threading.Thread | None = None
        self._elector_stop = threading.Event()

    def add(self, controller: Controller) -> None:
        """Register a controller: its informer, handlers, queue and metrics are wired now."""
        informer = self.factory.informer_for(
            controller.resource, namespace=controller.namespace,
            label_selector=controller.label_selector, field_selector=controller.field_selector,
            resync_period=controller.resync_period)
        queue: RateLimitingQueue[str] = RateLimitingQueue(
            name=controller.name, metrics=self._metrics, rate_limiter=controller.rate_limiter())
        controller.bind(client=self._client, lister=informer.lister, queue=queue,
                        metrics=ControllerMetrics(self._metrics, controller.name))
        registration = informer.add_event_handler(
            on_add=controller.on_add, on_update=controller.on_update,
            on_delete=controller.on_delete)
        self._controllers.append(controller)
        self._registrations.append((controller, registration))

    # -- probes ------------------------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        """Ready when every controller's handler has seen its initial list."""
        waiting = [c.name for c, reg in self._registrations if not reg.has_synced()]
        if waiting:
            return False, f"caches not synced: {', '.join(waiting)}"
        if self._started.is_set():
            return True, "ok"
        return False, "waiting for leadership" if self._election else "starting"

    def healthy(self) -> tuple[bool, str]:
        """Healthy when every informer and every worker lives and none is stuck."""
        for name, exc in self.factory.failures().items():
            return False, f"informer {name} failed: {type(exc).__name__}: {exc}"
        for controller in self._controllers:
            ok, why = controller.healthy()
            if not ok:
                return False, f"{controller.name}: {why}"
        return True, "ok"

    def port(self, which: str) -> int:
        """The bound port of the ``"metrics"`` or ``"health"`` server."""
        return self._servers[which].port

    def _routes(self) -> dict[str, dict[str, Route]]:
        def probe(check: Callable[[], tuple[bool, str]]) -> Route:
            def route() -> tuple[int, str, bytes]:
                ok, why = check()
                return (200 if ok else 503), "text/plain", f"{why}\n".encode()
            return route

        def metrics() -> tuple[int, str, bytes]:
            body, ctype = exposition(self._metrics.registry)
            return 200, ctype, body

        health = {"/healthz": probe(self.healthy), "/readyz": probe(self.ready)}
        return {"health": health, "metrics": {"/metrics": metrics}}

    def _start_servers(self) -> None:
        routes = self._routes()
        wanted = {"health": self._health_address, "metrics": self._metrics_address}
        if wanted["health"] is not None and wanted["health"] == wanted["metrics"]:
            routes["health"].update(routes.pop("metrics"))
            wanted.pop("metrics")
        for which, address in wanted.items():
            if address is not None:
                server = ProbeServer(address, routes[which])
                server.start()
                self._servers[which] = server
                self._log.info("http_server_started", serves=which, port=server.port)

    # -- running -----------------------------------------------------------------------
    def _install_signals(self, stop: threading.Event) -> None:
        if not self._handle_signals or threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if stop.is_set():
                os._exit(128 + signum)  # second signal: leave now
            self._log.info("shutdown_requested", signal=signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def run(self, stop: threading.Event | None = None) -> int:
        """Run until stopped; return the exit code (see the class docstring).

        Raises:
            OSError: a probe or metrics server cannot listen on its address (the message
                names it); everything started so far has been stopped.
        """
        stop = stop or threading.Event()
        self._run_stop = stop
        self._install_signals(stop)
        try:
            self._start_servers()  # OSError (port in use) propagates, after the cleanup
            self.factory.start(stop)
            self._wait_for_sync(stop)
            if self._election is None:
                self._start_controllers(stop)
            else:
                self._stand_for_election(stop)
            stop.wait()
            failed = self._lost_leadership.is_set() or self._informer_failed.is_set()
            return 1 if failed else 0
        except CacheSyncTimeoutError as exc:
            self._log.error("cache_sync_timeout", error=str(exc))
            return 1
        finally:
            stop.set()
            self._shutdown()

    def _on_informer_failure(self, informer: Any, exc: BaseException) -> None:
        # A dead informer starves its controllers: exit non-zero so the Pod restarts.
        self._log.error("informer_failed", informer=informer.name, error=str(exc),
                        error_type=type(exc).__name__)
        self._informer_failed.set()
        if self._run_stop is not None:
            self._run_stop.set()

    def _start_controllers(self, stop: threading.Event) -> None:
        for controller in self._controllers:
            controller.start(stop)
        self._started.set()
        self._log.info("controllers_started", controllers=[c.name for c in self._controllers])

    def _stand_for_election(self, stop: threading.Event) -> None:
        assert self._election is not None
        namespace, name = self._lease
        # One hung request must not eat the renew window (client-go does the same).
        lock_client = self._client.with_request_timeout(
            max(1.0, self._election.renew_deadline / 2))
        lock = LeaseLock(lock_client, namespace, name, self._identity)

        def on_started(leading: threading.Event) -> None:
            self._log.info("leading_started", identity=self._identity)
            # The elector sets ``leading`` the moment it steps down: no key after that.
            self._start_controllers(leading)

        def on_stopped() -> None:
            if not stop.is_set() and self._started.is_set():
                # Lost, not asked to stop: refuse every key now, exit 1 without the grace.
                self._log.error("leader_election_lost", identity=self._identity)
                self._lost_leadership.set()
                for controller in self._controllers:
                    controller.stop(0.0)
                stop.set()

        elector = LeaderElector(lock, self._election, on_started_leading=on_started,
                                on_stopped_leading=on_stopped)
        self._elector_thread = threading.Thread(
            target=elector.run, args=(self._elector_stop,), daemon=True,
            name=f"pycontroller-manager-election-{name}")
        self._elector_thread.start()
        self._log.info("leader_election_started", identity=self._identity, lease=name)

    def _wait_for_sync(self, stop: threading.Event) -> None:
        checks = [reg.has_synced for _, reg in self._registrations]
        if wait_for_cache_sync(stop, *checks, timeout=self._sync_timeout):
            freeze_cache()  # once, after every cache is full: full GCs stop walking them
            return
        if stop.is_set():
            return
        pending = sorted({str(c.resource) for c, reg in self._registrations
                          if not reg.has_synced()})
        raise CacheSyncTimeoutError(
            f"caches did not sync within {self._sync_timeout:.0f}s: {', '.join(pending)} "
            "(check RBAC list/watch permissions and the API server)")

    def _shutdown(self) -> None:
        lost = self._lost_leadership.is_set()
        grace = 0.0 if lost else self._grace  # another replica may already be working
        self._log.info("shutdown_started", grace_period=grace)
        for controller in self._controllers:
            if not controller.stop(grace) and not lost:
                self._log.warning("shutdown_grace_exceeded", controller=controller.name)
        self._elector_stop.set()  # after the workers: a release never precedes their end
        if self._elector_thread is not None:
            # After a loss the elector has already stepped down; it may still wait for a
            # hung request (bounded by the client's timeout), which must not delay the exit.
            self._elector_thread.join(1.0 if lost else 30.0)
        self.factory.shutdown(10.0)
        for server in self._servers.values():
            server.stop()
        self._log.info("shutdown_completed")
