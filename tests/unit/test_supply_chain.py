"""Dependencies are declared with safe floors and the image installs only hashed pins
(issue 13, item 9). ``./dev test`` also recompiles the locks (tools/lockfile.py check)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)(.*)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(path: Path) -> dict[str, tuple[Version, int]]:
    pins: dict[str, tuple[Version, int]] = {}
    current = ""
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = _norm(match.group(1))
            pins[current] = (Version(match.group(2)), 0)
        elif "--hash=sha256:" in line:
            version, hashes = pins[current]
            pins[current] = (version, hashes + line.count("--hash=sha256:"))
    return pins


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def test_urllib3_is_declared_with_the_fixed_floor() -> None:
    # We call urllib3 directly (stream(), chunked reads): 2.8.0 fixes unbounded chunk-size
    # lines and endless chunked-deflate loops on exactly those paths.
    urllib3 = next(r for r in _runtime_requirements() if r.name == "urllib3")
    assert not urllib3.specifier.contains("2.7.99")
    assert urllib3.specifier.contains("2.8.0")


def test_runtime_lock_pins_every_dependency_with_hashes() -> None:
    pins = _lock(ROOT / "requirements" / "runtime.lock")
    assert pins, "empty lock"
    for name, (_, hashes) in pins.items():
        assert hashes >= 1, f"{name} has no hash"
    for req in _runtime_requirements():
        version, _ = pins[_norm(req.name)]
        assert req.specifier.contains(version, prereleases=True), (req, version)
    build = _lock(ROOT / "requirements" / "build.lock")
    assert {"build", "hatchling"} <= build.keys()
    assert all(hashes for _, hashes in build.values())


def test_dockerfile_installs_only_hashed_pins() -> None:
    text = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install[^\n&]*", text)
    assert installs
    for cmd in installs:
        hashed = "--require-hashes" in cmd and "--only-binary=:all:" in cmd and ".lock" in cmd
        local = "--no-deps" in cmd and "/wheels/" in cmd  # our own wheel, built above
        assert hashed or local, cmd
    assert "pip check" in text
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert froms and all(f == "${PYTHON_IMAGE}" for f in froms)  # one pinnable base


def test_dockerfile_builds_the_c_module() -> None:
    # The wheel's build hook (pyproject.toml) needs hatch_build.py, and the C module a
    # compiler in the build stage; without them the image would fail to build, or run the
    # slower pure-Python code.
    text = (ROOT / "Dockerfile").read_text()
    hooks = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    assert "custom" in hooks["targets"]["wheel"]["hooks"]
    copies = " ".join(re.findall(r"^COPY (?!--from)([^\n]*)", text, re.MULTILINE))
    assert "hatch_build.py" in copies.split()
    build_stage = text.split("FROM ${PYTHON_IMAGE}\n")[0]
    assert re.search(r"apt-get install [^\n]*\bgcc\b", build_stage)
    final_stage = text.split("FROM ${PYTHON_IMAGE}\n")[1]
    assert "apt-get" not in final_stage
