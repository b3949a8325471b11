"""An in-memory API server for unit tests of a reconcile, behind a real ``Client``.

Data flow: ``FakeAPIServer.client()`` is an ordinary ``Client`` (``connect`` on a
kubeconfig) talking plain HTTP on loopback to a ``ThreadingHTTPServer`` whose handler
turns each request into an operation on ``_Store`` (objects, one resourceVersion counter,
a bounded event history, open watches). So the client, watch decoding, errors, informers
and ``Manager`` all run their production code.

Faithful (the same as kube-apiserver): resourceVersions (one counter, strings),
``generation`` (starts at 1; bumped by changes outside ``metadata`` and ``status``),
``uid``/``creationTimestamp``, 409 ``AlreadyExists`` and 409 ``Conflict`` on a stale
``resourceVersion`` (PUT, or a patch that carries one), no-op writes that change nothing
(no new resourceVersion, no event), label selectors (``=``, ``==``, ``!=``, ``in``,
``notin``, ``key``, ``!key``), field selectors on ``metadata.name``/``metadata.namespace``,
the ``status`` subresource (writes to it change only ``status``; other writes keep the
stored ``status``), merge patches (RFC 7386) and JSON patches (RFC 6902), finalizers
(DELETE sets ``deletionTimestamp``; removing the last finalizer deletes; no new finalizer
once deleting), namespaces that must exist, list pagination (``limit``/``continue``), and
watches from a resourceVersion (410 once it left the history), with ADDED/MODIFIED/DELETED
filtered by selectors (an object leaving a selector arrives as DELETED), bookmarks and
``timeoutSeconds``. Discovery (``/api``, ``/apis``) serves the registered resources.

Approximate: strategic merge patches are merge patches (lists are replaced, not merged
by key); server-side apply merges the applied object like a merge patch: it creates the
object, updates the fields it names and never removes fields it stopped naming
(``managedFields`` are not kept, ``force`` and apply conflicts are not modelled); other
field selectors compare the dotted path's value as a string (the apiserver accepts only
some fields per kind); no admission, defaulting, validation or garbage collection
(``ownerReferences`` and ``propagationPolicy`` are stored, not acted on); no RBAC; WatchList
(``sendInitialEvents``) is refused with 400, so informers fall back to LIST+WATCH.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import queue
import re
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, final
from urllib.parse import parse_qs, unquote, urlsplit

from pycontroller.client import BUILTINS, Client, Resource, connect

_HISTORY = 10_000  # events kept for watches that resume from a resourceVersion
_STATUS_SUBRESOURCE = {"pods", "services", "nodes", "namespaces", "deployments",
                       "replicasets", "statefulsets", "daemonsets", "jobs",
                       "customresourcedefinitions"}
# Kinds whose objects carry metadata.generation (as kube-apiserver 1.3x sets it); custom
# resources always do.
_GENERATION = {"pods", "deployments", "replicasets", "statefulsets", "daemonsets", "jobs",
               "customresourcedefinitions"}
_SHORT_NAMES = {"pods": ["po"], "services": ["svc"], "nodes": ["no"], "namespaces": ["ns"],
                "configmaps": ["cm"], "deployments": ["deploy"], "replicasets": ["rs"],
                "statefulsets": ["sts"], "daemonsets": ["ds"], "events": ["ev"],
                "serviceaccounts": ["sa"], "customresourcedefinitions": ["crd", "crds"]}


class _APIFailure(Exception):
    """An error answer: HTTP status plus a ``Status`` body."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- selectors -------------------------------------------------------------------------
_TERM = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_.-]*)"
                   r"|\s+(in|notin)\s*\(([^)]*)\))?\s*$")


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        terms.append(current)
    return terms


