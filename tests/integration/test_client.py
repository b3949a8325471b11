"""The client seam against the real apiserver: auth, TLS, errors, raw JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pycontroller import CONFIGMAPS, PODS, Client, connect
from pycontroller.envtest import ControlPlane
from pycontroller.envtest._pki import CertificateAuthority
from pycontroller.errors import (
    ConfigError,
    ConflictError,
    InvalidError,
    NotFoundError,
    TransportError,
    UnauthorizedError,
)
from pycontroller.testing import wait_for

pytestmark = pytest.mark.integration
REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


def whoami(client: Client) -> str:
    review = client.request("POST", REVIEW, body={
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    return str(review["status"]["userInfo"]["username"])


def _kubeconfig(plane: ControlPlane, path: Path, user: dict[str, object],
                ca: str | None = None) -> Path:
    admin = json.loads(plane.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    if ca is not None:
        cluster["certificate-authority"] = ca
    admin["users"] = [{"name": "u", "user": user}]
    admin["contexts"][0]["context"]["user"] = "u"
    path.write_text(json.dumps(admin))
    return path


def _exec_kubeconfig(plane: ControlPlane, tmp_path: Path, source: str) -> Path:
    """A kubeconfig whose user runs ``source`` (Python) as its exec credential plugin."""
    plugin = tmp_path / "plugin.py"
    plugin.write_text(source)
    return _kubeconfig(plane, tmp_path / "exec.kubeconfig", {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
        "args": [str(plugin)], "interactiveMode": "Never"}})


def test_exec_plugin_credentials(kube_envtest: ControlPlane, kube_namespace: str,
                                 tmp_path: Path) -> None:
    token = kube_envtest.service_account_token(kube_namespace, "exec-user")
    config = _exec_kubeconfig(kube_envtest, tmp_path, (
        "import json\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',"
        f" 'kind': 'ExecCredential', 'status': {{'token': {token!r}}}}}))\n"))
    assert whoami(connect(config)) == f"system:serviceaccount:{kube_namespace}:exec-user"


def test_exec_plugin_is_run_again_after_a_401(kube_envtest: ControlPlane,
                                             kube_namespace: str, tmp_path: Path) -> None:
    """As client-go's exec authenticator: a 401 answered to the plugin's token (no
    expirationTimestamp, so never "expired") makes the next request run the plugin again.
    The plugin hands out a revoked token first, a valid one after."""
    token = kube_envtest.service_account_token(kube_namespace, "exec-rerun")
    runs = tmp_path / "runs"
    config = _exec_kubeconfig(kube_envtest, tmp_path, (
        "import json, os\n"
        f"runs = {str(runs)!r}\n"
        "n = int(open(runs).read()) if os.path.exists(runs) else 0\n"
        "open(runs, 'w').write(str(n + 1))\n"
        f"token = 'not-a-valid-token' if n == 0 else {token!r}\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',"
        " 'kind': 'ExecCredential', 'status': {'token': token}}))\n"))
    with connect(config) as client:
        with pytest.raises(UnauthorizedError):
            whoami(client)
        assert whoami(client) == f"system:serviceaccount:{kube_namespace}:exec-rerun"
        assert whoami(client.with_request_timeout(5)) == (
            f"system:serviceaccount:{kube_namespace}:exec-rerun")
    assert runs.read_text() == "2"  # once at connect, once after the 401; not per request


def test_token_file_is_read_again(kube_envtest: ControlPlane, kube_namespace: str,
                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As client-go: a kubeconfig's ``tokenFile`` is read again once the cached token is
    older than a period (1 min; shortened here), so a rotated token is picked up; the
    file's trailing newline is not part of the token."""
    monkeypatch.setattr("pycontroller.client._kube._TOKEN_FILE_PERIOD", 0.5)
    first = kube_envtest.service_account_token(kube_namespace, "file-a")
    second = kube_envtest.service_account_token(kube_namespace, "file-b")
    token_file = tmp_path / "token"
    token_file.write_text(first + "\n")
    config = _kubeconfig(kube_envtest, tmp_path / "file.kubeconfig",
                         {"tokenFile": str(token_file)})
    with connect(config) as client:
        assert whoami(client) == f"system:serviceaccount:{kube_namespace}:file-a"
        token_file.write_text(second + "\n")
        wait_for(lambda: whoami(client).endswith(":file-b"), 30, message="the new token")


