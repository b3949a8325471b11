"""Files in a control plane's workdir, written without trusting what is already there.

The workdir may be given by the caller and so be shared with other local users: a file
is never written through a symlink, private files are created 0600 (not tightened
afterwards), and folders holding keys are 0700.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from pycontroller.errors import ControlPlaneError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _refuse_symlink(path: Path) -> bool:
    """Raise if ``path`` is a symlink; return whether something else is there."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode):
        raise ControlPlaneError(f"refusing to write through the symlink {path}")
    return True


def write_file(path: Path, data: bytes, mode: int = 0o600) -> Path:
    """Create ``path`` afresh with ``mode`` from the start, holding ``data``.

    An existing regular file is replaced (unlinked, then created exclusively); a symlink
    is refused, and so is one planted between those two steps.

    Raises:
        ControlPlaneError: ``path`` is a symlink, or appeared while it was being created.
    """
    if _refuse_symlink(path):
        path.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError as exc:
        raise ControlPlaneError(f"{path} appeared while it was being written") from exc
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)  # exactly ``mode``, whatever the umask
        out.write(data)
    return path


def open_log(path: Path) -> BinaryIO:
    """Open ``path`` for appending (created 0600), never through a symlink.

    Raises:
        ControlPlaneError: ``path`` is a symlink.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | _NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if path.is_symlink():
            raise ControlPlaneError(f"refusing to write through the symlink {path}") from exc
        raise
    return os.fdopen(fd, "ab")


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if missing and make it 0700; refuse a symlink.

    Raises:
        ControlPlaneError: ``path`` is a symlink or not a folder.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ControlPlaneError(f"{path} must be a folder, not a symlink or file") from exc
    try:
        if os.fstat(fd).st_uid != os.getuid():
            raise ControlPlaneError(f"{path} belongs to another user")
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return path
