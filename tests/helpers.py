"""Shared helpers of the integration tests (on sys.path through pytest's ``pythonpath``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from pycontroller import Controller, Manager
from pycontroller._util._wait import wait_for
from pycontroller.cache import DeletedFinalStateUnknown
from pycontroller.cache._shared_informer import SharedIndexInformer
from pycontroller.client import CONFIGMAPS, Client
from pycontroller.errors import ConflictError


def timed_stop(stop: threading.Event, join: Callable[[float], object],
               timeout: float = 60.0) -> float:
    """Set ``stop``, ``join(timeout)``; return the seconds that took."""
    asked = time.monotonic()
    stop.set()
    join(timeout)
    return time.monotonic() - asked

def cm(name: str, value: str = "0", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": {"v": value}}


class Recorder:
    """Handler that records events and mirrors the cache it was told about."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []
        self.seen: dict[str, str] = {}  # name -> last rv told
        self.tombstones: list[str] = []

    def on_add(self, obj: Mapping[str, Any], initial: bool) -> None:
        with self.lock:
            self.events.append(("add", obj["metadata"]["name"]))
            self.seen[obj["metadata"]["name"]] = obj["metadata"]["resourceVersion"]

    def on_update(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        with self.lock:
            self.events.append(("update", new["metadata"]["name"]))
            self.seen[new["metadata"]["name"]] = new["metadata"]["resourceVersion"]

    def on_delete(self, obj: Any) -> None:
        with self.lock:
            if isinstance(obj, DeletedFinalStateUnknown):
                name = obj.key.rpartition("/")[2]
                self.tombstones.append(name)
            else:
                name = obj["metadata"]["name"]
            self.events.append(("delete", name))
            self.seen.pop(name, None)

    def handlers(self) -> dict[str, Any]:
        return {"on_add": self.on_add, "on_update": self.on_update, "on_delete": self.on_delete}

    def names(self) -> set[str]:
        with self.lock:
            return set(self.seen)

    def state(self) -> dict[str, str]:
        """What the handler was told: name -> resourceVersion of the last add/update."""
        with self.lock:
            return dict(self.seen)


def recorded(lister_watcher: Any, **options: Any) -> tuple[SharedIndexInformer, Recorder]:
    """A ConfigMap informer with a Recorder attached as its handler."""
    informer = SharedIndexInformer(lister_watcher, expected_kind="ConfigMap", **options)
    rec = Recorder()
    informer.add_event_handler(**rec.handlers())
    return informer, rec


def server_state(client: Client, namespace: str) -> dict[str, tuple[str, str]]:
    return {o["metadata"]["name"]: (o["metadata"]["uid"], o["metadata"]["resourceVersion"])
            for o in client.list_all(CONFIGMAPS, namespace)}


def cache_state(informer: SharedIndexInformer) -> dict[str, tuple[str, str]]:
    return {o["metadata"]["name"]: (o["metadata"]["uid"], o["metadata"]["resourceVersion"])
            for o in informer.lister.list()}


def converged(client: Client, namespace: str, informer: SharedIndexInformer,
              recorder: Recorder | None = None, timeout: float = 60) -> None:
    """Wait until the cache (uid and RV per object) and, with ``recorder``, what the handler
    was told (RV per object) equal a fresh LIST of the server."""
    def same() -> bool:
        want = server_state(client, namespace)
        if cache_state(informer) != want:
            return False
        return recorder is None or recorder.state() == {n: rv for n, (_, rv) in want.items()}
    wait_for(same, timeout=timeout, message="cache and handler == fresh LIST")




def retrying(fn: Any, *args: Any, timeout: float = 60.0, **kwargs: Any) -> Any:
    """Call ``fn`` until it gets through the apiserver (restarts, stalls); AlreadyExists and
    NotFound on a retry count as done (the first attempt may have landed)."""
    import time

    from pycontroller.errors import (
        ConflictError,
        NotFoundError,
        ServerError,
        TooManyRequestsError,
        TransportError,
    )

    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        try:
            return fn(*args, **kwargs)
        except (ConflictError, NotFoundError):
            if attempt == 0:
                raise
            return None
        except (TransportError, ServerError, TooManyRequestsError):
            if time.monotonic() > deadline:
                raise
            attempt += 1
            time.sleep(0.2)


ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A running pod-logger whose JSON log lines are collected as they come."""

    def __init__(self, args: list[str], module: str | None = "examples.pod_logger") -> None:
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, *(["-m", module, "--log-format", "json"] if module else []),
             *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.raw.append(line)
                if line.startswith("{"):
                    self.lines.append(json.loads(line))

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 30,
                 what: str = "log line") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for line in self.lines:
                    if match(line):
                        return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        with self._lock:
            tail = "".join(self.raw[-30:])
        raise AssertionError(f"no {what} within {timeout}s; output tail:\n{tail}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            self._reader.join(5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def event(kind: str, /, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda line: line.get("event") == kind and all(
        line.get(k) == v for k, v in fields.items())


def start_manager(client: Client, namespace: str, *controllers: Controller,
                  registry: CollectorRegistry | None = None, **options: Any,
                  ) -> tuple[Manager, threading.Event, threading.Thread, list[int]]:
    """Start a Manager with ``controllers`` (no servers, no signal handlers, ``options``
    passed on) in a thread: (manager, its stop event, the thread, [exit code] once run
    returned)."""
    mgr = Manager(client, namespace=namespace, registry=registry or CollectorRegistry(),
                  metrics_bind_address=None, health_probe_bind_address=None,
                  handle_signals=False, **options)
    for controller in controllers:
        mgr.add(controller)
    stop = threading.Event()
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(mgr.run(stop)),
                              name="pycontroller-test-manager")
    thread.start()
    return mgr, stop, thread, code


@contextlib.contextmanager
def running(client: Client, namespace: str, *controllers: Controller,
            wait_ready: bool = True, registry: CollectorRegistry | None = None,
            ) -> Iterator[Manager]:
    """Run a Manager with ``controllers`` in a thread; stop it (and check exit 0) on exit."""
    mgr, stop, thread, code = start_manager(client, namespace, *controllers, registry=registry)
    try:
        if wait_ready:
            wait_for(lambda: mgr.ready()[0], timeout=60, message="manager ready")
        yield mgr
    finally:
        stop.set()
        thread.join(60)
        assert not thread.is_alive()
    assert code == [0]


MANIFEST_API = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments"}


def apply_manifests(client: Client, folder: Path) -> None:
    """Create an example's manifests (Deployments as a dry run: no controller-manager)."""

    docs = [d for name in ("deployment.yaml", "rbac.yaml")
            for d in yaml.safe_load_all((folder / name).read_text()) if d]
    for doc in sorted(docs, key=lambda d: d["kind"] != "Namespace"):
        path = MANIFEST_API[doc["kind"]].format(ns=doc["metadata"].get("namespace", ""))
        dry = "?dryRun=All" if doc["kind"] == "Deployment" else ""  # no controller-manager
        with contextlib.suppress(ConflictError):  # applied by an earlier test
            client.request("POST", path + dry, body=doc)