def test_tls_is_verified_unless_turned_off(kube_envtest: ControlPlane,
                                           tmp_path: Path) -> None:
    (tmp_path / "other-pki").mkdir()
    wrong_ca = CertificateAuthority(tmp_path / "other-pki").cert_path
    admin_user = json.loads(kube_envtest.kubeconfig.read_text())["users"][0]["user"]
    config = _kubeconfig(kube_envtest, tmp_path / "wrong-ca.kubeconfig", admin_user,
                         ca=str(wrong_ca))
    with pytest.raises(TransportError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
        connect(config).list(PODS, "default")
    assert connect(config, verify_tls=False).list(PODS, "default")["kind"] == "PodList"


@pytest.mark.parametrize("skip", ["false", "False", "no", 0])
def test_a_non_boolean_insecure_skip_tls_verify_does_not_turn_verification_off(
        kube_envtest: ControlPlane, tmp_path: Path, skip: object) -> None:
    """client-go refuses such a kubeconfig (the field is a bool); the ``kubernetes``
    package took any truthy-looking-false value as "skip" (``not "false"`` is False)."""
    admin = json.loads(kube_envtest.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    cluster.pop("certificate-authority", None)
    cluster.pop("certificate-authority-data", None)
    cluster["insecure-skip-tls-verify"] = skip
    config = tmp_path / "skip.kubeconfig"
    config.write_text(json.dumps(admin))
    with pytest.raises(ConfigError, match="insecure-skip-tls-verify"):
        connect(config).list(PODS, "default")


def test_bad_configuration_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        connect(tmp_path / "missing.kubeconfig")
    (tmp_path / "garbage").write_text("{not: [valid")
    with pytest.raises(ConfigError):
        connect(tmp_path / "garbage")


def test_errors_are_typed_and_chained(kube_client: Client, kube_namespace: str) -> None:
    with pytest.raises(NotFoundError) as info:
        kube_client.get(CONFIGMAPS, "nope", kube_namespace)
    assert info.value.reason == "NotFound" and info.value.status == 404
    kube_client.create(CONFIGMAPS, {"metadata": {"name": "dup"}}, kube_namespace)
    with pytest.raises(ConflictError):
        kube_client.create(CONFIGMAPS, {"metadata": {"name": "dup"}}, kube_namespace)
    with pytest.raises(InvalidError):
        kube_client.create(CONFIGMAPS, {"metadata": {"name": "Not_Valid"}}, kube_namespace)


def test_pagination_and_raw_json(kube_client: Client, kube_namespace: str) -> None:
    for i in range(7):
        kube_client.create(CONFIGMAPS, {"metadata": {"name": f"p{i}"}}, kube_namespace)
    page = kube_client.list(CONFIGMAPS, kube_namespace, limit=3)
    assert len(page["items"]) == 3 and page["metadata"]["continue"]
    assert isinstance(page["items"][0], dict)  # raw JSON, not model classes
    names = [o["metadata"]["name"] for o in kube_client.list_all(CONFIGMAPS, kube_namespace,
                                                                 limit=3)]
    assert names == [f"p{i}" for i in range(7)]


def test_exec_plugin_client_certificates_are_reissued_when_they_expire(
        kube_envtest: ControlPlane, tmp_path: Path) -> None:
    """The plugin hands out whatever certificate is current, valid for 2 s; after the
    certificate on disk changes (alice → bob) and the credential expired, the same
    Client authenticates as bob, without a new connect()."""
    issued = {name: kube_envtest.add_user(name) for name in ("alice", "bob")}
    current = tmp_path / "current.json"

    def serve(name: str) -> None:
        user = json.loads(issued[name].read_text())["users"][0]["user"]
        current.write_text(json.dumps({"cert": Path(user["client-certificate"]).read_text(),
                                       "key": Path(user["client-key"]).read_text()}))

    serve("alice")
    config = _exec_kubeconfig(kube_envtest, tmp_path, (
        "import datetime, json, sys\n"
        f"pair = json.load(open({str(current)!r}))\n"
        "expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',\n"
        "    'kind': 'ExecCredential', 'status': {'clientCertificateData': pair['cert'],\n"
        "    'clientKeyData': pair['key'],\n"
        "    'expirationTimestamp': expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}}))\n"))
    with connect(config) as client:
        view = client.with_write_observer(lambda write: None)  # shares the credentials
        assert whoami(client) == "alice"
        serve("bob")
        wait_for(lambda: whoami(view) == "bob", 30, message="the rotated certificate")
        assert whoami(client) == "bob"  # rotated through the view, adopted by the client


def test_exec_plugin_client_certificates_are_reissued_after_a_401(
        kube_envtest: ControlPlane, tmp_path: Path) -> None:
    """As client-go's exec authenticator: a 401 answered to the plugin's certificate
    (no expirationTimestamp, so never "expired") makes the next request run the plugin
    again, on new connections. The plugin hands out a certificate from a CA the server
    does not trust first, alice's after."""
    rogue = CertificateAuthority(tmp_path / "rogue-pki").issue("mallory", "mallory")
    alice = json.loads(kube_envtest.add_user("alice").read_text())["users"][0]["user"]
    pairs = [{"cert": rogue.cert.read_text(), "key": rogue.key.read_text()},
             {"cert": Path(alice["client-certificate"]).read_text(),
              "key": Path(alice["client-key"]).read_text()}]
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    runs = tmp_path / "runs"
    config = _exec_kubeconfig(kube_envtest, tmp_path, (
        "import json, os\n"
        f"runs, pairs = {str(runs)!r}, json.load(open({str(tmp_path / 'pairs.json')!r}))\n"
        "n = int(open(runs).read()) if os.path.exists(runs) else 0\n"
        "open(runs, 'w').write(str(n + 1))\n"
        "pair = pairs[min(n, 1)]\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',\n"
        "    'kind': 'ExecCredential', 'status': {'clientCertificateData': pair['cert'],\n"
        "    'clientKeyData': pair['key']}}))\n"))
    with connect(config) as client:
        view = client.with_request_timeout(5)  # shares the credentials
        with pytest.raises(UnauthorizedError):
            whoami(client)
        assert whoami(view) == "alice"
        assert whoami(client) == "alice"  # rotated through the view, adopted by the client
    assert runs.read_text() == "2"  # once at connect, once after the 401s; not per request
