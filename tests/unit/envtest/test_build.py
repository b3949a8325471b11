from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pycontroller.envtest import _build
from pycontroller.errors import ControlPlaneError


def _exe(path: Path) -> None:
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_cache_key_changes_with_module_pins(tmp_path: Path) -> None:
    (tmp_path / "kube").mkdir()
    (tmp_path / "kube" / "go.mod").write_text("module a\n")
    first = _build.cache_key(tmp_path)
    assert first.startswith(f"k8s-{_build.KUBE_VERSION}-etcd-{_build.ETCD_VERSION}")
    (tmp_path / "kube" / "go.mod").write_text("module b\n")
    assert _build.cache_key(tmp_path) != first


def test_kubebuilder_assets_short_circuit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("kube-apiserver", "etcd"):
        _exe(tmp_path / name)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    found = _build.build()
    assert found.kube_apiserver == tmp_path / "kube-apiserver" and found.kwok is None


def test_kubebuilder_assets_missing_binary_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _exe(tmp_path / "etcd")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    with pytest.raises(ControlPlaneError, match="kube-apiserver"):
        _build.find_binaries()


def test_cache_root_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYCONTROLLER_TESTENV_CACHE", str(tmp_path))
    assert _build.cache_root() == tmp_path
    monkeypatch.delenv("PYCONTROLLER_TESTENV_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert _build.cache_root() == tmp_path / "x" / "pycontroller" / "testenv"


def test_source_dir_found_in_checkout() -> None:
    assert (_build.source_dir() / "etcd" / "go.mod").is_file()
    assert os.path.basename(_build.source_dir()) in ("testenv", "_gosrc")


@pytest.mark.parametrize("target", ["binary", "folder"])
def test_binaries_others_can_replace_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("kube-apiserver", "etcd"):
        _exe(assets / name)
    writable = assets / "etcd" if target == "binary" else assets
    writable.chmod(writable.stat().st_mode | stat.S_IWOTH)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    with pytest.raises(ControlPlaneError, match="writable by other users"):
        _build.find_binaries()
    writable.chmod(writable.stat().st_mode & ~stat.S_IWOTH)
    assert _build.find_binaries() is not None
