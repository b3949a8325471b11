"""The benchmark runner keeps working: ``bench/run.py --quick`` end to end (not timed).

Runs every Python peer (and the client-go peer if its binary is already cached; the Go
build is never triggered here) against the replay server with tiny sizes, and checks only
that the JSON and markdown reports are complete and well-formed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PY_PEERS = {"pycontroller", "official-informer", "official-watch"}


@pytest.mark.timeout(180)
def test_quick_run_writes_wellformed_reports(tmp_path: Path) -> None:
    report, text = tmp_path / "bench.json", tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick",
         "--json", str(report), "--markdown", str(text)],
        capture_output=True, text=True, timeout=170, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]

    data = json.loads(report.read_text())
    assert data["repeats"] == 1 and data["machine"]["cpus"] >= 1
    groups = {(g["server"], g["scenario"]): g for g in data["groups"]}
    assert set(groups) == {("replay", "informer"), ("replay", "reconcile")}

    informer = groups["replay", "informer"]
    assert set(informer["peers"]) >= PY_PEERS
    for name, peer in informer["peers"].items():
        assert peer["errors"] == [], (name, peer["errors"])
        (run,) = peer["runs"]
        assert run["objects"] == informer["objects"] > 0
        assert run["sync_s"] > 0 and run["steady_rss"] > 0 and run["peak_rss"] > 0
        assert [p["rate"] for p in run["watch"]] == data["rates"]
        assert all(p["complete"] and p["delivered"] == p["sent"] for p in run["watch"])
        assert run["throughput"]["complete"] and run["throughput"]["events_per_s"] > 0
        assert run["gc_pause_max_ms"] >= 0 and run["burst_gc_pause_max_ms"] >= 0
        assert run["relist"]["complete"] and run["relist"]["relist_s"] > 0
        assert peer["stats"]["sync_s"]["n"] == 1
    assert informer["peers"]["pycontroller"]["runs"][0]["workqueue_ops_per_s"] > 0

    reconcile = groups["replay", "reconcile"]
    assert "pycontroller" in reconcile["peers"]
    assert all(p["runs"][0].get("complete") for p in reconcile["peers"].values())

    md = text.read_text()
    assert md.startswith("# Benchmarks\n")
    for heading in ("## Sync cost against N", "Initial sync:", "Watch delivery latency",
                    "Relist after 410", "reconcile"):
        assert heading in md
    for peer in PY_PEERS:
        assert f"| {peer} |" in md


@pytest.mark.timeout(180)
def test_a_reading_handler_is_its_own_group_outside_the_sync_curve(tmp_path: Path) -> None:
    """(Also: the pycontroller-pure peer runs without the C module.)"""
    report, text = tmp_path / "bench.json", tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--peers",
         "pycontroller,pycontroller-pure", "--handler", "reads",
         "--json", str(report), "--markdown", str(text)],
        capture_output=True, text=True, timeout=170, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]

    informer = next(g for g in json.loads(report.read_text())["groups"]
                    if g["scenario"] == "informer")
    assert informer["handler"] == "reads"
    for peer in ("pycontroller", "pycontroller-pure"):
        (run,) = informer["peers"][peer]["runs"]
        assert run["handler"] == "reads"  # the peer was told
        assert run["throughput"]["complete"] and run["burst_gc_pause_max_ms"] >= 0
    c_module = json.loads(report.read_text())["machine"]["c_module"]
    assert informer["peers"]["pycontroller"]["runs"][0]["c_module"] is c_module
    assert informer["peers"]["pycontroller-pure"]["runs"][0]["c_module"] is False
    md = text.read_text()
    assert "informer, the handler reads spec and status" in md
    assert "## Sync cost against N" not in md  # the curve is for the no-op handler only
    summary = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--from-json", str(report),
         "--summary"], capture_output=True, text=True, timeout=60, check=True)
    assert "pycontroller" not in summary.stdout

    # Merged with a run of other repeats, the header says how many each had.
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**json.loads(report.read_text()), "repeats": 5}))
    merged = tmp_path / "merged.md"
    subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--from-json", str(report),
                    str(other), "--markdown", str(merged)], timeout=60, check=True)
    assert "UTC, 1 to 5 repeats (1, 5, in the order of the commands)" in merged.read_text()
    assert ", 1 repeats," in md  # (a single run)


@pytest.mark.timeout(120)
def test_replay_floor_runs_every_mode_on_the_same_stream() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "replay_floor.py"), "300", "1"],
                          capture_output=True, text=True, timeout=110, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()[1:]}
    # Every line of the stream kept (300 pods and the bookmark), every pod in the informer.
    assert rows == {"read": "0", "keep": "301", "scan": "301", "pycontroller": "300"}
