"""pytest plugin: a real control plane for your tests.

Fixtures:
    kube_control_plane: session-scoped cluster handle (``.kubeconfig``); a ``ControlPlane``
        with fault helpers under the envtest backend.
    kube_envtest: the same ``ControlPlane``, or a skip when the backend is not envtest (use
        it in tests that need ``restart_apiserver``/``compact_etcd``/``pause``).
    kube_client: a connected admin ``pycontroller.client.Client``.
    kube_namespace: a fresh namespace per test, deleted afterwards.
    kube_manager: call it with controllers to run them in a ``Manager`` (namespace
        ``kube_namespace``) until the test ends; returns the Manager once it is ready.
    kube_fake_clock: a ``FakeClock``.

Options: ``--kube-backend=envtest|kind|existing`` and ``--kube-config PATH`` (implies
existing). Under ``CI=true`` a control plane that cannot start fails the tests; elsewhere
missing binaries skip them with the command that builds them.

Cache mutation check: the plugin turns on the cache mutation detector
(``PYCONTROLLER_CACHE_MUTATION_DETECTOR=1``) and fails a test during which an informer
found a cached object changed in place (copy before you change). Mark one test
``@pytest.mark.allow_cache_mutation`` to exempt it, or set the ini option
``kube_cache_mutation_check = false`` to switch the check (and the detector's cost) off.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pycontroller.cache._mutation_detector import detected_mutations
from pycontroller.client import (
    CONFIGMAPS,
    DEPLOYMENTS,
    LEASES,
    NAMESPACES,
    PODS,
    SECRETS,
    Client,
    connect,
)
from pycontroller.controller import Controller, Manager
from pycontroller.envtest import ControlPlane, build, find_binaries
from pycontroller.errors import ControlPlaneError, NotFoundError
from pycontroller.testing._fake_clock import FakeClock
from pycontroller.testing._run import run_manager

_ENV_MUTATION = "PYCONTROLLER_CACHE_MUTATION_DETECTOR"
_INI_MUTATION = "kube_cache_mutation_check"


@dataclass(frozen=True, slots=True)
class ExternalCluster:
    """A cluster the tests did not start (``--kube-config`` or kind)."""

    kubeconfig: Path


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--kube-backend`` and ``--kube-config``."""
    group = parser.getgroup("pycontroller")
    group.addoption("--kube-backend", choices=("envtest", "kind", "existing"), default=None,
                    help="where integration tests run (default: envtest)")
    group.addoption("--kube-config", default=None, metavar="PATH",
                    help="run against an existing cluster with this kubeconfig")
    parser.addini(_INI_MUTATION, type="bool", default=True,
                  help="fail tests whose handlers mutate cached objects (default: true)")


def _mutation_check(config: pytest.Config) -> bool:
    return bool(config.getini(_INI_MUTATION))


def pytest_configure(config: pytest.Config) -> None:
    """Turn on the cache mutation detector for the whole run (unless switched off)."""
    if _mutation_check(config):
        os.environ.setdefault(_ENV_MUTATION, "1")
    config.addinivalue_line(
        "markers", "allow_cache_mutation: the test mutates cached objects on purpose")


