"""envtest writes its workdir without trusting it (issue 13, item 7)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontroller.envtest._files import write_file
from pycontroller.envtest._pki import CertificateAuthority, write_service_account_keys
from pycontroller.envtest._process import ManagedProcess
from pycontroller.errors import ControlPlaneError


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # the worst umask: anything not created private stays readable
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_keys_are_created_private_not_tightened_later(
        tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_chmod(*args: object, **kwargs: object) -> None:
        raise AssertionError("a key was created wider and tightened afterwards")

    monkeypatch.setattr(Path, "chmod", no_chmod)
    monkeypatch.setattr(os, "chmod", no_chmod)
    pki = tmp_path / "pki"
    ca = CertificateAuthority(pki)
    pair = ca.issue("admin", "admin")
    sa = write_service_account_keys(pki)
    for key in (pki / "ca.key", pair.key, sa.key):
        assert _mode(key) == 0o600, key
    for public in (ca.cert_path, pair.cert, sa.cert):
        assert _mode(public) == 0o644, public
    assert _mode(pki) == 0o700


@pytest.mark.parametrize("dangling", [False, True])
def test_key_writes_refuse_a_planted_symlink(tmp_path: Path, dangling: bool) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    victim = tmp_path / "victim"
    if not dangling:
        victim.write_text("precious\n")
    (pki / "ca.key").symlink_to(victim)
    with pytest.raises(ControlPlaneError, match="symlink"):
        CertificateAuthority(pki)
    assert (victim.read_text() == "precious\n") if not dangling else not victim.exists()


def test_a_symlinked_pki_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "pki").symlink_to(elsewhere)
    with pytest.raises(ControlPlaneError):
        CertificateAuthority(tmp_path / "pki")
    assert list(elsewhere.iterdir()) == []


def test_logs_are_not_opened_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "etcd.log").symlink_to(victim)
    proc = ManagedProcess("true", ["true"], tmp_path / "etcd.log")
    with pytest.raises(ControlPlaneError, match="symlink"):
        proc.start()
    assert victim.read_text() == "precious\n"


def test_write_file_replaces_a_regular_file(tmp_path: Path) -> None:
    target = tmp_path / "admin.kubeconfig"
    target.write_text("old")
    target.chmod(0o666)
    write_file(target, b"new", 0o600)
    assert target.read_bytes() == b"new" and _mode(target) == 0o600
