"""The Python peers of bench/run.py, each run in its own process; prints one JSON line.

Peers (``--peer``), each used as its users would use it:

* ``pycontroller``: ``SharedInformerFactory`` + ``informer_for(PODS)`` with one handler; after
  sync, ``freeze_cache()`` as the ``Manager`` does (timed separately as ``freeze_s``);
  ``--scenario reconcile`` runs a no-op ``Controller`` under a ``Manager`` instead;
* ``official-informer``: the official client's ``kubernetes.informer.SharedInformer`` over
  ``CoreV1Api.list_namespaced_pod`` (typed models; its initial list is one unpaginated LIST);
* ``official-watch``: ``list_namespaced_pod`` into a dict, then a ``watch.Watch().stream``
  loop from the list's resourceVersion that relists on 410 — the loop most scripts write.

With ``--control`` (the replay server) the informer scenario goes on after the sync: watch
delivery latency at each rate, the longest GC pause during that traffic, one unpaced burst
(throughput, and the longest GC pause during it), a relist after 410, and (pycontroller) the
work-queue throughput.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

SENT = "bench.pycontroller.dev/sent-ns"


def status_bytes(field: str) -> int:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def cpu_seconds() -> float:
    """User + system CPU of this process, all threads."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0 if empty)."""
    if not sorted_values:
        return 0.0
    return sorted_values[int(p * (len(sorted_values) - 1))]


def wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    """Poll ``cond`` every millisecond until true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.001)
    return cond()


def control(url: str, path: str, method: str = "POST") -> dict[str, Any]:
    """Call the replay server's control API."""
    req = urllib.request.Request(url + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=60) as resp:
        result: dict[str, Any] = json.loads(resp.read() or b"{}")
        return result


class Recorder:
    """Counts handler calls and the delivery latency of stamped updates. Thread-safe.

    ``wait_stamped`` blocks on an event the handler sets, rather than polling: a 1 ms poll
    from the main thread cost ~6% of the process's samples during a burst, and its GIL
    hand-offs slowed the threads being measured.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.adds = 0
        self.updates = 0
        self.latencies: list[float] = []
        self.first = 0.0
        self.last = 0.0
        self._target = 0
        self._reached = threading.Event()

    def add(self) -> None:
        with self.lock:
            self.adds += 1

    def update(self, sent: str | None) -> None:
        now_ns = time.time_ns()
        with self.lock:
            self.updates += 1
            if sent and sent != "0":
                now = time.perf_counter()
                if not self.latencies:
                    self.first = now
                self.last = now
                self.latencies.append((now_ns - int(sent)) / 1e6)
                if self._target and len(self.latencies) >= self._target:
                    self._reached.set()

    def reset(self) -> None:
        with self.lock:
            self.latencies, self.first, self.last = [], 0.0, 0.0

    def stamped(self) -> int:
        with self.lock:
            return len(self.latencies)

    def wait_stamped(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` stamped updates arrived since the last ``reset``."""
        with self.lock:
            self._target = count
            self._reached.clear()
            if len(self.latencies) >= count:
                self._reached.set()
        ok = self._reached.wait(timeout)
        with self.lock:
            self._target = 0
        return ok


class GCPauses:
    """The longest cyclic-GC pause (ms) since ``start`` (via ``gc.callbacks``).

    A pause is the collecting thread's CPU time from the ``start`` to the ``stop`` callback:
    the collection holds the GIL throughout, so that is how long every other thread is
    stopped. Wall time would also count any wait for the GIL inside the callbacks (they are
    Python code, so another thread may run between them), several ms under a burst.
    """

    def __init__(self) -> None:
        self.longest = 0.0
        self.collections = 0
        self._began = 0.0
        self.active = False

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.thread_time()
        elif self.active:
            self.collections += 1
            self.longest = max(self.longest, (time.thread_time() - self._began) * 1000)

    def start(self) -> None:
        self.longest, self.collections, self.active = 0.0, 0, True
        gc.callbacks.append(self)

    def stop(self) -> float:
        self.active = False
        gc.callbacks.remove(self)
        return self.longest


