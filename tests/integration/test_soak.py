"""Seeded randomized soak: churn mixed with restarts, compactions, stalls and watch cuts.

Each run must converge: the cache (uid and resourceVersion of every object) and what the
handler was told (the resourceVersion of every live object, nothing else) equal a fresh LIST.
CI runs the quick mode; ``pytest --soak N`` runs N seeded runs, ``--soak-seed S`` picks
the first seed.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from helpers import cm, converged, recorded, retrying

from pycontroller.cache._informer_factory import wait_for_cache_sync
from pycontroller.client import CONFIGMAPS, Client, ListWatch
from pycontroller.envtest import ControlPlane
from pycontroller.errors import NotFoundError
from pycontroller.testing._faults import FaultyListerWatcher

pytestmark = pytest.mark.integration
_log = structlog.get_logger("soak")


def _fault_plan(rnd: random.Random, plane: ControlPlane, faulty: FaultyListerWatcher,
                ops: Callable[[int], None]) -> dict[str, Callable[[], None]]:
    def restart() -> None:
        plane.restart_apiserver()

    def compact() -> None:
        faulty.down()
        ops(5)
        plane.compact_etcd()
        faulty.up()

    def stall() -> None:
        plane.pause()
        threading.Event().wait(2.5)  # the fault itself: a silent server for > the deadline
        plane.resume()

    def cut() -> None:
        faulty.down()
        ops(5)
        faulty.up()

    return {"restart": restart, "compact": compact, "stall": stall, "cut": cut}


def test_randomized_soak(
    request: pytest.FixtureRequest, kube_envtest: ControlPlane, kube_client: Client,
    kube_namespace: str,
) -> None:
    runs: int = request.config.getoption("--soak")
    first_seed: int = request.config.getoption("--soak-seed")
    survived: dict[str, int] = {}
    for seed in range(first_seed, first_seed + runs):
        _one_run(seed, kube_envtest, kube_client, kube_namespace, survived)
    _log.info("soak_finished", runs=runs, faults=survived)
    print(f"\nsoak: {runs} run(s) converged (cache and handler == server), "
          f"faults survived: {survived} = {sum(survived.values())}")
    assert sum(survived.values()) >= 4 * runs


def _one_run(seed: int, plane: ControlPlane, client: Client, namespace: str,
             survived: dict[str, int]) -> None:
    rnd = random.Random(seed)
    names: list[str] = []
    counter = [0]

    def ops(count: int) -> None:
        for _ in range(count):
            choice = rnd.random()
            try:
                if choice < 0.5 or not names:
                    counter[0] += 1
                    name = f"s{seed}-{counter[0]}"
                    retrying(client.create, CONFIGMAPS, cm(name), namespace)
                    names.append(name)
                elif choice < 0.8:
                    retrying(client.patch, CONFIGMAPS, rnd.choice(names),
                             {"data": {"v": str(choice)}}, namespace)
                else:
                    retrying(client.delete, CONFIGMAPS, names.pop(rnd.randrange(len(names))),
                             namespace)
            except NotFoundError:
                pass

    faulty = FaultyListerWatcher(ListWatch(client, CONFIGMAPS, namespace))
    informer, rec = recorded(faulty, inactivity_timeout=1.5,
                             reflector_options=_fast_backoff())
    stop = threading.Event()
    informer.start(stop)
    try:
        assert wait_for_cache_sync(stop, informer.has_synced, timeout=30)
        plan = _fault_plan(rnd, plane, faulty, ops)
        kinds = list(plan)
        rnd.shuffle(kinds)
        for kind in kinds:
            ops(rnd.randint(5, 15))
            plan[kind]()
            survived[kind] = survived.get(kind, 0) + 1
        ops(10)
        converged(client, namespace, informer, rec, timeout=90)
    finally:
        stop.set()
        informer.join(10)


def _fast_backoff() -> dict[str, Any]:
    from pycontroller._util._backoff import Backoff

    return {"backoff": Backoff(initial=0.2, cap=2.0)}
