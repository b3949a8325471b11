"""Manager shutdown against the real apiserver: one grace period for all controllers."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from helpers import start_manager, timed_stop

from pycontroller import CONFIGMAPS, Client, Controller, Requeue
from pycontroller._util._wait import wait_for

pytestmark = pytest.mark.integration


class Hanging(Controller):
    """Every reconcile blocks until ``release`` is set."""

    resource = CONFIGMAPS

    def __init__(self, name: str, release: threading.Event) -> None:
        super().__init__(name=name)
        self.release = release
        self.started = threading.Event()

    def reconcile(self, key: str) -> Requeue | None:
        self.started.set()
        self.release.wait(120)
        return None


def test_the_grace_period_is_shared_by_all_controllers_not_given_to_each(
        kube_client: Client, kube_namespace: str) -> None:
    """Kubernetes kills the Pod terminationGracePeriodSeconds after SIGTERM: the Manager's
    ``grace_period`` must bound the whole wait for running reconciles (as
    controller-runtime's GracefulShutdownTimeout does), not each controller's."""
    grace = 2.0
    release = threading.Event()
    controllers = [Hanging(f"hanging-{i}", release) for i in range(3)]
    mgr, stop, thread, code = start_manager(kube_client, kube_namespace, *controllers,
                                            grace_period=grace)
    try:
        wait_for(lambda: mgr.ready()[0], timeout=60, message="manager ready")
        kube_client.create(CONFIGMAPS, {"metadata": {"name": "a"}}, kube_namespace)
        for controller in controllers:
            assert controller.started.wait(30), controller.name
        took = timed_stop(stop, thread.join)
    finally:
        release.set()
        stop.set()
        thread.join(60)
    assert code == [0]
    assert grace - 0.2 <= took < 2 * grace, f"shutdown took {took:.1f}s"


class Announcing(Controller):
    """Every reconcile posts an Event about its object."""

    resource = CONFIGMAPS

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.done = threading.Event()

    def reconcile(self, key: str) -> Requeue | None:
        obj = self.lister.get_by_key(key)
        if obj is not None:
            self.events.normal(obj, "Seen", "reconciled")
            self.done.set()
        return None


def test_event_recorders_share_one_flush_deadline(
        kube_client: Client, kube_namespace: str, kube_control_plane: Any) -> None:
    """With the Events API hanging at shutdown, flushing N recorders must not take N
    times the flush bound."""
    from pycontroller import connect
    from pycontroller.client import EVENTS_K8S_IO

    own = connect(kube_control_plane.kubeconfig)
    unblock = threading.Event()
    lock = threading.Lock()
    hanging: list[Any] = []  # Event writes waiting for the apiserver
    original = own.create

    def create(resource: Any, *args: Any, **kwargs: Any) -> Any:
        if resource == EVENTS_K8S_IO:
            with lock:
                hanging.append(resource)
            unblock.wait(60)  # an apiserver that never answers Event writes
        return original(resource, *args, **kwargs)

    own.create = create  # type: ignore[method-assign]
    controllers = [Announcing(f"announcing-{i}") for i in range(3)]
    mgr, stop, thread, code = start_manager(own, kube_namespace, *controllers)
    try:
        wait_for(lambda: mgr.ready()[0], timeout=60, message="manager ready")
        kube_client.create(CONFIGMAPS, {"metadata": {"name": "a"}}, kube_namespace)
        for controller in controllers:
            assert controller.done.wait(30), controller.name
        wait_for(lambda: len(hanging) == len(controllers), timeout=30,
                 message="each recorder's worker hangs on its Event write")
        took = timed_stop(stop, thread.join)
    finally:
        unblock.set()
        stop.set()
        thread.join(60)
        own.close()
    assert code == [0]
    assert took < 9.0, f"shutdown took {took:.1f}s"  # one 5 s flush bound, not three
