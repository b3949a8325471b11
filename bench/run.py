"""The benchmark runner: every peer in its own process, same data, alternating, ratios.

Usage::

    python bench/run.py --apiserver-sizes 1000,10000 --replay-sizes 10000,50000,150000 \\
        --repeats 5 --json docs/benchmarks.json --markdown docs/benchmarks.md

Servers:

* ``apiserver``: the local control plane (``pycontroller.envtest.ControlPlane``, watch cache
  on), filled with N ``8k``-shape pods (created, then their status written, so the server
  adds its own managedFields); scenarios: initial sync and a no-op reconcile of all N;
* ``replay``: ``bench/_replay.py`` in this process (loopback HTTP), serving N pre-encoded pods
  of each ``--shapes`` at full speed; scenarios: initial sync, watch latency at ``--rates``,
  the longest GC pause under that traffic, an unpaced burst (throughput, and the longest
  GC pause during it), a relist after 410, work-queue throughput, and the no-op reconcile.

Peers: ``client-go-json`` and ``client-go-proto`` (bench/clientgo built with the Go toolchain
at the control plane's client-go version; protobuf only against the apiserver, as the replay
server speaks JSON), ``pycontroller`` (and on request ``pycontroller-pure``: without its C
module), ``official-informer`` and ``official-watch`` (the
official client; skipped above ``--official-max`` objects). Each repeat runs every peer once,
in an order rotated per repeat. Reported: min and median per metric, and the ratio of the
medians to client-go (JSON). Benchmarks are never timed tests: ``--quick`` only checks that
everything runs and the output is well-formed (CI).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import _pods  # noqa: E402
import _replay  # noqa: E402

PY_PEERS = ("pycontroller", "pycontroller-pure", "official-informer", "official-watch")
GO_PEERS = ("client-go-json", "client-go-proto")
# pycontroller-pure: pycontroller without its C module (PYCONTROLLER_PURE_PYTHON=1), on
# request (--peers), to show what the module does.
OURS = ("pycontroller", "pycontroller-pure")
ALL_PEERS = ("client-go-json", "client-go-proto", "pycontroller", "pycontroller-pure",
             "official-informer", "official-watch")
DEFAULT_PEERS = tuple(p for p in ALL_PEERS if p != "pycontroller-pure")
REFERENCE = "client-go-json"


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- the client-go binary ------------------------------------------------------------------

def clientgo_binary(*, build: bool) -> Path | None:
    """The built client-go peer, cached outside the repo keyed by go.sum and main.go."""
    src = HERE / "clientgo"
    digest = hashlib.sha256((src / "go.sum").read_bytes() + (src / "main.go").read_bytes()
                            + (src / "go.mod").read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pycontroller"
    binary = cache / "bench" / f"clientgo-{digest}"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if not build or go is None:
        return None
    binary.parent.mkdir(parents=True, exist_ok=True)
    log(f"building the client-go peer into {binary} (slow the first time)")
    tmp = binary.with_suffix(".tmp")
    subprocess.run([go, "build", "-buildvcs=false", "-o", str(tmp), "."], cwd=src, check=True,
                   env={**os.environ, "CGO_ENABLED": "0"})
    tmp.rename(binary)
    return binary


# ---- the official client's interpreter ----------------------------------------------------

#: The official client as its users run it today: its newest release, which our own runtime
#: pin (kubernetes<36, for footprint) excludes, so it gets a venv of its own.
OFFICIAL_KUBERNETES = "37.0.2"


def official_python() -> str:
    """A Python with ``kubernetes==OFFICIAL_KUBERNETES``, in a venv cached outside the repo.

    The venv is made once (pip from the package index) and reused while its marker exists.
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pycontroller"
    venv = cache / "bench" / f"official-kubernetes-{OFFICIAL_KUBERNETES}"
    python, marker = venv / "bin" / "python", venv / ".installed"
    if not marker.exists():
        log(f"installing kubernetes=={OFFICIAL_KUBERNETES} into {venv} for the official peers")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q",
                        f"kubernetes=={OFFICIAL_KUBERNETES}"], check=True)
        marker.touch()
    return str(python)


# ---- running one peer once -----------------------------------------------------------------

