"""Initial sync of N pods: pycontroller's informer beside client-go and the official client.

One run starts a local control plane (watch cache on, as in a real cluster), creates N
realistic pods, then measures each implementation in its own process:

* ``pycontroller``: SharedIndexInformer sync time, RSS growth, and the time of a full
  ``gc.collect()`` afterwards (with the cache frozen out of the GC, as the informer does,
  and without);
* ``official``: the official client's ``list_namespaced_pod`` into its model classes (what
  its watch-based informers build on);
* ``client-go``: a shared informer (bench/clientgo, built with the Go toolchain).

Results are printed as a table with ratios to client-go and written as JSON (``--json``).
Usage: ``python bench/bench_informer.py --objects 5000``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
_KEEP: list[Any] = []  # what each worker built stays alive until the memory is read


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pod(i: int) -> dict[str, Any]:
    env = [{"name": f"SETTING_{k}", "value": f"value-{i}-{k}"} for k in range(8)]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"bench-{i:05d}",
                     "labels": {"app": f"app-{i % 50}", "tier": "backend", "release": "r1"},
                     "annotations": {"example.com/owner": "team-a",
                                     "example.com/checksum": f"{i:032x}"}},
        "spec": {
            "containers": [{
                "name": f"c{c}", "image": f"registry.example.com/app:{i % 7}.{c}",
                "env": env, "ports": [{"containerPort": 8080 + c, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "500m", "memory": "256Mi"}},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/config"}],
            } for c in range(2)],
            "volumes": [{"name": "config", "configMap": {"name": "app-config"}}],
        },
    }


def worker_pycontroller(kubeconfig: str, namespace: str) -> dict[str, Any]:
    from pycontroller import PODS, SharedInformerFactory, connect, wait_for_cache_sync
    from pycontroller.cache import freeze_cache

    client = connect(kubeconfig)
    gc.collect()
    before = rss_bytes()
    stop = threading.Event()
    started = time.perf_counter()
    factory = SharedInformerFactory(client, namespace=namespace)
    informer = factory.informer_for(PODS)
    factory.start(stop)
    wait_for_cache_sync(stop, informer.has_synced, timeout=600)
    elapsed = time.perf_counter() - started
    objects = len(informer.lister.list())
    grown = rss_bytes() - before
    t0 = time.perf_counter()
    gc.collect()
    unfrozen_gc = time.perf_counter() - t0
    freeze_cache()  # what the Manager does once every cache has synced
    t0 = time.perf_counter()
    gc.collect()
    frozen_gc = time.perf_counter() - t0
    stop.set()
    factory.shutdown(10)
    _KEEP.append(informer)
    return {"impl": "pycontroller", "objects": objects, "sync_seconds": elapsed,
            "rss_bytes": grown, "full_gc_seconds": frozen_gc,
            "full_gc_seconds_unfrozen": unfrozen_gc}


def worker_official(kubeconfig: str, namespace: str) -> dict[str, Any]:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    api = k8s.CoreV1Api(k8s_config.new_client_from_config(kubeconfig))  # type: ignore[no-untyped-call, unused-ignore]
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    items = api.list_namespaced_pod(namespace).items
    elapsed = time.perf_counter() - started
    grown = rss_bytes() - before
    _KEEP.append(items)
    t0 = time.perf_counter()
    gc.collect()
    return {"impl": "official-client", "objects": len(items), "sync_seconds": elapsed,
            "rss_bytes": grown, "full_gc_seconds": time.perf_counter() - t0}


def traced(fn: Any, kubeconfig: str, namespace: str) -> dict[str, Any]:
    """Run a worker under tracemalloc: live Python heap after sync (slower, so separate)."""
    import tracemalloc

    tracemalloc.start()
    result = fn(kubeconfig, namespace)
    gc.collect()
    return {"impl": result["impl"], "live_bytes": tracemalloc.get_traced_memory()[0]}


def run_worker(name: str, kubeconfig: str, namespace: str) -> dict[str, Any]:
    if name == "client-go":
        binary = build_clientgo()
        if binary is None:
            return {"impl": "client-go", "error": "go toolchain not available"}
        cmd = [str(binary), "--kubeconfig", kubeconfig, "--namespace", namespace]
    else:
        cmd = [sys.executable, __file__, "--worker", name, "--kubeconfig", kubeconfig,
               "--namespace", namespace]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if "heap_bytes" in result:
        result["rss_bytes"] = result["live_bytes"] = result["heap_bytes"]  # Go: live heap
    else:
        out = subprocess.run([*cmd, "--trace"], capture_output=True, text=True, check=True,
                             timeout=900)
        result["live_bytes"] = json.loads(out.stdout.strip().splitlines()[-1])["live_bytes"]
    return result


def build_clientgo() -> Path | None:
    go = shutil.which("go")
    if go is None:
        return None
    out = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pycontroller"
    out.mkdir(parents=True, exist_ok=True)
    binary = out / "clientgo-informer-bench"
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=HERE / "clientgo", check=True,
                   env={**os.environ, "CGO_ENABLED": "0"})
    return binary


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", choices=("pycontroller", "official"))
    parser.add_argument("--kubeconfig")
    parser.add_argument("--namespace")
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    if args.worker:
        fn = worker_pycontroller if args.worker == "pycontroller" else worker_official
        result = traced(fn, args.kubeconfig, args.namespace) if args.trace else fn(
            args.kubeconfig, args.namespace)
        print(json.dumps(result))
        return 0

    from pycontroller import NAMESPACES, PODS, connect
    from pycontroller.envtest import ControlPlane

    with ControlPlane(watch_cache=True) as plane:
        client = connect(plane.kubeconfig)
        client.create(NAMESPACES, {"metadata": {"name": "bench"}})
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: client.create(PODS, pod(i), "bench"), range(args.objects)))
        print(f"created {args.objects} pods in {time.perf_counter() - started:.1f}s",
              file=sys.stderr)
        results = [run_worker(n, str(plane.kubeconfig), "bench")
                   for n in ("client-go", "pycontroller", "official")]
    ref = next((r for r in results if r["impl"] == "client-go" and "error" not in r), None)
    print(f"\n{'impl':<16}{'objects':>8}{'sync s':>9}{'x client-go':>12}"
          f"{'live MiB':>10}{'x client-go':>12}{'RSS MiB':>9}{'full GC s':>11}")
    for r in results:
        if "error" in r:
            print(f"{r['impl']:<16} {r['error']}")
            continue
        ratio_t = r["sync_seconds"] / ref["sync_seconds"] if ref else float("nan")
        ratio_m = r["live_bytes"] / ref["live_bytes"] if ref else float("nan")
        gc_s = r.get("full_gc_seconds")
        print(f"{r['impl']:<16}{r['objects']:>8}{r['sync_seconds']:>9.2f}{ratio_t:>12.2f}"
              f"{r['live_bytes'] / 2**20:>10.1f}{ratio_m:>12.2f}{r['rss_bytes'] / 2**20:>9.1f}"
              f"{'' if gc_s is None else f'{gc_s:.3f}':>11}")
    py = next(r for r in results if r["impl"] == "pycontroller")
    print(f"\npycontroller full GC: {py['full_gc_seconds']:.3f}s with the cache frozen, "
          f"{py['full_gc_seconds_unfrozen']:.3f}s without")
    print("(live: Go heap after GC / Python tracemalloc after sync; RSS: growth during sync)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