def _label_matcher(selector: str | None) -> Any:
    """A predicate over label dicts (400 for a malformed selector)."""
    checks = []
    for term in _split_terms(selector or ""):
        match = _TERM.match(term)
        if match is None or (match.group(1) and (match.group(3) or match.group(5))):
            raise _APIFailure(400, "BadRequest", f"unable to parse requirement: {term!r}")
        negate, key, op, value, set_op, values = match.groups()
        if set_op:
            members = {v.strip() for v in values.split(",") if v.strip()}
            checks.append((key, set_op, members))
        elif op:
            checks.append((key, "!=" if op == "!=" else "=", {value}))
        else:
            checks.append((key, "!exists" if negate else "exists", set()))

    def matches(labels: Mapping[str, str]) -> bool:
        for key, op, values in checks:
            present = key in labels
            if (op == "exists" and not present) or (op == "!exists" and present) or \
                    (op in ("=", "in") and labels.get(key) not in values) or \
                    (op in ("!=", "notin") and present and labels[key] in values):
                return False
        return True

    return matches


def _field_matcher(selector: str | None) -> Any:
    checks = []
    for term in _split_terms(selector or ""):
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if match is None:
            raise _APIFailure(400, "BadRequest", f"invalid field selector: {term!r}")
        checks.append(match.groups())

    def value(obj: Mapping[str, Any], path: str) -> str:
        node: Any = obj
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return "" if node is None else str(node)

    def matches(obj: Mapping[str, Any]) -> bool:
        return all((value(obj, path) == want) == (op != "!=") for path, op, want in checks)

    return matches


