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
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any, final

import structlog

from pycontroller._util._clock import REAL_CLOCK, Clock
from pycontroller._util._paths import check_path_segment
from pycontroller._util._selectors import check_field_selector, check_label_selector
from pycontroller.cache._gc import freeze_cache
from pycontroller.cache._informer_factory import SharedInformerFactory
from pycontroller.cache._processor import Registration
from pycontroller.cache._shared_informer import SharedIndexInformer
from pycontroller.client import _lazy
from pycontroller.client._kube import Client
from pycontroller.client._resource import Resource
from pycontroller.controller._controller import Controller, Source
from pycontroller.controller._finalizer import validate_finalizer
from pycontroller.controller._http import ProbeServer, Route
from pycontroller.controller._metrics import ControllerMetrics
from pycontroller.controller._watches import EventSource, obj_of
from pycontroller.errors import CacheSyncTimeoutError
from pycontroller.events import EventRecorder
from pycontroller.leaderelection import (
    LeaderElectionConfig,
    LeaderElector,
    LeaseLock,
    in_cluster_namespace,
)
from pycontroller.metrics._provider import Gauge
from pycontroller.metrics.prometheus import PrometheusMetricsProvider, exposition
from pycontroller.workqueue import RateLimitingQueue

_log = structlog.get_logger(__name__)


def _forward(source: threading.Event, target: threading.Event) -> None:
    """Set ``target`` once ``source`` is set; return as soon as either is."""
    while not target.wait(0.05):
        if source.is_set():
            target.set()


