"""Many producers and workers on one RateLimitingQueue; checks the invariants under load.

Time is a FakeClock that the producers step, so delays pass without sleeping. Every
wait is on a condition with a real-time deadline.
"""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pycontroller.errors import ShutDownError
from pycontroller.metrics import PrometheusMetricsProvider
from pycontroller.testing._fake_clock import FakeClock
from pycontroller.workqueue import RateLimitingQueue

PRODUCERS = 4
WORKERS = 4
OPS_PER_PRODUCER = 1500
HOT_KEYS = [f"hot-{i}" for i in range(40)]
DEADLINE = 60.0  # real seconds for each phase; only reached when something is broken


class Tracker:
    """What the producers asked for and what the workers got, under one lock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.cond = threading.Condition()
        self.seq = 0
        self.in_flight: set[str] = set()
        self.violations: list[str] = []
        self.last_add: dict[str, int] = {}  # key -> seq taken just before its latest add
        self.last_get: dict[str, int] = {}  # key -> seq at its latest get
        self.adds: Counter[str] = Counter()
        self.gets: Counter[str] = Counter()
        self.ready: dict[str, float] = {}  # delayed key -> lower bound of its ready time

    def before_add(self, key: str, delay: float | None = None) -> None:
        with self.cond:
            self.seq += 1
            self.last_add[key] = self.seq
            self.adds[key] += 1
            if delay is not None:
                self.ready[key] = self.clock.now() + delay

    def started(self, key: str) -> None:
        now = self.clock.now()
        with self.cond:
            if key in self.in_flight:
                self.violations.append(f"{key} processed by two workers at once")
            self.in_flight.add(key)
            self.seq += 1
            self.last_get[key] = self.seq
            self.gets[key] += 1
            if key in self.ready and now < self.ready[key]:
                self.violations.append(f"{key} delivered at {now}, before {self.ready[key]}")

    def finished(self, key: str) -> None:
        with self.cond:
            self.in_flight.discard(key)
            self.cond.notify_all()

    def all_served_locked(self) -> bool:
        return not self.in_flight and all(
            self.last_get.get(k, -1) > seq for k, seq in self.last_add.items())


class StressRun:
    """The producers, workers and scraper of one run."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.registry = CollectorRegistry()
        self.q = RateLimitingQueue[str](
            name="stress", clock=self.clock,
            metrics=PrometheusMetricsProvider(registry=self.registry))
        self.tracker = Tracker(self.clock)
        self.producing = threading.Event()
        self.producing.set()
        self.scraping = threading.Event()
        self.scraping.set()

    def produce(self, seed: int) -> None:
        rnd, q, tracker = random.Random(seed), self.q, self.tracker
        for n in range(OPS_PER_PRODUCER):
            r = rnd.random()
            if r < 0.55:
                key = rnd.choice(HOT_KEYS)
                tracker.before_add(key)
                q.add(key)
            elif r < 0.75:
                key = rnd.choice(HOT_KEYS)
                tracker.before_add(key)
                q.add_rate_limited(key)
            elif r < 0.92:
                key = f"delayed-{seed}-{n}"  # each delayed key is asked for exactly once
                delay = rnd.uniform(-0.5, 3.0)
                tracker.before_add(key, delay)
                q.add_after(key, delay)
            else:
                self.clock.step(rnd.uniform(0.0, 0.3))

    def work(self, seed: int) -> None:
        rnd, q, tracker = random.Random(seed), self.q, self.tracker
        while True:
            try:
                key = q.get()
            except ShutDownError:
                return
            tracker.started(key)
            if key.startswith("hot") and self.producing.is_set():
                r = rnd.random()
                if r < 0.1:
                    tracker.before_add(key)
                    q.add(key)  # re-added while processing
                elif r < 0.2:
                    tracker.before_add(key)
                    q.add_rate_limited(key)
                else:
                    q.forget(key)
            tracker.finished(key)  # before done(): another worker may get it right after
            q.done(key)

    def scrape(self) -> None:
        while self.scraping.is_set():
            generate_latest(self.registry)

    def flush(self) -> bool:
        """Step past every delay until each add was followed by a get of its key."""
        cond = self.tracker.cond
        with cond:
            for _ in range(int(DEADLINE / 0.05)):
                if self.tracker.all_served_locked():
                    return True
                cond.release()
                try:
                    self.clock.step(1000.0)  # limiter delays reach minutes of fake time
                finally:
                    cond.acquire()
                cond.wait(0.05)
            return self.tracker.all_served_locked()


@pytest.mark.timeout(180)
def test_many_producers_and_workers_keep_the_invariants() -> None:
    run = StressRun()
    producers = [threading.Thread(target=run.produce, args=(i,)) for i in range(PRODUCERS)]
    workers = [threading.Thread(target=run.work, args=(100 + i,)) for i in range(WORKERS)]
    scraper = threading.Thread(target=run.scrape)
    for t in [*workers, *producers, scraper]:
        t.start()
    try:
        for t in producers:
            t.join(DEADLINE)
            assert not t.is_alive(), "producer stuck"
        run.producing.clear()
        assert run.flush(), "some added keys were never handed out"
        assert run.q.shut_down_with_drain(timeout=DEADLINE) is True
    finally:
        run.q.shut_down()
        run.scraping.clear()
        for t in [*workers, scraper]:
            t.join(DEADLINE)
    assert not any(t.is_alive() for t in workers), "worker did not stop"

    tracker = run.tracker
    assert tracker.violations == []
    delayed = [k for k in tracker.adds if k.startswith("delayed")]
    assert len(delayed) > PRODUCERS * OPS_PER_PRODUCER // 10
    assert all(tracker.gets[k] == 1 for k in delayed), "delayed key lost or duplicated"
    for key, n in tracker.gets.items():
        assert n <= tracker.adds[key], f"{key} handed out more often than added"
    assert {k for k in tracker.gets if k.startswith("hot")} == set(HOT_KEYS)
    value = run.registry.get_sample_value
    assert value("workqueue_depth", {"name": "stress"}) == 0
    assert value("workqueue_unfinished_work_seconds", {"name": "stress"}) == 0
