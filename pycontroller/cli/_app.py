"""``App``: the flags every controller program has, validated, then a Manager run."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import math
import re
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import structlog

from pycontroller._util._selectors import check_label_selector
from pycontroller.client import Client, connect, has_config
from pycontroller.controller import Controller, Manager
from pycontroller.errors import Error
from pycontroller.leaderelection import LeaderElectionConfig

if TYPE_CHECKING:
    from pycontroller.envtest import ControlPlane

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?")
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


# -- validating argument types (argparse turns ArgumentTypeError into one error line) ------
def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def dns_label(text: str) -> str:
    """An argparse type: an RFC 1123 label (a namespace name)."""
    if len(text) > 63 or not _DNS_LABEL.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid name (lower-case letters, digits and '-', at most 63)")
    return text


def dns_subdomain(text: str) -> str:
    """An argparse type: an RFC 1123 subdomain (most object names, e.g. a Lease)."""
    if len(text) > 253 or not _DNS_SUBDOMAIN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid name (lower-case letters, digits, '-' and '.')")
    return text


def _address(text: str) -> str | None:
    """``host:port``, ``:port`` (all interfaces), or ``0`` (off) → the address or None.
    The host is a host name, an IPv4 address or an IPv6 address in brackets; port 0 asks
    the system for a free port."""
    if text == "0":
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not host:port, :port or 0 (off); the port must be 0-65535")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an IPv6 address: {host!r}") from None
    elif host and (len(host) > 253 or not all(_HOST_LABEL.fullmatch(label)
                                              for label in host.split("."))):
        raise argparse.ArgumentTypeError(
            f"not a host name or IPv4 address (IPv6 goes in brackets): {host!r}")
    return text


def _selector(text: str) -> str:
    """A label selector (``app=web,tier!=db,env in (a,b),!legacy``), checked as the
    apiserver would, so a typo fails here and not as a 400 on the first LIST."""
    try:
        return check_label_selector(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _kubeconfig(text: str) -> str:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return text


class _Parser(argparse.ArgumentParser):
    """Errors as one line on stderr (``prog: message (see --help)``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


# -- logging ---------------------------------------------------------------------------
def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    """structlog to stdout: console lines on a terminal, JSON lines otherwise or with
    ``fmt="json"``; ``level`` is one of debug, info, warning, error.

    Raises:
        ValueError: an unknown ``fmt`` or ``level``.
    """
    if fmt not in ("auto", "console", "json") or level not in _LEVELS:
        raise ValueError(f"unknown log format {fmt!r} or level {level!r}")
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
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )


# -- the program -----------------------------------------------------------------------
@dataclass(frozen=True)
class LocalCluster:
    """What ``--local`` started: a control plane with one kwok node, and a client of it,
    with the program's parsed flags (``options``) for a workload they configure.

    Immutable; the client is thread-safe, the control plane's helpers may be called from
    any thread.
    """

    plane: ControlPlane
    client: Client
    node: str
    options: argparse.Namespace = field(default_factory=argparse.Namespace)


def _default_lease_namespace() -> str:
    try:
        return _SA_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


