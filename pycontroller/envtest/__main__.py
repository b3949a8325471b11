"""``python -m pycontroller.envtest build|up``: build the binaries or run a control plane."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from pycontroller.envtest import ControlPlane, build
from pycontroller.errors import ControlPlaneError


def _up(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    plane = ControlPlane(watch_cache=args.watch_cache)
    print("starting etcd and kube-apiserver ...", file=sys.stderr, flush=True)
    with plane:
        if args.node:
            plane.create_node(args.node)
        print(f"control plane ready at {plane.server}")
        print(f"kubeconfig: {plane.kubeconfig}")
        print(f"export KUBECONFIG={plane.kubeconfig}", flush=True)
        stop.wait()
        print("stopping ...", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m pycontroller.envtest")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build kube-apiserver, etcd and kwok into the cache")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    up = sub.add_parser("up", help="run a control plane in the foreground until Ctrl-C")
    up.add_argument("--node", default="kwok-node-0", help="kwok node to create ('' for none)")
    up.add_argument("--watch-cache", action="store_true", help="enable the apiserver watch cache")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            bins = build(force=args.force)
            print(f"kube-apiserver: {bins.kube_apiserver}\netcd: {bins.etcd}\nkwok: {bins.kwok}")
            return 0
        return _up(args)
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
