"""Workqueue throughput beside a bare deque+set+Condition floor measured in the same run.

Usage: python bench/bench_workqueue.py [--scale 1.0] [--repeats 3] [--json PATH]

Each scenario runs ``--repeats`` times and keeps the fastest run (the machine is noisy);
"ratio" is our throughput divided by the floor's. Scenarios:

* add/get/done, one thread, N distinct keys: ``WorkQueue`` (no metrics, a no-op provider,
  Prometheus metrics, a custom no-op provider that is called) and ``RateLimitingQueue``;
* 1 producer + 4 worker threads, N distinct keys, until every worker has exited;
* rate-limited requeue: ``add_rate_limited`` + ``get``/``forget``/``done`` per key
  through a MaxOf(exponential, bucket) limiter and the delaying thread;
* 100k delayed items: ``add_after`` into a heap with 100k pending, then deliver them all.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import platform
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry

from pycontroller.errors import ShutDownError
from pycontroller.metrics import (
    Counter,
    FunctionGauge,
    Histogram,
    NoopMetricsProvider,
    PrometheusMetricsProvider,
)
from pycontroller.workqueue import (
    BucketRateLimiter,
    DelayingQueue,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimitingQueue,
    WorkQueue,
)

K = TypeVar("K", bound=Hashable)


# --- the floor ------------------------------------------------------------------------


class FloorQueue(Generic[K]):
    """performance-notes §4 "DedupQueue": deque + dirty + processing behind one Condition."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.queue: deque[K] = deque()
        self.dirty: set[K] = set()
        self.processing: set[K] = set()
        self.shut = False

    def add(self, item: K) -> None:
        with self.cond:
            if item in self.dirty:
                return
            self.dirty.add(item)
            if item in self.processing:
                return
            self.queue.append(item)
            self.cond.notify()

    def get(self) -> K:
        with self.cond:
            while not self.queue:
                if self.shut:
                    raise ShutDownError
                self.cond.wait()
            item = self.queue.popleft()
            self.processing.add(item)
            self.dirty.discard(item)
            return item

    def done(self, item: K) -> None:
        with self.cond:
            self.processing.discard(item)
            if item in self.dirty:
                self.queue.append(item)
                self.cond.notify()

    def shut_down(self) -> None:
        with self.cond:
            self.shut = True
            self.cond.notify_all()


class FloorLimiter:
    """A bare MaxOf(exponential, token bucket) with one lock, no protocol layers."""

    def __init__(self, base: float, cap: float, qps: float, burst: float) -> None:
        self.lock = threading.Lock()
        self.failures: dict[int, int] = {}
        self.base, self.cap, self.qps, self.burst = base, cap, qps, burst
        self.tokens, self.last = burst, time.monotonic()

    def when(self, item: int) -> float:
        with self.lock:
            n = self.failures.get(item, 0)
            self.failures[item] = n + 1
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.qps)
            self.last = now
            self.tokens -= 1
            bucket = 0.0 if self.tokens >= 0 else -self.tokens / self.qps
        return max(min(math.ldexp(self.base, n), self.cap), bucket)

    def forget(self, item: int) -> None:
        with self.lock:
            self.failures.pop(item, None)


# --- helpers --------------------------------------------------------------------------


class CountingNoopMetric:
    """A no-op metric that the queue cannot recognise, so every call is made."""

    def inc(self, amount: float = 1.0, /) -> None:
        pass

    def dec(self, amount: float = 1.0, /) -> None:
        pass

    def set(self, value: float, /) -> None:
        pass

    def observe(self, value: float, /) -> None:
        pass

    def set_function(self, fn: Callable[[], float], /) -> None:
        pass


