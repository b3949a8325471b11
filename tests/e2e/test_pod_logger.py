"""pod-logger as a user runs it: a subprocess with JSON logs, against the control plane."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, Process, event, free_port

from pycontroller import CONFIGMAPS, PODS, Client
from pycontroller.envtest import ControlPlane

pytestmark = pytest.mark.e2e
NODE = "kwok-e2e"


@pytest.fixture
def logger(kube_envtest: ControlPlane, kube_namespace: str) -> Iterator[tuple[Process, int]]:
    kube_envtest.create_node(NODE)
    port = free_port()
    proc = Process(["--kubeconfig", str(kube_envtest.kubeconfig), "--namespace", kube_namespace,
                    "--metrics-bind-address", f"127.0.0.1:{port}",
                    "--health-probe-bind-address", f"127.0.0.1:{port}"])
    proc.wait_for(event("controllers_started"), what="start-up")
    yield proc, port
    proc.stop()


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": NODE, "containers": [{"name": "main", "image": "x"}]}}


def test_logs_add_update_delete_with_reason(
    logger: tuple[Process, int], kube_client: Client, kube_namespace: str
) -> None:
    proc, _ = logger
    kube_client.create(PODS, pod("web"), kube_namespace)
    added = proc.wait_for(event("pod_added", name="web"))
    assert added["namespace"] == kube_namespace and added["phase"] == "Pending"
    running = proc.wait_for(lambda e: e.get("event") == "pod_updated"
                            and e.get("name") == "web" and e.get("phase") == "Running")
    assert running["changed"]["phase"] == ["Pending", "Running"]
    kube_client.delete(PODS, "web", kube_namespace)
    deleted = proc.wait_for(event("pod_deleted", name="web"))
    assert deleted["tombstone"] is False
    assert deleted["reason"].startswith("deleted gracefully")


def test_missed_delete_is_logged_as_tombstone(
    logger: tuple[Process, int], kube_envtest: ControlPlane, kube_client: Client,
    kube_namespace: str,
) -> None:
    proc, _ = logger
    kube_client.create(PODS, pod("ghost"), kube_namespace)
    proc.wait_for(event("pod_added", name="ghost"))
    kube_envtest.stop_apiserver()  # the watch is cut ...
    try:  # ... and the pod disappears while nobody can watch
        assert kube_envtest.etcd_delete(f"/registry/pods/{kube_namespace}/ghost") == 1
        kube_envtest.compact_etcd()
    finally:
        kube_envtest.start_apiserver()
    line = proc.wait_for(event("pod_deleted", name="ghost"), timeout=90)
    assert line["tombstone"] is True
    assert "watch was down" in line["reason"]
    assert line["namespace"] == kube_namespace


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_probes_and_metrics(logger: tuple[Process, int], kube_namespace: str) -> None:
    _, port = logger
    assert get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
    assert get(f"http://127.0.0.1:{port}/readyz") == (200, "ok\n")
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert 'workqueue_depth{name="pod-logger"}' in body
    assert "rest_client_requests_total{" in body
    assert 'controller_runtime_reconcile_total{controller="pod-logger",result="success"}' in body
    assert f'reflector_lists_total{{name="v1/pods,ns={kube_namespace}"}} 1.0' in body
    assert 'informer_pending_notifications{name="pycontroller-handler-v1/pods,ns=' in body
    assert get(f"http://127.0.0.1:{port}/nope")[0] == 404


def test_sigterm_exits_zero_within_grace(logger: tuple[Process, int]) -> None:
    proc, _ = logger
    started = time.monotonic()
    assert proc.stop() == 0
    assert time.monotonic() - started < 30
    proc.wait_for(event("shutdown_completed"), timeout=1)


def test_demo_command_shows_adds_updates_and_deletes() -> None:
    proc = Process(["--local", "--duration", "25", "--demo-interval", "0.5",
                    "--metrics-bind-address", f"127.0.0.1:{free_port()}",
                    "--health-probe-bind-address", f"127.0.0.1:{free_port()}"])
    try:
        for name in ("pod_added", "pod_updated", "pod_deleted"):
            proc.wait_for(event(name), timeout=120, what=name)
        restarted = proc.wait_for(lambda e: "restarts" in e.get("changed", {}), timeout=60,
                                  what="a restart")
        assert restarted["namespace"] == "demo"
    finally:
        code = proc.stop()
    assert code == 0
    assert not any(p.name in ("etcd", "kube-apiserver", "kwok") for p in _children(proc))


def _children(proc: Process) -> list[Path]:
    """Processes whose parent was the demo (they must be gone after it exits)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split()
        except OSError:
            continue
        if fields[3] == str(proc.proc.pid) and fields[2] != "Z":
            found.append(Path(fields[1].strip("()")))
    return found


def test_cache_sync_timeout_exits_1_naming_the_resource(
    kube_envtest: ControlPlane, kube_namespace: str
) -> None:
    # A user with no RBAC at all: the pod informer can never list, so it never syncs.
    kubeconfig = kube_envtest.add_user("nobody")
    proc = subprocess.run(
        [sys.executable, "-m", "examples.pod_logger", "--log-format", "json",
         "--kubeconfig", str(kubeconfig), "--sync-timeout", "3",
         "--metrics-bind-address", f"127.0.0.1:{free_port()}",
         "--health-probe-bind-address", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    line = next(json.loads(x) for x in proc.stdout.splitlines()
                if x.startswith("{") and '"cache_sync_timeout"' in x)
    assert "v1/pods" in line["error"] and "RBAC" in line["error"]


BLOCKING = """
import sys, threading
from pycontroller.cli import configure_logging
from pycontroller import CONFIGMAPS, Controller, Manager, connect

class Stuck(Controller):
    resource = CONFIGMAPS
    namespace = sys.argv[2]
    def reconcile(self, key):
        print('{"event": "reconcile_entered"}', flush=True)
        threading.Event().wait()          # never returns

configure_logging("json")
manager = Manager(connect(sys.argv[1]), grace_period=60, metrics_bind_address=None,
                  health_probe_bind_address=None)
manager.add(Stuck())
sys.exit(manager.run())
"""


def test_second_signal_exits_at_once(
    kube_envtest: ControlPlane, kube_client: Client, kube_namespace: str
) -> None:
    proc = Process(["-c", BLOCKING, str(kube_envtest.kubeconfig), kube_namespace],
                   module=None)
    try:
        proc.wait_for(event("controllers_started"), what="start-up")
        kube_client.create(CONFIGMAPS, {"metadata": {"name": "x"}}, kube_namespace)
        proc.wait_for(event("reconcile_entered"))
        proc.proc.send_signal(signal.SIGTERM)
        proc.wait_for(event("shutdown_started"))  # now waiting up to 60 s for the reconcile
        started = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(10) == 128 + signal.SIGTERM
        assert time.monotonic() - started < 10
    finally:
        proc.stop()
