"""What does a sync of N pods from the replay server cost before any decoding? Floors for
the 150,000-pod target, measured side by side with pycontroller's own sync in one run.

Each client reads the same WatchList stream (``bench/_replay.py``, 8 KB pods) to its
``initial-events-end`` bookmark, as its own process:

* ``read``: reads the bytes and drops them (the cost of the transfer alone);
* ``keep``: also splits the lines and keeps each one (what merely holding the data costs:
  the cache of any client is at least this large);
* ``scan``: also validates each line as JSON and keeps its object's bytes (msgspec, one
  pass, no values built: the least any JSON client must do);
* ``pycontroller``: an informer's sync, as ``run.py`` measures it.

Prints wall and CPU seconds (user and system) of each client, its page faults, and the
replay server's CPU (in this process).

Usage: ``python bench/replay_floor.py [N] [repeats]`` (default 150000 pods, 3 repeats).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _pods
import _replay
import msgspec

MODES = ("read", "keep", "scan", "pycontroller")
_WATCH_LIST = (f"/api/v1/namespaces/{_pods.NAMESPACE}/pods?watch=1&sendInitialEvents=true"
               "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")


class _Event(msgspec.Struct):
    type: str
    object: msgspec.Raw


def _stream(port: int) -> Any:
    import http.client  # (client process only)
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", _WATCH_LIST, headers={"Accept": "application/json"})
    return conn.getresponse()


def _read(port: int, keep: bool, scan: bool) -> int:
    """Read to the initial-events-end bookmark; the lines (or objects) kept, the bookmark's
    among them."""
    decode = msgspec.json.Decoder(_Event).decode
    kept: list[Any] = []
    resp, tail = _stream(port), b""
    while chunk := resp.read1(1 << 20):
        if keep or scan:
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            if scan:
                kept.extend(bytes(decode(line).object) for line in lines)
            else:
                kept.extend(lines)
            done = any(_replay._END in line for line in lines[-2:])
        else:
            done = _replay._END in tail + chunk
            tail = chunk[-64:]
        if done:
            break
    resp.close()
    return len(kept)


def _informer(kubeconfig: str) -> Any:
    """A pod informer with a no-op handler, not started; a function that syncs it."""
    import threading

    import structlog

    from pycontroller import PODS, SharedInformerFactory, connect, wait_for_cache_sync

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    factory = SharedInformerFactory(connect(kubeconfig), namespace=_pods.NAMESPACE)
    informer = factory.informer_for(PODS)
    registration = informer.add_event_handler(on_add=lambda obj, initial: None)

    def sync() -> int:
        stop = threading.Event()
        factory.start(stop)
        wait_for_cache_sync(stop, registration.has_synced, timeout=900, interval=0.001)
        return len(informer.indexer)

    return sync


def client(mode: str, port: int, kubeconfig: str) -> dict[str, Any]:
    """Run one mode in this (fresh) process; its measurements."""
    run = _informer(kubeconfig) if mode == "pycontroller" else (
        lambda: _read(port, keep=mode == "keep", scan=mode == "scan"))
    usage0, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    count = run()
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"mode": mode, "count": count, "wall": wall,
            "user": usage.ru_utime - usage0.ru_utime, "sys": usage.ru_stime - usage0.ru_stime,
            "faults": usage.ru_minflt - usage0.ru_minflt}


def main() -> int:
    """Serve N pods and run every mode ``repeats`` times, alternating."""
    if sys.argv[1:2] == ["--client"]:
        print(json.dumps(client(sys.argv[2], int(sys.argv[3]), sys.argv[4])), flush=True)
        os._exit(0)  # (the informer's threads need no orderly stop here)
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 150_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    server, _state = _replay.serve(count, "8k")
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        kubeconfig.write_text(_replay.kubeconfig(port))
        print(f"{count} pods of 8 KB; python {sys.version.split()[0]}; {os.cpu_count()} cores",
              flush=True)
        for _ in range(repeats):
            for mode in MODES:
                server_cpu = time.process_time()
                out = subprocess.run(
                    [sys.executable, __file__, "--client", mode, str(port), str(kubeconfig)],
                    capture_output=True, text=True, check=False)
                if out.returncode:
                    sys.exit(f"{mode} failed:\n{out.stderr}")
                row = json.loads(out.stdout.splitlines()[-1])
                print(f"{mode:13s} {row['count']:7d} kept  wall {row['wall']:5.2f} s  "
                      f"CPU {row['user'] + row['sys']:5.2f} s (user {row['user']:.2f}, "
                      f"system {row['sys']:.2f})  {row['faults']:7d} page faults  "
                      f"server CPU "
                      f"{time.process_time() - server_cpu:.2f} s", flush=True)
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