def peer_command(peer: str, *, kubeconfig: str, namespace: str, expect: int, control: str,
                 scenario: str, opts: argparse.Namespace, binary: Path | None) -> list[str]:
    """The command line of one peer run."""
    burst = opts.burst if peer in (*OURS, *GO_PEERS) else opts.official_burst
    common = ["--kubeconfig", kubeconfig, "--namespace", namespace, "--expect", str(expect),
              "--scenario", scenario, "--rates", opts.rates,
              "--phase-seconds", str(opts.phase_seconds), "--burst", str(burst),
              "--queue-items", str(opts.queue_items)]
    if peer in OURS and opts.handler != "noop":
        common += ["--handler", opts.handler]
    if control:
        common += ["--control", control]
        if expect > opts.relist_max:
            common.append("--no-relist" if peer not in GO_PEERS else "--relist=false")
    if peer in GO_PEERS:
        assert binary is not None
        return [str(binary), *common, *(["--protobuf"] if peer == "client-go-proto" else [])]
    python = official_python() if peer.startswith("official") else sys.executable
    return [python, str(HERE / "_peer.py"), "--peer", peer, *common]


def run_peer(cmd: list[str], timeout: float) -> dict[str, Any]:
    """Run one peer process; its last stdout line is its JSON result."""
    env = {**os.environ, "GOMAXPROCS": os.environ.get("GOMAXPROCS", "2")}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def rotated(peers: list[str], repeat: int) -> list[str]:
    """The peer order of one repeat: rotated by one per repeat, so nobody always goes first."""
    k = repeat % len(peers)
    return peers[k:] + peers[:k]


# ---- servers -------------------------------------------------------------------------------

@contextmanager
def replay_server(objects: int, shape: str) -> Iterator[tuple[str, _replay.ReplayState, str]]:
    """Serve ``objects`` pods of ``shape``; yields (kubeconfig path, state, control URL)."""
    server, state = _replay.serve(objects, shape)
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kubeconfig"
        path.write_text(_replay.kubeconfig(port))
        try:
            yield str(path), state, f"http://127.0.0.1:{port}"
        finally:
            server.shutdown()
            server.server_close()


def fill_apiserver(client: Any, start: int, stop: int) -> None:
    """Create pods ``start``..``stop-1`` and write their status (the server adds managedFields)."""
    from pycontroller import PODS

    def one(i: int) -> None:
        pod = _pods.manifest(i)
        client.create(PODS, pod, _pods.NAMESPACE)
        client.patch(PODS, pod["metadata"]["name"], {"status": _pods.pod_status(i)},
                     _pods.NAMESPACE, subresource="status")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(start, stop)))


# ---- aggregation ---------------------------------------------------------------------------

def flatten(result: dict[str, Any]) -> dict[str, float]:
    """One run's numeric metrics as flat names (``watch.1000.p99_ms``, ``relist.relist_s``)."""
    flat: dict[str, float] = {}
    for key, value in result.items():
        if key == "watch":
            for phase in value:
                for k in ("p50_ms", "p99_ms"):
                    flat[f"watch.{phase['rate']}.{k}"] = phase[k]
                flat[f"watch.{phase['rate']}.delivered_ratio"] = (
                    phase["delivered"] / max(phase["sent"], 1))
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    flat[f"{key}.{k}"] = float(v)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[key] = float(value)
    return flat


