"""How fast could any client sync from the local apiserver? Fetch N bench pods and decode
nothing: a LIST (JSON, one request and pages of 500; protobuf), and a WatchList read to
its ``initial-events-end`` bookmark. Prints bytes, wall time and the apiserver's CPU.

Usage: ``python bench/raw_fetch.py [N] [repeats]`` (fills a fresh local control plane with N
pods first, as ``run.py`` does: about 4 minutes for 10,000 on two cores).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _pods
from run import fill_apiserver

Fetch = Callable[[], int]


def apiserver_cpu() -> float:
    """CPU seconds of every kube-apiserver process (the local control plane's)."""
    pids = subprocess.run(["pgrep", "-f", "kube-apiserver"], capture_output=True, text=True,
                          check=False).stdout.split()
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def fetchers(kubeconfig: Path) -> dict[str, Fetch]:
    """One function per request kind; each returns the bytes it received."""
    config = json.loads(kubeconfig.read_text())  # envtest writes its kubeconfig as JSON
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    ctx = ssl.create_default_context(cafile=cluster["certificate-authority"])
    ctx.load_cert_chain(user["client-certificate"], user["client-key"])
    url = urllib.parse.urlparse(cluster["server"])
    assert url.hostname is not None and url.port is not None
    host, port = url.hostname, url.port
    path = f"/api/v1/namespaces/{_pods.NAMESPACE}/pods"
    # Not curl's user agent: kube-apiserver pretty-prints JSON for curl.
    json_headers = {"Accept": "application/json", "User-Agent": "pycontroller-raw-fetch"}

    def get(query: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        conn = http.client.HTTPSConnection(host, port, context=ctx)
        conn.request("GET", path + query, headers=headers)
        return conn.getresponse()

    def list_once(accept: str) -> Fetch:
        return lambda: len(get("", {**json_headers, "Accept": accept}).read())

    def list_pages() -> int:
        size, cont = 0, ""
        while True:
            query = "?limit=500" + (f"&continue={urllib.parse.quote(cont)}" if cont else "")
            body = get(query, json_headers).read()
            size += len(body)
            cont = json.loads(body[:body.index(b',"items":')] + b"}")["metadata"].get(
                "continue", "")
            if not cont:
                return size

    def watch_list() -> int:
        resp = get("?watch=true&allowWatchBookmarks=true&sendInitialEvents=true"
                   "&resourceVersionMatch=NotOlderThan", json_headers)
        size, tail = 0, b""
        while chunk := resp.read1(1 << 20):
            size += len(chunk)
            if b"initial-events-end" in tail + chunk:
                break
            tail = chunk[-64:]
        resp.close()
        return size

    return {
        "LIST, JSON, one request": list_once("application/json"),
        "LIST, JSON, pages of 500": list_pages,
        "LIST, protobuf, one request": list_once("application/vnd.kubernetes.protobuf"),
        "WatchList, JSON, to initial-events-end": watch_list,
    }


def main() -> int:
    """Fill a control plane and time each request kind ``repeats`` times."""
    import structlog

    from pycontroller import NAMESPACES, connect
    from pycontroller.envtest import ControlPlane

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with ControlPlane(watch_cache=True) as plane:
        client = connect(plane.kubeconfig)
        client.create(NAMESPACES, {"metadata": {"name": _pods.NAMESPACE}})
        started = time.perf_counter()
        fill_apiserver(client, 0, count)
        print(f"{count} pods in place ({time.perf_counter() - started:.0f}s)", flush=True)
        kinds = fetchers(plane.kubeconfig)
        for _ in range(repeats):
            for name, fetch in kinds.items():
                cpu0, t0 = apiserver_cpu(), time.perf_counter()
                size = fetch()
                wall, cpu = time.perf_counter() - t0, apiserver_cpu() - cpu0
                print(f"{name:40s} {size / 1e6:7.1f} MB  wall {wall:.2f} s  "
                      f"apiserver CPU {cpu:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
