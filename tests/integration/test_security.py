"""Security properties against the real apiserver (issue 13)."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import ssl
import stat
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from pycontroller import (
    CONFIGMAPS,
    LEASES,
    NAMESPACES,
    SECRETS,
    Client,
    LeaderElectionConfig,
    Manager,
    Resource,
    connect,
)
from pycontroller._util._wait import wait_for
from pycontroller.cache._shared_informer import SharedIndexInformer
from pycontroller.client import ListWatch, resource_for
from pycontroller.envtest import ControlPlane
from pycontroller.envtest._http import request as http_request
from pycontroller.errors import ConfigError, TransportError
from pycontroller.leaderelection import LeaseLock, _in_cluster

pytestmark = pytest.mark.integration


def _snapshot(client: Client, namespace: str) -> tuple[Any, ...]:
    ns = client.get(NAMESPACES, namespace)
    cms = sorted((o["metadata"]["name"], o["metadata"]["resourceVersion"])
                 for o in client.list_all(CONFIGMAPS, namespace))
    return (ns["metadata"]["resourceVersion"], ns["metadata"].get("labels"),
            ns["metadata"].get("deletionTimestamp"), ns["status"].get("phase"), cms)


def test_dot_segments_never_reach_the_server(kube_client: Client, kube_namespace: str) -> None:
    """Each of these used to hit another URL: the collection, the Namespace, a Secret."""
    ns = kube_namespace
    for i in range(3):
        kube_client.create(CONFIGMAPS, {"metadata": {"name": f"keep-{i}"}}, ns)
    kube_client.create(SECRETS, {"metadata": {"name": "db"}, "stringData": {"pw": "hunter2"}},
                       ns)
    before = _snapshot(kube_client, ns)

    attacks: dict[str, Callable[[], Any]] = {
        "delete name '.' (the collection)": lambda: kube_client.delete(CONFIGMAPS, ".", ns),
        "delete name '..' (the Namespace)": lambda: kube_client.delete(CONFIGMAPS, "..", ns),
        "patch name '..' (relabels the Namespace)": lambda: kube_client.patch(
            CONFIGMAPS, "..", {"metadata": {"labels": {"pwned": "1"}}}, ns),
        "list in namespace '..' (cluster-wide)": lambda: kube_client.list(CONFIGMAPS, ".."),
        "subresource '../../secrets/db'": lambda: kube_client.patch(
            CONFIGMAPS, "keep-0", {"data": {"x": "y"}}, ns, subresource="../../secrets/db"),
        "replace name '..'": lambda: kube_client.replace(
            CONFIGMAPS, {"metadata": {"name": "..", "namespace": ns}}),
        "create in namespace '..'": lambda: kube_client.create(
            CONFIGMAPS, {"metadata": {"name": "x"}}, ".."),
        "watch in namespace '..'": lambda: kube_client.watch(CONFIGMAPS, "..").close(),
        "delete Namespace '.' (every Namespace)": lambda: kube_client.delete(NAMESPACES, "."),
        "raw path ending in '.'": lambda: kube_client.request(
            "DELETE", f"/api/v1/namespaces/{ns}/configmaps/."),
        "raw path with '..'": lambda: kube_client.request(
            "GET", f"/api/v1/namespaces/{ns}/configmaps/keep-0/../../secrets/db"),
        "discovery of '../api/v1'": lambda: resource_for(kube_client, "../api/v1", "Secret"),
        "Lease name '..'": lambda: LeaseLock(kube_client, ns, "..", "me").get(),
        "Lease namespace '..'": lambda: LeaseLock(kube_client, "..", "lease", "me").get(),
    }
    reached = []
    for what, attack in attacks.items():
        try:
            attack()
        except ValueError as exc:
            assert "'.'" in str(exc) or "'..'" in str(exc) or "dot segment" in str(exc) \
                or "'/'" in str(exc), (what, exc)
        except Exception as exc:  # reached the server and failed there: still a defect
            reached.append(f"{what}: {type(exc).__name__}")
        else:
            reached.append(what)
    assert reached == []
    assert _snapshot(kube_client, ns) == before
    assert kube_client.get(SECRETS, "db", ns)["metadata"]["name"] == "db"
    assert list(kube_client.list_all(LEASES, ns)) == []
    with pytest.raises(ValueError, match="invalid resource"):
        Resource("", "v1", "..", "Nothing")


class RecordingProxy:
    """A loopback 'proxy' that records each request line and refuses it (403)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                head = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                    self.seen.append(head.split(b"\r\n", 1)[0].decode())
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def recording_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingProxy]:
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    proxy = RecordingProxy()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    yield proxy
    proxy.close()


