"""Lazily decoded API objects: metadata now, every other nested value on first access.

Data flow: ``WatchStream`` → ``decode_event`` → :func:`loads_event` (one line), and
``Client.list`` → :func:`loads_list` (one page) → ``LazyObject`` → FIFO → informer cache →
handlers, listers, reconcilers.

Why: a cache of fully decoded JSON holds ~85 gc-tracked containers and ~40 KB per 8 KB pod,
and the cyclic GC walks all of them repeatedly while the cache grows. A ``LazyObject`` keeps
each top-level object/array value except ``metadata`` as its compact JSON bytes (about the
wire size) and decodes it the first time it is read. ``metadata`` is decoded at once except
its object/array values other than ``labels`` and ``annotations`` (``ownerReferences``,
``finalizers``, ``managedFields``), which stay raw the same way. A cached pod holds no
gc-tracked container (below) and roughly its JSON size until something reads its ``spec``
or ``status``. Each kept raw value is copied once, straight out of the
line (no intermediate copies: fewer holes in the allocator's heap once the line is freed),
and the names of the undecoded keys live in a tuple shared by every object of that shape.

An informer's FIFO takes each ``LazyObject`` it queues (the object and its ``metadata``)
out of the cyclic garbage collector's sight (:func:`leave_gc`, after the transform), as
CPython itself untracks dicts and tuples that hold only atomic values: an object decoded
from JSON is a tree, and a cached one is never mutated, so no collection could ever free
it, and walking a cache of them is pure cost. The decoders hand out tracked objects: a
caller's own objects from ``Client.list`` or ``Client.watch`` may be changed freely, and a
cycle made through an untracked object (a back-reference stored into a nested value tracks
that value, not the object) would never be collected. Untracked, a cache of 150,000 pods
adds nothing to any collection: no full collections while it grows and no long young
collections under bursts of updates (``docs/performance.md``, "The garbage collector"). It
is still freed by reference counting as soon as it is replaced or deleted. What such an
object decodes on first read (its ``spec``, say) is untracked the same way, container by
container: a handler that reads every object would otherwise put ~45 tracked containers per
pod back into every collection. An object into which the transform stored anything but
JSON values stays tracked (with every container on the way to it), and so does what it
decodes. A reference cycle made by mutating a cached object would never be collected
(CPython up to 3.13 tracks a dict again when a container is stored into it, 3.14 does not,
and no version does for ``list.append``): cached objects must not be mutated anyway.

A ``LazyObject`` is a ``dict``: every read (``[]``, ``get``, iteration, ``items``,
``values``, ``==``, ``copy``, ``repr``, ``json.dumps``, ``dict(obj)``, ``{**obj}``,
``copy.deepcopy``, pickling) sees decoded values; ``orjson.dumps`` writes the stored JSON
as is. The first read of a lazy key decodes it and keeps the result (later reads return
the same object). Scalar top-level values (``kind``, ``apiVersion``) are decoded eagerly
and shared (one copy per distinct short string).

The building of each object (``LazyObject._from_shaped``, ``_meta_from``) and
:func:`leave_gc`'s walk also exist in C (``pycontroller/_speedups.c``), used when that
module was built; this Python code is the reference both are tested against, and runs
where the module is missing or ``PYCONTROLLER_PURE_PYTHON`` is set.

Thread-safety: reads from any number of threads are safe (decoding a key happens once,
under a reentrant module lock). Writes follow ``dict`` rules (cached objects are never written).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import importlib
import os
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import Any, Final

import msgspec
import msgspec.structs
import orjson
from msgspec import UNSET, UnsetType

__all__ = ["EventDecoder", "LazyObject", "leave_gc", "loads_event", "loads_list"]

# Reentrant: a finalizer, gc callback or signal handler may run while a thread decodes
# (holding the lock) and read another lazy value on that same thread.
_LOCK: Final = threading.RLock()


def _gc_untracker() -> Callable[[object], None]:
    """CPython's ``PyObject_GC_UnTrack`` (the GIL stays held: ``pythonapi`` is a ``PyDLL``);
    a no-op on other interpreters and where ``ctypes`` is missing (a Python built without
    libffi): objects then stay tracked, which costs collection time, nothing else."""
    try:
        import ctypes  # noqa: PLC0415  (optional: see above)
    except ImportError:
        return lambda obj: None
    pythonapi = getattr(ctypes, "pythonapi", None)
    if sys.implementation.name != "cpython" or pythonapi is None:
        return lambda obj: None
    # Its own function object: pythonapi.PyObject_GC_UnTrack is one cached object per
    # process, whose argtypes another library may set otherwise.
    untrack = pythonapi["PyObject_GC_UnTrack"]
    untrack.argtypes = [ctypes.py_object]
    untrack.restype = None
    return untrack  # type: ignore[no-any-return]


_untrack = _gc_untracker()  # (rebound to the C version by _use_speedups)
_is_tracked: Final = gc.is_tracked
_referents: Final = gc.get_referents
_consume: Final = deque[None](maxlen=0).extend  # runs an iterator to its end


def leave_gc(obj: object) -> None:
    """Take a decoder-built object entering a cache out of the cyclic GC's sight: untrack
    every container in it (the object, its ``metadata``, their dicts and lists) that holds
    only JSON values, bottom up; one that holds anything else the collector tracks (an
    object a transform stored, say) stays tracked, and so do its ancestors. Anything but a
    ``LazyObject`` is left as it is.

    Only for objects nobody mutates from then on (cached objects): a container stored
    later into an untracked one does not make it tracked again on every CPython (3.14
    tracks dicts from birth and no longer re-tracks them on insert), so a cycle through it
    would never be collected. A caller's own objects (``Client.list``, ``Client.watch``)
    therefore stay tracked."""
    if type(obj) is LazyObject:
        if _C is not None:
            _C.leave_gc(obj)  # (the same walk; containers nested over 200 deep stay tracked)
            return
        # Nested deeper than the interpreter's recursion limit: left tracked.
        with contextlib.suppress(RecursionError):
            _leave_gc(obj, set())


def _leave_gc(container: dict[str, Any] | list[Any], path: set[int]) -> bool:
    """Untrack ``container`` if it holds only values the collector does not track once
    their own containers are untracked (JSON scalars, raw fragments, containers of such);
    whether it did. A container already untracked holds only such values (CPython tracks
    a dict or list holding anything it tracks), so it is not walked; one met again below
    itself (``path``: the ids of its ancestors being walked) is a cycle, left tracked."""
    if not _is_tracked(container):
        return True
    if id(container) in path:
        return False
    path.add(id(container))
    json_only = True
    for value in dict.values(container) if isinstance(container, dict) else container:
        if _is_tracked(value) and not (type(value) in _CONTAINERS
                                       and _leave_gc(value, path)):
            json_only = False
    path.discard(id(container))
    if json_only:
        _untrack(container)
    return json_only


def _untrack_tree(root: Any) -> None:
    """Untrack every container of a value ``orjson.loads`` just made (dicts and lists: a
    tree, so no cycles), one level at a time: ``gc.get_referents`` lists a level's children
    in one C call, and the tracked ones among them are exactly the containers left to untrack
    (up to 3.13 CPython does not track a dict that holds only strings and numbers; 3.14
    tracks every dict, so all of them are untracked here)."""
    level = [root] if _is_tracked(root) else []
    while level:
        _consume(map(_untrack, level))
        level = [child for child in _referents(*level) if _is_tracked(child)]


_OBJECT: Final = ord("{")
_OPENERS: Final = frozenset({_OBJECT, ord("[")})  # first byte of an object or array

_INTERN_MAX: Final = 64
# msgspec decodes dict keys up to this length through its own cache (one copy each).
_MSGSPEC_CACHED_KEY: Final = 32
# metadata values shared by many objects (label and annotation values are shared too).
_INTERN_FIELDS: Final = frozenset({"namespace", "generateName"})
# metadata objects decoded at once: read by selectors, index functions and most handlers.
_EAGER_META: Final = frozenset({"labels", "annotations"})

# The tuples of not yet decoded keys, shared: most objects of a kind have the same ones.
_SHARED: dict[tuple[str, ...], tuple[str, ...]] = {}


def _shared(keys: tuple[str, ...]) -> tuple[str, ...]:
    shared = _SHARED.get(keys)
    if shared is None:
        if len(_SHARED) >= 1024:  # bounded: odd objects get their own tuple
            return keys
        shared = _SHARED.setdefault(keys, keys)
    return shared


class _Event(msgspec.Struct):
    type: str
    object: dict[str, msgspec.Raw]


class _Meta(msgspec.Struct, forbid_unknown_fields=True):
    """``ObjectMeta`` as the apiserver serves it, for one-pass decoding of ``metadata``.

    Anything else (a field a later Kubernetes adds, a value of another type) fails to
    decode and takes the general path, so no field is ever dropped.
    """

    name: str | UnsetType = UNSET
    generateName: str | UnsetType = UNSET
    namespace: str | UnsetType = UNSET
    selfLink: str | UnsetType = UNSET
    uid: str | UnsetType = UNSET
    resourceVersion: str | UnsetType = UNSET
    generation: int | UnsetType = UNSET
    creationTimestamp: str | UnsetType | None = UNSET
    deletionTimestamp: str | UnsetType | None = UNSET
    deletionGracePeriodSeconds: int | UnsetType | None = UNSET
    labels: dict[str, str] | UnsetType | None = UNSET
    annotations: dict[str, str] | UnsetType | None = UNSET
    ownerReferences: msgspec.Raw | UnsetType = UNSET
    finalizers: msgspec.Raw | UnsetType = UNSET
    managedFields: msgspec.Raw | UnsetType = UNSET


_META_DECODER: Final = msgspec.json.Decoder(_Meta)


class _Shaped(msgspec.Struct, forbid_unknown_fields=True):
    """An object of the common ``kind``/``apiVersion``/``metadata``/``spec``/``status``
    shape (Pods, Deployments, Services, Nodes, most custom resources, bookmarks)."""

    kind: str | UnsetType = UNSET
    apiVersion: str | UnsetType = UNSET
    metadata: _Meta | UnsetType = UNSET
    spec: msgspec.Raw | UnsetType = UNSET
    status: msgspec.Raw | UnsetType = UNSET


class _ShapedEvent(msgspec.Struct):
    type: str
    object: _Shaped


_SHAPED_EVENT_DECODER: Final = msgspec.json.Decoder(_ShapedEvent)
_shaped_fields: Final = attrgetter(*_Shaped.__struct_fields__)
_asdict: Final = msgspec.structs.asdict
_ALL_META_FIELDS: Final = _Meta.__struct_fields__
_META_RAW_FIELDS: Final = ("ownerReferences", "finalizers", "managedFields")
_EAGER_META_FIELDS: Final = ("labels", "annotations")
_SPEC: Final = _shared(("spec",))
_STATUS: Final = _shared(("status",))
_SPEC_STATUS: Final = _shared(("spec", "status"))


_STRINGS: dict[str, str] = {}  # one copy of each short repeated string; see _shared_str
_STRINGS_MAX: Final = 1 << 16
_share: Final = _STRINGS.setdefault


def _shared_str(value: str) -> str:
    """One copy of ``value`` if it is short (names, namespaces, label values repeat across
    objects). A bounded table, emptied when full, rather than ``sys.intern``: interned
    strings are immortal on CPython 3.12.0-3.12.4 (gh-113993), so a long-running controller
    would keep every label value it ever saw."""
    if len(value) > _INTERN_MAX:
        return value
    if len(_STRINGS) >= _STRINGS_MAX:
        _STRINGS.clear()
    return _share(value, value)


def _scalar(data: bytes) -> Any:
    """A JSON value that is no object or array, decoded (short strings shared)."""
    value = orjson.loads(data)
    if isinstance(value, str):
        return _shared_str(value)
    return value

_SHAPED_ITEMS_DECODER: Final = msgspec.json.Decoder(list[_Shaped])
_EVENT_DECODER: Final = msgspec.json.Decoder(_Event)
_FIELDS_DECODER: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ITEMS_DECODER: Final = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])


def _keep_raw(fields: dict[str, Any]) -> tuple[str, ...]:
    """Turn the raw ``ownerReferences``/``finalizers``/``managedFields`` of decoded
    metadata into fragments (objects and arrays: return their names) or values."""
    lazy: tuple[str, ...] = ()
    for key in _META_RAW_FIELDS:
        raw = fields.get(key)
        if raw is None:
            continue
        data = bytes(raw)  # the one copy out of the line
        if data and data[0] in _OPENERS:
            lazy += (key,)
            fields[key] = orjson.Fragment(data)
        else:
            fields[key] = orjson.loads(data)
    return lazy


def _share_meta_strings(fields: dict[str, Any]) -> None:
    """One copy of the short namespace, generateName, label and annotation values, and of
    the label and annotation keys."""
    if len(_STRINGS) >= _STRINGS_MAX:
        _STRINGS.clear()
    for key in _INTERN_FIELDS:
        value = fields.get(key)
        if value is not None and len(value) <= _INTERN_MAX:
            fields[key] = _share(value, value)
    for key in _EAGER_META_FIELDS:
        values = fields.get(key)
        if values:  # in place: msgspec made this dict
            long_keys = False
            for k, v in values.items():
                if len(v) <= _INTERN_MAX:
                    values[k] = _share(v, v)  # (same keys: safe while iterating)
                if len(k) > _MSGSPEC_CACHED_KEY:
                    long_keys = True
            if long_keys:  # msgspec's key cache gave one copy of the short keys only
                fields[key] = {_share(k, k): v for k, v in values.items()}


class LazyObject(dict[str, Any]):
    """A decoded JSON object whose nested values (but ``metadata``) decode on first read.

    Invariants: ``_lazy`` names the keys not yet decoded (``None`` when there are none; the
    tuples are shared between objects), and the ``dict`` holds an ``orjson.Fragment`` of
    each such key's JSON bytes; every other value is a plain, fully decoded value.
    """

    __slots__ = ("_lazy",)

    _lazy: tuple[str, ...] | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = None

    @classmethod
    def from_raw(cls, fields: dict[str, msgspec.Raw]) -> LazyObject:
        """Build from an object split into raw JSON values (each kept value is copied once,
        so the line or page they came from can be freed): every object/array value but
        ``metadata`` stays raw; ``metadata`` is built by :meth:`_metadata`."""
        obj = cls._new()
        lazy: list[str] = []
        for key, value in fields.items():
            view = memoryview(value)  # msgspec.Raw is a buffer
            head = view[0] if view else 0
            if key == "metadata" and head == _OBJECT:
                meta = cls._known_metadata(value)
                if meta is None:
                    meta = cls._metadata(_FIELDS_DECODER.decode(value))
                dict.__setitem__(obj, key, meta)
            elif head in _OPENERS:
                lazy.append(key)
                dict.__setitem__(obj, key, orjson.Fragment(bytes(view)))
            else:
                decoded = orjson.loads(view)
                if isinstance(decoded, str):
                    decoded = _shared_str(decoded)
                dict.__setitem__(obj, key, decoded)
        if lazy:
            obj._lazy = _shared(tuple(lazy))
        return obj

    @classmethod
    def _known_metadata(cls, value: msgspec.Raw) -> LazyObject | None:
        """:meth:`_metadata` in one C pass (about 3x faster) when ``value`` is a plain
        ``ObjectMeta``; ``None`` when it holds anything else."""
        try:
            known = _META_DECODER.decode(value)
        except msgspec.ValidationError:
            return None
        return _build_meta(known)

    @classmethod
    def _from_shaped(cls, shaped: _Shaped) -> LazyObject:
        """Build from an object msgspec decoded as :class:`_Shaped` (as :meth:`from_raw`)."""
        obj = cls._new()
        setitem = dict.__setitem__
        kind, api_version, metadata, spec, status = _shaped_fields(shaped)
        if len(_STRINGS) >= _STRINGS_MAX:  # (also for objects without metadata)
            _STRINGS.clear()
        if kind is not UNSET:
            setitem(obj, "kind", kind if len(kind) > _INTERN_MAX else _share(kind, kind))
        if api_version is not UNSET:
            setitem(obj, "apiVersion", api_version if len(api_version) > _INTERN_MAX
                    else _share(api_version, api_version))
        if metadata is not UNSET:
            setitem(obj, "metadata", _build_meta(metadata))
        lazy = None
        if spec is not UNSET:
            data = bytes(spec)  # the one copy out of the line
            if data and data[0] in _OPENERS:  # (almost always)
                lazy = _SPEC
                setitem(obj, "spec", orjson.Fragment(data))
            else:
                setitem(obj, "spec", _scalar(data))
        if status is not UNSET:
            data = bytes(status)
            if data and data[0] in _OPENERS:
                lazy = _SPEC_STATUS if lazy is _SPEC else _STATUS
                setitem(obj, "status", orjson.Fragment(data))
            else:
                setitem(obj, "status", _scalar(data))
        obj._lazy = lazy
        return obj

    @classmethod
    def _new(cls) -> LazyObject:
        obj = dict.__new__(cls)  # without the Python-level __init__
        obj._lazy = None
        return obj

    @classmethod
    def _meta_from(cls, known: _Meta) -> LazyObject:
        meta = cls._new()
        # All fields in one C call; the ones the object did not have are UNSET.
        fields = _asdict(known)
        for key in _ALL_META_FIELDS:
            if fields[key] is UNSET:
                del fields[key]
        lazy = _keep_raw(fields)
        _share_meta_strings(fields)
        dict.update(meta, fields)
        if lazy:
            meta._lazy = _shared(lazy)
        return meta

    @classmethod
    def _metadata(cls, fields: dict[str, msgspec.Raw]) -> LazyObject:
        """``metadata``: scalars and ``labels``/``annotations`` decoded now (keys, selectors
        and indexes read them), every other object or array (``managedFields``,
        ``ownerReferences``, ``finalizers``, ...) raw until read; repeated strings shared."""
        meta = cls._new()
        lazy: list[str] = []
        for key, value in fields.items():
            view = memoryview(value)  # msgspec.Raw is a buffer
            head = view[0] if view else 0
            if head in _OPENERS and key not in _EAGER_META:
                lazy.append(key)
                dict.__setitem__(meta, key, orjson.Fragment(bytes(view)))
                continue
            decoded = orjson.loads(view)
            if key in _INTERN_FIELDS and isinstance(decoded, str):
                decoded = _shared_str(decoded)
            elif isinstance(decoded, dict):  # labels, annotations
                for k, v in decoded.items():
                    if isinstance(v, str):
                        decoded[k] = _shared_str(v)
            dict.__setitem__(meta, key, decoded)
        if lazy:
            meta._lazy = _shared(tuple(lazy))
        return meta

    # ---- decoding ----------------------------------------------------------------------

    def _decode(self, key: str) -> None:
        with _LOCK:
            lazy = self._lazy
            if lazy is None or key not in lazy:
                return  # another thread got here first
            # The fragment's bytes: orjson writes them out as they are (a copy, once per key).
            raw = orjson.dumps(dict.__getitem__(self, key))
            value = orjson.loads(raw)
            # An object out of the collector's sight keeps what it decodes out too (see the
            # module docstring); one that something made tracked again stays as it is.
            untracked = not _is_tracked(self)
            if untracked:
                _untrack_tree(value)
            dict.__setitem__(self, key, value)  # (up to 3.13 this tracks self again: undo it)
            if untracked:
                _untrack(self)
            current = self._lazy  # (a read reentering on this thread may have changed it)
            if current is not None and key in current:
                self._lazy = _without(current, key)

    def materialize(self) -> LazyObject:
        """Decode every remaining key now, nested lazy objects (``metadata``) included;
        return ``self``."""
        lazy = self._lazy
        if lazy is not None:
            for key in lazy:
                self._decode(key)
        meta = dict.get(self, "metadata")
        if isinstance(meta, LazyObject):
            meta.materialize()
        return self

    def is_decoded(self, key: str) -> bool:
        """Whether ``key`` holds a decoded value (diagnostics and tests)."""
        lazy = self._lazy
        return lazy is None or key not in lazy

    # ---- reads ---------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        lazy = self._lazy
        if lazy is not None and key in lazy:
            self._decode(key)
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """``dict.get``, decoding the value first if needed."""
        if not dict.__contains__(self, key):
            return default
        return self[key]

    def __iter__(self) -> Iterator[str]:
        # A Python-level __iter__ makes dict(obj), {**obj} and dict.update(obj) go through
        # keys() and __getitem__ instead of copying the stored fragments.
        return dict.__iter__(self)

    def values(self) -> Any:
        """``dict.values`` of the decoded object."""
        return dict.values(self.materialize())

    def items(self) -> Any:
        """``dict.items`` of the decoded object."""
        return dict.items(self.materialize())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyObject):
            other.materialize()
        return dict.__eq__(self.materialize(), other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None

    def __repr__(self) -> str:
        return dict.__repr__(self.materialize())

    def copy(self) -> dict[str, Any]:
        """A shallow, plain ``dict`` copy with every value decoded."""
        return dict.copy(self.materialize())

    def __copy__(self) -> dict[str, Any]:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return copy.deepcopy(dict.copy(self.materialize()), memo)

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict.copy(self.materialize()),))

    def __or__(self, other: Any) -> Any:
        return dict.__or__(self.copy(), other)

    def __ror__(self, other: Any) -> Any:
        return dict.__or__(dict(other), self.copy())

    # ---- writes (before an object is cached, e.g. by a transform) -------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        self._forget(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        self._forget(key)
        dict.__delitem__(self, key)

    def pop(self, key: str, *default: Any) -> Any:
        """``dict.pop``, returning the decoded value."""
        if dict.__contains__(self, key):
            value = self[key]
            dict.__delitem__(self, key)
            return value
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[str, Any]:
        """``dict.popitem`` of the decoded object."""
        return dict.popitem(self.materialize())

    def setdefault(self, key: str, default: Any = None) -> Any:
        """``dict.setdefault``, returning the decoded value."""
        if dict.__contains__(self, key):
            return self[key]
        dict.__setitem__(self, key, default)
        return default

    def update(self, *args: Any, **kwargs: Any) -> None:
        """``dict.update``; overwritten keys lose their pending raw value."""
        incoming = dict(*args, **kwargs)
        for key in incoming:
            self._forget(key)
        dict.update(self, incoming)

    def __ior__(self, other: Any) -> LazyObject:  # type: ignore[override]
        self.update(other)
        return self

    def clear(self) -> None:
        """``dict.clear``."""
        self._lazy = None
        dict.clear(self)

    def _forget(self, key: str) -> None:
        lazy = self._lazy
        if lazy is None or key not in lazy:
            return  # (the common case, without the lock: _lazy only ever loses keys)
        with _LOCK:
            lazy = self._lazy
            if lazy is not None and key in lazy:
                self._lazy = _without(lazy, key)


# What leave_gc walks into: the containers of a decoded object.
_CONTAINERS: Final = frozenset({dict, list, LazyObject})

# _without's answers: the transform drops managedFields from every object of a shape.
_WITHOUT: dict[tuple[tuple[str, ...], str], tuple[str, ...] | None] = {}


def _without(lazy: tuple[str, ...], key: str) -> tuple[str, ...] | None:
    known = _WITHOUT.get((lazy, key), _WITHOUT)
    if known is not _WITHOUT:
        return known  # type: ignore[return-value]
    rest = tuple(k for k in lazy if k != key)
    result = _shared(rest) if rest else None
    if len(_WITHOUT) < 4096:  # bounded, like _SHARED
        _WITHOUT[(lazy, key)] = result
    return result


class EventDecoder:
    """:func:`loads_event` for one stream, in one C pass while its objects have the
    common shape (:class:`_Shaped`).

    A line of another shape (a ConfigMap, a Status) takes the general path, and so do
    the next 64 lines of this stream, so a stream of such kinds does not pay for two
    parses on every line.

    Thread-safety: not thread-safe (one per stream, as the stream is read by one thread).
    """

    __slots__ = ("_general",)

    def __init__(self) -> None:
        self._general = 0  # lines left to send down the general path

    def __call__(self, line: bytes) -> Any:
        if self._general:
            self._general -= 1
            return loads_event(line)
        try:
            event = _SHAPED_EVENT_DECODER.decode(line)
        except msgspec.MsgspecError:
            self._general = 64
            return loads_event(line)
        return {"type": event.type, "object": _build_shaped(event.object)}


def loads_event(line: bytes) -> Any:
    """Decode one watch line: ``{"type": str, "object": LazyObject}`` for a well-formed
    event; anything else goes through ``orjson.loads`` (so malformed JSON raises
    ``orjson.JSONDecodeError`` and odd shapes reach the caller's checks unchanged)."""
    try:
        event = _EVENT_DECODER.decode(line)
    except msgspec.MsgspecError:
        return orjson.loads(line)
    return {"type": event.type, "object": LazyObject.from_raw(event.object)}


def _list_items(raw: msgspec.Raw) -> list[LazyObject]:
    try:  # one pass when every item has the common shape
        return [_build_shaped(item) for item in _SHAPED_ITEMS_DECODER.decode(raw)]
    except msgspec.ValidationError:
        return [LazyObject.from_raw(item) for item in _ITEMS_DECODER.decode(raw)]


def loads_list(data: bytes) -> Any:
    """Decode a LIST response: its ``items`` as ``LazyObject``s, the rest as usual.

    Anything that is not a JSON object with an array of objects under ``items`` goes
    through ``orjson.loads`` unchanged (malformed JSON raises ``orjson.JSONDecodeError``).
    """
    try:
        fields = _FIELDS_DECODER.decode(data)
        raw_items = fields.get("items")
        items = None if raw_items is None else _list_items(raw_items)
    except msgspec.MsgspecError:
        return orjson.loads(data)
    page = {key: orjson.loads(bytes(value)) for key, value in fields.items() if key != "items"}
    if items is not None:
        page["items"] = items
    return page


# ---- the C versions of the per-object steps (pycontroller/_speedups.c) -----------------

_C: Any = None  # the configured pycontroller._speedups in use; None: the Python code above
_build_shaped: Callable[[_Shaped], LazyObject] = LazyObject._from_shaped
_build_meta: Callable[[_Meta], LazyObject] = LazyObject._meta_from
_py_untrack: Final = _untrack


_SPEEDUPS_ABI: Final = 1  # what _speedups.c's configure takes (its ABI constant)


def _load_speedups() -> Any:
    """``pycontroller._speedups``, configured; ``None`` when it was not built (no C
    compiler at install time), on another interpreter than CPython, with
    ``PYCONTROLLER_PURE_PYTHON`` set to anything but ``""`` or ``"0"``, or (with a
    warning) when the built module is not the one this code expects (a stale build)."""
    if os.environ.get("PYCONTROLLER_PURE_PYTHON", "") not in ("", "0"):
        return None
    if sys.implementation.name != "cpython":
        return None
    try:
        _speedups = importlib.import_module("pycontroller._speedups")
    except ImportError:
        return None
    try:
        if getattr(_speedups, "ABI", None) != _SPEEDUPS_ABI:
            raise TypeError(f"ABI {getattr(_speedups, 'ABI', None)}, not {_SPEEDUPS_ABI}")
        _speedups.configure(*_configuration())
    except (TypeError, ValueError, AttributeError) as exc:
        warnings.warn(f"pycontroller: the C module {_speedups.__file__} does not match this "
                      f"version ({exc}); using the pure-Python code. Reinstall pycontroller "
                      "to rebuild it.", RuntimeWarning, stacklevel=1)
        return None
    return _speedups


def _configuration() -> tuple[Any, ...]:
    """What ``_speedups.configure`` takes: the objects the C code uses, as they are now."""
    return (LazyObject, UNSET, orjson.Fragment, _STRINGS, _STRINGS_MAX, _INTERN_MAX,
            _MSGSPEC_CACHED_KEY, _scalar, orjson.loads, _shared, _SPEC, _STATUS,
            _SPEC_STATUS, _Shaped.__struct_fields__, _Meta.__struct_fields__,
            tuple(sorted(_INTERN_FIELDS)), _EAGER_META_FIELDS, _META_RAW_FIELDS)


def _use_speedups(module: Any) -> None:
    """Build, untrack and walk with ``module`` (``_speedups``), configured with this
    module's current objects (the string table, its bounds, ...), or with the Python code
    for ``None``. The tests run both."""
    global _C, _build_shaped, _build_meta, _untrack
    if module is not None:
        module.configure(*_configuration())
    _C = module
    _build_shaped = LazyObject._from_shaped if module is None else module.from_shaped
    _build_meta = LazyObject._meta_from if module is None else module.meta_from
    _untrack = _py_untrack if module is None else module.untrack


SPEEDUPS: Final = _load_speedups()
_use_speedups(SPEEDUPS)
