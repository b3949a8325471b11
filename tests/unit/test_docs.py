"""The Python in the docs is real: every ```python block in README.md and in any .md file
under docs/ type-checks with ``mypy --strict`` against the installed package, imports no
private module (``pycontroller._x``, ``pycontroller.cache._y``), and runs when marked so.

How to write a block that passes (docs added later are discovered automatically):

* make it self-contained: its own imports, annotated functions; take what it needs as
  parameters (``def main(client: Client) -> None:``) rather than naming undefined globals;
* a block whose first line is ``# some/path.py`` is that file of a small project built
  per Markdown file, so a later block of the same file can import it
  (``from myproject.stamper import ...``); the tutorial's named files
  (``docs/tutorial.md``) are there for every doc, so a guide can import its controller;
* ```` ```python {.run} ```` also runs the block (with the files named so far next to it)
  and needs no cluster: use it for what can be shown without one.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mypy import api as mypy_api

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TUTORIAL = ROOT / "docs" / "tutorial.md"
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_NAMED = re.compile(r"^#\s*(?P<path>[\w][\w./-]*\.py)\s*$")
_MYPY_LINE = re.compile(r"^(?P<file>[^:\n]+\.py):(?P<line>\d+): (?P<rest>.*)$")
_CONFIG = """\
[mypy]
strict = True
python_version = 3.11
explicit_package_bases = True
mypy_path = {root}

[mypy-kubernetes.*]
ignore_missing_imports = True
"""


@dataclasses.dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # of the first code line, 1-based
    code: str
    run: bool
    path: str  # where it is written in the doc's project

    def where(self, offset: int = 0) -> str:
        doc = self.doc.relative_to(ROOT) if self.doc.is_relative_to(ROOT) else self.doc.name
        return f"{doc}:{self.line + offset}"


def python_blocks(doc: Path) -> list[Block]:
    """The fenced blocks whose info string starts with ``python`` (or ``py``)."""
    found: list[Block] = []
    lines = doc.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        i += 1
        if opening is None:
            continue
        fence, words = opening["fence"], opening["info"].split()
        body: list[str] = []
        start = i + 1
        while i < len(lines) and not (
                lines[i].strip().startswith(fence) and set(lines[i].strip()) == {fence[0]}):
            body.append(lines[i][len(opening["indent"]):])
            i += 1
        i += 1  # the closing fence
        if words and words[0] in ("python", "py"):
            named = _NAMED.match(body[0]) if body else None
            path = named["path"] if named else f"doc_block_line_{start}.py"
            found.append(Block(doc, start, "\n".join(body) + "\n", "{.run}" in words[1:], path))
    return found


def private_imports(block: Block) -> list[str]:
    """Imports of private pycontroller modules or names, as ``doc:line: module``."""
    bad = []
    for node in ast.walk(ast.parse(block.code, filename=block.where())):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == "pycontroller" and any(p.startswith("_") for p in parts[1:]):
                bad.append(f"{block.where(node.lineno - 1)}: imports private {module}")
    return bad


def write_tutorial_files(workdir: Path) -> None:
    """Write the tutorial's named files (``# myproject/stamper.py``) for another doc."""
    for shared in python_blocks(TUTORIAL):
        if _NAMED.match(shared.code.splitlines()[0]):
            target = workdir / shared.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(shared.code)


def check(doc: Path, workdir: Path, cache: Path) -> list[str]:
    """Write the doc's blocks as a project, type-check it, run the runnable blocks."""
    blocks = python_blocks(doc)
    if not blocks:
        return []
    try:
        problems = [p for block in blocks for p in private_imports(block)]
    except SyntaxError as exc:
        return [f"{exc.filename}:{exc.lineno}: not Python ({exc.msg}); "
                "use another fence (```text) for what is not code"]
    by_file: dict[Path, Block] = {}
    if doc != TUTORIAL:
        write_tutorial_files(workdir)
    for block in blocks:
        target = workdir / block.path
        assert target not in by_file, f"{block.where()}: {block.path} is written twice"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code)
        by_file[target] = block
    config = workdir / "mypy.ini"
    config.write_text(_CONFIG.format(root=workdir))
    out, err, status = mypy_api.run([
        "--config-file", str(config), "--cache-dir", str(cache), "--no-error-summary",
        "--hide-error-context", *map(str, by_file)])
    for line in out.splitlines():
        m = _MYPY_LINE.match(line)
        owner = by_file.get(Path(m["file"]).resolve()) if m else None
        if m and owner is not None:
            problems.append(f"{owner.where(int(m['line']) - 1)}: {m['rest']}")
        elif line.strip():
            problems.append(line)
    if status not in (0, 1) or err.strip():
        problems.append(f"mypy failed ({status}): {err.strip()}")
    if problems:
        return problems
    for target, block in by_file.items():
        if block.run:
            proc = subprocess.run(
                [sys.executable, str(target)], cwd=workdir, capture_output=True, text=True,
                timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(workdir)})
            if proc.returncode != 0:
                problems.append(f"{block.where()}: exited {proc.returncode}:\n{proc.stderr}")
    return problems


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_python_blocks_type_check_and_run(doc: Path, tmp_path: Path, mypy_cache: Path) -> None:
    problems = check(doc, tmp_path.resolve(), mypy_cache)
    assert not problems, "\n".join(problems)


def test_every_doc_is_found_and_has_its_blocks() -> None:
    names = {str(d.relative_to(ROOT)) for d in DOCS}
    assert {"README.md", "docs/tutorial.md", "docs/concepts/leaderelection.md"} <= names
    assert sum(len(python_blocks(d)) for d in DOCS) >= 10
    assert any(b.run for d in DOCS for b in python_blocks(d)), "no block runs"


def test_the_checker_catches_what_it_must(tmp_path: Path) -> None:
    text = """# t
```python
from pycontroller._util._wait import wait_for
```

```python
from pycontroller import connect
client = connect(qps_timeout=5)
```

```python {.run}
raise SystemExit(3)
```
"""
    doc = tmp_path / "doc.md"
    doc.write_text(text)
    blocks = python_blocks(doc)
    assert [b.run for b in blocks] == [False, False, True]
    assert private_imports(blocks[0]) == [
        "doc.md:3: imports private pycontroller._util._wait",
        "doc.md:3: imports private pycontroller._util._wait.wait_for"]
    work = tmp_path / "work"
    work.mkdir()
    problems = check(doc, work, tmp_path / "cache")
    assert any(p.startswith("doc.md:8: ") and '"qps_timeout"' in p for p in problems), problems
    only_run = tmp_path / "run.md"
    only_run.write_text("```python {.run}\nraise SystemExit(3)\n```\n")
    work2 = tmp_path / "work2"
    work2.mkdir()
    assert any("exited 3" in p for p in check(only_run, work2, tmp_path / "cache"))
