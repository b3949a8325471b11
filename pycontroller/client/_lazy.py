"""Lazily decoded API objects: metadata now, every other nested value on first access.

Data flow: ``WatchStream`` → ``decode_event`` → :func:`loads_event` (one line), and
``Client.list`` → :func:`loads_list` (one page) → ``LazyObject`` → FIFO → informer cache →
handlers, listers, reconcilers.

Why: a cache of fully decoded JSON holds ~85 gc-tracked containers and ~40 KB per 8 KB pod,
and the cyclic GC walks all of them repeatedly while the cache grows. A ``LazyObject`` keeps
each top-level object/array value except ``metadata`` as its compact JSON bytes (about the
wire size) and decodes it the first time it is read, so a cached pod holds 3 tracked
containers and roughly its JSON size until something reads its ``spec`` or ``status``.

A ``LazyObject`` is a ``dict``: every read (``[]``, ``get``, iteration, ``items``,
``values``, ``==``, ``copy``, ``repr``, ``json.dumps``, ``dict(obj)``, ``{**obj}``,
``copy.deepcopy``, pickling) sees decoded values; ``orjson.dumps`` writes the stored JSON
as is. The first read of a lazy key decodes it and keeps the result (later reads return
the same object). Scalar top-level values (``kind``, ``apiVersion``) are decoded eagerly
and interned.

Thread-safety: reads from any number of threads are safe (decoding a key happens once,
under a module lock). Writes follow ``dict`` rules (cached objects are never written).
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Iterator
from typing import Any, Final

import msgspec
import orjson

__all__ = ["LazyObject", "loads_event", "loads_list"]

_LOCK: Final = threading.Lock()
_OPEN: Final = (b"{", b"[")


_INTERN_MAX: Final = 64
# metadata values shared by many objects (label and annotation values are interned too).
_INTERN_FIELDS: Final = ("namespace", "generateName")


def _intern_metadata(meta: dict[str, Any]) -> None:
    """Share the strings many objects repeat (keys are shared by orjson's key cache)."""
    intern = sys.intern
    for field in _INTERN_FIELDS:
        value = dict.get(meta, field)
        if isinstance(value, str) and len(value) <= _INTERN_MAX:
            dict.__setitem__(meta, field, intern(value))
    for field in ("labels", "annotations"):
        values = dict.get(meta, field)
        if isinstance(values, dict):
            for k, v in values.items():
                if isinstance(v, str) and len(v) <= _INTERN_MAX:
                    values[k] = intern(v)
    owners = dict.get(meta, "ownerReferences")
    if isinstance(owners, list):
        for owner in owners:
            if isinstance(owner, dict):
                for k in ("apiVersion", "kind", "name"):
                    v = owner.get(k)
                    if isinstance(v, str):
                        owner[k] = intern(v)


class _Event(msgspec.Struct):
    type: str
    object: dict[str, msgspec.Raw]


_EVENT_DECODER: Final = msgspec.json.Decoder(_Event)
_FIELDS_DECODER: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ITEMS_DECODER: Final = msgspec.json.Decoder(list[dict[str, msgspec.Raw]])


class LazyObject(dict[str, Any]):
    """A decoded JSON object whose nested values (but ``metadata``) decode on first read.

    Invariants: ``_raw`` maps each not yet decoded key to its JSON bytes, and the ``dict``
    holds an ``orjson.Fragment`` of those bytes under that key; ``_raw`` is ``None`` once
    every key is decoded. Everything else is a plain, fully decoded value.
    """

    __slots__ = ("_raw",)

    _raw: dict[str, bytes] | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._raw = None

    @classmethod
    def from_raw(cls, fields: dict[str, msgspec.Raw], *, top: bool = True) -> LazyObject:
        """Build from an object split into raw JSON values (copied, so the line or page
        they came from can be freed). ``top``: every object/array value but ``metadata``
        stays raw, and ``metadata`` is built with only its ``managedFields`` raw (so
        dropping them never decodes them); else only ``managedFields`` stays raw."""
        obj = cls()
        raw: dict[str, bytes] = {}
        for key, value in fields.items():
            data = bytes(value)  # a copy: the line or page it came from can be freed
            lazy = (key != "metadata" and data[:1] in _OPEN) if top else key == "managedFields"
            if lazy:
                raw[key] = data
                dict.__setitem__(obj, key, orjson.Fragment(data))
            elif top and key == "metadata" and data[:1] == b"{":
                meta = cls.from_raw(_FIELDS_DECODER.decode(data), top=False)
                _intern_metadata(meta)
                dict.__setitem__(obj, key, meta)
            else:
                decoded = orjson.loads(data)
                if isinstance(decoded, str) and len(decoded) <= _INTERN_MAX:
                    decoded = sys.intern(decoded)
                dict.__setitem__(obj, key, decoded)
        obj._raw = raw or None
        return obj

    # ---- decoding ----------------------------------------------------------------------

    def _decode(self, key: str) -> None:
        with _LOCK:
            raw = self._raw
            if raw is None or key not in raw:
                return  # another thread got here first
            dict.__setitem__(self, key, orjson.loads(raw.pop(key)))
            if not raw:
                self._raw = None

    def materialize(self) -> LazyObject:
        """Decode every remaining key now; return ``self``."""
        raw = self._raw
        if raw is not None:
            for key in list(raw):
                self._decode(key)
        return self

    def is_decoded(self, key: str) -> bool:
        """Whether ``key`` holds a decoded value (diagnostics and tests)."""
        raw = self._raw
        return raw is None or key not in raw

    # ---- reads ---------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        raw = self._raw
        if raw is not None and key in raw:
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
        self._raw = None
        dict.clear(self)

    def _forget(self, key: str) -> None:
        with _LOCK:
            raw = self._raw
            if raw is not None:
                raw.pop(key, None)
                if not raw:
                    self._raw = None


def loads_event(line: bytes) -> Any:
    """Decode one watch line: ``{"type": str, "object": LazyObject}`` for a well-formed
    event; anything else goes through ``orjson.loads`` (so malformed JSON raises
    ``orjson.JSONDecodeError`` and odd shapes reach the caller's checks unchanged)."""
    try:
        event = _EVENT_DECODER.decode(line)
    except msgspec.MsgspecError:
        return orjson.loads(line)
    return {"type": event.type, "object": LazyObject.from_raw(event.object)}


def loads_list(data: bytes) -> Any:
    """Decode a LIST response: its ``items`` as ``LazyObject``s, the rest as usual.

    Anything that is not a JSON object with an array of objects under ``items`` goes
    through ``orjson.loads`` unchanged (malformed JSON raises ``orjson.JSONDecodeError``).
    """
    try:
        fields = _FIELDS_DECODER.decode(data)
        raw_items = fields.get("items")
        items = None if raw_items is None else [
            LazyObject.from_raw(item) for item in _ITEMS_DECODER.decode(raw_items)]
    except msgspec.MsgspecError:
        return orjson.loads(data)
    page = {key: orjson.loads(bytes(value)) for key, value in fields.items() if key != "items"}
    if items is not None:
        page["items"] = items
    return page
