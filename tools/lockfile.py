"""Write or check the hashed lock files the Dockerfile installs from.

    python tools/lockfile.py write   # ./dev lock: regenerate (keeps existing pins)
    python tools/lockfile.py check   # ./dev test: the locks match pyproject.toml

``requirements/runtime.lock`` pins pyproject's runtime dependencies (and theirs) with
sha256 hashes; ``requirements/build.lock`` pins what builds the wheel. Both are made by
``uv pip compile --generate-hashes`` for Python 3.11 on every platform.

``check`` recompiles each lock with its own pins preferred (so nothing is upgraded) and
fails unless the same packages and versions come out and every committed hash is still
among the fresh ones (new wheels for a pinned version may add hashes; none may change).
A dependency added to or changed in pyproject.toml that the lock does not satisfy fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = {
    ROOT / "requirements" / "runtime.lock": ROOT / "pyproject.toml",
    ROOT / "requirements" / "build.lock": ROOT / "requirements" / "build.in",
}
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)")
_HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


def _uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(found).exists():
        sys.exit("uv is needed (pip install uv; it is in the dev extra)")
    return found


def compile_lock(source: Path, output: Path) -> None:
    """Run uv pip compile for ``source`` into ``output`` (pins already there are kept)."""
    subprocess.run([
        _uv(), "pip", "compile", str(source.relative_to(ROOT)), "--generate-hashes",
        "--universal", "--python-version", "3.11", "--quiet",
        "--custom-compile-command", "./dev lock", "-o", str(output),
    ], cwd=ROOT, check=True)


def parse(lock: Path) -> dict[str, tuple[str, set[str]]]:
    """``name -> (version, hashes)`` of a hashed requirements file."""
    pins: dict[str, tuple[str, set[str]]] = {}
    current: str | None = None
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            current = match.group(1).lower().replace("_", "-")
            pins[current] = (match.group(2), set())
        for digest in _HASH.findall(line):
            if current is None:
                raise SystemExit(f"{lock}: a hash before any requirement")
            pins[current][1].add(digest)
    unhashed = sorted(name for name, (_, hashes) in pins.items() if not hashes)
    if unhashed:
        raise SystemExit(f"{lock}: no hashes for {unhashed}")
    return pins


def check() -> int:
    """Return 0 if every lock is consistent with its source, else print why and return 1."""
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for lock, source in LOCKS.items():
            if not lock.exists():
                failures.append(f"{lock.relative_to(ROOT)} is missing (run ./dev lock)")
                continue
            fresh = Path(tmp) / lock.name
            shutil.copy(lock, fresh)
            compile_lock(source, fresh)
            old, new = parse(lock), parse(fresh)
            name = lock.relative_to(ROOT)
            old_pins = {k: v[0] for k, v in old.items()}
            new_pins = {k: v[0] for k, v in new.items()}
            if old_pins != new_pins:
                changed = sorted(f"{k}: {old_pins.get(k, '-')} -> {new_pins.get(k, '-')}"
                                 for k in old_pins.keys() | new_pins.keys()
                                 if old_pins.get(k) != new_pins.get(k))
                failures.append(f"{name} does not match {source.relative_to(ROOT)} "
                                f"(run ./dev lock): {', '.join(changed)}")
            for pkg, (_, hashes) in old.items():
                gone = hashes - new.get(pkg, ("", set()))[1]
                if gone:
                    failures.append(f"{name}: {pkg} hashes no longer published: {sorted(gone)}")
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


def main() -> int:
    """Entry point: ``write`` or ``check``."""
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "write":
        for lock, source in LOCKS.items():
            compile_lock(source, lock)
            print(f"wrote {lock.relative_to(ROOT)}")
        return 0
    if command == "check":
        return check()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
