"""A loopback-only replay apiserver for client-side benchmarks (plain HTTP, no auth).

It serves one namespace of pre-encoded pods the way kube-apiserver encodes them, at full
speed, so the client's cost can be measured at sizes a local apiserver cannot reach quickly:

* ``GET /api/v1/namespaces/<ns>/pods`` LIST pages (``limit``/``continue``) or one whole list;
* the same with ``watch=1``: a WatchList stream (``sendInitialEvents=true``: ADDED per pod,
  then the ``k8s.io/initial-events-end`` bookmark) or a plain WATCH, both then carrying
  the live traffic below; a WATCH from a resourceVersion older than the last expiry gets
  the ERROR event (410 Expired) the apiserver sends;
* ``POST /bench/traffic?rate=R&seconds=S`` (or ``count=M``; ``rate=0``: unpaced): MODIFIED
  events, round robin over the pods, each stamped with its send time in the annotation
  ``bench.pycontroller.dev/sent-ns``, to every open watch; answers ``{"count": n}``;
* ``POST /bench/expire``: every pod gets a new resourceVersion, open watches end with a 410
  ERROR event; ``GET /bench/state`` tells when the following relist request arrived;
* ``POST /bench/reset``: back to the initial state.

Usage: ``python bench/_replay.py --objects 1000 --shape 8k`` prints its port and serves.
Only for benchmarks: it binds 127.0.0.1 and trusts its (local) clients.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import socketserver
import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import _pods
import orjson

_RV_MARK, _TS_MARK = "@@RV@@", "@@TS@@"
_END = b"k8s.io/initial-events-end"
_EXPIRED = orjson.dumps({"type": "ERROR", "object": {
    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
    "message": "too old resource version", "reason": "Expired", "code": 410}}) + b"\n"


class _Template:
    """One pod's encoded bytes with its resourceVersion and send stamp left open."""

    __slots__ = ("parts", "rv_first")

    def __init__(self, i: int, shape: str) -> None:
        pod = _pods.served(i, shape)
        pod["metadata"]["resourceVersion"] = _RV_MARK
        pod["metadata"]["annotations"][_pods.SENT_ANNOTATION] = _TS_MARK
        del pod["kind"], pod["apiVersion"]  # list items carry neither
        raw = orjson.dumps(pod)
        rv_mark, ts_mark = _RV_MARK.encode(), _TS_MARK.encode()
        self.rv_first = raw.index(rv_mark) < raw.index(ts_mark)
        first, second = (rv_mark, ts_mark) if self.rv_first else (ts_mark, rv_mark)
        a, rest = raw.split(first)
        b, c = rest.split(second)
        self.parts = (a, b, c)

    def encode(self, rv: int, ts: int = 0) -> bytes:
        a, b, c = self.parts
        x, y = (rv, ts) if self.rv_first else (ts, rv)
        return b"".join((a, str(x).encode(), b, str(y).encode(), c))


class _Watcher:
    __slots__ = ("closed", "lock", "wfile")

    def __init__(self, wfile: Any) -> None:
        self.wfile = wfile
        self.lock = threading.Lock()
        self.closed = threading.Event()

    def send(self, data: bytes) -> bool:
        with self.lock:
            if self.closed.is_set():
                return False
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            except OSError:
                self.closed.set()
                return False
        return True

    def end(self, last: bytes = b"") -> None:
        with self.lock:
            if self.closed.is_set():
                return
            try:
                if last:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(last), last))
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                pass
            self.closed.set()


