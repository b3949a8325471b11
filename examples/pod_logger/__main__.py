"""``pod-logger``: run the PodLogger controller against a cluster, or a local demo.

With no cluster configured (no kubeconfig, not in a Pod), or with ``--local``, it starts a
local control plane with a kwok node and a small workload, so there is something to log.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import re
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import structlog

from pycontroller import Manager, connect, has_config
from pycontroller.errors import Error

from .controller import PodLogger
from .demo import Workload, start_control_plane


def configure_logging(fmt: str) -> None:
    """Console output on a terminal, JSON lines otherwise (or when asked)."""
    json_logs = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


class _Parser(argparse.ArgumentParser):
    """Bad input gets one line on stderr and exit code 2 (not a usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _seconds(*, zero_ok: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
            raise argparse.ArgumentTypeError(
                f"must be {'>= 0' if zero_ok else '> 0'} seconds, got {text!r}")
        return value
    return parse


_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")  # RFC 1123 label
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?")
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"  # label key name part and value
_KEY = rf"(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_NAME}"
_REQUIREMENT = re.compile(
    rf"\s*(?:!\s*(?P<absent>{_KEY})"
    rf"|(?P<key>{_KEY})\s*(?:(?:==|=|!=)\s*(?P<value>{_NAME})?"
    rf"|\s(?:in|notin)\s*\((?P<values>[^()]*)\)"
    rf"|(?:<|>)\s*-?\d+)?)\s*")


def _namespace(text: str) -> str:
    if len(text) > 63 or not _LABEL.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"not a namespace name (lower-case letters, digits, '-'; at most 63): {text!r}")
    return text


def _selector(text: str) -> str:
    """A label selector (``app=web,tier!=db``, ``env in (a,b)``, ``!canary``)."""
    requirements = re.split(r",(?![^()]*\))", text)
    for requirement in requirements:
        match = _REQUIREMENT.fullmatch(requirement)
        values = (match.group("values") or "") if match else ""
        if match is None or (match.group("values") is not None and (not values.strip() or not all(
                re.fullmatch(rf"\s*(?:{_NAME})?\s*", v) for v in values.split(",")))):
            raise argparse.ArgumentTypeError(f"not a label selector: {text!r}")
        for part in (match.group("key"), match.group("absent"), match.group("value")):
            name = (part or "").rpartition("/")[2]
            if len(name) > 63:
                raise argparse.ArgumentTypeError(f"label name or value over 63 characters: "
                                                 f"{name[:20]}...")
    return text


def _bind_address(text: str) -> str | None:
    """``host:port``, ``:port`` (all interfaces) or ``0`` (off, as in controller-runtime)."""
    if text == "0":
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(
            f"bind address must be host:port, :port (port 1-65535) or 0 (off), got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an IPv6 address: {host!r}") from None
    elif host and not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        raise argparse.ArgumentTypeError(
            f"not a host name or IPv4 address (IPv6 goes in brackets): {host!r}")
    return text


def _kubeconfig(text: str) -> str:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return text


def _nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; every value is validated here (exit code 2 with one line)."""
    p = _Parser(prog="pod-logger", description=__doc__)
    p.add_argument("--kubeconfig", type=_kubeconfig,
                   help="kubeconfig path (default: KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", type=_nonempty, help="kubeconfig context")
    p.add_argument("--namespace", type=_namespace, help="only this namespace (default: all)")
    p.add_argument("--selector", type=_selector, help="label selector, e.g. app=web")
    p.add_argument("--resync", type=_seconds(zero_ok=True), default=30.0,
                   help="resync period in seconds (0: off)")
    p.add_argument("--log-format", choices=("auto", "console", "json"), default="auto")
    p.add_argument("--metrics-bind-address", type=_bind_address, default="127.0.0.1:8080",
                   help="host:port for /metrics (':8080' for all interfaces, 0: off)")
    p.add_argument("--health-probe-bind-address", type=_bind_address,
                   default="127.0.0.1:8081",
                   help="host:port for /healthz and /readyz (0: off)")
    p.add_argument("--sync-timeout", type=_seconds(zero_ok=False), default=120.0,
                   help="seconds to wait for the pod cache before exiting with 1")
    p.add_argument("--local", action="store_true",
                   help="start a local control plane with a demo workload")
    p.add_argument("--duration", type=_seconds(zero_ok=True), default=0.0,
                   help="stop after this many seconds (0: run until Ctrl-C)")
    p.add_argument("--demo-interval", type=_seconds(zero_ok=False), default=1.0,
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.local and (args.kubeconfig or args.context):
        p.error("--local starts its own cluster: it takes no --kubeconfig or --context")
    return args


def _fail(message: object) -> int:
    """Report a runtime failure in one line on stderr; return the exit code 1."""
    print(f"pod-logger: {' '.join(str(message).split())}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parse_args(argv)
    configure_logging(args.log_format)
    local = args.local or (args.kubeconfig is None and not has_config())
    stop = threading.Event()
    plane = None
    try:
        if local:
            plane = start_control_plane()
            client = connect(plane.kubeconfig)
            Workload(client, plane, interval=args.demo_interval).start(stop)
        else:
            client = connect(args.kubeconfig, context=args.context)
        controller = PodLogger(name="pod-logger")
        controller.namespace, controller.label_selector = args.namespace, args.selector
        controller.resync_period = args.resync
        manager = Manager(client, metrics_bind_address=args.metrics_bind_address,
                          health_probe_bind_address=args.health_probe_bind_address,
                          sync_timeout=args.sync_timeout)
        manager.add(controller)
        if args.duration > 0:
            threading.Timer(args.duration, stop.set).start()
        return manager.run(stop)
    except Error as exc:
        return _fail(exc)
    except OSError as exc:  # a port in use, a host name that does not resolve
        return _fail(exc.strerror or exc)
    except KeyboardInterrupt:  # Ctrl-C before the Manager handles signals (local start-up)
        return 130
    finally:
        stop.set()
        if plane is not None:
            plane.stop()


if __name__ == "__main__":
    sys.exit(main())