@pytest.fixture(autouse=True)
def _fail_on_cache_mutation(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test during which an informer reported a mutated cached object."""
    if not _mutation_check(request.config):
        yield
        return
    before = len(detected_mutations())
    yield
    if request.node.get_closest_marker("allow_cache_mutation") is None:
        new = detected_mutations()[before:]
        if new:
            pytest.fail(f"handlers mutated cached objects (copy before changing): {new}",
                        pytrace=False)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _backend(config: pytest.Config) -> str:
    chosen: str | None = config.getoption("--kube-backend")
    if chosen:
        return chosen
    return "existing" if config.getoption("--kube-config") else "envtest"


def _start_envtest() -> ControlPlane:
    if find_binaries() is None and not _in_ci():
        pytest.skip("control-plane binaries are not built: run "
                    "'python -m pycontroller.envtest build' (or set KUBEBUILDER_ASSETS)")
    try:
        return ControlPlane(binaries=build()).start()
    except ControlPlaneError as exc:
        if _in_ci():
            pytest.fail(f"the local control plane did not start: {exc}", pytrace=False)
        pytest.skip(f"the local control plane did not start: {exc}")


def _kind_cluster() -> Iterator[ExternalCluster]:
    if shutil.which("docker") is None or os.system("docker info >/dev/null 2>&1") != 0:
        pytest.skip("--kube-backend=kind needs a usable Docker engine; none answers here")
    try:
        from pytest_kind import KindCluster  # noqa: PLC0415 - optional dependency
    except ImportError:
        pytest.skip("--kube-backend=kind needs 'pip install pycontroller-kube[kind]'")
    cluster = KindCluster(f"pycontroller-{uuid.uuid4().hex[:6]}")
    cluster.create()
    try:
        yield ExternalCluster(Path(cluster.kubeconfig_path))
    finally:
        cluster.delete()


@pytest.fixture(scope="session")
def kube_control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane | ExternalCluster]:
    """The cluster for this test session."""
    backend = _backend(request.config)
    if backend == "existing":
        path = request.config.getoption("--kube-config") or os.environ.get("KUBECONFIG")
        if not path:
            pytest.fail("--kube-backend=existing needs --kube-config PATH or KUBECONFIG")
        yield ExternalCluster(Path(path))
    elif backend == "kind":
        yield from _kind_cluster()
    else:
        plane = _start_envtest()
        try:
            yield plane
        finally:
            plane.stop()


@pytest.fixture(scope="session")
def kube_envtest(kube_control_plane: ControlPlane | ExternalCluster) -> ControlPlane:
    """The local control plane with fault helpers; skips on other backends."""
    if not isinstance(kube_control_plane, ControlPlane):
        pytest.skip("needs the envtest backend (fault injection)")
    return kube_control_plane


@pytest.fixture(scope="session")
def kube_client(kube_control_plane: ControlPlane | ExternalCluster) -> Iterator[Client]:
    """An admin client for the session's cluster."""
    client = connect(kube_control_plane.kubeconfig)
    try:
        yield client
    finally:
        client.close()


def _delete_quietly(client: Client, *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(NotFoundError):
        client.delete(*args, **kwargs)


@pytest.fixture
def kube_namespace(kube_client: Client) -> Iterator[str]:
    """A fresh namespace; its common objects and the namespace are deleted afterwards.

    (The local control plane has no namespace controller, so objects are deleted here.)
    """
    name = f"test-{uuid.uuid4().hex[:10]}"
    kube_client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": name}})
    try:
        yield name
    finally:
        for resource in (PODS, CONFIGMAPS, SECRETS, DEPLOYMENTS, LEASES):
            for obj in kube_client.list_all(resource, name):
                _delete_quietly(kube_client, resource, obj["metadata"]["name"], name,
                                grace_period_seconds=0)
        _delete_quietly(kube_client, NAMESPACES, name)


@pytest.fixture
def kube_manager(kube_client: Client, kube_namespace: str) -> Iterator[Callable[..., Manager]]:
    """Run controllers in a Manager for the rest of the test; it stops cleanly afterwards.

    ``kube_manager(*controllers, **manager_options)`` builds a ``Manager`` on
    ``kube_client`` watching ``kube_namespace`` (pass ``namespace=None`` for all), with
    no HTTP servers and no signal handlers, adds the controllers, starts it, and returns
    it once its caches have synced and its workers run. Each call starts another Manager.
    """
    with contextlib.ExitStack() as stack:
        def start(*controllers: Controller, **options: Any) -> Manager:
            options = {"namespace": kube_namespace, "metrics_bind_address": None,
                       "health_probe_bind_address": None, "handle_signals": False,
                       **options}
            manager = Manager(kube_client, **options)
            for controller in controllers:
                manager.add(controller)
            return stack.enter_context(run_manager(manager))

        yield start


@pytest.fixture
def kube_fake_clock() -> FakeClock:
    """A manual clock starting at t=1000."""
    return FakeClock()
