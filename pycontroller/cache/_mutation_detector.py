"""Opt-in detection of code that mutates cached objects (≙ tools/cache/mutation_detector.go).

Data flow: the informer hands every object it writes into its indexer to
:meth:`CacheMutationDetector.add_object`; its processing loop calls :meth:`maybe_check`, and
tests call :meth:`check`. Cached objects are shared by every handler, lister and reconciler,
so an in-place change corrupts the indexes and everyone else's view; this finds it.

Enabled by ``enabled=True`` or the environment variable
``PYCONTROLLER_CACHE_MUTATION_DETECTOR=1`` (the pytest plugin turns it on), like client-go's
``KUBE_CACHE_MUTATION_DETECTOR``. Costs a JSON encoding per object added and per check, and
keeps every added object alive: a debugging aid, not for production.
"""

from __future__ import annotations

import copy
import hashlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, final

import orjson
import structlog

from pycontroller._util._clock import REAL_CLOCK, Clock
from pycontroller.cache._keys import meta_namespace_key
from pycontroller.client._lazy import LazyObject

__all__ = ["ENV_CACHE_MUTATION_DETECTOR", "CacheMutationDetector"]

_log = structlog.get_logger(__name__)

ENV_CACHE_MUTATION_DETECTOR: Final = "PYCONTROLLER_CACHE_MUTATION_DETECTOR"
"""Environment variable that turns the detector on when set to ``1``/``true``/``yes``/``on``."""

_TRUTHY: Final = frozenset({"1", "true", "yes", "on"})


def _env_enabled() -> bool:
    return os.environ.get(ENV_CACHE_MUTATION_DETECTOR, "").strip().lower() in _TRUTHY


@dataclass(slots=True)
class _Record:
    obj: object
    fingerprint: bytes | None  # digest of the canonical JSON; None when not JSON-encodable
    copied: object  # deep copy, only when fingerprint is None


def _fingerprint(obj: object) -> bytes | None:
    if isinstance(obj, LazyObject):
        obj.materialize()  # else a later read would change the encoding, not the content
    try:
        encoded = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    return hashlib.blake2b(encoded, digest_size=16).digest()


def _describe(obj: object) -> str:
    if isinstance(obj, Mapping):
        try:
            return meta_namespace_key(obj)
        except (TypeError, ValueError):
            pass
    return f"<{type(obj).__name__} at {id(obj):#x}>"


_detected_lock = threading.Lock()
_detected: list[str] = []  # guarded by _detected_lock; only grows while a detector is on


def detected_mutations() -> list[str]:
    """Every key any detector in this process reported so far (the pytest plugin fails a
    test during which this grows)."""
    with _detected_lock:
        return list(_detected)


@final
class CacheMutationDetector:
    """Remembers what cached objects looked like and reports any that changed since.

    Contract: :meth:`add_object` records a fingerprint (BLAKE2b of the sorted-keys orjson
    encoding; a deep copy for objects orjson cannot encode) of each object at the time it
    entered the cache. :meth:`check` recomputes them; for each changed object it logs the
    event ``cache_mutation_detected`` (error level, with ``key``) and then, if
    ``raise_on_mutation`` (the default), raises ``AssertionError`` naming the keys — the
    analogue of client-go's panic. A reported object is forgotten, so it is reported once.
    When disabled every method is a cheap no-op.

    Thread-safety: thread-safe. Fingerprints are computed and logs written without the lock.

    Invariants: ``_records`` only grows between checks; each object is recorded at most once
    at a time (by identity).
    """

    def __init__(
        self,
        *,
        enabled: bool | None = None,
        name: str = "",
        period: float = 1.0,
        raise_on_mutation: bool = True,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        """Create a detector.

        Args:
            enabled: on/off; ``None`` reads ``PYCONTROLLER_CACHE_MUTATION_DETECTOR``.
            name: informer name, added to log events.
            period: seconds between checks done by :meth:`maybe_check`.
            raise_on_mutation: raise ``AssertionError`` after logging mutations.
            clock: time source for :meth:`maybe_check`.
        """
        self._enabled = _env_enabled() if enabled is None else enabled
        self._name = name
        self._period = period
        self._raise = raise_on_mutation
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[int, _Record] = {}  # guarded by _lock; id(obj) -> record
        self._next_check = clock.now() + period  # guarded by _lock

    @property
    def enabled(self) -> bool:
        """Whether the detector records and checks anything."""
        return self._enabled

    def add_object(self, obj: object) -> None:
        """Record the current content of ``obj``, which just entered the cache."""
        if not self._enabled:
            return
        fingerprint = _fingerprint(obj)
        copied = copy.deepcopy(obj) if fingerprint is None else None
        with self._lock:
            self._records[id(obj)] = _Record(obj, fingerprint, copied)

    def check(self) -> list[str]:
        """Compare every recorded object with its recording.

        Returns:
            The keys (or descriptions) of mutated objects; empty if none.

        Raises:
            AssertionError: some object was mutated and ``raise_on_mutation`` is set.
        """
        if not self._enabled:
            return []
        with self._lock:
            records = list(self._records.items())
        mutated: list[tuple[int, str]] = []
        for ident, record in records:
            if _changed(record):
                mutated.append((ident, _describe(record.obj)))
        if not mutated:
            return []
        with self._lock:
            for ident, _ in mutated:
                self._records.pop(ident, None)
        keys = [key for _, key in mutated]
        with _detected_lock:
            _detected.extend(keys)
        for key in keys:
            _log.error("cache_mutation_detected", key=key, informer=self._name)
        if self._raise:
            raise AssertionError(f"cached objects were mutated: {keys}")
        return keys

    def maybe_check(self) -> list[str]:
        """Run :meth:`check` if ``period`` seconds passed since the last periodic check.

        Meant to be called often from a loop the caller owns (e.g. the informer's pop loop).
        """
        if not self._enabled:
            return []
        now = self._clock.now()
        with self._lock:
            if now < self._next_check:
                return []
            self._next_check = now + self._period
        return self.check()

    def __len__(self) -> int:
        """Return the number of recorded objects."""
        with self._lock:
            return len(self._records)


def _changed(record: _Record) -> bool:
    if record.fingerprint is not None:
        return _fingerprint(record.obj) != record.fingerprint
    return bool(record.obj != record.copied)
