"""``pod-logger``: run the PodLogger controller against a cluster, or a local demo.

With no cluster configured (no kubeconfig, not in a Pod), or with ``--local``, it starts a
local control plane with a kwok node and a small workload, so there is something to log.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Sequence

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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="pod-logger", description=__doc__)
    p.add_argument("--kubeconfig", help="kubeconfig path (default: KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--namespace", help="only this namespace (default: all)")
    p.add_argument("--selector", help="label selector, e.g. app=web")
    p.add_argument("--resync", type=float, default=30.0, help="resync period in seconds")
    p.add_argument("--log-format", choices=("auto", "console", "json"), default="auto")
    p.add_argument("--metrics-bind-address", default="127.0.0.1:8080",
                   help="host:port for /metrics (':8080' for all interfaces)")
    p.add_argument("--health-probe-bind-address", default="127.0.0.1:8081",
                   help="host:port for /healthz and /readyz")
    p.add_argument("--sync-timeout", type=float, default=120.0,
                   help="seconds to wait for the pod cache before exiting with 1")
    p.add_argument("--local", action="store_true",
                   help="start a local control plane with a demo workload")
    p.add_argument("--duration", type=float, default=0.0,
                   help="stop after this many seconds (0: run until Ctrl-C)")
    p.add_argument("--demo-interval", type=float, default=1.0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


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
        print(f"pod-logger: {exc}", file=sys.stderr)
        return 1
    finally:
        stop.set()
        if plane is not None:
            plane.stop()


if __name__ == "__main__":
    sys.exit(main())