def test_https_proxy_is_used_unless_no_proxy_lists_the_server(
        kube_envtest: ControlPlane, recording_proxy: RecordingProxy,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TransportError):
        connect(kube_envtest.kubeconfig).list(CONFIGMAPS, "default")
    assert [line.rsplit(" ", 1)[0] for line in recording_proxy.seen] == [
        f"CONNECT 127.0.0.1:{kube_envtest.port}"]
    for no_proxy in ("127.0.0.1", "localhost,127.0.0.0/8", f"127.0.0.1:{kube_envtest.port}",
                     "*"):
        monkeypatch.setenv("NO_PROXY", no_proxy)
        client = connect(kube_envtest.kubeconfig)
        assert client.list(CONFIGMAPS, "default")["kind"] == "ConfigMapList"
        client.close()
    assert len(recording_proxy.seen) == 1  # nothing more went through the proxy


def _kubeconfig_with(plane: ControlPlane, path: Path, **cluster: object) -> Path:
    config = json.loads(plane.kubeconfig.read_text())
    config["clusters"][0]["cluster"].update(cluster)
    path.write_text(json.dumps(config))
    return path


def test_pinned_ca_with_insecure_skip_verify_is_refused(kube_envtest: ControlPlane,
                                                       tmp_path: Path) -> None:
    config = _kubeconfig_with(kube_envtest, tmp_path / "both.kubeconfig",
                              **{"insecure-skip-tls-verify": True})
    with pytest.raises(ConfigError, match="insecure-skip-tls-verify"):
        connect(config)
    ca_data = base64.b64encode(Path(json.loads(kube_envtest.kubeconfig.read_text())[
        "clusters"][0]["cluster"]["certificate-authority"]).read_bytes()).decode()
    config = json.loads(config.read_text())
    del config["clusters"][0]["cluster"]["certificate-authority"]
    config["clusters"][0]["cluster"]["certificate-authority-data"] = ca_data
    (tmp_path / "data.kubeconfig").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="insecure-skip-tls-verify"):
        connect(tmp_path / "data.kubeconfig")
    # Skipping verification alone still works (and so does verify_tls=False with a CA).
    del config["clusters"][0]["cluster"]["certificate-authority-data"]
    (tmp_path / "skip.kubeconfig").write_text(json.dumps(config))
    with capture_logs() as logs:
        assert connect(tmp_path / "skip.kubeconfig").list(CONFIGMAPS, "default")
        assert connect(kube_envtest.kubeconfig, verify_tls=False).list(CONFIGMAPS, "default")
    assert [e["event"] for e in logs].count("tls_verification_disabled") == 2