class ReplayState:
    """The pods, their resourceVersions and the open watches. Thread-safe (one lock)."""

    def __init__(self, objects: int, shape: str) -> None:
        self.templates = [_Template(i, shape) for i in range(objects)]
        self.lock = threading.Lock()
        self.watchers: list[_Watcher] = []
        self.reset()

    def reset(self) -> None:
        with self.lock:
            for w in self.watchers:
                w.end()
            self.watchers = []
            self.base = 1000  # pod i has resourceVersion base + i, sent stamp 0
            self.rvs = [self.base + i for i in range(len(self.templates))]
            self.stamps = [0] * len(self.templates)
            self.rv = self.base + len(self.templates)
            self.expired_below = 0
            self.relist_started_ns = 0
            self.cursor = 0

    def pod(self, i: int, *, watch: bool = False) -> bytes:
        data = self.templates[i].encode(self.rvs[i], self.stamps[i])
        return b'{"kind":"Pod","apiVersion":"v1",' + data[1:] if watch else data

    def mark_relist(self) -> None:
        with self.lock:
            if self.expired_below and not self.relist_started_ns:
                self.relist_started_ns = time.time_ns()

    def expire(self) -> None:
        with self.lock:
            self.expired_below = self.rv + 1
            for i in range(len(self.rvs)):
                self.rv += 1
                self.rvs[i] = self.rv
            self.relist_started_ns = 0
            watchers, self.watchers = self.watchers, []
        for w in watchers:
            w.end(_EXPIRED)

    def next_events(self, n: int) -> bytes:
        """``n`` MODIFIED lines, round robin over the pods, stamped now."""
        now = time.time_ns()
        lines = []
        with self.lock:
            count = len(self.templates)
            for _ in range(n):
                i = self.cursor
                self.cursor = (i + 1) % count
                self.rv += 1
                self.rvs[i], self.stamps[i] = self.rv, now
                lines.append(b'{"type":"MODIFIED","object":' + self.pod(i, watch=True) + b"}\n")
        return b"".join(lines)

    def broadcast(self, data: bytes) -> None:
        with self.lock:
            watchers = list(self.watchers)
        for w in watchers:
            if not w.send(data):
                with self.lock:
                    if w in self.watchers:
                        self.watchers.remove(w)

    def traffic(self, rate: float, count: int) -> None:
        """Send ``count`` events at ``rate`` per second (0: as fast as possible)."""
        sent, start = 0, time.monotonic()
        while sent < count:
            if rate > 0:
                due = min(count, int((time.monotonic() - start) * rate) + 1)
                if due <= sent:
                    wait = (sent + 1 - (time.monotonic() - start) * rate) / rate
                    time.sleep(min(0.002, max(0.0, wait)))
                    continue
                batch = due - sent
            else:
                batch = min(100, count - sent)
            self.broadcast(self.next_events(batch))
            sent += batch


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: ReplayState  # set on the subclass

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _json(self, body: bytes, code: int = 200) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        state = self.state
        if url.path == "/bench/traffic":
            rate = float(q.get("rate", "0"))
            count = int(q["count"]) if "count" in q else int(rate * float(q.get("seconds", "1")))
            threading.Thread(target=state.traffic, args=(rate, count), daemon=True).start()
            self._json(orjson.dumps({"count": count}))
        elif url.path == "/bench/expire":
            state.expire()
            self._json(b"{}")
        elif url.path == "/bench/reset":
            state.reset()
            self._json(b"{}")
        else:
            self._json(b'{"kind":"Status","code":404}', 404)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        state = self.state
        if url.path == "/bench/state":
            self._json(orjson.dumps({"relist_started_ns": state.relist_started_ns}))
            return
        if url.path == "/version":
            self._json(b'{"major":"1","minor":"37","gitVersion":"v1.37.2"}')
            return
        parts = url.path.strip("/").split("/")
        if not (parts[-1] == "pods" and parts[:2] == ["api", "v1"]):
            self._json(b'{"kind":"Status","code":404}', 404)
            return
        if q.get("watch") in ("1", "true"):
            self._watch(q)
        else:
            self._list(q)

    def _list(self, q: dict[str, str]) -> None:
        state = self.state
        state.mark_relist()
        n = len(state.templates)
        token = q.get("continue", "")
        start, rv = (int(token.split(":")[0]), token.split(":")[1]) if token else (0, "")
        with state.lock:
            rv = rv or str(state.rv)
        limit = int(q.get("limit") or 0) or n
        end = min(n, start + limit)
        meta: dict[str, Any] = {"resourceVersion": rv}
        if end < n:
            meta["continue"] = f"{end}:{rv}"
            meta["remainingItemCount"] = n - end
        head = b'{"kind":"PodList","apiVersion":"v1","metadata":' + orjson.dumps(meta)
        body = b"".join((head, b',"items":[', b",".join(state.pod(i) for i in range(start, end)),
                         b"]}"))
        self._json(body)

    def _watch(self, q: dict[str, str]) -> None:
        state = self.state
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        watcher = _Watcher(self.wfile)
        initial = q.get("sendInitialEvents") == "true"
        rv = int(q.get("resourceVersion") or 0)
        if initial:
            state.mark_relist()
        elif rv and rv < state.expired_below:
            watcher.end(_EXPIRED)
            return
        with state.lock:
            state.watchers.append(watcher)  # live events queue behind the initial ones
            if initial:
                watcher.lock.acquire()  # hold live events until the initial ones are out
                current = state.rv
        if initial:
            try:
                n = len(state.templates)
                for lo in range(0, n, 200):
                    data = b"".join(b'{"type":"ADDED","object":' + state.pod(i, watch=True)
                                    + b"}\n" for i in range(lo, min(n, lo + 200)))
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                bookmark = orjson.dumps({"type": "BOOKMARK", "object": {
                    "kind": "Pod", "apiVersion": "v1", "metadata": {
                        "resourceVersion": str(current),
                        "annotations": {_END.decode(): "true"}}}}) + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(bookmark), bookmark))
                self.wfile.flush()
            except OSError:
                watcher.closed.set()
            finally:
                watcher.lock.release()
        timeout = float(q.get("timeoutSeconds") or 3600)
        watcher.closed.wait(timeout)
        watcher.end()
        self.close_connection = True


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(objects: int, shape: str) -> tuple[_Server, ReplayState]:
    """Build the data and start serving on a free loopback port in a daemon thread."""
    state = ReplayState(objects, shape)
    handler = type("Handler", (_Handler,), {"state": state})
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True,
                     name="replay-server").start()
    return server, state


def kubeconfig(port: int) -> str:
    """A kubeconfig (YAML text) for the replay server."""
    return (
        "apiVersion: v1\nkind: Config\nclusters:\n- name: replay\n  cluster:\n"
        f"    server: http://127.0.0.1:{port}\ncontexts:\n- name: replay\n  context:\n"
        "    cluster: replay\n    user: replay\ncurrent-context: replay\nusers:\n"
        "- name: replay\n  user: {}\n"
    )


def main() -> int:
    """Serve until interrupted (for manual runs)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--shape", choices=("8k", "4k"), default="8k")
    args = parser.parse_args()
    server, _ = serve(args.objects, args.shape)
    print(server.server_address[1], flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
