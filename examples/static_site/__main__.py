"""``staticsite-operator``: serve StaticSites (a CRD) with a ConfigMap, Deployment and Service.

Install the CRD first (examples/static_site/manifests/crd.yaml). With --local (or no
cluster configured) it starts a local control plane, installs the CRD, and creates,
edits and deletes a demo site in namespace demo.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pycontroller import Controller
from pycontroller.cli import App

from . import demo
from .controller import StaticSiteController


def app() -> App:
    """The command line (the common flags only)."""
    return App("staticsite-operator", description=__doc__, local=demo.start)


def controllers(opts: argparse.Namespace) -> Sequence[Controller]:
    """The controllers to run."""
    return [StaticSiteController()]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return app().run(controllers, argv)


if __name__ == "__main__":
    sys.exit(main())