def traffic(out: dict[str, Any], url: str, rec: Recorder, count_objects: Callable[[], int],
            args: argparse.Namespace) -> None:
    """Latency phases, burst throughput and relist after 410 against the replay server."""
    pauses = GCPauses()
    pauses.start()
    phases = []
    for rate in (int(r) for r in args.rates.split(",")):
        rec.reset()
        count = control(url, f"/bench/traffic?rate={rate}&seconds={args.phase_seconds}")["count"]
        ok = rec.wait_stamped(count, args.phase_seconds + 60)
        with rec.lock:
            lat = sorted(rec.latencies)
        phases.append({"rate": rate, "sent": count, "delivered": len(lat), "complete": ok,
                       "p50_ms": percentile(lat, 0.5), "p99_ms": percentile(lat, 0.99)})
    out["watch"] = phases
    out["gc_pause_max_ms"] = pauses.stop()
    out["gc_collections"] = pauses.collections
    rec.reset()
    pauses.start()
    c0 = cpu_seconds()
    count = control(url, f"/bench/traffic?rate=0&count={args.burst}")["count"]
    ok = rec.wait_stamped(count, 120)
    cpu = cpu_seconds() - c0
    out["burst_gc_pause_max_ms"] = pauses.stop()
    with rec.lock:
        span = rec.last - rec.first
    out["throughput"] = {"events": count, "complete": ok,
                         "events_per_s": count / max(span, 1e-9),
                         "events_per_cpu_s": count / max(cpu, 1e-9)}
    if args.relist:
        relist(out, url, rec, count_objects)


def relist(out: dict[str, Any], url: str, rec: Recorder,
           count_objects: Callable[[], int]) -> None:
    """Expire every watch (410) and time the relist until every object was updated."""
    with rec.lock:
        before = rec.updates
    n = count_objects()
    reset_peak()
    t0 = time.perf_counter()
    control(url, "/bench/expire")
    ok = wait_for(lambda: rec.updates - before >= n, 600)
    done_ns, total = time.time_ns(), time.perf_counter() - t0
    started = control(url, "/bench/state", "GET")["relist_started_ns"]
    out["relist"] = {"complete": ok, "total_s": total,
                     "relist_s": (done_ns - started) / 1e9 if started else total,
                     "peak_rss": status_bytes("VmHWM")}


def measure_sync(out: dict[str, Any], started: float, cpu0: float, baseline: int,
                 objects: int) -> None:
    """Fill the initial-sync fields of ``out`` (call right after the cache synced)."""
    out["sync_s"] = time.perf_counter() - started
    out["cpu_s"] = cpu_seconds() - cpu0
    out["objects"] = objects
    out["peak_rss"] = status_bytes("VmHWM")
    gc.collect()
    steady = status_bytes("VmRSS")
    out["steady_rss"], out["baseline_rss"] = steady, baseline
    if objects:
        out["bytes_per_object"] = (steady - baseline) / objects


def begin() -> tuple[float, float, int]:
    """Baseline before the informer starts: (wall start, CPU start, RSS)."""
    gc.collect()
    baseline = status_bytes("VmRSS")
    reset_peak()
    return time.perf_counter(), cpu_seconds(), baseline