def aggregate(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """metric -> {min, median, max, n} over the successful runs."""
    values: dict[str, list[float]] = {}
    for run in runs:
        if "error" in run:
            continue
        for key, value in flatten(run).items():
            values.setdefault(key, []).append(value)
    return {k: {"min": min(v), "median": statistics.median(v), "max": max(v), "n": len(v)}
            for k, v in values.items()}


# ---- the markdown report -------------------------------------------------------------------

MiB = 2**20
# (metric, column title, scale, lower is better)
SYNC_COLUMNS = [("sync_s", "sync s", 1.0, True), ("cpu_s", "CPU s", 1.0, True),
                ("peak_rss", "peak RSS MiB", 1 / MiB, True),
                ("steady_rss", "steady RSS MiB", 1 / MiB, True),
                ("bytes_per_object", "KB/pod", 1 / 1000, True)]
RELIST_COLUMNS = [("relist.relist_s", "relist s", 1.0, True),
                  ("relist.total_s", "410→done s", 1.0, True),
                  ("relist.peak_rss", "peak RSS MiB", 1 / MiB, True)]
OTHER_COLUMNS = [("throughput.events_per_s", "burst events/s", 1.0, False),
                 ("throughput.events_per_cpu_s", "events/CPU-s", 1.0, False),
                 ("gc_pause_max_ms", "longest GC pause ms", 1.0, True),
                 ("burst_gc_pause_max_ms", "longest GC pause in the burst ms", 1.0, True),
                 ("workqueue_ops_per_s", "work queue add/get/done per s", 1.0, False)]
RECONCILE_COLUMNS = [("reconcile_all_s", "start → all N reconciled s", 1.0, True),
                     ("cpu_s", "CPU s", 1.0, True)]


def _cell(stats: dict[str, dict[str, float]], ref: dict[str, dict[str, float]] | None,
          metric: str, scale: float) -> str:
    s = stats.get(metric)
    if s is None:
        return "-"
    text = f"{s['min'] * scale:.3g} / {s['median'] * scale:.3g}"
    r = (ref or {}).get(metric)
    if r and r["median"]:
        text += f" ({s['median'] / r['median']:.2f}x)"
    return text


def _table(group: dict[str, Any], columns: list[tuple[str, str, float, bool]],
           peers: list[str]) -> list[str]:
    ref = group["peers"].get(REFERENCE, {}).get("stats")
    head = "| peer | " + " | ".join(c[1] for c in columns) + " |"
    lines = [head, "|" + " --- |" * (len(columns) + 1)]
    for peer in peers:
        entry = group["peers"].get(peer)
        if entry is None:
            continue
        stats = entry["stats"]
        if not stats:
            lines.append(f"| {peer} | " + " | ".join("failed" for _ in columns) + " |")
            continue
        if not any(c[0] in stats for c in columns):
            continue
        cells = [_cell(stats, ref if peer != REFERENCE else None, c[0], c[2]) for c in columns]
        lines.append(f"| {peer} | " + " | ".join(cells) + " |")
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The human-readable report: one section per server, shape and size."""
    m = report["machine"]
    out = [
        "# Benchmarks", "",
        "Written by `bench/run.py` (do not edit by hand). Every peer runs in its own process "
        "on the same data; each repeat runs every peer once, in an order rotated per repeat. "
        "Cells show **min / median** over the repeats and, in parentheses, the ratio of the "
        f"median to client-go's shared informer with JSON (`{REFERENCE}`). RSS is the "
        "process's resident set (`VmRSS`; peak: `VmHWM`), KB/pod its growth from before the "
        "informer started to after sync and a full collection, divided by N.", "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, "
        f"{m['platform']}; pycontroller's C module "
        f"{'built' if m.get('c_module') else 'not built (pure Python)'} (`pycontroller-pure` "
        "runs without it); shared with other jobs, so absolute times are noisy and the "
        f"ratios are what to read. Run: {report['started']} UTC, {_repeats(report)}, "
        f"command `{report['command']}`.", "",
    ]
    if report.get("notes"):
        out += [f"- {n}" for n in report["notes"]] + [""]
    curve = [g for g in report["groups"] if _is_sync_group(g)]
    if curve:
        out += ["## Sync cost against N", "",
                "| server | shape | N | peer | sync s (median) | KB/pod | steady RSS MiB |",
                "| --- | --- | ---: | --- | ---: | ---: | ---: |"]
        for g in curve:
            for peer in ("client-go-json", *OURS):
                s = g["peers"].get(peer, {}).get("stats") or {}
                if "sync_s" in s:
                    out.append(
                        f"| {g['server']} | {g['shape']} | {g['objects']} | {peer} | "
                        f"{s['sync_s']['median']:.3g} | "
                        f"{s.get('bytes_per_object', {}).get('median', 0) / 1000:.3g} | "
                        f"{s['steady_rss']['median'] / MiB:.4g} |")
        out.append("")
    for g in report["groups"]:
        peers = [p for p in ALL_PEERS if p in g["peers"]]
        title = (f"## {g['server']}, {g['objects']} pods of the {g['shape']} shape "
                 f"({g['pod_bytes']} B of JSON per pod as served), {g['scenario']}"
                 + (", the handler reads spec and status"
                    if g["scenario"] == "informer" and g.get("handler") == "reads" else ""))
        out += [title, ""]
        if g["scenario"] == "reconcile":
            out += [*_table(g, RECONCILE_COLUMNS, peers), ""]
            continue
        out += ["Initial sync:", "", *_table(g, SYNC_COLUMNS, peers), ""]
        rates = report["rates"]
        watch_cols = [(f"watch.{r}.{p}", f"{p[:3]} ms @ {r}/s", 1.0, True)
                      for r in rates for p in ("p50_ms", "p99_ms")]
        watch = _table(g, watch_cols, peers)
        if len(watch) > 2:
            out += ["Watch delivery latency into a handler (p50 and p99):", "", *watch, ""]
        other = _table(g, OTHER_COLUMNS, peers)
        if len(other) > 2:
            out += ["Throughput, GC under watch traffic, work queue:", "", *other, ""]
        relist = _table(g, RELIST_COLUMNS, peers)
        if len(relist) > 2:
            out += ["Relist after 410 (relist s: from the relist request to the last update "
                    "delivered; 410→done: from the expiry, including each client's backoff):",
                    "", *relist, ""]
    errors = [(g, p, e["errors"]) for g in report["groups"] for p, e in g["peers"].items()
              if e["errors"]]
    if errors:
        out += ["## Failed runs", ""]
        out += [f"- {g['server']} {g['objects']} {g['scenario']} {p}: {errs[0]}"
                for g, p, errs in errors]
        out.append("")
    return "\n".join(out)


# ---- the main loop -------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    probe = "from pycontroller.client import _lazy; print(_lazy.SPEEDUPS is not None)"
    built = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=False).stdout.strip() == "True"
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform(terse=True), "c_module": built}


def run_group(report: dict[str, Any], *, server: str, shape: str, objects: int, scenario: str,
              peers: list[str], kubeconfig: str, control: str, opts: argparse.Namespace,
              binary: Path | None, reset: Callable[[], None]) -> None:
    """Run every peer ``opts.repeats`` times on one server state; append the group."""
    if not peers:
        return
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in peers}
    for repeat in range(opts.repeats):
        for peer in rotated(peers, repeat):
            reset()
            cmd = peer_command(peer, kubeconfig=kubeconfig, namespace=_pods.NAMESPACE,
                               expect=objects, control=control, scenario=scenario, opts=opts,
                               binary=binary)
            result = run_peer(cmd, opts.timeout)
            runs[peer].append(result)
            summary = result.get("error") or (
                f"sync {result.get('sync_s', result.get('reconcile_all_s', 0)):.2f}s")
            log(f"{server} {shape} N={objects} {scenario} #{repeat + 1} {peer}: {summary}")
    pod_bytes = len(_replay._Template(0, shape).encode(1000)) if server == "replay" else (
        report.get("apiserver_pod_bytes", 0))
    report.setdefault("groups", []).append({
        "server": server, "shape": shape, "objects": objects, "scenario": scenario,
        "handler": opts.handler, "pod_bytes": pod_bytes,
        "peers": {p: {"stats": aggregate(r), "runs": r,
                      "errors": [x["error"] for x in r if "error" in x]}
                  for p, r in runs.items()},
    })
    save(report, opts)


def save(report: dict[str, Any], opts: argparse.Namespace) -> None:
    """Write what is measured so far (a long run that is cut short keeps its groups)."""
    if opts.json:
        opts.json.write_text(json.dumps(report, indent=1) + "\n")
    if opts.markdown:
        opts.markdown.write_text(markdown(report) + "\n")


def choose_peers(opts: argparse.Namespace, binary: Path | None, *, server: str, objects: int,
                 scenario: str) -> list[str]:
    """The peers that take part in one group."""
    wanted = [p for p in opts.peers.split(",") if p]
    peers = []
    for p in wanted:
        if p in GO_PEERS and binary is None:
            continue
        if p == "client-go-proto" and server == "replay":
            continue
        if scenario == "reconcile" and objects > opts.reconcile_max:
            continue
        if p.startswith("official") and (scenario != "informer" or (
                server == "replay" and objects > opts.official_max)):
            continue
        peers.append(p)
    return peers


def run_apiserver(report: dict[str, Any], opts: argparse.Namespace,
                  binary: Path | None) -> None:
    """Fill the local control plane step by step and run each size's groups."""
    from pycontroller import NAMESPACES, PODS, connect
    from pycontroller.envtest import ControlPlane

    sizes = sorted(int(s) for s in opts.apiserver_sizes.split(",") if s)
    with ControlPlane(watch_cache=True) as plane:
        client = connect(plane.kubeconfig)
        client.create(NAMESPACES, {"metadata": {"name": _pods.NAMESPACE}})
        have = 0
        for size in sizes:
            started = time.perf_counter()
            fill_apiserver(client, have, size)
            have = size
            log(f"apiserver: {size} pods in place ({time.perf_counter() - started:.0f}s)")
            first = client.list(PODS, _pods.NAMESPACE, limit=1)["items"][0]
            report["apiserver_pod_bytes"] = len(json.dumps(first, separators=(",", ":")))
            for scenario in ("informer", "reconcile"):
                peers = choose_peers(opts, binary, server="apiserver", objects=size,
                                     scenario=scenario)
                run_group(report, server="apiserver", shape="8k", objects=size,
                          scenario=scenario, peers=peers, kubeconfig=str(plane.kubeconfig),
                          control="", opts=opts, binary=binary, reset=lambda: None)


def replay_plan(opts: argparse.Namespace) -> list[tuple[str, int]]:
    """(shape, size) pairs: ``--replay SHAPE=SIZES`` if given, else shapes x sizes."""
    if opts.replay:
        plan = []
        for spec in opts.replay:
            shape, _, sizes = spec.partition("=")
            if shape not in ("8k", "4k"):
                raise SystemExit(f"--replay {spec}: the shape must be 8k or 4k")
            plan += [(shape, int(n)) for n in sizes.split(",") if n]
        return plan
    return [(shape, size) for shape in opts.shapes.split(",")
            for size in sorted(int(n) for n in opts.replay_sizes.split(",") if n)]


def run_replay(report: dict[str, Any], opts: argparse.Namespace, binary: Path | None) -> None:
    """One replay server per shape and size."""
    for shape, size in replay_plan(opts):
        started = time.perf_counter()
        with replay_server(size, shape) as (kubeconfig, state, control):
            log(f"replay: {size} {shape} pods encoded ({time.perf_counter() - started:.0f}s)")
            for scenario in ("informer", "reconcile"):
                peers = choose_peers(opts, binary, server="replay", objects=size,
                                     scenario=scenario)
                run_group(report, server="replay", shape=shape, objects=size,
                          scenario=scenario, peers=peers, kubeconfig=kubeconfig,
                          control=control if scenario == "informer" else "", opts=opts,
                          binary=binary, reset=state.reset)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--apiserver-sizes", default="1000,10000",
                   help="pod counts on the local apiserver ('' to skip it)")
    p.add_argument("--replay-sizes", default="10000", help="pod counts on the replay server")
    p.add_argument("--shapes", default="8k,4k", help="pod shapes on the replay server")
    p.add_argument("--replay", action="append", metavar="SHAPE=SIZES",
                   help="replay runs as e.g. 8k=1000,10000 (repeatable; overrides the above)")
    p.add_argument("--reconcile-max", type=int, default=10000,
                   help="run the reconcile scenario only up to this many pods")
    p.add_argument("--relist-max", type=int, default=10000,
                   help="measure the relist after 410 only up to this many pods")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--peers", default=",".join(DEFAULT_PEERS),
                   help=f"of {','.join(ALL_PEERS)}")
    p.add_argument("--official-max", type=int, default=10000,
                   help="on the replay server, skip the official client above this many pods")
    p.add_argument("--rates", default="100,1000,5000")
    p.add_argument("--phase-seconds", type=float, default=2.0)
    p.add_argument("--burst", type=int, default=20000)
    p.add_argument("--handler", choices=("noop", "reads"), default="noop",
                   help="reads: pycontroller's handler reads each object's spec and status "
                        "(the other peers' objects are decoded already)")
    p.add_argument("--official-burst", type=int, default=2000)
    p.add_argument("--queue-items", type=int, default=200000)
    p.add_argument("--timeout", type=float, default=900.0, help="per peer run, seconds")
    p.add_argument("--no-build", action="store_true",
                   help="use the client-go peer only if its binary is already cached")
    p.add_argument("--quick", action="store_true",
                   help="CI smoke: tiny sizes, 1 repeat, replay server only, no build")
    p.add_argument("--json", type=Path, help="write the full report (with every run) here")
    p.add_argument("--markdown", type=Path, help="write the markdown report here")
    p.add_argument("--from-json", type=Path, nargs="+", metavar="REPORT",
                   help="run nothing: merge these reports into --markdown (and --json)")
    p.add_argument("--note", action="append", default=[],
                   help="with --from-json: add a note under the header (repeatable)")
    p.add_argument("--summary", action="store_true",
                   help="with --from-json: print only the short README table")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.apiserver_sizes, opts.replay_sizes, opts.shapes = "", "200", "4k"
        opts.repeats, opts.no_build, opts.rates = 1, True, "100,1000"
        opts.phase_seconds, opts.burst, opts.official_burst = 0.3, 500, 200
        opts.queue_items, opts.timeout = 2000, 120.0
    return opts