def test_verify_tls_false_does_not_silence_other_clients(kube_envtest: ControlPlane) -> None:
    filters = list(warnings.filters)
    client = connect(kube_envtest.kubeconfig, verify_tls=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our own requests raise no InsecureRequestWarning
        assert client.list(CONFIGMAPS, "default")["kind"] == "ConfigMapList"
    assert warnings.filters == filters  # nothing process-wide changed
    other = urllib3.PoolManager(cert_reqs="CERT_NONE")
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        other.request("GET", f"{kube_envtest.server}/readyz", retries=False)
    other.clear()
    client.close()


def test_oversized_watch_event_ends_the_watch_and_relists(
        kube_envtest: ControlPlane, kube_client: Client, kube_namespace: str) -> None:
    cfg = k8s_client.Configuration()
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call, unused-ignore]
        config_file=str(kube_envtest.kubeconfig),
        client_configuration=cfg)
    capped = Client(cfg, max_watch_event_bytes=8192)
    stop = threading.Event()
    informer = SharedIndexInformer(ListWatch(capped, CONFIGMAPS, kube_namespace),
                                   expected_kind="ConfigMap", use_watch_list=False)
    with capture_logs() as logs:
        informer.start(stop)
        try:
            wait_for(informer.has_synced, timeout=30, message="synced")
            kube_client.create(CONFIGMAPS, {"metadata": {"name": "big"},
                                            "data": {"blob": "b" * 20_000}}, kube_namespace)
            # The watch event (> 8 KiB) is refused; the relist (not capped) brings it in.
            wait_for(lambda: informer.lister.get("big", namespace=kube_namespace),
                     timeout=60, message="big ConfigMap cached by a relist")
        finally:
            stop.set()
            informer.join(10)
            capped.close()
    failures = [e for e in logs if e.get("error_type") == "WatchEventTooLargeError"]
    assert failures and failures[0]["event"] == "watch_decode_failed"
    assert sum(e["event"] == "list_completed" for e in logs) >= 2


def test_etcd_accepts_only_the_apiservers_client_certificate(kube_envtest: ControlPlane) -> None:
    port = kube_envtest.etcd_port
    # Plain HTTP: refused (etcd speaks TLS only).
    with pytest.raises((OSError, http.client.HTTPException)):
        http_request("127.0.0.1", port, "GET", "/health", timeout=5)
    pki = kube_envtest.workdir / "pki"
    etcd_ca = pki / "etcd" / "ca.crt"
    # TLS without a client certificate, or with one from the main CA (the admin's, any
    # user's): refused during the handshake.
    for cert in (None, (pki / "admin.crt", pki / "admin.key")):
        with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)):
            http_request("127.0.0.1", port, "POST", "/v3/kv/range",
                         body={"key": base64.b64encode(b"/").decode()}, ca=etcd_ca,
                         cert=cert, timeout=5)
    # The apiserver's client certificate works (the fault helpers use it).
    assert kube_envtest.etcd_revision() > 0
    for key in (pki / "ca.key", pki / "etcd" / "ca.key", pki / "etcd" / "etcd.key",
                pki / "etcd" / "apiserver-etcd-client.key", kube_envtest.kubeconfig):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE(pki.stat().st_mode) == 0o700


def test_lease_goes_to_the_pods_namespace_not_default(
        kube_client: Client, kube_namespace: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "namespace").write_text(kube_namespace)
    monkeypatch.setattr(_in_cluster, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "namespace")
    lease_name = f"sec-{kube_namespace}"
    manager = Manager(kube_client, registry=CollectorRegistry(), handle_signals=False,
                      metrics_bind_address=None, health_probe_bind_address=None,
                      leader_election=LeaderElectionConfig(
                          lease_duration=3.0, renew_deadline=2.0, retry_period=0.5),
                      leader_election_id=lease_name)
    stop = threading.Event()
    thread = threading.Thread(target=manager.run, args=(stop,), name="pycontroller-test-sec")
    thread.start()
    try:
        wait_for(manager.elected, timeout=30, message="leads")
        lease = kube_client.get(LEASES, lease_name, kube_namespace)
        assert lease["metadata"]["namespace"] == kube_namespace
        assert not [o for o in kube_client.list_all(LEASES, "default")
                    if o["metadata"]["name"] == lease_name]
    finally:
        stop.set()
        thread.join(30)