def run_pycontroller(args: argparse.Namespace) -> dict[str, Any]:
    from pycontroller import PODS, SharedInformerFactory, connect, wait_for_cache_sync
    from pycontroller.cache import freeze_cache

    client = connect(args.kubeconfig)
    rec = Recorder()
    stop = threading.Event()
    started, cpu0, baseline = begin()
    factory = SharedInformerFactory(client, namespace=args.namespace)
    informer = factory.informer_for(PODS)

    reads = args.handler == "reads"

    def on_add(obj: Any, initial: bool) -> None:
        if reads:
            obj["spec"], obj["status"]  # decoded on first read
        rec.add()

    def on_update(old: Any, new: Any) -> None:
        if reads:
            new["spec"], new["status"]
        rec.update((new["metadata"].get("annotations") or {}).get(SENT))

    informer.add_event_handler(on_add=on_add, on_update=on_update)
    factory.start(stop)
    # Poll every millisecond (the default 50 ms would blur small syncs).
    if not wait_for_cache_sync(stop, informer.has_synced, timeout=900, interval=0.001):
        raise SystemExit("pycontroller: cache did not sync")
    out: dict[str, Any] = {}
    n = len(informer.indexer)
    t0 = time.perf_counter()
    freeze_cache()  # what the Manager does once every cache synced
    out["freeze_s"] = time.perf_counter() - t0
    out["handler"] = args.handler
    from pycontroller.client import _lazy

    out["c_module"] = _lazy.SPEEDUPS is not None
    measure_sync(out, started, cpu0, baseline, n)
    out["sync_s"] -= out["freeze_s"]
    if args.control:
        traffic(out, args.control, rec, lambda: len(informer.indexer), args)
    out["workqueue_ops_per_s"] = workqueue_rate(args.queue_items)
    stop.set()
    factory.shutdown(10)
    return out


def workqueue_rate(items: int) -> float:
    """add/get/done cycles per second of distinct keys on one thread."""
    from pycontroller import WorkQueue

    queue: WorkQueue[str] = WorkQueue()
    keys = [f"ns/item-{i}" for i in range(items)]
    t0 = time.perf_counter()
    for key in keys:
        queue.add(key)
        item = queue.get()
        queue.done(item)
    rate = items / (time.perf_counter() - t0)
    queue.shut_down()
    return rate


def run_pycontroller_reconcile(args: argparse.Namespace) -> dict[str, Any]:
    from pycontroller import PODS, Controller, Manager, Requeue, connect

    done = threading.Event()
    count = [0]
    lock = threading.Lock()
    expect = args.expect

    class NoOp(Controller):
        resource = PODS
        namespace = args.namespace

        def reconcile(self, key: str) -> Requeue | None:
            self.lister.get_by_key(key)  # a no-op reconcile reads the object
            with lock:
                count[0] += 1
                if count[0] >= expect:
                    done.set()
            return None

    client = connect(args.kubeconfig)
    stop = threading.Event()
    cpu0 = cpu_seconds()
    started = time.perf_counter()
    manager = Manager(client, namespace=args.namespace, metrics_bind_address=None,
                      health_probe_bind_address=None, handle_signals=False, sync_timeout=900)
    manager.add(NoOp())
    thread = threading.Thread(target=manager.run, args=(stop,), daemon=True)
    thread.start()
    ok = done.wait(900)
    out = {"reconcile_all_s": time.perf_counter() - started, "complete": ok,
           "cpu_s": cpu_seconds() - cpu0, "objects": count[0]}
    stop.set()
    thread.join(60)
    return out


def _official_api(kubeconfig: str) -> Any:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    return k8s.CoreV1Api(k8s_config.new_client_from_config(kubeconfig))  # type: ignore[no-untyped-call, unused-ignore]


def _sent(obj: Any) -> str | None:
    annotations = obj.metadata.annotations or {}
    return annotations.get(SENT)


