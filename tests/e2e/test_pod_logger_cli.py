"""The examples' command lines (pod-logger, configmap-stamper): bad input gets one clear
line on stderr and a non-zero exit.

Each case runs the program as a user would (a subprocess); none may print a traceback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ROOT, free_port

from pycontroller.client import _lazy
from pycontroller.envtest import ControlPlane

pytestmark = pytest.mark.e2e


def pod_logger(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "examples.pod_logger", "--log-format", "json", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single line on stderr, after checking there is exactly one and no traceback."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pod-logger: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(("args", "expected"), [
    (["--resync", "-1"], "--resync: must be >= 0"),
    (["--resync", "nan"], "--resync: not a finite number"),
    (["--resync", "often"], "--resync: not a number"),
    (["--sync-timeout", "-5"], "--sync-timeout: must be > 0"),
    (["--sync-timeout", "0"], "--sync-timeout: must be > 0"),
    (["--duration", "-1"], "--duration: must be >= 0"),
    (["--metrics-bind-address", "8080"], "--metrics-bind-address: '8080' is not host:port"),
    (["--metrics-bind-address", "127.0.0.1:99999"], "port must be 0-65535"),
    (["--health-probe-bind-address", "localhost:"],
     "--health-probe-bind-address: 'localhost:' is not host:port"),
    (["--health-probe-bind-address", "no host:8081"], "not a host name"),
    (["--metrics-bind-address", "[::1:8080"], "not a host name"),
    (["--namespace", "Not_A_Namespace"], "--namespace: 'Not_A_Namespace' is not a valid"),
    (["--namespace", "../../secrets"], "--namespace: '../../secrets' is not a valid"),
    (["--selector", "app in (web"], "--selector: 'app in (web' is not a label selector"),
    (["--kubeconfig", "/nonexistent/kubeconfig"], "--kubeconfig: no such file"),
    (["--context", ""], "--context: must not be empty"),
    (["--log-format", "xml"], "--log-format: invalid choice"),
    (["--local", "--context", "prod"], "--local starts its own cluster"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_bad_flags_get_one_line_and_exit_2(args: list[str], expected: str) -> None:
    proc = pod_logger(*args)
    assert proc.returncode == 2
    assert expected in one_line(proc)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("flag", ["--metrics-bind-address", "--health-probe-bind-address"])
def test_port_in_use_gets_one_line_and_exit_1(
    kube_envtest: ControlPlane, kube_namespace: str, busy_port: int, flag: str
) -> None:
    other = ("--health-probe-bind-address" if flag == "--metrics-bind-address"
             else "--metrics-bind-address")
    proc = pod_logger("--kubeconfig", str(kube_envtest.kubeconfig),
                      "--namespace", kube_namespace, flag, f"127.0.0.1:{busy_port}",
                      other, f"127.0.0.1:{free_port()}")
    assert proc.returncode == 1
    line = one_line(proc)
    assert f"cannot listen on 127.0.0.1:{busy_port}" in line
    assert "in use" in line


def test_zero_bind_address_turns_the_server_off(
    kube_envtest: ControlPlane, kube_namespace: str, busy_port: int
) -> None:
    # With both servers off, nothing binds: the busy port does not matter; it runs and exits 0.
    proc = pod_logger("--kubeconfig", str(kube_envtest.kubeconfig),
                      "--namespace", kube_namespace, "--metrics-bind-address", "0",
                      "--health-probe-bind-address", "0", "--duration", "3")
    assert proc.returncode == 0, proc.stderr
    (started,) = [json.loads(line) for line in proc.stdout.splitlines()
                  if '"controllers_started"' in line]
    # which decoder it runs: the C module wherever this test process has it
    assert started["decoder"] == ("python" if _lazy.SPEEDUPS is None else "c")
    assert '"http_server_started"' not in proc.stdout


def test_malformed_kubeconfig_gets_one_line_and_exit_1(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("this: is: not: a kubeconfig\n")
    proc = pod_logger("--kubeconfig", str(kubeconfig))
    assert proc.returncode == 1
    assert "no usable Kubernetes configuration" in one_line(proc)


def test_configmap_stamper_without_a_cluster_gets_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    proc = subprocess.run(
        [sys.executable, "-m", "examples.configmap_stamper"], cwd=ROOT, capture_output=True,
        text=True, timeout=60, check=False, env={**env, "HOME": str(tmp_path)})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configmap-stamper: no usable"), lines
