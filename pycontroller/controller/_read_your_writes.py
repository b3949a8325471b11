"""Read your own writes: a reconcile never runs on a cache older than its controller's writes.

No Go or Python peer has this (controller-runtime #1464/#3320; kopf sleeps up to 5 s).
Data flow: a write through the controller's client during the reconcile of key ``K``
→ :meth:`ReadYourWrites.record` (object, resourceVersion the server returned) → the
informer delivers that version → :meth:`ReadYourWrites.observe` forgets the expectation
→ the next reconcile of ``K`` first calls :meth:`ReadYourWrites.wait`, which returns at
once when every object ``K`` wrote is cached at (at least) the written version, or after
the bound.

Resource versions are compared as integers when both parse by KEP-5504's rules (as
client-go's ``CompareResourceVersion``: non-empty ASCII digits, no leading zero, not
"0"); otherwise only equality counts as caught up.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final, final

from pycontroller._util._clock import Clock
from pycontroller.cache._keys import meta_namespace_key
from pycontroller.client._resource import Resource
from pycontroller.metrics._provider import Counter

Obj = Mapping[str, Any]
Ref = tuple[Resource, str]
CachedGetter = Callable[[Resource, str], Obj | None]
_GONE: Final = ""  # expectation "the object is deleted"
_POLL: Final = 0.1  # re-check the cache at least this often while waiting


def parse_resource_version(rv: object) -> int | None:
    """The integer value of ``rv`` if it is comparable per KEP-5504, else None."""
    if not isinstance(rv, str) or not rv or not rv.isascii() or not rv.isdigit():
        return None
    if rv[0] == "0":
        return None  # "0" and leading zeros are not comparable
    return int(rv)


def compare_resource_versions(a: str, b: str) -> int | None:
    """-1, 0 or 1 as ``a`` is older than, equal to or newer than ``b``; None if not comparable."""
    x, y = parse_resource_version(a), parse_resource_version(b)
    if x is None or y is None:
        return None
    return (x > y) - (x < y)


def at_least(seen: str, written: str) -> bool:
    """Whether a cache holding version ``seen`` has caught up with the write ``written``."""
    order = compare_resource_versions(seen, written)
    return seen == written if order is None else order >= 0


def _rv(obj: Obj | None) -> str:
    meta = obj.get("metadata") if obj is not None else None
    rv = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    return rv if isinstance(rv, str) else ""


@final
class ReadYourWrites:
    """Per-controller record of its writes the cache has not shown yet.

    Contract: after ``record(K, res, key, rv)``, ``wait(K)`` returns only when the cache
    (``cached(res, key)``) holds that object at ``rv`` or newer (or without it, for a
    recorded delete), when ``timeout`` (of ``clock``) has passed, or when ``close`` was
    called. An object missing from the cache also counts as caught up once the informer
    has delivered any event of that resource at ``rv`` or newer: the cache then reflects
    the write, and the object was deleted after it (a write that removes the last
    finalizer, say, whose delete event may arrive before the write is recorded).
    Writes to resources ``cached`` does not know (returns ``None`` for a resource the
    controller does not watch: pass ``watched``) are not recorded. A delivered deletion
    satisfies a written version only at that version or newer (a deletion below it is of
    an older object under the same name); only a deletion satisfies a recorded delete.
    Two writes of one object expect the newer version, whichever was recorded last.

    Invariants: ``ref in _expect`` ⇔ ``ref in _writers``; ``ref in _by_key[k]`` ⇒
    ``k in _writers[ref]``. Memory is bounded: an expectation is dropped when the informer
    delivers the version, when a wait for it times out, or ``max_age`` after it was
    recorded, whichever comes first.

    Thread-safety: thread-safe.
    """

    def __init__(self, *, cached: CachedGetter, watched: Callable[[Resource], bool],
                 clock: Clock, timeout: float, waits: Counter, timeouts: Counter,
                 max_age: float | None = None) -> None:
        self._cached = cached
        self._watched = watched
        self._clock = clock
        self.timeout = timeout
        self._max_age = max_age if max_age is not None else max(60.0, 4 * timeout)
        self._waits = waits
        self._timeouts = timeouts
        self._cond = threading.Condition(threading.Lock())
        # ref -> (written rv or _GONE, clock time recorded); oldest first. guarded by _cond
        self._expect: OrderedDict[Ref, tuple[str, float]] = OrderedDict()
        self._writers: dict[Ref, set[str]] = {}  # guarded by _cond
        self._by_key: dict[str, set[Ref]] = {}  # guarded by _cond
        self._closed = False  # guarded by _cond
        # resource -> newest comparable resourceVersion its informer delivered. guarded by _cond
        self._delivered: dict[Resource, int] = {}

    def __len__(self) -> int:
        """Expectations currently held."""
        with self._cond:
            return len(self._expect)

    def record(self, reconcile_key: str, resource: Resource, obj: Obj | None,
               obj_key: str, *, deleted: bool = False) -> None:
        """Remember that the reconcile of ``reconcile_key`` wrote ``obj`` (the server's answer).

        ``deleted``: the write was a DELETE that removed the object at once.
        """
        if not self._watched(resource):
            return
        want = _GONE if deleted else _rv(obj)
        if not deleted and not want:
            return
        if self._satisfied(resource, obj_key, want):
            return
        ref = (resource, obj_key)
        now = self._clock.now()
        with self._cond:
            current = self._expect.get(ref)
            if (current is not None and _GONE not in (current[0], want)
                    and compare_resource_versions(current[0], want) == 1):
                want = current[0]  # two writers: the one with the older version recorded last
            self._expect[ref] = (want, now)
            self._expect.move_to_end(ref)
            self._writers.setdefault(ref, set()).add(reconcile_key)
            self._by_key.setdefault(reconcile_key, set()).add(ref)
            while self._expect:
                oldest, (_, since) = next(iter(self._expect.items()))
                if now - since <= self._max_age:
                    break
                self._forget_locked(oldest)

    def observe(self, resource: Resource, obj: Obj, deleted: bool) -> None:
        """The informer delivered ``obj`` (after caching it); forget what it satisfies."""
        ref = (resource, meta_namespace_key(obj))
        seen = parse_resource_version(_rv(obj))
        with self._cond:
            if seen is not None and seen > self._delivered.get(resource, 0):
                self._delivered[resource] = seen
            expected = self._expect.get(ref)
            if expected is None:
                return
            want, seen_rv = expected[0], _rv(obj)
            if want == _GONE:
                done = deleted  # an add or update, even a late one, leaves it cached
            else:  # a deletion below the written version is an older object's (re-created)
                order = compare_resource_versions(seen_rv, want)
                done = (deleted or seen_rv == want) if order is None else order >= 0
            if done:
                self._forget_locked(ref)
                self._cond.notify_all()

    def wait(self, reconcile_key: str) -> bool:
        """Block until the cache shows every write of ``reconcile_key``; False on timeout.

        Returns True at once when nothing is pending, and when ``close`` releases it (the
        caller must then check ``closed``: the writes may not be cached). Counts a wait
        and, when the bound is hit, a timeout; the expectations that timed out are dropped.
        """
        deadline: float | None = None
        while True:
            with self._cond:
                pending = [(ref, self._expect[ref][0])
                           for ref in self._by_key.get(reconcile_key, ())]
            # The cache is read without our lock held (never hold two locks).
            done = [(ref, want) for ref, want in pending if self._satisfied(*ref, want)]
            with self._cond:
                for ref, want in done:
                    if self._expect.get(ref, ("?",))[0] == want:
                        self._forget_locked(ref)
                remaining = list(self._by_key.get(reconcile_key, ()))
                if not remaining or self._closed:
                    return True
                now = self._clock.now()
                if deadline is None:
                    deadline = now + self.timeout
                    self._waits.inc()
                if now >= deadline:
                    for ref in remaining:
                        self._forget_locked(ref)
                    self._timeouts.inc()
                    return False
                self._clock.wait(self._cond, min(_POLL, deadline - now))

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called: a ``wait`` that returned may not have seen its writes."""
        with self._cond:
            return self._closed

    def close(self) -> None:
        """Release every waiter (the controller is stopping); they must check ``closed``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _satisfied(self, resource: Resource, obj_key: str, want: str) -> bool:
        cached = self._cached(resource, obj_key)
        if want == _GONE:
            return cached is None
        if cached is not None:
            return at_least(_rv(cached), want)
        written = parse_resource_version(want)
        with self._cond:  # gone: fine once the informer is past the write
            return written is not None and self._delivered.get(resource, 0) >= written

    def _forget_locked(self, ref: Ref) -> None:
        self._expect.pop(ref, None)
        for key in self._writers.pop(ref, ()):
            refs = self._by_key.get(key)
            if refs is not None:
                refs.discard(ref)
                if not refs:
                    del self._by_key[key]
