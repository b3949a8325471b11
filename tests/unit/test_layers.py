"""The import layers of house style §5.1: testing > controller > {cache | workqueue} >
{client | metrics} > _util; only client/_kube.py imports kubernetes and only
metrics/prometheus.py imports prometheus_client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "pycontroller"
ALLOWED = {
    "_util": set(),
    "errors": set(),
    "_meta": {"errors"},
    "client": {"_util", "errors"},
    "metrics": {"_util", "errors"},
    "workqueue": {"_util", "errors", "metrics"},
    "cache": {"_util", "errors", "metrics", "client"},
    "leaderelection": {"_util", "errors", "client"},
    "events": {"_util", "errors", "metrics", "client"},
    "controller": {"_util", "errors", "metrics", "client", "cache", "workqueue",
                   "leaderelection", "_meta", "events"},
    "envtest": {"_util", "errors"},
    "cli": {"_util", "errors", "client", "controller", "leaderelection", "envtest"},
}
ONLY_HERE = {"kubernetes": "client/_kube.py", "prometheus_client": "metrics/prometheus.py"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_lower_layers(layer: str) -> None:
    files = [PKG / f"{layer}.py"] if (PKG / f"{layer}.py").exists() else \
        list((PKG / layer).rglob("*.py"))
    bad = []
    for path in files:
        for name in imports(path):
            parts = name.split(".")
            if parts[0] == "pycontroller" and len(parts) > 1 and parts[1] != layer \
                    and parts[1] not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(PKG)} imports {name}")
    assert not bad, bad


def test_third_party_seams() -> None:
    bad = []
    for path in PKG.rglob("*.py"):
        rel = str(path.relative_to(PKG))
        for name in imports(path):
            top = name.split(".")[0]
            if top in ONLY_HERE and rel != ONLY_HERE[top]:
                bad.append(f"{rel} imports {name}")
    assert not bad, bad
