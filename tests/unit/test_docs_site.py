"""The documentation site builds with ``mkdocs build --strict``, and its API reference
documents exactly the public API (``__all__``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import pycontroller
import pycontroller.cli
import pycontroller.envtest
import pycontroller.testing

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def documented(page: Path, module: str) -> set[str]:
    found = re.findall(rf'id="{re.escape(module)}\.([A-Za-z_][A-Za-z0-9_]*)"', page.read_text())
    return set(found)


@pytest.mark.parametrize(("module", "page"), [
    (pycontroller, "reference/api/index.html"),
    (pycontroller.testing, "reference/testing/index.html"),
    (pycontroller.envtest, "reference/envtest/index.html"),
    (pycontroller.cli, "reference/cli/index.html"),
])
def test_api_reference_is_exactly_all(site: Path, module: ModuleType, page: str) -> None:
    assert documented(site / page, module.__name__) == set(module.__all__)


def test_guides_and_concept_map_are_built(site: Path) -> None:
    for page in ("tutorial", "howto/testing", "howto/deploying", "howto/leader-election",
                 "howto/metrics", "howto/from-kopf", "howto/command-line", "howto/from-watch-loop",
                 "reference/concept-map", "concepts/informers"):
        assert (site / page / "index.html").is_file(), page