# -- patches ---------------------------------------------------------------------------
def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _APIFailure(422, "Invalid", f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _json_patch(doc: Any, ops: Any) -> Any:  # noqa: PLR0912 - one branch per op
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise _APIFailure(400, "BadRequest", "a JSON patch is a list of operations")

    def parent(path: str) -> tuple[Any, str]:
        parts = _pointer(path)
        if not parts:
            raise _APIFailure(422, "Invalid", "cannot change the document root")
        node = doc
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node, parts[-1]

    def get(path: str) -> Any:
        node = doc
        for part in _pointer(path):
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    for given in ops:
        op, kind, path = given, given.get("op"), given.get("path", "")
        try:
            if kind == "test":
                if get(path) != op.get("value"):
                    raise _APIFailure(422, "Invalid", f"test operation failed at {path}")
                continue
            if kind in ("move", "copy"):
                value = copy.deepcopy(get(op["from"]))
                if kind == "move":
                    holder, key = parent(op["from"])
                    del holder[int(key) if isinstance(holder, list) else key]
                kind, op = "add", {"path": path, "value": value}
            holder, key = parent(path)
            if kind == "add":
                if isinstance(holder, list):
                    holder.insert(len(holder) if key == "-" else int(key),
                                  copy.deepcopy(op["value"]))
                else:
                    holder[key] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del holder[int(key) if isinstance(holder, list) else key]
            elif kind == "replace":
                if isinstance(holder, list):
                    holder[int(key)] = copy.deepcopy(op["value"])
                else:
                    if key not in holder:
                        raise KeyError(key)
                    holder[key] = copy.deepcopy(op["value"])
            else:
                raise _APIFailure(400, "BadRequest", f"unknown JSON patch op {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise _APIFailure(422, "Invalid", f"JSON patch {kind} {path}: {exc!r}") from exc
    return doc


# -- the store -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Kind:
    resource: Resource
    status_subresource: bool
    short_names: tuple[str, ...]
    generation: bool


@dataclass(slots=True)
class _Watch:
    kind: _Kind
    namespace: str | None
    labels: Any
    fields: Any
    events: queue.SimpleQueue[tuple[str, dict[str, Any]] | None]


def _as_seen_by(watch: _Watch, kind: _Kind, event: str, obj: dict[str, Any],
                old: dict[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """The event ``watch`` gets for a change, or None: selectors decide, and an object
    that starts or stops matching arrives as ADDED or DELETED (as from the watch cache)."""
    meta = obj["metadata"]
    if watch.kind is not kind or (watch.namespace is not None
                                  and meta.get("namespace") != watch.namespace):
        return None
    now = watch.labels(meta.get("labels") or {}) and watch.fields(obj)
    before = old is not None and watch.labels(old["metadata"].get("labels") or {}) \
        and watch.fields(old)
    if event == "MODIFIED" and now and not before:
        return "ADDED", copy.deepcopy(obj)
    if event == "MODIFIED" and before and not now:
        return "DELETED", copy.deepcopy(obj)
    if now or (event == "DELETED" and before):
        return event, copy.deepcopy(obj)
    return None


def _without_rv(obj: Mapping[str, Any]) -> dict[str, Any]:
    clean = copy.deepcopy(dict(obj))
    clean.get("metadata", {}).pop("resourceVersion", None)
    return clean


def _spec_part(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class _Store:
    """Objects, resourceVersions, history and watches. Thread-safe (one lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rv = 1  # guarded by lock
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}  # guarded
        # (rv, kind key, event, object, previous object); guarded by lock
        self.history: deque[tuple[int, str, str, dict[str, Any], dict[str, Any] | None]] = \
            deque(maxlen=_HISTORY)
        self.watches: list[_Watch] = []  # guarded by lock
        self.kinds: dict[str, _Kind] = {}  # "group/plural" -> kind; guarded by lock

    @staticmethod
    def key(resource: Resource) -> str:
        return f"{resource.group}/{resource.plural}"

    def _emit(self, kind: _Kind, event: str, obj: dict[str, Any],
              old: dict[str, Any] | None) -> None:
        """Record and fan out one change (lock held)."""
        self.history.append((self.rv, self.key(kind.resource), event, copy.deepcopy(obj),
                             copy.deepcopy(old)))
        for watch in self.watches:
            seen = _as_seen_by(watch, kind, event, obj, old)
            if seen is not None:
                watch.events.put(seen)

    def bump(self, kind: _Kind, obj: dict[str, Any], event: str,
             old: dict[str, Any] | None) -> dict[str, Any]:
        """Give ``obj`` the next resourceVersion, then record it (lock held)."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._emit(kind, event, obj, old)
        return obj


@final
class FakeAPIServer:
    """An in-memory Kubernetes API server on loopback for fast, control-plane-free tests.

    ``client()`` returns an ordinary ``Client``; give it to a ``Manager`` or a reconcile
    under test. What is faithful and what is approximate is listed in this module's
    documentation (resourceVersions, generation, conflicts, selectors, the status
    subresource, merge/JSON patches, finalizers and watches are faithful; strategic merge
    and server-side apply are simplified). Built-in resources are served; add custom ones
    with ``add_resource``. Namespaces ``default`` and ``kube-system`` exist.

    Use it as a context manager, or call ``stop()``: open watches end and every thread
    the server started is joined.

    Thread-safety: thread-safe.
    """

    def __init__(self, resources: tuple[Resource, ...] = tuple(BUILTINS)) -> None:
        self._store = _Store()
        for resource in resources:
            self.add_resource(resource)
        handler = type("_Handler", (_Handler,), {"store": self._store, "server_ref": self})
        self._stopping = threading.Event()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._http.daemon_threads = False
        self._http.block_on_close = True
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,),
                                        name="pycontroller-fake-apiserver", daemon=True)
        self._thread.start()
        self._dir = tempfile.TemporaryDirectory(prefix="pycontroller-fake-apiserver-")
        self.kubeconfig = Path(self._dir.name) / "kubeconfig"
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.server}}],
            "users": [{"name": "fake", "user": {"token": "fake"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        }))
        for name in ("default", "kube-system"):
            self._seed_namespace(name)

    @property
    def server(self) -> str:
        """The server URL (``http://127.0.0.1:<port>``)."""
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def stopping(self) -> threading.Event:
        """Set by ``stop()``; watches end when it is set."""
        return self._stopping

    def _seed_namespace(self, name: str) -> None:
        kind = self._store.kinds.get("/namespaces")
        if kind is not None:
            _create(self._store, kind, None, {"metadata": {"name": name}})

    def add_resource(self, resource: Resource, *, status_subresource: bool | None = None,
                     short_names: tuple[str, ...] = ()) -> None:
        """Serve ``resource`` (e.g. a custom resource) from now on."""
        status = resource.plural in _STATUS_SUBRESOURCE if status_subresource is None \
            else status_subresource
        shorts = short_names or tuple(_SHORT_NAMES.get(resource.plural, ()))
        with self._store.lock:
            self._store.kinds[_Store.key(resource)] = _Kind(
                resource, status, shorts,
                generation=resource.plural in _GENERATION or resource not in BUILTINS)

    def compact(self) -> None:
        """Forget the event history (≙ etcd compaction): a watch from any resourceVersion
        older than the current one then gets 410 Expired."""
        with self._store.lock:
            self._store.history.clear()

    def client(self, **options: Any) -> Client:
        """A new ``Client`` for this server (``options`` go to ``connect``)."""
        return connect(self.kubeconfig, **options)

    def stop(self) -> None:
        """End open watches, stop serving and join the server's threads."""
        self._stopping.set()
        with self._store.lock:
            watches = list(self._store.watches)
        for watch in watches:
            watch.events.put(None)
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(10)
        self._dir.cleanup()

    def __enter__(self) -> FakeAPIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- operations ------------------------------------------------------------------------
