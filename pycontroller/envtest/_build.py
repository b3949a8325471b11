"""Build the control-plane binaries from published Go modules, cached by version.

The Go modules live in ``tools/testenv/{kube,etcd,kwok}`` (shipped inside the wheel as
``pycontroller/envtest/_gosrc``). Each binary is built with the Go toolchain through the
module proxy into ``<cache>/<key>/`` where the key names the versions and a hash of the
module files, so a changed pin builds afresh and an unchanged one is reused.
``KUBEBUILDER_ASSETS`` (the controller-runtime convention) short-circuits the build.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pycontroller.errors import ControlPlaneError

KUBE_VERSION = "v1.37.2"
ETCD_VERSION = "v3.7.3"
KWOK_VERSION = "v0.8.0"
GO_MIN = (1, 26)


@dataclass(frozen=True, slots=True)
class Binaries:
    """Paths of the control-plane executables. ``kwok`` is None when not available."""

    kube_apiserver: Path
    etcd: Path
    kwok: Path | None


@dataclass(frozen=True, slots=True)
class _Target:
    name: str
    module_dir: str
    package: str
    ldflags: str


def _version_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    return (
        f"-s -w -X {pkg}.gitVersion={version} -X {pkg}.gitMajor={major} "
        f"-X {pkg}.gitMinor={minor} -X {pkg}.gitTreeState=clean"
    )


_TARGETS = (
    _Target("kube-apiserver", "kube", "k8s.io/kubernetes/cmd/kube-apiserver",
            _version_ldflags(KUBE_VERSION)),
    _Target("etcd", "etcd", "go.etcd.io/etcd/server/v3", "-s -w"),
    _Target("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok",
            f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION}"),
)


def source_dir() -> Path:
    """Return the folder holding the Go modules (repo checkout or installed wheel)."""
    override = os.environ.get("PYCONTROLLER_TESTENV_SRC")
    candidates = [Path(override)] if override else []
    here = Path(__file__).resolve().parent
    candidates += [here / "_gosrc", here.parents[1] / "tools" / "testenv"]
    for cand in candidates:
        if (cand / "kube" / "go.mod").is_file():
            return cand
    raise ControlPlaneError(
        f"cannot find the testenv Go modules (looked in {', '.join(map(str, candidates))})"
    )


def cache_root() -> Path:
    """Return the cache folder: ``$PYCONTROLLER_TESTENV_CACHE`` or the user cache dir."""
    env = os.environ.get("PYCONTROLLER_TESTENV_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pycontroller" / "testenv"


def cache_key(src: Path) -> str:
    """Versions plus a hash of every go.mod/go.sum, so a changed pin rebuilds."""
    digest = hashlib.sha256()
    for path in sorted(src.glob("*/go.*")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return f"k8s-{KUBE_VERSION}-etcd-{ETCD_VERSION}-kwok-{KWOK_VERSION}-{digest.hexdigest()[:12]}"


def check_trusted(path: Path) -> Path:
    """Return ``path`` if no other local user can replace the executable it names.

    The file (symlinks followed) and its folder must belong to us or root and must not be
    writable by group or others: whoever can swap a binary runs code as the test user.

    Raises:
        ControlPlaneError: either is owned by another user or writable by others.
    """
    real = path.resolve()
    for item in (real, real.parent):
        info = item.stat()
        if info.st_uid not in (0, os.getuid()):
            raise ControlPlaneError(
                f"refusing to run {path}: {item} belongs to another user (uid {info.st_uid})")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ControlPlaneError(
                f"refusing to run {path}: {item} is writable by other users")
    return path


def _from_assets(assets: Path) -> Binaries:
    api, etcd, kwok = (assets / n for n in ("kube-apiserver", "etcd", "kwok"))
    for path in (api, etcd):
        if not os.access(path, os.X_OK):
            raise ControlPlaneError(f"KUBEBUILDER_ASSETS={assets} has no executable {path.name}")
        check_trusted(path)
    has_kwok = os.access(kwok, os.X_OK)
    return Binaries(api, etcd, check_trusted(kwok) if has_kwok else None)


def find_binaries() -> Binaries | None:
    """Return the binaries if present (assets or cache), without building.

    Raises:
        ControlPlaneError: a binary is missing from ``KUBEBUILDER_ASSETS``, or one found
            could be replaced by another local user (see ``check_trusted``).
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        return _from_assets(Path(assets))
    out = cache_root() / cache_key(source_dir())
    paths = [out / t.name for t in _TARGETS]
    if all(os.access(p, os.X_OK) for p in paths):
        return Binaries(*(check_trusted(p) for p in paths))
    return None


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ControlPlaneError(
            "the Go toolchain is needed to build kube-apiserver and etcd: install Go "
            f">= {GO_MIN[0]}.{GO_MIN[1]} (e.g. 'apt-get install golang') or set "
            "KUBEBUILDER_ASSETS to a folder with kube-apiserver and etcd"
        )
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=False)
    match = re.match(r"go(\d+)\.(\d+)", out.stdout.strip())
    if match and (int(match[1]), int(match[2])) < GO_MIN and not os.environ.get("GOTOOLCHAIN"):
        raise ControlPlaneError(
            f"{out.stdout.strip()} is too old; Go >= {GO_MIN[0]}.{GO_MIN[1]} is needed"
        )
    return go


def _say(msg: str) -> None:
    print(f"[pycontroller.envtest] {msg}", file=sys.stderr, flush=True)


def _build_one(go: str, src: Path, target: _Target, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    env = {**os.environ, "CGO_ENABLED": "0"}
    cmd = [go, "build", "-trimpath", "-buildvcs=false", "-ldflags", target.ldflags,
           "-o", str(tmp), target.package]
    _say(f"building {target.name} (go build {target.package}) ...")
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=src / target.module_dir, env=env, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-30:])
        raise ControlPlaneError(
            f"building {target.name} failed (go build exit {proc.returncode}):\n{tail}"
        )
    tmp.replace(dest)
    _say(f"built {target.name} in {time.monotonic() - started:.0f}s -> {dest}")


def build(*, force: bool = False) -> Binaries:
    """Build whatever binary is missing from the cache and return their paths.

    Does nothing (and needs no Go) when ``KUBEBUILDER_ASSETS`` is set or the cache is
    complete. Safe to run concurrently: each binary is written to a temporary name and
    renamed into place.

    Raises:
        ControlPlaneError: Go is missing or a build failed (the message has the tail of
            the compiler output).
    """
    if not force:
        found = find_binaries()
        if found is not None:
            return found
    src = source_dir()
    out = cache_root() / cache_key(src)
    out.mkdir(parents=True, exist_ok=True)
    go = _go()
    for target in _TARGETS:
        dest = out / target.name
        if force or not os.access(dest, os.X_OK):
            _build_one(go, src, target, dest)
    return Binaries(out / "kube-apiserver", out / "etcd", out / "kwok")