def _is_sync_group(group: dict[str, Any]) -> bool:
    """An informer group with the no-op handler (the sync curve and the README table)."""
    return bool(group["scenario"] == "informer" and group.get("handler", "noop") == "noop")


def summary(report: dict[str, Any]) -> str:
    """The short table for the README: initial sync of each informer group, medians."""
    lines = ["| server, N pods | peer | sync s | CPU s | steady RSS MiB | KB/pod |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for g in report["groups"]:
        if not _is_sync_group(g):
            continue
        ref = g["peers"].get(REFERENCE, {}).get("stats") or {}
        for peer in ALL_PEERS:
            s = (g["peers"].get(peer) or {}).get("stats") or {}
            if "sync_s" not in s:
                continue

            def cell(metric: str, scale: float, s: dict[str, Any] = s,
                     ref: dict[str, Any] = ref) -> str:
                value = s[metric]["median"]
                text = f"{value * scale:.3g}"
                if ref.get(metric) and ref[metric]["median"] and s is not ref:
                    text += f" ({value / ref[metric]['median']:.2f}x)"
                return text

            lines.append(
                f"| {g['server']} {g['shape']}, {g['objects']:,} | {peer} | {cell('sync_s', 1)} | "
                f"{cell('cpu_s', 1)} | {cell('steady_rss', 1 / MiB)} | "
                f"{cell('bytes_per_object', 1 / 1000)} |")
    return "\n".join(lines)


def _repeats(report: dict[str, Any]) -> str:
    """How many repeats, per run where merged runs had different counts."""
    per_run = report.get("repeats_per_run", [report["repeats"]])
    if len(set(per_run)) == 1:
        return f"{per_run[0]} repeats"
    return (f"{min(per_run)} to {max(per_run)} repeats ({', '.join(map(str, per_run))}, in the "
            "order of the commands)")


def render(opts: argparse.Namespace) -> int:
    """Merge saved reports (same machine and settings) into one markdown file."""
    reports = [json.loads(path.read_text()) for path in opts.from_json]
    merged = dict(reports[0])
    merged["groups"] = [g for r in reports for g in r["groups"]]
    merged["notes"] = sorted({n for r in reports for n in r.get("notes", [])}) + opts.note
    merged["command"] = "; ".join(r["command"] for r in reports)
    merged["started"] = ", ".join(r["started"] for r in reports)
    # (Reports merged before may be merged again.)
    merged["repeats_per_run"] = [n for r in reports for n in r.get("repeats_per_run",
                                                                   [r["repeats"]])]
    merged["repeats"] = min(merged["repeats_per_run"])  # (what every group had at least)
    if opts.summary:
        print(summary(merged))
        return 0
    if opts.json:
        opts.json.write_text(json.dumps(merged, indent=1) + "\n")
    text = markdown(merged)
    if opts.markdown:
        opts.markdown.write_text(text + "\n")
    else:
        print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; write JSON and markdown."""
    opts = parse_args(argv)
    if opts.from_json:
        return render(opts)
    binary = clientgo_binary(build=not opts.no_build) if any(
        p in GO_PEERS for p in opts.peers.split(",")) else None
    if binary is None:
        log("client-go peer unavailable (no cached binary and no build): skipped")
    report: dict[str, Any] = {
        "machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "repeats": opts.repeats, "rates": [int(r) for r in opts.rates.split(",")],
        "command": " ".join(["python bench/run.py", *(argv if argv is not None
                                                        else sys.argv[1:])]),
        "notes": [] if binary else ["client-go peer not run (binary not built)"],
        "groups": [],
    }
    if opts.apiserver_sizes:
        run_apiserver(report, opts, binary)
    if opts.replay_sizes or opts.replay:
        run_replay(report, opts, binary)
    save(report, opts)
    if not opts.markdown:
        print(markdown(report))
    return 1 if any(e["errors"] for g in report["groups"] for e in g["peers"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