@final
class Manager:
    """Runs controllers with shared informers, probes, metrics and graceful shutdown.

    ``run()`` blocks until SIGTERM/SIGINT (or ``stop`` is set) and returns the process
    exit code: 0 after a clean shutdown, 1 if the caches did not sync within
    ``sync_timeout`` (the error names the resources) or an informer died (logged as
    ``informer_failed`` with the cause; ``/healthz`` fails from then on). On the first
    signal the workers take no new keys, running reconciles get ``grace_period`` seconds
    (in all: one deadline for every controller), then informers stop; a second signal
    exits at once. ``run()`` never sets the caller's
    ``stop``: a failure or a lost lease ends the run through the Manager's own event.

    Bind addresses are ``host:port``; the defaults listen on loopback (local runs). In a
    Pod pass ``":8080"``/``":8081"`` to listen on all interfaces. ``None`` disables one.

    With ``leader_election`` (and the Lease ``leader_election_id``, in
    ``leader_election_namespace``: by default the Pod's own namespace, read from its
    service-account mount; outside a Pod it must be given), every replica fills
    its caches, but only the leader runs workers (``elected()``); ``/readyz`` turns ready
    once the caches have synced, on the standby too. A leader that loses its Lease hands
    out no further key from that instant (the workers run with the elector's leading
    event) and ``run()`` returns 1 at once, without the grace period: running reconciles
    are abandoned, not awaited (as controller-runtime does), so exit the process and let
    the Pod restart and stand for election again.

    Readiness: a controller's workers start only after every informer it uses (primary,
    ``owns``, ``watches``) has synced and each of its handler registrations has delivered
    its initial list; ``/readyz`` reports exactly that (and, in its message, whether the
    replica waits for leadership).

    ``clock`` is the time source of the queues, workers, timeouts and sync waits (tests
    inject a ``FakeClock``). ``factory`` is an escape hatch: controllers never need it,
    but code may ask it for more informers before ``run`` (they start with the others,
    and nothing waits for them).

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
        identity: str = "", clock: Clock = REAL_CLOCK,
    ) -> None:
        if namespace:  # part of every LIST/WATCH URL of the namespaced informers
            check_path_segment("namespace", namespace)
        self._client = client
        self._clock = clock
        self._namespace = namespace
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
        self._resources: dict[str, list[str]] = {}  # controller name -> its resources
        self._recorders: list[EventRecorder] = []
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
        """Register a controller: its informers, indexers, handlers, queue and metrics.

        One shared informer per (resource, scope) serves the primary, each ``owns`` entry
        and each ``Watch``; the controller's ``indexers`` are added to them (an index
        another controller declared under the same name must be the same function).

        Raises:
            ValueError: a controller of the same ``name`` was added before (names label
                metrics and Events), a name that is not a qualified name, a finalizer
                without a domain prefix, a resource declared twice with different scopes, an
                indexer for a resource the controller does not watch, a clashing index
                name, or a namespace, label selector or field selector the apiserver
                would refuse.
        """
        if any(c.name == controller.name for c in self._controllers):
            raise ValueError(f"a controller named {controller.name!r} was already added: "
                             "names label the metrics and Events, so they must be unique "
                             "(pass name=... to the controller)")
        sources = controller._sources()
        scopes = [(controller.resource, controller.namespace, controller.label_selector,
                   controller.field_selector)]
        scopes += [(s.resource, s.namespace, s.label_selector, s.field_selector)
                   for s in sources]
        self._check_scopes(controller, scopes)
        self._check_declarations(controller, scopes)  # before any informer is made
        if controller.finalizer:
            validate_finalizer(controller.finalizer)
        # Events are written through the plain client: they are not the controller's state.
        # Made before the informers: it refuses a name that cannot report Events.
        recorder = EventRecorder(self._client, controller.name, metrics=self._metrics,
                                 clock=self._clock)
        informers: dict[Resource, SharedIndexInformer] = {}
        made = [self.factory.informer_for(res, namespace=ns, label_selector=labels,
                                          field_selector=fields,
                                          resync_period=controller.resync_period)
                for res, ns, labels, fields in scopes]
        for (res, *_), inf in zip(scopes, made, strict=True):
            informers[res] = inf
        primary, secondary = made[0], made[1:]
        self._add_indexers(controller, informers)
        queue: RateLimitingQueue[str] = RateLimitingQueue(
            name=controller.name, metrics=self._metrics, rate_limiter=controller.rate_limiter(),
            clock=self._clock)
        controller.bind(client=self._client,
                        listers={res: inf.lister for res, inf in informers.items()},
                        queue=queue, metrics=ControllerMetrics(self._metrics, controller.name),
                        events=recorder, clock=self._clock,
                        scopes={res: ((ns or self._namespace) if res.namespaced else None,
                                      labels, fields)
                                for res, ns, labels, fields in scopes})
        self._recorders.append(recorder)

        registrations = self._register(controller, queue, primary, sources, secondary)
        for inf in informers.values():
            gauge = self._metrics.new_informer_cache_items_metric(inf.name)
            lister = inf.lister
            gauge.set_function(lambda lister=lister: float(len(lister)))  # type: ignore[misc]
        self._controllers.append(controller)
        self._registrations.extend((controller, reg) for reg in registrations)
        self._resources[controller.name] = sorted(str(r) for r in informers)

    @staticmethod
    def _register(controller: Controller, queue: RateLimitingQueue[str],
                  primary: SharedIndexInformer, sources: list[Source],
                  secondary: list[SharedIndexInformer]) -> list[Registration]:
        """Add the controller's handlers: its own hooks on the primary, an EventSource each."""
        def add(obj: Any, is_in_initial_list: bool) -> None:
            controller._observe_cached(controller.resource, obj, False)
            controller.on_add(obj, is_in_initial_list)

        def update(old: Any, new: Any) -> None:
            controller._observe_cached(controller.resource, new, False)
            controller.on_update(old, new)

        def delete(obj: Any) -> None:
            last = obj_of(obj)
            if last is not None:
                controller._observe_cached(controller.resource, last, True)
            controller.on_delete(obj)

        registrations = [primary.add_event_handler(on_add=add, on_update=update,
                                                   on_delete=delete)]
        for source, inf in zip(sources, secondary, strict=True):
            handler = EventSource(resource=source.resource, keys=source.keys,
                                  predicates=source.predicates, enqueue=queue.add,
                                  observe=controller._observe_cached, name=controller.name)
            registrations.append(inf.add_event_handler(
                on_add=handler.on_add, on_update=handler.on_update,
                on_delete=handler.on_delete))
        return registrations

    @staticmethod
    def _check_scopes(controller: Controller,
                      scopes: list[tuple[Resource, str | None, str | None, str | None]],
                      ) -> None:
        """Refuse a namespace or selector the apiserver would refuse on every LIST."""
        for i, (resource, namespace, labels, fields) in enumerate(scopes):
            try:
                if namespace:
                    check_path_segment("namespace", namespace)
                if labels:
                    check_label_selector(labels)
                if fields:
                    check_field_selector(fields)
            except ValueError as exc:
                what = "primary" if i == 0 else "owns/watches entry"
                raise ValueError(f"controller {controller.name}: {what} {resource}: "
                                 f"{exc}") from None

    def _check_declarations(self, controller: Controller,
                            scopes: list[tuple[Resource, str | None, str | None, str | None]],
                            ) -> None:
        seen: dict[Resource, tuple[str | None, str | None, str | None]] = {}
        for resource, namespace, labels, fields in scopes:
            ns = (namespace or self._namespace) if resource.namespaced else None
            scope = (ns, labels or None, fields or None)
            if seen.setdefault(resource, scope) != scope:
                raise ValueError(f"controller {controller.name} declares {resource} twice "
                                 "with different scopes")
        for resource in controller.indexers:
            if resource not in seen:
                raise ValueError(f"controller {controller.name} declares indexers for "
                                 f"{resource}, which it does not watch")

    @staticmethod
    def _add_indexers(controller: Controller,
                      informers: Mapping[Resource, SharedIndexInformer]) -> None:
        for resource, indexers in controller.indexers.items():
            inf = informers[resource]
            existing = inf.indexer.get_indexers()
            new = {}
            for index_name, fn in indexers.items():
                if index_name not in existing:
                    new[index_name] = fn
                elif existing[index_name] is not fn:
                    raise ValueError(f"index {index_name!r} on {resource} already exists "
                                     "with another function (shared informer)")
            if new:
                inf.add_indexers(new)

    # -- probes ------------------------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        """Ready when every informer of every controller has synced, every handler has seen
        its initial list, and the workers run — or, with leader election, this replica is
        a synced standby (it must be ready, or a rolling update of a Deployment with
        ``maxUnavailable: 0`` waits forever for the new Pod, which cannot lead while the
        old one holds the Lease). ``elected()`` tells the two apart."""
        waiting = sorted({c.name for c, reg in self._registrations if not reg.has_synced()})
        if waiting:
            return False, f"caches not synced: {', '.join(waiting)}"
        if self._started.is_set():
            return True, "ok"
        if self._election is not None:
            return True, "ok (standby: waiting for leadership)"
        return False, "starting"

    def elected(self) -> bool:
        """Whether the workers run: this replica leads, or runs without leader election,
        and its controllers have started (≙ controller-runtime's ``Elected()``)."""
        return self._started.is_set()

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
        # The Manager's own event: a dead informer or a lost lease sets it, never the
        # caller's (which may stop other things the caller runs); the caller's is forwarded.
        caller, stop = stop, threading.Event()
        self._run_stop = stop
        self._install_signals(stop)
        forward = None
        if caller is not None:
            forward = threading.Thread(target=_forward, args=(caller, stop), daemon=True,
                                       name="pycontroller-manager-stop")
            forward.start()
        try:
            self._start_servers()  # OSError (port in use) propagates, after the cleanup
            for recorder in self._recorders:
                recorder.start()
            if self._election is not None:  # a standby reports 0 from the start
                self._leader_status(self._lease[1]).set(0)
            self.factory.start(stop)
            self._wait_for_sync(stop)
            if stop.is_set():
                pass  # stopped while syncing: start nothing, and never take the Lease
            elif self._election is None:
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
            if forward is not None:
                forward.join()

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
        self._log.info("controllers_started", controllers=[c.name for c in self._controllers],
                       decoder="python" if _lazy.SPEEDUPS is None else "c")

    def _leader_status(self, lease: str) -> Gauge:
        """The ``leader_election_master_status`` gauge of ``lease`` (0 until leading)."""
        return self._metrics.new_leader_election_status_metric(lease)

    def _stand_for_election(self, stop: threading.Event) -> None:
        assert self._election is not None
        namespace, name = self._lease
        # One hung request must not eat the renew window (client-go does the same).
        lock_client = self._client.with_request_timeout(
            max(1.0, self._election.renew_deadline / 2))
        lock = LeaseLock(lock_client, namespace, name, self._identity)

        status = self._leader_status(name)

        def on_started(leading: threading.Event) -> None:
            status.set(1)
            self._log.info("leading_started", identity=self._identity)
            # The elector sets ``leading`` the moment it steps down: no key after that.
            self._start_controllers(leading)
            # The elector releases the Lease (release_on_cancel) once this returns: only
            # after every worker has ended. A reconcile that outlives the grace period, or
            # one abandoned after a loss, would otherwise run beside the standby's.
            leading.wait()
            for controller in self._controllers:
                controller._join_workers()

        def on_stopped() -> None:
            status.set(0)
            if not stop.is_set() and self._started.is_set():
                # Lost, not asked to stop: refuse every key now, exit 1 without the grace.
                self._log.error("leader_election_lost", identity=self._identity)
                self._lost_leadership.set()
                for controller in self._controllers:
                    controller.stop(0.0)
                stop.set()

        elector = LeaderElector(lock, self._election, on_started_leading=on_started,
                                on_stopped_leading=on_stopped, clock=self._clock)
        self._elector_thread = threading.Thread(
            target=elector.run, args=(self._elector_stop,), daemon=True,
            name=f"pycontroller-manager-election-{name}")
        self._elector_thread.start()
        self._log.info("leader_election_started", identity=self._identity, lease=name)

    def _wait_for_sync(self, stop: threading.Event) -> None:
        """Wait (on the injected clock) until every registration has synced."""
        deadline = self._clock.now() + self._sync_timeout
        while not all(reg.has_synced() for _, reg in self._registrations):
            remaining = deadline - self._clock.now()
            if stop.is_set() or remaining <= 0:
                break
            self._clock.sleep(min(0.05, remaining), stop)
        else:
            freeze_cache()  # once, after every cache is full: full GCs stop walking them
            return
        if stop.is_set():
            return
        pending = sorted({f"{c.name} ({', '.join(self._resources[c.name])})"
                          for c, reg in self._registrations if not reg.has_synced()})
        raise CacheSyncTimeoutError(
            f"caches did not sync within {self._sync_timeout:.0f}s: {', '.join(pending)} "
            "(check RBAC list/watch permissions and the API server)")

    def _shutdown(self) -> None:
        lost = self._lost_leadership.is_set()
        grace = 0.0 if lost else self._grace  # another replica may already be working
        self._log.info("shutdown_started", grace_period=grace)
        for controller in self._controllers:  # all refuse keys at once, then one deadline
            controller.stop(0.0)
        deadline = self._clock.now() + grace
        drained = True
        for controller in self._controllers:
            if not controller.stop(max(0.0, deadline - self._clock.now())):
                drained = False
                if not lost:
                    self._log.warning("shutdown_grace_exceeded", controller=controller.name)
        flush = 0.5 if lost else 5.0
        for recorder in self._recorders:  # after the workers: their last events are sent
            recorder.stop(flush, wait=False)  # all flush at once, within one bound
        deadline = self._clock.now() + flush
        for recorder in self._recorders:
            recorder.stop(max(0.0, deadline - self._clock.now()))
        self._elector_stop.set()  # after the workers: a release never precedes their end
        if self._elector_thread is not None:
            # After a loss the elector has already stepped down; it may still wait for a
            # hung request (bounded by the client's timeout), and with workers still
            # running it releases only once they end: neither may delay the exit.
            self._elector_thread.join(30.0 if drained and not lost else 1.0)
        self.factory.shutdown(10.0)
        for server in self._servers.values():
            server.stop()
        self._log.info("shutdown_completed")
