"""``pod-logger``: run the PodLogger controller against a cluster, or a local demo.

With no cluster configured (no kubeconfig, not in a Pod), or with ``--local``, it starts a
local control plane with a kwok node and a small workload, so there is something to log.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pycontroller import Controller
from pycontroller.cli import App, non_negative_float, positive_float

from . import demo
from .controller import PodLogger


def app() -> App:
    """The command line: the common flags and the logger's own."""
    a = App("pod-logger", description=__doc__, local=demo.start)
    a.parser.add_argument("--resync", type=non_negative_float, default=30.0,
                          help="resync period in seconds (0: off)")
    a.parser.add_argument("--demo-interval", type=positive_float, default=demo.INTERVAL,
                          help=argparse.SUPPRESS)
    return a


def controllers(opts: argparse.Namespace) -> Sequence[Controller]:
    """The controllers to run, configured from the flags."""
    controller = PodLogger(name="pod-logger")
    controller.resync_period = opts.resync
    return [controller]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return app().run(controllers, argv)


if __name__ == "__main__":
    sys.exit(main())
