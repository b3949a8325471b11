"""The ``--local`` workload: install the CRD, create a StaticSite, then edit it and
finally delete it, so every part of the operator shows in the log."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from pycontroller import NAMESPACES
from pycontroller.cli import LocalCluster
from pycontroller.errors import ConflictError, Error

from .controller import STATICSITES

NAMESPACE = "demo"
CRD = Path(__file__).resolve().parent / "manifests" / "crd.yaml"


def start(cluster: LocalCluster, stop: threading.Event, interval: float = 10.0) -> None:
    """Install the CRD now; then create, update and delete a site every ``interval``."""
    cluster.plane.install_crds(CRD)
    client = cluster.client
    with contextlib.suppress(ConflictError):
        client.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})

    def run() -> None:
        steps: list[Callable[[], object]] = [
            lambda: client.create(STATICSITES, {
                "apiVersion": STATICSITES.api_version, "kind": STATICSITES.kind,
                "metadata": {"name": "hello"},
                "spec": {"content": {"index.html": "<h1>Hello</h1>\n"}}}, NAMESPACE),
            lambda: client.patch(STATICSITES, "hello", {"spec": {
                "replicas": 2, "content": {"about.html": "<p>pycontroller</p>\n"}}},
                NAMESPACE),
            lambda: client.delete(STATICSITES, "hello", NAMESPACE),
        ]
        for i, step in enumerate(steps):
            if stop.wait(1.0 if i == 0 else interval):
                return
            try:
                step()
            except Error as exc:
                print(f"staticsite demo: {exc}", file=sys.stderr)

    threading.Thread(target=run, daemon=True, name="staticsite-demo").start()