class CustomNoopProvider:
    def new_depth_metric(self, name: str) -> FunctionGauge:
        return CountingNoopMetric()

    def new_adds_metric(self, name: str) -> Counter:
        return CountingNoopMetric()

    def new_latency_metric(self, name: str) -> Histogram:
        return CountingNoopMetric()

    def new_work_duration_metric(self, name: str) -> Histogram:
        return CountingNoopMetric()

    def new_unfinished_work_seconds_metric(self, name: str) -> FunctionGauge:
        return CountingNoopMetric()

    def new_longest_running_processor_seconds_metric(self, name: str) -> FunctionGauge:
        return CountingNoopMetric()

    def new_retries_metric(self, name: str) -> Counter:
        return CountingNoopMetric()


class ManualClock:
    """Time moves only when the bench says so; waits poll every millisecond."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        cond.wait(0.001)

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        raise NotImplementedError


class QueueLike(Protocol):
    """What the loops use, met by the floor and by our queues."""

    def add(self, item: int) -> None: ...
    def get(self) -> int: ...
    def done(self, item: int) -> None: ...
    def shut_down(self) -> None: ...


def single_thread(q: QueueLike, n: int) -> float:
    add, get, done = q.add, q.get, q.done
    start = time.perf_counter()
    for i in range(n):
        add(i)
        done(get())
    elapsed = time.perf_counter() - start
    q.shut_down()
    return elapsed


def four_workers(q: QueueLike, n: int) -> float:
    def work() -> None:
        get, done = q.get, q.done
        while True:
            try:
                item = get()
            except ShutDownError:
                return
            done(item)

    workers = [threading.Thread(target=work) for _ in range(4)]
    start = time.perf_counter()
    for t in workers:
        t.start()
    add = q.add
    for i in range(n):
        add(i)
    q.shut_down()
    for t in workers:
        t.join()
    return time.perf_counter() - start


def requeue_ours(n: int) -> float:
    limiter = MaxOfRateLimiter[int](
        ItemExponentialFailureRateLimiter[int](base_delay=1e-6, max_delay=1e-3),
        BucketRateLimiter[int](qps=1e9, burst=10**9),
    )
    q = RateLimitingQueue[int](rate_limiter=limiter)
    start = time.perf_counter()
    for i in range(n):
        q.add_rate_limited(i)
    for _ in range(n):
        item = q.get()
        q.forget(item)
        q.done(item)
    elapsed = time.perf_counter() - start
    q.shut_down()
    return elapsed


def requeue_floor(n: int) -> float:
    limiter = FloorLimiter(1e-6, 1e-3, 1e9, 1e9)
    q = FloorQueue[int]()
    lock = threading.Lock()
    heap: list[tuple[float, int, int]] = []
    seq = itertools.count()
    start = time.perf_counter()
    for i in range(n):
        delay = limiter.when(i)
        with lock:
            heapq.heappush(heap, (time.monotonic() + delay, next(seq), i))
    with lock:
        while heap:
            q.add(heapq.heappop(heap)[2])
    for _ in range(n):
        item = q.get()
        limiter.forget(item)
        q.done(item)
    return time.perf_counter() - start


def delayed_ours(n: int, rnd: random.Random) -> tuple[float, float]:
    clock = ManualClock()
    q = DelayingQueue[int](clock=clock)
    delays = [rnd.uniform(1.0, 100.0) for _ in range(n)]
    start = time.perf_counter()
    for i, d in enumerate(delays):
        q.add_after(i, d)
    added = time.perf_counter()
    clock.t = 200.0
    for _ in range(n):
        q.done(q.get())
    delivered = time.perf_counter()
    q.shut_down()
    return added - start, delivered - added


def delayed_floor(n: int, rnd: random.Random) -> tuple[float, float]:
    q = FloorQueue[int]()
    lock = threading.Lock()
    heap: list[tuple[float, int, int]] = []
    seq = itertools.count()
    delays = [rnd.uniform(1.0, 100.0) for _ in range(n)]
    start = time.perf_counter()
    for i, d in enumerate(delays):
        with lock:
            heapq.heappush(heap, (0.0 + d, next(seq), i))
    added = time.perf_counter()
    with lock:
        while heap:
            q.add(heapq.heappop(heap)[2])
    for _ in range(n):
        q.done(q.get())
    return added - start, time.perf_counter() - added


# --- driver ---------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    n: int
    seconds: float
    ops_per_s: float
    floor_ops_per_s: float
    ratio: float


def best(fn: Callable[[], float], repeats: int) -> float:
    return min(fn() for _ in range(repeats))


def best_pair(fn: Callable[[], tuple[float, float]], repeats: int) -> tuple[float, float]:
    runs = [fn() for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def row(scenario: str, n: int, ours: float, floor: float) -> Row:
    return Row(scenario, n, ours, n / ours, n / floor, floor / ours)


def run(scale: float, repeats: int) -> list[Row]:
    n1 = max(1000, int(200_000 * scale))
    n4 = max(1000, int(100_000 * scale))
    nr = max(1000, int(50_000 * scale))
    nd = max(1000, int(100_000 * scale))
    rows: list[Row] = []

    floor1 = best(lambda: single_thread(FloorQueue[int](), n1), repeats)
    single: list[tuple[str, Callable[[], QueueLike]]] = [
        ("add/get/done 1 thread: WorkQueue, no metrics", WorkQueue[int]),
        ("add/get/done 1 thread: WorkQueue, NoopMetricsProvider",
         lambda: WorkQueue[int](name="b", metrics=NoopMetricsProvider())),
        ("add/get/done 1 thread: WorkQueue, custom no-op provider (calls made)",
         lambda: WorkQueue[int](name="b", metrics=CustomNoopProvider())),
        ("add/get/done 1 thread: WorkQueue, Prometheus metrics",
         lambda: WorkQueue[int](
             name="b", metrics=PrometheusMetricsProvider(registry=CollectorRegistry()))),
        ("add/get/done 1 thread: RateLimitingQueue, no metrics", RateLimitingQueue[int]),
    ]
    for name, make in single:
        ours = min(single_thread(make(), n1) for _ in range(repeats))
        rows.append(row(name, n1, ours, floor1))

    floor4 = best(lambda: four_workers(FloorQueue[int](), n4), repeats)
    rows.append(row("1 producer + 4 workers: WorkQueue, no metrics", n4,
                    best(lambda: four_workers(WorkQueue[int](), n4), repeats), floor4))

    rows.append(row("rate-limited requeue (add_rate_limited, get, forget, done)", nr,
                    best(lambda: requeue_ours(nr), repeats),
                    best(lambda: requeue_floor(nr), repeats)))

    rnd = random.Random(42)
    ours_add, ours_deliver = best_pair(lambda: delayed_ours(nd, rnd), repeats)
    floor_add, floor_deliver = best_pair(lambda: delayed_floor(nd, rnd), repeats)
    rows.append(row(f"add_after into a heap growing to {nd} pending", nd, ours_add, floor_add))
    rows.append(row(f"deliver {nd} ready delayed items (get/done)", nd, ours_deliver,
                    floor_deliver))
    return rows


def print_table(rows: list[Row]) -> None:
    width = max(len(r.scenario) for r in rows)
    print(f"{'scenario':<{width}}  {'n':>7}  {'ours/s':>10}  {'floor/s':>10}  {'ratio':>5}")
    for r in rows:
        print(f"{r.scenario:<{width}}  {r.n:>7}  {r.ops_per_s:>10,.0f}  "
              f"{r.floor_ops_per_s:>10,.0f}  {r.ratio:>5.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every N by this")
    parser.add_argument("--repeats", type=int, default=3, help="runs per scenario (best kept)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = run(args.scale, args.repeats)
    print_table(rows)
    total = time.perf_counter() - started
    print(f"\npython {platform.python_version()}, {args.repeats} repeats, {total:.1f} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "python": platform.python_version(),
            "platform": platform.platform(),
            "repeats": args.repeats,
            "scale": args.scale,
            "total_seconds": total,
            "results": [asdict(r) for r in rows],
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
