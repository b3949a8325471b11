"""The local control plane, exercised as a user would: over the real API."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from pycontroller._util._wait import wait_for
from pycontroller.client import CONFIGMAPS, PODS, Client, connect
from pycontroller.client._errors import api_error
from pycontroller.envtest import Binaries, ControlPlane, _control_plane, _http
from pycontroller.errors import (
    ControlPlaneError,
    ForbiddenError,
    NotFoundError,
    ResourceExpiredError,
)

pytestmark = pytest.mark.integration


def _configmap(name: str, value: str = "1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"v": value}}


def _pod(name: str, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_readyz_and_version(kube_envtest: ControlPlane) -> None:
    assert kube_envtest.request("GET", "/readyz").text == "ok"
    version = kube_envtest.request("GET", "/version").body
    assert version["gitVersion"] == "v1.37.2"
    assert kube_envtest.server.startswith("https://127.0.0.1:")


def test_admin_creates_and_lists_pods(kube_client: Client, kube_namespace: str) -> None:
    for i in range(3):
        kube_client.create(PODS, _pod(f"p{i}"), kube_namespace)
    names = sorted(p["metadata"]["name"] for p in kube_client.list_all(PODS, kube_namespace))
    assert names == ["p0", "p1", "p2"]


def test_rbac_denies_then_allows(
    kube_envtest: ControlPlane, kube_client: Client, kube_namespace: str
) -> None:
    user = connect(kube_envtest.add_user("alice", groups=("devs",)))
    with pytest.raises(ForbiddenError):
        user.list(CONFIGMAPS, kube_namespace)
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/" + kube_namespace
    kube_client.request("POST", f"{rbac}/roles", body={
        "metadata": {"name": "cm-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]})
    kube_client.request("POST", f"{rbac}/rolebindings", body={
        "metadata": {"name": "alice-reads"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "cm-reader"},
        "subjects": [{"kind": "User", "name": "alice",
                      "apiGroup": "rbac.authorization.k8s.io"}]})
    # RBAC is read from an informer inside the apiserver: wait until it has the binding.
    items = wait_for(lambda: _try_list(user, kube_namespace), timeout=10, message="RBAC")
    assert items["kind"] == "ConfigMapList"


def _try_list(client: Client, namespace: str) -> Any:
    try:
        return client.list(CONFIGMAPS, namespace)
    except ForbiddenError:
        return None


def test_service_account_token_authenticates(
    kube_envtest: ControlPlane, kube_namespace: str
) -> None:
    sa = connect(kube_envtest.service_account_kubeconfig(kube_namespace, "robot"))
    review = sa.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                        body={"apiVersion": "authentication.k8s.io/v1",
                              "kind": "SelfSubjectReview"})
    assert review["status"]["userInfo"]["username"] == (
        f"system:serviceaccount:{kube_namespace}:robot")


def test_restart_apiserver_keeps_objects(
    kube_envtest: ControlPlane, kube_client: Client, kube_namespace: str
) -> None:
    kube_client.create(CONFIGMAPS, _configmap("kept"), kube_namespace)
    old_pid = kube_envtest.pids[1]
    kube_envtest.restart_apiserver()
    assert kube_envtest.pids[1] != old_pid
    assert kube_client.get(CONFIGMAPS, "kept", kube_namespace)["data"] == {"v": "1"}


def test_compaction_makes_old_watch_expire(
    kube_envtest: ControlPlane, kube_client: Client, kube_namespace: str
) -> None:
    created = kube_client.create(CONFIGMAPS, _configmap("c"), kube_namespace)
    old_rv = created["metadata"]["resourceVersion"]
    for i in range(3):
        kube_client.patch(CONFIGMAPS, "c", {"data": {"v": str(i)}}, kube_namespace)
    assert kube_envtest.compact_etcd() > int(old_rv)
    # Refused at open, or sent as an ERROR event.
    with pytest.raises(ResourceExpiredError), kube_client.watch(
        CONFIGMAPS, kube_namespace, resource_version=old_rv, timeout_seconds=5
    ) as stream:
        for event in stream:
            if event.type == "ERROR":
                raise api_error(200, event.object)
            pytest.fail(f"expected 410, got {event.type}")


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_pause_stalls_and_resume_recovers(kube_envtest: ControlPlane) -> None:
    apiserver = kube_envtest.pids[1]
    kube_envtest.pause()
    try:
        wait_for(lambda: _state(apiserver) == "T", timeout=5, message="SIGSTOP to land")
        with pytest.raises(OSError):  # socket timeout: the server accepts nothing
            _http.request("127.0.0.1", kube_envtest.port, "GET", "/readyz", timeout=1.0)
    finally:
        kube_envtest.resume()
    kube_envtest.wait_ready(30)
    assert _state(apiserver) != "T"


def test_kwok_node_runs_pods_and_restarts_containers(
    kube_envtest: ControlPlane, kube_client: Client, kube_namespace: str
) -> None:
    kube_envtest.create_node("kwok-node-a")
    kube_client.create(PODS, _pod("runner", node="kwok-node-a"), kube_namespace)
    wait_for(lambda: kube_client.get(PODS, "runner", kube_namespace)["status"].get("phase")
             == "Running", timeout=30, message="pod Running")
    assert kube_envtest.restart_container(kube_namespace, "runner") == 1
    status = kube_client.get(PODS, "runner", kube_namespace)["status"]
    assert status["containerStatuses"][0]["restartCount"] == 1


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_two_control_planes_and_clean_stop(kube_envtest: ControlPlane) -> None:
    second = ControlPlane().start()
    try:
        assert second.port != kube_envtest.port
        assert second.etcd_port != kube_envtest.etcd_port
        client = connect(second.kubeconfig)
        client.create(CONFIGMAPS, _configmap("only-here"), "default")
        assert kube_envtest.request(
            "GET", "/api/v1/namespaces/default/configmaps/only-here").status == 404
        pids = second.pids
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    finally:
        second.stop()
    assert not any(_alive(p) for p in pids)
    assert not second.workdir.exists()
    assert kube_envtest.request("GET", "/readyz").status == 200


@pytest.mark.parametrize(("taken_call", "process"), [(1, "etcd"), (2, "etcd"),
                                                   (3, "kube-apiserver")])
def test_a_port_taken_before_the_child_binds_it_is_replaced(
        monkeypatch: pytest.MonkeyPatch, taken_call: int, process: str) -> None:
    """A port found free can be taken before etcd or the apiserver binds it (the race of
    any free-port lookup): that child is started again on new ports, nothing else fails.
    The ports are asked for in the order etcd client, etcd peer, apiserver."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        calls: list[int] = []
        free_port = _control_plane._free_port

        def racing_free_port() -> int:
            calls.append(1)
            return taken if len(calls) == taken_call else free_port()

        monkeypatch.setattr(_control_plane, "_free_port", racing_free_port)
        with capture_logs() as logs:
            plane = ControlPlane().start()
        try:
            assert taken not in (plane.port, plane.etcd_port)
            assert plane.request("GET", "/readyz").status == 200
            retried = [e for e in logs if e["event"] == "control_plane_port_taken"]
            assert [(e["process"], e["attempt"]) for e in retried] == [(process, 1)]
        finally:
            plane.stop()


