"""The two ways a Reflector lists (fetches the full state): a paginated LIST or a WatchList.

Both hand every listed object to a :class:`Relist` as it arrives (LIST: page by page;
WatchList: event by event) instead of collecting the whole list first; the Reflector calls
``finish`` once the list is complete. The informer's FIFO streams it into the cache
(``RealFIFO.start_relist``); :class:`CollectedRelist` collects it for stores that only take
a whole list (``replace``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, final

import structlog

from pycontroller._util._clock import Clock
from pycontroller.cache._interrupt import Interrupted, Interrupter
from pycontroller.cache._keys import meta_namespace_key
from pycontroller.client._errors import api_error
from pycontroller.client._list_watch import EventStream, ListerWatcher
from pycontroller.errors import (
    APIError,
    BadRequestError,
    InvalidError,
    ResourceExpiredError,
)

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


class Relist(Protocol):
    """Where a list goes, object by object (see ``StreamedRelist`` for the full contract).

    Thread-safety: used by one thread (the Reflector's).
    """

    def add(self, obj: dict[str, Any]) -> None:
        """A listed object, in server order."""
        ...

    def remove(self, obj: dict[str, Any]) -> None:
        """``obj``'s key is no longer part of the list (a DELETED initial event)."""
        ...

    def restart(self) -> None:
        """The list starts over: forget what was listed so far."""
        ...

    def finish(self, resource_version: str) -> None:
        """The list is complete at ``resource_version``."""
        ...


@final
class CollectedRelist:
    """A :class:`Relist` for a store that takes a whole list at once: objects are kept by
    key (a later one replaces an earlier one in place; an object without a key is kept
    as is, for the store to judge) and handed to ``replace`` at ``finish``.

    Thread-safety: used by one thread.
    """

    def __init__(self, replace: Callable[[list[dict[str, Any]], str], None]) -> None:
        self._replace = replace
        self._objects: dict[object, dict[str, Any]] = {}

    def add(self, obj: dict[str, Any]) -> None:
        """Keep ``obj``."""
        self._objects[_key_or_identity(obj)] = obj

    def remove(self, obj: dict[str, Any]) -> None:
        """Forget the object with ``obj``'s key."""
        self._objects.pop(_key_or_identity(obj), None)

    def restart(self) -> None:
        """Forget everything kept."""
        self._objects = {}

    def finish(self, resource_version: str) -> None:
        """``replace`` with everything kept, in list order."""
        objects, self._objects = list(self._objects.values()), {}
        self._replace(objects, resource_version)


def _key_or_identity(obj: dict[str, Any]) -> object:
    try:
        return meta_namespace_key(obj)
    except (TypeError, ValueError):
        return id(obj)  # no key: kept for the store, which logs and drops it


@dataclass(slots=True)
class ListStats:
    """What a LIST delivered: its resourceVersion, whether paginated, pages and items."""

    resource_version: str = ""
    paginated: bool = False
    pages: int = 0
    items: int = 0


def _too_large(exc: APIError) -> bool:
    causes = ((exc.body or {}).get("details") or {}).get("causes") or []
    if any(c.get("reason") == "ResourceVersionTooLarge" for c in causes):
        return True
    return "too large resource version" in exc.message.lower()


def _fetch(lw: ListerWatcher, interrupter: Interrupter, **kwargs: Any) -> dict[str, Any]:
    try:
        return interrupter.call(lambda: lw.list(**kwargs))
    except ResourceExpiredError:
        raise
    except APIError as exc:
        if _too_large(exc):
            raise ResourceExpiredError(410, "TooLargeResourceVersion", exc.message,
                                       exc.body) from exc
        raise


def _absorb(stats: ListStats, page: dict[str, Any], relist: Relist) -> str | None:
    items = page.get("items") or []
    kind = str(page.get("kind") or "")
    if kind.endswith("List"):
        kind, api_version = kind[:-4], page.get("apiVersion")
        for item in items:  # list items come without kind/apiVersion; watch events have them
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
    for item in items:
        relist.add(item)
    stats.items += len(items)
    stats.pages += 1
    token = (page.get("metadata") or {}).get("continue")
    return str(token) if token else None


def list_pages(lw: ListerWatcher, *, rv: str, limit: int | None,
               interrupter: Interrupter, relist: Relist) -> ListStats:
    """LIST everything at ``rv`` into ``relist``, following continue tokens (client-go's
    pager); each page goes to ``relist`` as it arrives. The caller calls ``finish``.

    Continuation requests carry no resourceVersion. If a continuation expires, ``relist``
    restarts and one unpaginated LIST at the original ``rv`` delivers the whole list.

    Raises:
        ResourceExpiredError: the first page is expired or "too large resource version"
            (nothing was delivered).
        Interrupted: the interrupter fired (the LIST is abandoned at once).
    """
    stats = ListStats()
    first = _fetch(lw, interrupter, resource_version=rv, resource_version_match=None,
                   limit=limit, continue_token=None)
    stats.resource_version = str((first.get("metadata") or {}).get("resourceVersion") or "")
    token = _absorb(stats, first, relist)
    del first  # its items now belong to the relist (or the cache) alone
    while token:
        stats.paginated = True
        try:
            page = _fetch(lw, interrupter, resource_version=None, resource_version_match=None,
                          limit=limit, continue_token=token)
        except ResourceExpiredError:
            relist.restart()
            whole = ListStats(paginated=True)
            full = _fetch(lw, interrupter, resource_version=rv, resource_version_match=None,
                          limit=None, continue_token=None)
            whole.resource_version = str((full.get("metadata") or {}).get("resourceVersion"))
            _absorb(whole, full, relist)
            return whole
        token = _absorb(stats, page, relist)
        del page
    return stats


@dataclass(slots=True)
class WatchListResult:
    """What a WatchList attempt produced: the open stream (None on failure), the number of
    initial objects it delivered, and the end bookmark's resourceVersion.

    ``unsupported`` means the server rejected the request: do not try WatchList again.
    """

    stream: EventStream | None = None
    items: int = 0
    resource_version: str = ""
    unsupported: bool = False


def watch_list(lw: ListerWatcher, *, rv: str, deadline: float, inactivity: float,
               timeout_seconds: int, clock: Clock, interrupter: Interrupter,
               log: structlog.typing.FilteringBoundLogger, kind: str | None,
               relist: Relist) -> WatchListResult:
    """Stream the initial state (``sendInitialEvents=true``) into ``relist`` until the end
    bookmark; the caller calls ``finish`` (only on success).

    Returns the still-open stream so the watch continues on it. Progress, not total time,
    is judged: the attempt is abandoned when no byte arrives for ``deadline`` seconds (the
    socket's read timeout) or no initial (``ADDED``/``DELETED``) event for ``deadline``
    seconds — so a large list that keeps arriving is never cut off, and a server that
    ignores ``sendInitialEvents`` (no end bookmark ever; client-go would wait forever) is
    given up on. Any failure — rejected request, broken or malformed stream, ERROR event,
    no progress — closes the stream and returns no stream, so the caller LISTs this time;
    only a rejection (400/422) sets ``unsupported``. Whatever reached ``relist`` before a
    failure stays there (real object versions; the caller abandons it).

    Raises:
        Interrupted: the interrupter fired; the stream is closed.
    """
    try:
        stream = interrupter.call(
            lambda: lw.watch(resource_version=rv, timeout_seconds=timeout_seconds,
                             send_initial_events=True, resource_version_match="NotOlderThan",
                             inactivity_timeout=min(inactivity, deadline)),
            discard=lambda late: late.close())
    except Interrupted:
        raise
    except (BadRequestError, InvalidError) as exc:
        log.info("watch_list_unsupported", error=str(exc))
        return WatchListResult(unsupported=True)
    except Exception as exc:  # any failure falls back to LIST (as in client-go)
        log.warning("watch_list_failed", error=str(exc), error_type=type(exc).__name__)
        return WatchListResult()
    started = clock.now()
    progress = [started]
    counted = _Counting(relist)
    try:
        with interrupter.closing(stream.close):
            rv_end = _initial_events(
                stream, counted, kind=kind, progressed=lambda: progress.__setitem__(
                    0, clock.now()),
                stalled=lambda: clock.now() - progress[0] > deadline)
    except Exception as exc:
        stream.close()
        if interrupter.interrupted:
            raise Interrupted("watch list stopped") from exc
        log.warning("watch_list_failed", error=str(exc), error_type=type(exc).__name__,
                    items=counted.items)
        return WatchListResult()
    if interrupter.interrupted:
        stream.close()
        raise Interrupted("watch list stopped")
    if rv_end is not None:
        log.info("watch_list_completed", items=counted.items, resource_version=rv_end,
                 seconds=round(clock.now() - started, 3))
        # The stream goes on as the watch: from now on the normal deadline holds.
        set_timeout = getattr(stream, "set_inactivity_timeout", None)
        if set_timeout is not None:
            set_timeout(inactivity)
        return WatchListResult(stream, counted.items, rv_end)
    stream.close()
    log.warning("watch_list_timeout", deadline=deadline, items=counted.items,
                seconds=round(clock.now() - started, 3))
    return WatchListResult()


@final
class _Counting:
    """Counts what goes into a relist (for the logs)."""

    def __init__(self, relist: Relist) -> None:
        self.relist = relist
        self.items = 0

    def add(self, obj: dict[str, Any]) -> None:
        self.relist.add(obj)
        self.items += 1

    def remove(self, obj: dict[str, Any]) -> None:
        self.relist.remove(obj)


def _kind(obj: Mapping[str, Any]) -> Any:
    # dict.get: a LazyObject keeps its kind decoded; other Mappings read as usual.
    return dict.get(obj, "kind") if isinstance(obj, dict) else obj.get("kind")


def _initial_events(stream: EventStream, relist: _Counting, *,
                    kind: str | None, progressed: Callable[[], None],
                    stalled: Callable[[], bool]) -> str | None:
    """Hand the initial events to ``relist``; return the end bookmark's RV, or None if the
    stream ended or made no progress (see ``watch_list``) for too long."""
    for event in stream:
        obj = event.object
        if event.type == "ADDED":  # (nearly every event: first, and no stall check after it)
            if not kind or _kind(obj) in (None, kind):
                relist.add(obj)
            progressed()
            continue
        if event.type == "ERROR":
            raise api_error(200, obj)
        if event.type == "BOOKMARK":
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            if annotations.get(INITIAL_EVENTS_END) == "true":
                return str(obj["metadata"].get("resourceVersion") or "")
        elif event.type == "DELETED":
            relist.remove(obj)
            progressed()
            continue
        elif not kind or _kind(obj) in (None, kind):  # MODIFIED: not initial
            relist.add(obj)
        if stalled():
            return None
    return None
