"""A real local control plane: etcd + kube-apiserver on loopback, with its own PKI.

≙ controller-runtime's envtest. Used by the pytest plugin, the demo and ``python -m
pycontroller.envtest up``. Everything binds to 127.0.0.1 on free ports, so several control
planes run side by side.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

import orjson
import structlog

from pycontroller._util._paths import check_path_segment
from pycontroller.envtest import _crds, _http
from pycontroller.envtest._build import Binaries, build
from pycontroller.envtest._files import private_dir, write_file
from pycontroller.envtest._kwok import Kwok
from pycontroller.envtest._process import ManagedProcess
from pycontroller.errors import ControlPlaneError

if TYPE_CHECKING:
    from pycontroller.envtest._pki import CertificateAuthority, CertPair

_log = structlog.get_logger(__name__)
_HOST = "127.0.0.1"


# A port found free may be taken before the child binds it (by any process's bind or
# outgoing connection): the child then exits at once, and is started again on new ports.
_BIND_ATTEMPTS = 4
_PORT_TAKEN = b"address already in use"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _lost_port_race(proc: ManagedProcess, log_from: int) -> bool:
    """Whether ``proc`` exited because a port it was given was taken (its log says so
    since offset ``log_from``, where this start began appending)."""
    if proc.running():
        return False
    try:
        with proc.log_path.open("rb") as log:
            log.seek(log_from)
            return _PORT_TAKEN in log.read(1 << 20).lower()
    except OSError:
        return False


def _wait(what: str, check: Callable[[], bool], deadline: float,
          alive: Callable[[], None]) -> None:
    delay = 0.05
    while True:
        alive()
        with contextlib.suppress(OSError):
            if check():
                return
        if time.monotonic() > deadline:
            raise ControlPlaneError(f"timed out waiting for {what}")
        time.sleep(delay)  # polling a process we started; no event to wait on
        delay = min(delay * 2, 0.5)


def _load_pki() -> Any:
    """Import the PKI module, which needs the optional ``cryptography`` package."""
    try:
        from pycontroller.envtest import _pki  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise ControlPlaneError(
            "the local control plane needs the 'envtest' extra: "
            "pip install 'pycontroller-kube[envtest]'") from exc
    return _pki


@final
class ControlPlane:
    """etcd + kube-apiserver for tests and demos, started by ``start()``.

    etcd serves TLS only and requires a client certificate from its own CA, which signs
    one client certificate: the apiserver's (this object uses it too, for the etcd fault
    helpers). Keys are created 0600 in a 0700 folder; no file in the workdir is written
    through a symlink.

    The apiserver runs with RBAC, a service-account issuer, ``--watch-cache=false`` by
    default (so a watch from a compacted resourceVersion gets 410 Gone straight from etcd;
    pass ``watch_cache=True`` for the server's normal cache and WatchList support) and the
    ServiceAccount admission plugin off (there is no controller-manager to create
    ``default`` service accounts).

    Both bind free loopback ports. A port can be taken between the lookup and the child's
    bind (by any process); a child that exits for that is started again on new ports, up
    to 4 times (logged as ``control_plane_port_taken``).

    Thread-safety: not thread-safe; one owner starts, faults and stops it. The children get
    SIGKILL if the thread that started them dies, so start it from a long-lived thread.
    """

    def __init__(
        self, *, binaries: Binaries | None = None, workdir: Path | None = None,
        watch_cache: bool = False, start_timeout: float = 90.0,
        extra_apiserver_args: tuple[str, ...] = (),
    ) -> None:
        self._binaries = binaries
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="pycontroller-envtest-"))
        self._watch_cache = watch_cache
        self._start_timeout = start_timeout
        self._extra = extra_apiserver_args
        self.etcd_port = 0
        self.port = 0
        self._etcd: ManagedProcess | None = None
        self._apiserver: ManagedProcess | None = None
        self._kwok: Kwok | None = None
        self._ca: CertificateAuthority | None = None
        self._admin: CertPair | None = None
        self._etcd_ca: CertificateAuthority | None = None
        self._etcd_serving: CertPair | None = None
        self._etcd_client: CertPair | None = None
        self.kubeconfig = self.workdir / "admin.kubeconfig"

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> ControlPlane:
        """Build (if needed) and start etcd and the apiserver; wait until ready."""
        binaries = self._binaries or build()
        self._binaries = binaries
        _pki = _load_pki()
        pki = private_dir(self.workdir / "pki")
        self._ca = _pki.CertificateAuthority(pki)
        # etcd trusts only its own CA, so no certificate from the main CA (admin, users)
        # can reach it; the apiserver holds the only client certificate it signs.
        self._etcd_ca = _pki.CertificateAuthority(pki / "etcd", "pycontroller-envtest-etcd-ca")
        self._etcd_serving = self._etcd_ca.issue("etcd", "etcd", server_hosts=(_HOST,),
                                                 client_auth=True)
        self._etcd_client = self._etcd_ca.issue("apiserver-etcd-client",
                                                "kube-apiserver-etcd-client")
        serving = self._ca.issue("apiserver", "kube-apiserver",
                                 server_hosts=(_HOST, "localhost", "::1"))
        self._admin = self._ca.issue("admin", "pycontroller-admin",
                                     organizations=("system:masters",))
        sa = _pki.write_service_account_keys(pki)
        deadline = time.monotonic() + self._start_timeout
        try:
            self._start_etcd(binaries.etcd, deadline)
            self._start_apiserver(binaries.kube_apiserver, serving, sa, deadline)
            self._write_kubeconfig(self.kubeconfig, self._admin, "admin")
        except BaseException:
            self.stop()
            raise
        _log.info("control_plane_started", server=self.server, workdir=str(self.workdir))
        return self

    def _start_etcd(self, binary: Path, deadline: float) -> None:
        for attempt in range(1, _BIND_ATTEMPTS + 1):
            log_from = _log_size(self.workdir / "etcd.log")
            try:
                self._start_etcd_once(binary, deadline)
                return
            except ControlPlaneError:
                etcd = self._etcd
                if (attempt == _BIND_ATTEMPTS or etcd is None
                        or not _lost_port_race(etcd, log_from)):
                    raise
                _log.info("control_plane_port_taken", process="etcd", attempt=attempt)
                etcd.stop()
                shutil.rmtree(self.workdir / "etcd", ignore_errors=True)  # a fresh member

    def _start_apiserver(self, binary: Path, serving: CertPair, sa: CertPair,
                         deadline: float) -> None:
        log_path = self.workdir / "kube-apiserver.log"
        for attempt in range(1, _BIND_ATTEMPTS + 1):
            log_from = _log_size(log_path)
            self._apiserver = api = ManagedProcess(
                "kube-apiserver", self._apiserver_args(binary, serving, sa), log_path)
            api.start()
            try:
                self.wait_ready(deadline - time.monotonic())
                return
            except ControlPlaneError:
                if attempt == _BIND_ATTEMPTS or not _lost_port_race(api, log_from):
                    raise
                _log.info("control_plane_port_taken", process="kube-apiserver",
                          attempt=attempt)
                api.stop()

    def _start_etcd_once(self, binary: Path, deadline: float) -> None:
        assert self._etcd_ca is not None and self._etcd_serving is not None
        self.etcd_port, peer = _free_port(), _free_port()
        client_url, peer_url = f"https://{_HOST}:{self.etcd_port}", f"https://{_HOST}:{peer}"
        ca, cert = self._etcd_ca.cert_path, self._etcd_serving
        self._etcd = ManagedProcess("etcd", [
            str(binary), "--name=envtest", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=envtest={peer_url}", "--unsafe-no-fsync", "--log-level=warn",
            f"--cert-file={cert.cert}", f"--key-file={cert.key}", "--client-cert-auth",
            f"--trusted-ca-file={ca}", f"--peer-cert-file={cert.cert}",
            f"--peer-key-file={cert.key}", "--peer-client-cert-auth",
            f"--peer-trusted-ca-file={ca}",
        ], self.workdir / "etcd.log")
        self._etcd.start()
        etcd = self._etcd
        _wait("etcd /health", lambda: self._etcd_request("GET", "/health", timeout=2).status
              == 200, deadline, etcd.check_alive)

    def _etcd_request(self, method: str, path: str, body: Any = None,
                      timeout: float = 10.0) -> _http.Response:
        assert self._etcd_ca is not None and self._etcd_client is not None
        return _http.request(_HOST, self.etcd_port, method, path, body=body,
                             ca=self._etcd_ca.cert_path,
                             cert=(self._etcd_client.cert, self._etcd_client.key),
                             timeout=timeout)

    def _apiserver_args(self, binary: Path, serving: CertPair, sa: CertPair) -> list[str]:
        assert self._ca is not None and self._etcd_ca is not None
        assert self._etcd_client is not None
        self.port = _free_port()
        return [
            str(binary), f"--etcd-servers=https://{_HOST}:{self.etcd_port}",
            f"--etcd-cafile={self._etcd_ca.cert_path}",
            f"--etcd-certfile={self._etcd_client.cert}",
            f"--etcd-keyfile={self._etcd_client.key}",
            f"--bind-address={_HOST}", f"--advertise-address={_HOST}",
            f"--secure-port={self.port}", f"--cert-dir={self.workdir / 'pki'}",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={self._ca.cert_path}", "--authorization-mode=RBAC",
            f"--service-account-key-file={sa.cert}",
            f"--service-account-signing-key-file={sa.key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--api-audiences=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/24", "--allow-privileged=true",
            "--endpoint-reconciler-type=none", "--disable-admission-plugins=ServiceAccount",
            f"--watch-cache={'true' if self._watch_cache else 'false'}",
            *self._extra,
        ]

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until ``/readyz`` answers ok and the ``default`` namespace exists."""
        deadline = time.monotonic() + timeout
        api = self._apiserver
        if api is None:
            raise ControlPlaneError("the control plane is not started")
        _wait("kube-apiserver /readyz", lambda: self.request("GET", "/readyz").status == 200,
              deadline, api.check_alive)
        _wait("the default namespace",
              lambda: self.request("GET", "/api/v1/namespaces/default").status == 200,
              deadline, api.check_alive)

    def stop(self) -> None:
        """Stop kwok, the apiserver and etcd; remove the workdir if we made it. Idempotent."""
        for proc in (self._kwok, self._apiserver, self._etcd):
            if proc is not None:
                proc.stop()
        self._kwok = self._apiserver = self._etcd = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def server(self) -> str:
        """The apiserver URL."""
        return f"https://{_HOST}:{self.port}"

    @property
    def pids(self) -> list[int]:
        """Pids of the running children (for leak checks)."""
        procs = (self._etcd, self._apiserver, self._kwok)
        return [p.pid for p in procs if p is not None and p.pid is not None]

    # -- requests and users ------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, *,
                content_type: str = "application/json") -> _http.Response:
        """Send one request as the admin user."""
        assert self._ca is not None and self._admin is not None
        return _http.request(_HOST, self.port, method, path, body=body, ca=self._ca.cert_path,
                             cert=(self._admin.cert, self._admin.key),
                             content_type=content_type)

    def _write_kubeconfig(self, path: Path, pair: CertPair | None, user: str,
                          token: str | None = None) -> Path:
        assert self._ca is not None
        creds: dict[str, str] = (
            {"token": token} if token is not None else
            {"client-certificate": str(pair.cert), "client-key": str(pair.key)} if pair else {}
        )
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "envtest",
            "clusters": [{"name": "envtest", "cluster": {
                "server": self.server, "certificate-authority": str(self._ca.cert_path)}}],
            "users": [{"name": user, "user": creds}],
            "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": user}}],
        }
        # JSON is YAML; 0600 from creation on (it may hold a token), never via a symlink.
        return write_file(path, orjson.dumps(config, option=orjson.OPT_INDENT_2), 0o600)

    def add_user(self, name: str, groups: tuple[str, ...] = ()) -> Path:
        """Issue a client certificate for ``name`` in ``groups``; return its kubeconfig."""
        if self._ca is None:
            raise ControlPlaneError("the control plane is not started")
        safe = "".join(c if c.isalnum() else "-" for c in name)
        pair = self._ca.issue(f"user-{safe}", name, organizations=groups)
        return self._write_kubeconfig(self.workdir / f"{safe}.kubeconfig", pair, name)

    def service_account_token(self, namespace: str, name: str, *,
                              expiration_seconds: int = 3600) -> str:
        """Create the ServiceAccount if missing and issue a token for it (TokenRequest API).

        Raises:
            ValueError: ``namespace`` or ``name`` is not a valid path segment.
        """
        check_path_segment("namespace", namespace)
        check_path_segment("ServiceAccount name", name)
        base = f"/api/v1/namespaces/{namespace}/serviceaccounts"
        resp = self.request("POST", base, {"apiVersion": "v1", "kind": "ServiceAccount",
                                           "metadata": {"name": name}})
        if resp.status not in (201, 409):
            raise ControlPlaneError(f"creating ServiceAccount {namespace}/{name}: {resp.text}")
        resp = self.request("POST", f"{base}/{name}/token", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": expiration_seconds}})
        if resp.status != 201:
            raise ControlPlaneError(f"TokenRequest for {namespace}/{name}: {resp.text}")
        return str(resp.body["status"]["token"])

    def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig that authenticates as ServiceAccount ``namespace/name`` by token.

        Raises:
            ValueError: ``namespace`` or ``name`` is not a valid path segment.
        """
        token = self.service_account_token(namespace, name)
        user = f"system:serviceaccount:{namespace}:{name}"
        return self._write_kubeconfig(self.workdir / f"sa-{namespace}-{name}.kubeconfig",
                                      None, user, token=token)

    # -- faults ------------------------------------------------------------------------
    def restart_apiserver(self) -> None:
        """Stop and start the apiserver on the same port; etcd (and so all data) stays."""
        self.stop_apiserver()
        self.start_apiserver()

    def stop_apiserver(self) -> None:
        """Stop the apiserver (clients see connection refused); etcd keeps running."""
        if self._apiserver is None:
            raise ControlPlaneError("the control plane is not started")
        self._apiserver.stop()

    def start_apiserver(self) -> None:
        """Start a stopped apiserver again on the same port and wait until ready."""
        if self._apiserver is None:
            raise ControlPlaneError("the control plane is not started")
        self._apiserver.start()
        self.wait_ready(self._start_timeout)

    def etcd_delete(self, key: str) -> int:
        """Delete a storage key behind the apiserver's back (e.g. ``/registry/pods/ns/p``).

        With the apiserver stopped and followed by ``compact_etcd()``, this is a delete that
        watchers missed: they can only learn of it by relisting. Returns how many keys went.
        """
        encoded = base64.b64encode(key.encode()).decode()
        resp = self._etcd_request("POST", "/v3/kv/deleterange", body={"key": encoded})
        if resp.status != 200:
            raise ControlPlaneError(f"etcd delete failed: {resp.status} {resp.text}")
        return int(resp.body.get("deleted", 0))

    def etcd_revision(self) -> int:
        """The current etcd revision (what resourceVersions are made of)."""
        key = base64.b64encode(b"/").decode()
        resp = self._etcd_request("POST", "/v3/kv/range", body={"key": key, "limit": 1})
        return int(resp.body["header"]["revision"])

    def compact_etcd(self) -> int:
        """Compact etcd at its current revision; return it.

        Afterwards a watch from any older resourceVersion is answered with 410 Gone (the
        apiserver runs without a watch cache unless ``watch_cache=True``).
        """
        revision = self.etcd_revision()
        resp = self._etcd_request("POST", "/v3/kv/compaction",
                                  body={"revision": str(revision), "physical": True})
        if resp.status != 200:
            raise ControlPlaneError(f"etcd compaction failed: {resp.status} {resp.text}")
        return revision

    def pause(self) -> None:
        """SIGSTOP the apiserver: connections stay open but go silent (a network stall)."""
        if self._apiserver is not None:
            self._apiserver.signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the apiserver after ``pause()``."""
        if self._apiserver is not None:
            self._apiserver.signal(signal.SIGCONT)

    # -- CRDs --------------------------------------------------------------------------
    def install_crds(self, crds: _crds.CRDSource, *, timeout: float = 60.0,
                     ) -> list[dict[str, Any]]:
        """Create (or replace) CRDs; return once each is established and discoverable.

        ``crds`` is a YAML/JSON file, a directory of them (``.yaml``/``.yml``/``.json``,
        not recursive; documents that are not CRDs are skipped, as envtest's
        ``CRDDirectoryPaths`` does), or CRD manifests. On return every served version of
        every CRD is listed by discovery, so ``resource_for`` and informers work at once.
        Returns the manifests installed.

        Raises:
            ControlPlaneError: no CRD found, one was refused, or not ready within
                ``timeout`` seconds.
        """
        if self._ca is None:
            raise ControlPlaneError("the control plane is not started")
        return _crds.install_crds(self.request, crds, timeout)

    # -- kwok --------------------------------------------------------------------------
    def create_node(self, name: str) -> None:
        """Create a kwok-managed Node; pods bound to it become Running (starts kwok)."""
        if self._kwok is None:
            binaries = self._binaries
            if binaries is None or binaries.kwok is None:
                raise ControlPlaneError("kwok is not available (build it or add it to the assets)")
            self._kwok = Kwok(binaries.kwok, self.kubeconfig, self.workdir)
            self._kwok.start()
        resp = self.request("POST", "/api/v1/nodes", Kwok.node_manifest(name))
        if resp.status not in (201, 409):
            raise ControlPlaneError(f"creating node {name}: {resp.status} {resp.text}")

    def restart_container(self, namespace: str, pod: str, container: str | None = None) -> int:
        """Make one container of a Running pod count a restart; return the new count."""
        return Kwok.restart_container(self.request, namespace, pod, container)
