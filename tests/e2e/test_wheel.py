"""The built sdist and wheel, installed as a user would get them (not the checkout).

The sdist is built from the checkout and the wheel from the sdist (``python -m build``).
The wheel goes into a fresh venv with ``--no-deps``; its dependencies come from the dev
venv's site-packages through a path entry (a plain path, so the dev venv's editable
install of the checkout stays inactive). Nothing touches the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PYTEST_INI = """[pytest]
addopts = -p no:cacheprovider --strict-markers
filterwarnings = error
"""


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS")}
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**clean, **env}, check=False)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: hatchling comes from the dev extra, so no download.
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        cwd=out)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


@pytest.fixture(scope="module")
def venv(dists: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", str(home)], cwd=home)
    python = home / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                     "['purelib'])"], cwd=home).stdout.strip())
    dev_site = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_dev_dependencies.pth").write_text("\n".join(sorted(dev_site)) + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", str(dists[0])], cwd=home)
    return home


def test_wheel_holds_one_top_level_package(dists: tuple[Path, Path]) -> None:
    names = zipfile.ZipFile(dists[0]).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"pycontroller"}
    assert "pycontroller/_examples/pod_logger/__main__.py" in names
    assert "pycontroller/_examples/static_site/manifests/crd.yaml" in names  # --local uses it
    assert "pycontroller/py.typed" in names
    assert not any(n.startswith("pycontroller/_examples/") and "__pycache__" in n
                   for n in names)
    metadata = zipfile.ZipFile(dists[0]).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Name: pycontroller-kube" in metadata
    base = [line for line in metadata.splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not any("cryptography" in line or "pytest" in line for line in base), base


def test_sdist_carries_what_the_wheel_is_built_from(dists: tuple[Path, Path]) -> None:
    with tarfile.open(dists[1]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in ("pyproject.toml", "LICENSE", "README.md", "pycontroller/__init__.py",
                   "examples/pod_logger/__main__.py", "tools/testenv/kube/go.mod"):
        assert needed in names, needed
    assert not any(n.startswith((".venv/", ".git/")) for n in names)


def test_import_comes_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    out = run([str(venv / "bin" / "python"), "-c",
               "import sys, pycontroller, pycontroller.testing\n"
               "print(pycontroller.__file__)\n"
               "print(','.join(m for m in ('kubernetes', 'cryptography', 'examples')"
               " if m in sys.modules))"], cwd=tmp_path).stdout.split("\n")
    assert Path(out[0]).is_relative_to(venv), out[0]
    assert out[1] == "", f"imported eagerly: {out[1]}"
    missing = subprocess.run([str(venv / "bin" / "python"), "-c", "import examples"],
                             cwd=tmp_path, capture_output=True, check=False)
    assert missing.returncode != 0, "a top-level 'examples' package is importable"


def test_console_script_runs(venv: Path, tmp_path: Path) -> None:
    for script in ("pod-logger", "restart-scaler", "traffic-tuner", "staticsite-operator"):
        out = run([str(venv / "bin" / script), "--help"], cwd=tmp_path).stdout
        assert out.startswith(f"usage: {script}"), out


def test_pytest_plugin_fixtures_load(venv: Path, tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(PYTEST_INI)
    out = run([str(venv / "bin" / "python"), "-m", "pytest", "--fixtures", "-q"],
              cwd=tmp_path).stdout
    for fixture in ("kube_control_plane", "kube_envtest", "kube_client", "kube_namespace",
                    "kube_manager", "kube_fake_clock"):
        assert fixture in out, f"{fixture} missing from:\n{out}"


def test_public_api_test_passes_against_the_wheel(venv: Path, tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(PYTEST_INI)
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "unit" / "test_public_api.py", tmp_path / "tests" / "unit")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    probe = tmp_path / "tests" / "unit" / "test_where.py"
    probe.write_text("import pycontroller\n\n\ndef test_where() -> None:\n"
                     f"    assert pycontroller.__file__.startswith({str(venv)!r})\n")
    out = run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "tests"],
              cwd=tmp_path).stdout
    assert " passed" in out and "failed" not in out and "skipped" not in out, out
