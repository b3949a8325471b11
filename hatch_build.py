"""Build hook: compile the optional C module ``pycontroller._speedups``.

Without a working C compiler the build still succeeds, with a warning, and the package
uses its pure-Python code (the same behaviour, slower; see docs/performance.md).
``PYCONTROLLER_PURE_PYTHON=1`` at build time skips the compiler on purpose.

A regular wheel gets the module from a temporary directory; an editable install (``pip
install -e .``, what ``./dev`` does) compiles it next to its source, where the checkout is
imported from; it first removes the module built there before, so that a build without
it (no compiler, a compile error in an edited ``_speedups.c``: ``pip install -q`` shows no
warning) leaves the pure-Python code in use rather than a stale module.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = "pycontroller/_speedups.c"


def module_path(out_dir: Path) -> Path:
    """Where the module compiled into ``out_dir`` goes (this interpreter's suffix)."""
    return out_dir / f"_speedups{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"


def compile_speedups(root: Path, out_dir: Path) -> Path:
    """Compile ``SOURCE`` into ``out_dir``; return the module's path.

    Raises:
        OSError: no compiler.
        subprocess.CalledProcessError: the compiler failed.
    """
    target = module_path(out_dir)
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        [*cc, "-O2", "-DNDEBUG", "-fPIC", "-shared", "-Wall", f"-I{include}",
         str(root / SOURCE), "-o", str(target)],
        check=True, capture_output=True, text=True,
    )
    return target


class SpeedupsHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles ``pycontroller/_speedups.c`` into the wheel (or in place when editable)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile the module and add it to the build; warn and go on without it."""
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        editable = version == "editable"
        if editable:  # a build left in place from before must not be imported instead
            module_path(root / "pycontroller").unlink(missing_ok=True)
        if os.environ.get("PYCONTROLLER_PURE_PYTHON", "") not in ("", "0"):
            return
        if editable:
            out_dir = root / "pycontroller"
        else:  # removed in finalize, once the wheel holds the module
            out_dir = self._tmp = Path(tempfile.mkdtemp(prefix="pycontroller-speedups-"))
        try:
            built = compile_speedups(root, out_dir)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            self.app.display_warning(
                f"pycontroller: the C module _speedups was not built; the pure-Python code "
                f"is used instead (slower, same behaviour). The compiler said:\n{detail}")
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if not editable:
            build_data["force_include"][str(built)] = f"pycontroller/{built.name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        """Remove the temporary directory a regular wheel's module was compiled in."""
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
