"""``restart-scaler``: scale up the Deployment of a Pod whose container keeps restarting.

When a container has restarted --threshold times, the Deployment owning the Pod (through
its ReplicaSet) gets one more replica: once per Pod, up to the Deployment's
restart-scaler.pycontroller.dev/max-replicas annotation (default --max-replicas), and at
most once per --cooldown seconds per Deployment. With --local (or no cluster configured)
it starts a local control plane with a crash-looping demo Deployment in namespace demo.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pycontroller import Controller
from pycontroller.cli import App, non_negative_float, positive_int

from . import demo
from .controller import RestartScaler


def app() -> App:
    """The command line: the common flags and the scaler's own."""
    a = App("restart-scaler", description=__doc__, local=demo.start)
    a.parser.add_argument("--threshold", type=positive_int, default=3,
                          help="restarts of one container that trigger a scale-up (3)")
    a.parser.add_argument("--max-replicas", type=positive_int, default=10,
                          help="cap for Deployments without the max-replicas annotation (10)")
    a.parser.add_argument("--cooldown", type=non_negative_float, default=300.0,
                          help="seconds between scale-ups of one Deployment (300)")
    return a


def controllers(opts: argparse.Namespace) -> Sequence[Controller]:
    """The controllers to run, configured from the flags."""
    return [RestartScaler(threshold=opts.threshold, max_replicas=opts.max_replicas,
                          cooldown=opts.cooldown)]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return app().run(controllers, argv)


if __name__ == "__main__":
    sys.exit(main())
