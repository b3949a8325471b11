"""pycontroller.cli: every flag validated; bad input is one line and a non-zero exit."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pycontroller import Controller
from pycontroller.cli import (
    App,
    configure_logging,
    dns_label,
    non_negative_float,
    positive_float,
    positive_int,
)

ROOT = Path(__file__).resolve().parents[2]


def app() -> App:
    a = App("demo-ctl")
    a.parser.add_argument("--threshold", type=positive_int, default=3)
    return a


def test_defaults() -> None:
    opts = app().parse([])
    assert opts.metrics_bind_address == "127.0.0.1:8080"
    assert opts.health_probe_bind_address == "127.0.0.1:8081"
    assert opts.leader_election_id == "demo-ctl"
    assert (opts.namespace, opts.selector, opts.leader_elect, opts.local) == (
        None, None, False, False)
    assert opts.threshold == 3


def test_good_values(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("{}")
    opts = app().parse([
        "--kubeconfig", str(kubeconfig), "--context", "prod", "--namespace", "shop-1",
        "--selector", "app=web,tier!=db,env in (a, b),!legacy,example.com/x==y,gen>3",
        "--metrics-bind-address", "[::1]:9090", "--health-probe-bind-address", "0",
        "--sync-timeout", "5", "--duration", "0", "--leader-elect",
        "--leader-election-id", "my.lease", "--leader-election-namespace", "ops",
        "--log-format", "json", "--log-level", "debug", "--threshold", "7"])
    assert opts.health_probe_bind_address is None  # 0: off
    assert opts.metrics_bind_address == "[::1]:9090"
    assert opts.threshold == 7


def test_one_address_for_metrics_and_probes() -> None:
    # The Manager serves /metrics, /healthz and /readyz from one server when they are equal.
    opts = app().parse(["--metrics-bind-address", ":9000",
                        "--health-probe-bind-address", ":9000"])
    assert opts.metrics_bind_address == opts.health_probe_bind_address == ":9000"


@pytest.mark.parametrize("argv, fragment", [
    (["--namespace", "Shop"], "--namespace"),
    (["--namespace", "a" * 64], "--namespace"),
    (["--selector", "app=web tier=db"], "--selector"),
    (["--selector", "app=web,"], "--selector"),
    (["--selector", "!app=web"], "--selector"),
    (["--selector", "env in ()"], "--selector"),
    (["--selector", "Bad_Prefix/x=y"], "--selector"),
    (["--metrics-bind-address", "8080"], "--metrics-bind-address"),
    (["--metrics-bind-address", "localhost:http"], "--metrics-bind-address"),
    (["--metrics-bind-address", "bad host:8080"], "--metrics-bind-address"),
    (["--metrics-bind-address", "[not-v6]:8080"], "--metrics-bind-address"),
    (["--selector", "replicas>x"], "--selector"),
    (["--health-probe-bind-address", "127.0.0.1:70000"], "--health-probe-bind-address"),
    (["--sync-timeout", "-1"], "--sync-timeout"),
    (["--sync-timeout", "0"], "--sync-timeout"),
    (["--sync-timeout", "nan"], "--sync-timeout"),
    (["--duration", "-5"], "--duration"),
    (["--duration", "inf"], "--duration"),
    (["--kubeconfig", "/nonexistent/config"], "--kubeconfig"),
    (["--context", " "], "--context"),
    (["--leader-election-id", "Not_A_Name"], "--leader-election-id"),
    (["--leader-election-namespace", "x.y"], "--leader-election-namespace"),
    (["--log-format", "xml"], "--log-format"),
    (["--log-level", "loud"], "--log-level"),
    (["--local", "--context", "prod"], "--local"),
    (["--threshold", "0"], "--threshold"),
    (["--threshold", "2.5"], "--threshold"),
    (["--no-such-flag"], "unrecognized"),
])
def test_bad_flags_exit_2_with_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        app().parse(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("demo-ctl: ") and fragment in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("fn, good, bad", [
    (positive_int, ("1", "10"), ("0", "-1", "x", "1.5")),
    (positive_float, ("0.5", "3"), ("0", "-1", "nan", "inf", "x")),
    (non_negative_float, ("0", "2.5"), ("-0.1", "nan", "-inf", "")),
    (dns_label, ("a", "web-1"), ("A", "-a", "a_b", "a.b", "")),
])
def test_types(fn: object, good: tuple[str, ...], bad: tuple[str, ...]) -> None:
    assert callable(fn)
    for text in good:
        fn(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            fn(text)


def test_configure_logging_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml")
    with pytest.raises(ValueError, match="level"):
        configure_logging("json", "loud")


def test_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "examples.restart_scaler", "--kubeconfig", str(kubeconfig),
             "--metrics-bind-address", f"127.0.0.1:{port}",
             "--health-probe-bind-address", "0", "--log-format", "json"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("restart-scaler: cannot listen"), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_ctrl_c_before_the_manager_runs_exits_130(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("{}")

    def interrupted(opts: argparse.Namespace) -> list[Controller]:
        raise KeyboardInterrupt

    assert app().run(interrupted, ["--kubeconfig", str(kubeconfig)]) == 130