class App:
    """The command line of one controller program.

    Flags (all validated): ``--kubeconfig``, ``--context``, ``--namespace``,
    ``--selector`` (given to every controller as its ``label_selector``),
    ``--log-format``, ``--log-level``, ``--metrics-bind-address``,
    ``--health-probe-bind-address`` (``0`` turns a server off), ``--sync-timeout``,
    ``--leader-elect``, ``--leader-election-id``, ``--leader-election-namespace``,
    ``--local`` (a throwaway control plane with a kwok node, where ``local`` starts a
    workload), ``--duration``. Add the program's own flags to ``parser`` (use the
    validating types of this module, or ``type=`` functions raising
    ``argparse.ArgumentTypeError``).

    Not thread-safe: build and run it from the main thread.
    """

    def __init__(self, prog: str, *, description: str | None = None,
                 local: Callable[[LocalCluster, threading.Event], None] | None = None) -> None:
        self.prog = prog
        self._local = local
        p = self.parser = _Parser(prog=prog, description=description,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--kubeconfig", type=_kubeconfig,
                       help="kubeconfig path (default: KUBECONFIG, ~/.kube/config, in-cluster)")
        p.add_argument("--context", help="kubeconfig context")
        p.add_argument("--namespace", type=dns_label, help="only this namespace (default: all)")
        p.add_argument("--selector", type=_selector, help="label selector, e.g. app=web")
        p.add_argument("--log-format", choices=("auto", "console", "json"), default="auto")
        p.add_argument("--log-level", choices=tuple(_LEVELS), default="info")
        p.add_argument("--metrics-bind-address", type=_address, default="127.0.0.1:8080",
                       help="host:port for /metrics (':8080' for all interfaces, 0: off)")
        p.add_argument("--health-probe-bind-address", type=_address, default="127.0.0.1:8081",
                       help="host:port for /healthz and /readyz (0: off)")
        p.add_argument("--sync-timeout", type=positive_float, default=120.0,
                       help="seconds to wait for the caches before exiting with 1")
        p.add_argument("--leader-elect", action="store_true",
                       help="run only while holding a Lease (for several replicas)")
        p.add_argument("--leader-election-id", type=dns_subdomain, default=prog,
                       help="the Lease name (default: %(default)s)")
        p.add_argument("--leader-election-namespace", type=dns_label,
                       help="the Lease namespace (default: the Pod's, else default)")
        p.add_argument("--local", action="store_true",
                       help="start a local control plane (etcd, kube-apiserver, kwok) "
                            "with a demo workload")
        p.add_argument("--duration", type=non_negative_float, default=0.0,
                       help="stop after this many seconds (0: run until Ctrl-C/SIGTERM)")

    def parse(self, argv: Sequence[str] | None = None) -> argparse.Namespace:
        """Parse and validate ``argv``; on a bad flag print one line and exit 2."""
        opts = self.parser.parse_args(argv)
        if opts.context is not None and not opts.context.strip():
            self.parser.error("argument --context: must not be empty")
        if opts.local and (opts.kubeconfig or opts.context):
            self.parser.error("--local starts its own cluster: drop --kubeconfig/--context")
        return opts

    def fail(self, message: str) -> NoReturn:
        """Report a bad flag combination found by the program (one line, exit 2)."""
        self.parser.error(message)

    def run(self, controllers: Callable[[argparse.Namespace], Sequence[Controller]],
            argv: Sequence[str] | None = None) -> int:
        """Parse ``argv``, set up logging, connect (or start ``--local``), run a Manager with
        ``controllers(opts)`` until stopped; return the exit code.

        Exit codes: 0 stopped as asked, 1 a runtime failure (reported in one line on
        stderr, or logged by the Manager), 2 a bad flag, 130 Ctrl-C before the Manager
        took over the signals (e.g. while ``--local`` starts).
        """
        opts = self.parse(argv)
        configure_logging(opts.log_format, opts.log_level)
        local = opts.local or (opts.kubeconfig is None and not has_config())
        stop = threading.Event()
        plane: ControlPlane | None = None
        try:
            built = controllers(opts)
            if local:
                plane, client = self._start_local(opts, stop)
            else:
                client = connect(opts.kubeconfig, context=opts.context)
            for controller in built:
                if opts.selector is not None:
                    controller.label_selector = opts.selector
            election: dict[str, Any] = {}
            if opts.leader_elect:
                election = {
                    "leader_election": LeaderElectionConfig(),
                    "leader_election_id": opts.leader_election_id,
                    "leader_election_namespace": (opts.leader_election_namespace
                                                  or _default_lease_namespace())}
            manager = Manager(client, namespace=opts.namespace,
                              metrics_bind_address=opts.metrics_bind_address,
                              health_probe_bind_address=opts.health_probe_bind_address,
                              sync_timeout=opts.sync_timeout, **election)
            for controller in built:
                manager.add(controller)
            if opts.duration > 0:
                timer = threading.Timer(opts.duration, stop.set)
                timer.daemon = True
                timer.start()
            return manager.run(stop)
        except (Error, OSError) as exc:
            # No traceback: these are the user's to fix (config, RBAC, a port in use).
            message = _one_line(exc)
            if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
                message = (f"cannot listen (--metrics-bind-address "
                           f"{opts.metrics_bind_address}, --health-probe-bind-address "
                           f"{opts.health_probe_bind_address}): {message}")
            print(f"{self.prog}: {message}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:  # Ctrl-C before the Manager handles signals (--local start)
            return 130
        finally:
            stop.set()
            if plane is not None:
                plane.stop()

    def _start_local(self, opts: argparse.Namespace,
                     stop: threading.Event) -> tuple[ControlPlane, Client]:
        from pycontroller.envtest import ControlPlane  # noqa: PLC0415 (an optional extra)

        print(f"{self.prog}: starting a local control plane (etcd + kube-apiserver + kwok) ...",
              file=sys.stderr, flush=True)
        plane = ControlPlane().start()
        try:
            node = "kwok-node-0"
            plane.create_node(node)
            client = connect(plane.kubeconfig)
            print(f"{self.prog}: control plane ready; export KUBECONFIG={plane.kubeconfig}",
                  file=sys.stderr, flush=True)
            if self._local is not None:
                self._local(LocalCluster(plane, client, node, opts), stop)
        except BaseException:
            plane.stop()
            raise
        return plane, client


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return " ".join(str(exc).split()) or type(exc).__name__
