"""``traffic-tuner``: switch a ConfigMap value as a Service's request rate crosses a threshold.

A Service opts in with annotations (traffic-tuner.pycontroller.dev/metrics-url, counter,
threshold-rps, configmap, key, high-value, normal-value; optional band,
min-seconds-in-state, interval-seconds). The tuner polls the Prometheus text endpoint,
computes the rate, and server-side applies the one key it owns when the value changes.
With --local (or no cluster configured) it starts a local control plane with a demo
Service whose traffic alternates between quiet and busy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pycontroller import Controller
from pycontroller.cli import App, positive_float

from . import demo
from .controller import TrafficTuner


def app() -> App:
    """The command line: the common flags and the tuner's own."""
    a = App("traffic-tuner", description=__doc__, local=demo.start)
    a.parser.add_argument("--scrape-timeout", type=positive_float, default=5.0,
                          help="seconds one metrics request may take (5)")
    return a


def controllers(opts: argparse.Namespace) -> Sequence[Controller]:
    """The controllers to run, configured from the flags."""
    return [TrafficTuner(scrape_timeout=opts.scrape_timeout)]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return app().run(controllers, argv)


if __name__ == "__main__":
    sys.exit(main())
