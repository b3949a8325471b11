"""The two ways a Reflector lists (fetches the full state): a paginated LIST or a WatchList."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    TransportError,
)

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(slots=True)
class Page:
    """A whole LIST: items (with kind/apiVersion set), its resourceVersion, page count."""

    items: list[dict[str, Any]] = field(default_factory=list)
    resource_version: str = ""
    paginated: bool = False
    pages: int = 0


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


def _absorb(result: Page, page: dict[str, Any]) -> str | None:
    items = page.get("items") or []
    kind = str(page.get("kind") or "")
    if kind.endswith("List"):
        kind, api_version = kind[:-4], page.get("apiVersion")
        for item in items:  # list items come without kind/apiVersion; watch events have them
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
    result.items.extend(items)
    result.pages += 1
    token = (page.get("metadata") or {}).get("continue")
    return str(token) if token else None


def list_pages(lw: ListerWatcher, *, rv: str, limit: int | None,
               interrupter: Interrupter) -> Page:
    """LIST everything at ``rv``, following continue tokens (client-go's pager).

    Continuation requests carry no resourceVersion. If a continuation expires, one
    unpaginated LIST at the original ``rv`` replaces the partial result.

    Raises:
        ResourceExpiredError: the first page is expired or "too large resource version".
        Interrupted: the interrupter fired (the LIST is abandoned at once).
    """
    result = Page()
    first = _fetch(lw, interrupter, resource_version=rv, resource_version_match=None,
                   limit=limit, continue_token=None)
    result.resource_version = str((first.get("metadata") or {}).get("resourceVersion") or "")
    token = _absorb(result, first)
    while token:
        result.paginated = True
        try:
            page = _fetch(lw, interrupter, resource_version=None, resource_version_match=None,
                          limit=limit, continue_token=token)
        except ResourceExpiredError:
            whole = Page(paginated=True)
            full = _fetch(lw, interrupter, resource_version=rv, resource_version_match=None,
                          limit=None, continue_token=None)
            whole.resource_version = str((full.get("metadata") or {}).get("resourceVersion"))
            _absorb(whole, full)
            return whole
        token = _absorb(result, page)
    return result


@dataclass(slots=True)
class WatchListResult:
    """What a WatchList attempt produced: the open stream (None on failure) and its items.

    ``unsupported`` means the server rejected the request: do not try WatchList again.
    """

    stream: EventStream | None = None
    items: list[dict[str, Any]] = field(default_factory=list)
    resource_version: str = ""
    unsupported: bool = False


def watch_list(lw: ListerWatcher, *, rv: str, deadline: float, inactivity: float,
               timeout_seconds: int, clock: Clock, interrupter: Interrupter,
               log: structlog.typing.FilteringBoundLogger, kind: str | None) -> WatchListResult:
    """Stream the initial state (``sendInitialEvents=true``) until the end bookmark.

    Returns the still-open stream so the watch continues on it. Progress, not total time,
    is judged: the attempt is abandoned when no byte arrives for ``deadline`` seconds (the
    socket's read timeout) or no initial (``ADDED``/``DELETED``) event for ``deadline``
    seconds — so a large list that keeps arriving is never cut off, and a server that
    ignores ``sendInitialEvents`` (no end bookmark ever; client-go would wait forever) is
    given up on. Any failure — rejected request, broken or malformed stream, ERROR event,
    no progress — closes the stream and returns no stream, so the caller LISTs this time;
    only a rejection (400/422) sets ``unsupported``.

    Raises:
        Interrupted: the interrupter fired; the stream is closed.
    """
    try:
        stream = interrupter.call(
            lambda: lw.watch(resource_version=rv, timeout_seconds=timeout_seconds,
                             send_initial_events=True, resource_version_match="NotOlderThan",
                             inactivity_timeout=min(inactivity, deadline)),
            discard=lambda late: late.close())
    except (BadRequestError, InvalidError) as exc:
        log.info("watch_list_unsupported", error=str(exc))
        return WatchListResult(unsupported=True)
    except (APIError, TransportError) as exc:
        log.warning("watch_list_failed", error=str(exc), error_type=type(exc).__name__)
        return WatchListResult()
    started = clock.now()
    progress = [started]
    objects: dict[str, dict[str, Any]] = {}
    try:
        with interrupter.closing(stream.close):
            rv_end = _initial_events(
                stream, objects, kind=kind, progressed=lambda: progress.__setitem__(
                    0, clock.now()),
                stalled=lambda: clock.now() - progress[0] > deadline)
    except Exception as exc:
        stream.close()
        if interrupter.interrupted:
            raise Interrupted("watch list stopped") from exc
        log.warning("watch_list_failed", error=str(exc), error_type=type(exc).__name__,
                    items=len(objects))
        return WatchListResult()
    if interrupter.interrupted:
        stream.close()
        raise Interrupted("watch list stopped")
    if rv_end is not None:
        log.info("watch_list_completed", items=len(objects), resource_version=rv_end,
                 seconds=round(clock.now() - started, 3))
        # The stream goes on as the watch: from now on the normal deadline holds.
        set_timeout = getattr(stream, "set_inactivity_timeout", None)
        if set_timeout is not None:
            set_timeout(inactivity)
        return WatchListResult(stream, list(objects.values()), rv_end)
    stream.close()
    log.warning("watch_list_timeout", deadline=deadline, items=len(objects),
                seconds=round(clock.now() - started, 3))
    return WatchListResult()


def _initial_events(stream: EventStream, objects: dict[str, dict[str, Any]], *,
                    kind: str | None, progressed: Callable[[], None],
                    stalled: Callable[[], bool]) -> str | None:
    """Collect the initial events into ``objects``; return the end bookmark's RV, or None
    if the stream ended or made no progress (see ``watch_list``) for too long."""
    for event in stream:
        obj = event.object
        if event.type == "ERROR":
            raise api_error(200, obj)
        if event.type == "BOOKMARK":
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            if annotations.get(INITIAL_EVENTS_END) == "true":
                return str(obj["metadata"].get("resourceVersion") or "")
        elif event.type == "DELETED":
            objects.pop(meta_namespace_key(obj), None)
            progressed()
        elif event.type == "ADDED":
            if not kind or obj.get("kind") in (None, kind):
                objects[meta_namespace_key(obj)] = obj
            progressed()
        elif not kind or obj.get("kind") in (None, kind):  # MODIFIED: not an initial event
            objects[meta_namespace_key(obj)] = obj
        if stalled():
            return None
    return None
