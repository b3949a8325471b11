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


# A link to a page the nav already lists but another branch has not landed yet; the only
# warning tolerated, so pages written in parallel can link to each other.
PENDING_PAGE = re.compile(r"contains a link '[^']*', but the target '([^']+)' is not found "
                          r"among documentation files")


def nav_pages() -> set[str]:
    return set(re.findall(r":\s*([\w./-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(),
                          re.MULTILINE))


def build(out: Path, *, strict: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", *(["--strict"] if strict else []),
         "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, check=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = build(out, strict=True)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        warnings = [line for line in output.splitlines() if line.startswith("WARNING")]
        pending = {m.group(1) for line in warnings if (m := PENDING_PAGE.search(line))}
        assert warnings and pending and all(PENDING_PAGE.search(w) for w in warnings) \
            and pending <= nav_pages() - {str(p.relative_to(ROOT / "docs"))
                                          for p in (ROOT / "docs").rglob("*.md")}, output
        proc = build(out, strict=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_pending_page_tolerance_is_narrow() -> None:
    assert "concepts/informers.md" in nav_pages()
    line = ("WARNING -  Doc file 'a.md' contains a link 'b.md', but the target 'b.md' is "
            "not found among documentation files.")
    assert PENDING_PAGE.search(line)
    assert not PENDING_PAGE.search("WARNING -  Doc file 'a.md' contains a link to "
                                   "'#nope' which is not found")


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
