"""The public API is exactly ``__all__``, and examples use nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

import pycontroller

ROOT = Path(__file__).resolve().parents[2]


def test_root_all_lists_existing_public_names() -> None:
    exported = set(pycontroller.__all__)
    assert len(exported) == len(pycontroller.__all__), "duplicates in __all__"
    for name in exported:
        assert hasattr(pycontroller, name), name
        assert not name.startswith("_")
    public_modules = {"cache", "client", "controller", "errors", "metrics", "workqueue",
                      "envtest", "testing", "leaderelection", "events", "cli"}
    stray = {n for n in vars(pycontroller) if not n.startswith(("_", "@"))}
    stray -= exported | public_modules
    assert not stray, f"public names missing from __all__: {stray}"


def test_examples_import_only_the_public_api() -> None:
    offenders = []
    for path in (ROOT / "examples").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and any(
                part.startswith("_") for part in node.module.split(".")
            ) and node.module.startswith("pycontroller"):
                offenders.append(f"{path.relative_to(ROOT)}: {node.module}")
    assert not offenders, offenders


def test_py_typed_is_shipped() -> None:
    assert (Path(pycontroller.__file__).parent / "py.typed").is_file()