def run_official_informer(args: argparse.Namespace) -> dict[str, Any]:
    from kubernetes.informer import ADDED, MODIFIED, SharedInformer

    api = _official_api(args.kubeconfig)
    rec = Recorder()
    started, cpu0, baseline = begin()
    informer: Any = SharedInformer(  # type: ignore[no-untyped-call, unused-ignore]
        api.list_namespaced_pod, namespace=args.namespace)
    informer.add_event_handler(ADDED, lambda obj: rec.add())
    informer.add_event_handler(MODIFIED, lambda obj: rec.update(_sent(obj)))
    informer.start()
    # No has_synced: the initial list fires one ADDED per object before the watch starts.
    if not wait_for(lambda: rec.adds >= args.expect, 900):
        raise SystemExit("official informer: did not sync")
    out: dict[str, Any] = {}
    measure_sync(out, started, cpu0, baseline, len(informer.cache.list_keys()))
    if args.control:
        traffic(out, args.control, rec, lambda: len(informer.cache.list_keys()), args)
    informer._stop_event.set()  # stop() would join a thread blocked in a socket read
    return out


def run_official_watch(args: argparse.Namespace) -> dict[str, Any]:
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException

    api = _official_api(args.kubeconfig)
    rec = Recorder()
    cache: dict[str, Any] = {}
    synced = threading.Event()
    stop = threading.Event()

    def relist() -> str:
        pods = api.list_namespaced_pod(args.namespace)
        fresh = {p.metadata.name: p for p in pods.items}
        for name, pod in fresh.items():
            if name in cache:
                rec.update(_sent(pod))
        cache.clear()
        cache.update(fresh)
        return str(pods.metadata.resource_version)

    def loop() -> None:
        rv = relist()
        synced.set()
        while not stop.is_set():
            w: Any = watch.Watch()  # type: ignore[no-untyped-call, unused-ignore]
            try:
                for event in w.stream(api.list_namespaced_pod, args.namespace,
                                      resource_version=rv, allow_watch_bookmarks=True):
                    obj = event["object"]
                    rv = obj.metadata.resource_version or rv
                    if event["type"] == "DELETED":
                        cache.pop(obj.metadata.name, None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        cache[obj.metadata.name] = obj
                        if event["type"] == "MODIFIED":
                            rec.update(_sent(obj))
            except ApiException as exc:
                if exc.status == 410:
                    rv = relist()

    started, cpu0, baseline = begin()
    threading.Thread(target=loop, daemon=True).start()
    if not synced.wait(900):
        raise SystemExit("official watch: did not sync")
    out: dict[str, Any] = {}
    measure_sync(out, started, cpu0, baseline, len(cache))
    if args.control:
        traffic(out, args.control, rec, lambda: len(cache), args)
    stop.set()
    return out


PEERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "pycontroller": run_pycontroller,
    "pycontroller-pure": run_pycontroller,  # (main() turns the C module off first)
    "official-informer": run_official_informer,
    "official-watch": run_official_watch,
}


def main() -> int:
    """Run one peer once and print its JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--peer", choices=sorted(PEERS), required=True)
    parser.add_argument("--scenario", choices=("informer", "reconcile"), default="informer")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--control", default="")
    parser.add_argument("--rates", default="100,1000,5000")
    parser.add_argument("--phase-seconds", type=float, default=2.0)
    parser.add_argument("--burst", type=int, default=20000)
    parser.add_argument("--queue-items", type=int, default=200000)
    parser.add_argument("--relist", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--handler", choices=("noop", "reads"), default="noop",
                        help="reads: the informer's handler reads each object's spec and "
                             "status (pycontroller decodes them then; the official client's "
                             "models and client-go's structs are decoded already)")
    args = parser.parse_args()
    if args.peer.startswith("pycontroller"):  # the official peers have a venv of their own
        if args.peer == "pycontroller-pure":  # before pycontroller is imported
            os.environ["PYCONTROLLER_PURE_PYTHON"] = "1"
        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    if args.scenario == "reconcile":
        if not args.peer.startswith("pycontroller"):
            raise SystemExit(f"{args.peer} has no controller runtime")
        out = run_pycontroller_reconcile(args)
    else:
        out = PEERS[args.peer](args)
    print(json.dumps(out), flush=True)
    os._exit(0)  # daemon threads blocked in socket reads can abort a normal shutdown


if __name__ == "__main__":
    sys.exit(main())