def _check_namespace(store: _Store, kind: _Kind, namespace: str | None) -> None:
    if not kind.resource.namespaced:
        return
    ns_kind = store.kinds.get("/namespaces")
    if namespace is None:
        raise _APIFailure(400, "BadRequest", f"{kind.resource.plural} need a namespace")
    if ns_kind is not None and ("", namespace) not in store.objects.get("/namespaces", {}):
        raise _APIFailure(404, "NotFound", f'namespaces "{namespace}" not found')


def _create(store: _Store, kind: _Kind, namespace: str | None,
            body: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(body)
    meta = obj.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
    name = meta.get("name")
    if not name:
        raise _APIFailure(422, "Invalid", "metadata.name: Required value")
    if namespace is not None and meta.get("namespace") not in (None, namespace):
        raise _APIFailure(400, "BadRequest", "the namespace of the object does not match "
                                             "the namespace of the request")
    res = kind.resource
    obj.setdefault("apiVersion", res.api_version)
    obj.setdefault("kind", res.kind)
    with store.lock:
        _check_namespace(store, kind, namespace)
        items = store.objects.setdefault(_Store.key(res), {})
        key = (namespace or "", name)
        if key in items:
            raise _APIFailure(409, "AlreadyExists", f'{res.plural} "{name}" already exists')
        if res.namespaced:
            meta["namespace"] = namespace
        for field in ("resourceVersion", "deletionTimestamp", "managedFields", "generation"):
            meta.pop(field, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
        if kind.generation:
            meta["generation"] = 1
        if kind.status_subresource:
            obj.pop("status", None)
        items[key] = store.bump(kind, obj, "ADDED", None)
        return copy.deepcopy(obj)


def _stored(store: _Store, kind: _Kind, namespace: str | None, name: str) -> dict[str, Any]:
    found = store.objects.get(_Store.key(kind.resource), {}).get((namespace or "", name))
    if found is None:
        raise _APIFailure(404, "NotFound", f'{kind.resource.plural} "{name}" not found')
    return found


def _write(  # noqa: PLR0912 - the apiserver's update rules, one branch each
        store: _Store, kind: _Kind, namespace: str | None, name: str, *,
        new: dict[str, Any], subresource: str | None) -> dict[str, Any]:
    """Replace the stored object by ``new`` with the apiserver's rules (lock held)."""
    old = _stored(store, kind, namespace, name)
    want_rv = (new.get("metadata") or {}).get("resourceVersion")
    if want_rv not in (None, "") and want_rv != old["metadata"]["resourceVersion"]:
        raise _APIFailure(409, "Conflict", f'Operation cannot be fulfilled on '
                          f'{kind.resource.plural} "{name}": the object has been modified; '
                          "please apply your changes to the latest version and try again")
    if subresource == "status":
        merged = copy.deepcopy(old)
        if "status" in new:
            merged["status"] = copy.deepcopy(new["status"])
        else:
            merged.pop("status", None)
    else:
        merged = copy.deepcopy(new)
        meta = merged.setdefault("metadata", {})
        for field in ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                      "namespace", "name"):
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        merged["apiVersion"], merged["kind"] = old.get("apiVersion"), old.get("kind")
        if kind.status_subresource:
            if "status" in old:
                merged["status"] = copy.deepcopy(old["status"])
            else:
                merged.pop("status", None)
        added = set(meta.get("finalizers") or ()) - set(old["metadata"].get("finalizers") or ())
        if "deletionTimestamp" in old["metadata"] and added:
            raise _APIFailure(422, "Invalid", "metadata.finalizers: Forbidden: no new "
                                              "finalizers can be added if the object is "
                                              "being deleted")
        if kind.generation and _spec_part(merged) != _spec_part(old):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
    merged["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
    if merged == old:
        return copy.deepcopy(old)  # a no-op write: no new resourceVersion, no event
    items = store.objects[_Store.key(kind.resource)]
    if merged["metadata"].get("deletionTimestamp") and not merged["metadata"].get("finalizers"):
        del items[(namespace or "", name)]
        return copy.deepcopy(store.bump(kind, merged, "DELETED", old))
    items[(namespace or "", name)] = store.bump(kind, merged, "MODIFIED", old)
    return copy.deepcopy(merged)


def _delete(store: _Store, kind: _Kind, namespace: str | None, name: str) -> dict[str, Any]:
    with store.lock:
        old = _stored(store, kind, namespace, name)
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return copy.deepcopy(old)
            deleting = copy.deepcopy(old)
            deleting["metadata"]["deletionTimestamp"] = _now()
            deleting["metadata"]["deletionGracePeriodSeconds"] = 0
            store.objects[_Store.key(kind.resource)][(namespace or "", name)] = store.bump(
                kind, deleting, "MODIFIED", old)
            return copy.deepcopy(deleting)
        del store.objects[_Store.key(kind.resource)][(namespace or "", name)]
        return copy.deepcopy(store.bump(kind, copy.deepcopy(old), "DELETED", old))


def _decode(body: bytes, content_type: str) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        if "yaml" not in content_type:
            raise _APIFailure(400, "BadRequest", "the body is not JSON") from None
    try:
        import yaml  # noqa: PLC0415 - YAML bodies only for apply, from the envtest extra

        return yaml.safe_load(body)
    except Exception as exc:
        raise _APIFailure(400, "BadRequest", f"the body is not JSON or YAML: {exc}") from exc


def _patch(store: _Store, kind: _Kind, namespace: str | None, name: str, *, body: Any,
           content_type: str, query: Mapping[str, str], subresource: str | None,
           ) -> dict[str, Any]:
    if "apply-patch" in content_type:
        if not query.get("fieldManager"):
            raise _APIFailure(400, "BadRequest", "PATCH with apply needs a fieldManager")
        if not isinstance(body, dict):
            raise _APIFailure(400, "BadRequest", "an apply patch is an object")
        with store.lock:
            exists = (namespace or "", name) in store.objects.get(
                _Store.key(kind.resource), {})
        if not exists and subresource is None:
            body = copy.deepcopy(body)
            body.setdefault("metadata", {})["name"] = name
            try:
                return _create(store, kind, namespace, body)
            except _APIFailure as exc:
                if exc.code != 409:
                    raise
    with store.lock:
        old = _stored(store, kind, namespace, name)
        if "json-patch" in content_type:
            new = _json_patch(old, body)
        elif isinstance(body, dict):  # merge, strategic (approximated) and apply
            new = _merge_patch(_without_rv(old), body)
        else:
            raise _APIFailure(400, "BadRequest", "a merge patch is an object")
        if "json-patch" in content_type and new["metadata"].get("resourceVersion") == \
                old["metadata"]["resourceVersion"]:
            new["metadata"].pop("resourceVersion", None)
        return _write(store, kind, namespace, name, new=new, subresource=subresource)


# -- HTTP ------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    store: _Store
    server_ref: FakeAPIServer
    # HTTP/1.1 for chunked watch streams; every answer says "Connection: close", so each
    # request has its own connection and a watch ends with it.
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the store, not an access log."""

    def _answer(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            code, answer = self._route(method, url.path, query, raw)
        except _APIFailure as failure:
            self._answer(failure.code, failure.status())
            return
        if code == 0:
            return  # a watch wrote its own answer
        self._answer(code, answer)

    def do_GET(self) -> None:
        """GET: read, list, watch, discovery."""
        self._handle("GET")

    def do_POST(self) -> None:
        """POST: create."""
        self._handle("POST")

    def do_PUT(self) -> None:
        """PUT: replace."""
        self._handle("PUT")

    def do_PATCH(self) -> None:
        """PATCH: merge, strategic (as merge), JSON patch, apply."""
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        """DELETE: delete, or mark for deletion while finalizers remain."""
        self._handle("DELETE")

    def _route(  # noqa: PLR0911, PLR0912 - a URL router: one branch per endpoint
            self, method: str, path: str, query: dict[str, str],
            raw: bytes) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        if parts == ["api"]:
            return 200, {"kind": "APIVersions", "versions": ["v1"]}
        if parts == ["apis"]:
            return 200, self._groups()
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _APIFailure(404, "NotFound", f"the server could not find {path}")
        if not rest:
            return 200, self._resources(group, version)
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and \
                f"{group}/{rest[2]}" in self.store.kinds:
            namespace, rest = rest[1], rest[2:]
        kind = self.store.kinds.get(f"{group}/{rest[0]}")
        if kind is None or kind.resource.version != version:
            raise _APIFailure(404, "NotFound", f"the server could not find {path}")
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource not in (None, "status") or (subresource and not kind.status_subresource):
            raise _APIFailure(404, "NotFound", f"the server could not find {path}")
        if kind.resource.namespaced is False:
            namespace = None
        content_type = self.headers.get("Content-Type") or ""
        body = _decode(raw, content_type) if method in ("POST", "PUT", "PATCH") else None
        if method == "GET" and name is None:
            if query.get("watch") in ("true", "1"):
                self._watch(kind, namespace, query)
                return 0, None
            return 200, self._list(kind, namespace, query)
        if name is None:
            if method != "POST":
                raise _APIFailure(405, "MethodNotAllowed", f"{method} on a collection")
            if not isinstance(body, dict):
                raise _APIFailure(400, "BadRequest", "the body must be an object")
            return 201, _create(self.store, kind, namespace, body)
        if method == "GET":
            with self.store.lock:
                return 200, copy.deepcopy(_stored(self.store, kind, namespace, name))
        if method == "PUT":
            if not isinstance(body, dict):
                raise _APIFailure(400, "BadRequest", "the body must be an object")
            if (body.get("metadata") or {}).get("name", name) != name:
                raise _APIFailure(400, "BadRequest", "the name of the object does not "
                                                     "match the name in the URL")
            with self.store.lock:
                return 200, _write(self.store, kind, namespace, name, new=body,
                                   subresource=subresource)
        if method == "PATCH":
            return 200, _patch(self.store, kind, namespace, name, body=body,
                               content_type=content_type, query=query,
                               subresource=subresource)
        if method == "DELETE":
            return 200, _delete(self.store, kind, namespace, name)
        raise _APIFailure(405, "MethodNotAllowed", method)

    def _groups(self) -> dict[str, Any]:
        versions: dict[str, str] = {}
        for kind in list(self.store.kinds.values()):
            if kind.resource.group:
                versions.setdefault(kind.resource.group, kind.resource.version)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
             "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
            for g, v in versions.items()]}

    def _resources(self, group: str, version: str) -> dict[str, Any]:
        served = [k for k in list(self.store.kinds.values())
                  if k.resource.group == group and k.resource.version == version]
        if not served:
            raise _APIFailure(404, "NotFound", f"{group}/{version} is not served")
        resources: list[dict[str, Any]] = []
        for kind in served:
            res = kind.resource
            resources.append({"name": res.plural, "singularName": res.kind.lower(),
                              "namespaced": res.namespaced, "kind": res.kind,
                              "shortNames": list(kind.short_names),
                              "verbs": ["create", "delete", "get", "list", "patch",
                                        "update", "watch"]})
            if kind.status_subresource:
                resources.append({"name": f"{res.plural}/status", "singularName": "",
                                  "namespaced": res.namespaced, "kind": res.kind,
                                  "verbs": ["get", "patch", "update"]})
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": resources}

    def _list(self, kind: _Kind, namespace: str | None,
              query: dict[str, str]) -> dict[str, Any]:
        labels, fields = _label_matcher(query.get("labelSelector")), \
            _field_matcher(query.get("fieldSelector"))
        with self.store.lock:
            rv = self.store.rv
            items = [copy.deepcopy(o) for (ns, _), o in sorted(
                self.store.objects.get(_Store.key(kind.resource), {}).items())
                if (namespace is None or ns == namespace)
                and labels(o["metadata"].get("labels") or {}) and fields(o)]
        start = 0
        token = query.get("continue")
        if token:
            try:
                rv_text, _, offset = base64.urlsafe_b64decode(token.encode()).decode() \
                    .partition(":")
                start, rv = int(offset), int(rv_text)
            except ValueError as exc:
                raise _APIFailure(400, "BadRequest", "invalid continue token") from exc
        limit = int(query.get("limit") or 0)
        page = items[start:start + limit] if limit else items[start:]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit and start + limit < len(items):
            meta["continue"] = base64.urlsafe_b64encode(
                f"{rv}:{start + limit}".encode()).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        for item in page:
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {"kind": f"{kind.resource.kind}List", "apiVersion": kind.resource.api_version,
                "metadata": meta, "items": page}

    def _watch(self, kind: _Kind, namespace: str | None, query: dict[str, str]) -> None:
        if query.get("sendInitialEvents") in ("true", "1"):
            raise _APIFailure(400, "BadRequest", "sendInitialEvents is not supported")
        watch = _Watch(kind, namespace, _label_matcher(query.get("labelSelector")),
                       _field_matcher(query.get("fieldSelector")), queue.SimpleQueue())
        since = query.get("resourceVersion") or ""
        with self.store.lock:
            backlog = list(self._backlog(watch, since))
            self.store.watches.append(watch)
        timeout = float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for event in backlog:
                self._send_event(*event)
            deadline, next_bookmark = time.monotonic() + timeout, time.monotonic() + 1.0
            while time.monotonic() < deadline and not self.server_ref.stopping.is_set():
                try:
                    item = watch.events.get(timeout=0.2)
                except queue.Empty:
                    if bookmarks and time.monotonic() >= next_bookmark:
                        with self.store.lock:
                            rv = str(self.store.rv)
                        self._send_event("BOOKMARK", {
                            "kind": kind.resource.kind, "apiVersion":
                            kind.resource.api_version, "metadata": {"resourceVersion": rv}})
                        next_bookmark = time.monotonic() + 1.0
                    continue
                if item is None:
                    break
                self._send_event(*item)
            self.wfile.write(b"0\r\n\r\n")  # the end of the chunked stream
            self.wfile.flush()
        except OSError:
            pass  # the client went away
        finally:
            with self.store.lock:
                self.store.watches.remove(watch)

    def _backlog(self, watch: _Watch,
                 since: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Events a new watch starts with (lock held)."""
        store = self.store
        if since in ("", "0"):  # the current state, then changes
            for (ns, _), obj in sorted(store.objects.get(
                    _Store.key(watch.kind.resource), {}).items()):
                if (watch.namespace is None or ns == watch.namespace) and \
                        watch.labels(obj["metadata"].get("labels") or {}) and watch.fields(obj):
                    yield "ADDED", copy.deepcopy(obj)
            return
        try:
            start = int(since)
        except ValueError as exc:
            raise _APIFailure(400, "BadRequest", f"invalid resourceVersion {since!r}") from exc
        oldest = store.history[0][0] if store.history else store.rv + 1
        if start < oldest - 1 and start < store.rv:
            yield "ERROR", _APIFailure(410, "Expired",
                                       f"too old resource version: {start} ({oldest})").status()
            return
        key = _Store.key(watch.kind.resource)
        for rv, kind_key, event, obj, old in list(store.history):
            if rv > start and kind_key == key:
                seen = _as_seen_by(watch, watch.kind, event, obj, old)
                if seen is not None:
                    yield seen

    def _send_event(self, kind: str, obj: dict[str, Any]) -> None:
        line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
        self.wfile.write(f"{len(line):X}\r\n".encode() + line + b"\r\n")  # one chunk
        self.wfile.flush()