def test_failed_binary_is_named_with_exit_code_and_log(tmp_path: Path) -> None:
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\necho 'cannot open data dir: boom' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    plane = ControlPlane(binaries=Binaries(fake, fake, None), start_timeout=10)
    with pytest.raises(ControlPlaneError) as info:
        plane.start()
    text = str(info.value)
    assert "etcd exited with code 3" in text
    assert "cannot open data dir: boom" in text
    assert plane.pids == []


def test_kubeconfig_loads_with_official_client(kube_envtest: ControlPlane) -> None:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    api = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call, unused-ignore]
        str(kube_envtest.kubeconfig))
    try:
        items = k8s.CoreV1Api(api).list_namespace().items
        names = [n.metadata.name for n in items if n.metadata is not None]
    finally:
        api.close()
    assert "default" in names
    assert os.stat(kube_envtest.kubeconfig).st_mode & 0o077 == 0


def test_delete_behind_a_stopped_apiserver(
    kube_envtest: ControlPlane, kube_client: Client, kube_namespace: str
) -> None:
    kube_client.create(CONFIGMAPS, _configmap("doomed"), kube_namespace)
    kube_envtest.stop_apiserver()
    try:
        assert kube_envtest.etcd_delete(f"/registry/configmaps/{kube_namespace}/doomed") == 1
    finally:
        kube_envtest.start_apiserver()
    with pytest.raises(NotFoundError):
        kube_client.get(CONFIGMAPS, "doomed", kube_namespace)


def test_up_command_prints_kubeconfig_and_stops_on_ctrl_c() -> None:
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "pycontroller.envtest", "up", "--node", ""],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        export = ""
        for line in proc.stdout:
            if line.startswith("export KUBECONFIG="):
                export = line.strip().split("=", 1)[1]
                break
        assert export, "no export line"
        assert connect(export).list(CONFIGMAPS, "default")["kind"] == "ConfigMapList"
        children = _children_of(proc.pid)
        assert len(children) == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert not any(_alive(p) for p in children)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _children_of(pid: int) -> list[int]:
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(stat_file.parent.name))
    return found
