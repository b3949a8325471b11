"""Child processes that cannot outlive us: own process group, parent-death signal, atexit."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import weakref
from pathlib import Path

from pycontroller.envtest._files import open_log
from pycontroller.errors import ControlPlaneError

_PR_SET_PDEATHSIG = 1
_live: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()
_live_lock = threading.Lock()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def log_tail(path: Path, lines: int = 25) -> str:
    """Return the last ``lines`` lines of a log file, or a note that it is empty."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


class ManagedProcess:
    """One child process in its own process group, logging to a file.

    The child gets SIGKILL if the thread that started it dies (``PR_SET_PDEATHSIG``), and
    every live child is stopped at interpreter exit, so an interrupted test run leaves
    nothing behind.

    Thread-safety: not thread-safe; one owner drives it.
    """

    def __init__(self, name: str, args: list[str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the child (appending to its log, never through a symlink)."""
        with open_log(self.log_path) as log:
            try:
                self._proc = subprocess.Popen(
                    self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=_die_with_parent,  # noqa: PLW1509
                )
            except OSError as exc:
                raise ControlPlaneError(f"{self.name} could not be started: {exc}") from exc
        with _live_lock:
            _live.add(self)

    def running(self) -> bool:
        """Whether the child is alive."""
        return self._proc is not None and self._proc.poll() is None

    def check_alive(self) -> None:
        """Raise ControlPlaneError naming the binary, exit code and log tail if it died."""
        if self._proc is not None and self._proc.poll() is not None:
            raise ControlPlaneError(
                f"{self.name} exited with code {self._proc.returncode}; "
                f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
            )

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the child's process group."""
        if self.running() and self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group (resuming it first if stopped), then SIGKILL after ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                proc.wait(timeout)
        # Reap anything left in the group (e.g. a grandchild).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._proc = None
        with _live_lock:
            _live.discard(self)


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.stop(timeout=5.0)
