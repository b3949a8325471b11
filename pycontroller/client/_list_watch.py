"""ListerWatcher: what a Reflector needs from the server, bound to one resource and scope."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from pycontroller.client._kube import Client
from pycontroller.client._resource import Resource
from pycontroller.client._watch import WatchEvent


class EventStream(Protocol):
    """An open watch: iterate for events; ``close()`` may be called from another thread."""

    def __iter__(self) -> Iterator[WatchEvent]: ...

    def close(self) -> None:
        """Abort the stream."""
        ...


class ListerWatcher(Protocol):
    """LIST one page and open a WATCH for one resource in one scope.

    Implementations raise ``pycontroller.errors`` types only.
    """

    @property
    def description(self) -> str:
        """A short name for logs, e.g. ``v1/pods ns=default``."""
        ...

    def list(self, *, resource_version: str | None, resource_version_match: str | None,
             limit: int | None, continue_token: str | None) -> dict[str, Any]:
        """Return one decoded list page."""
        ...

    def watch(self, *, resource_version: str | None, timeout_seconds: int,
              send_initial_events: bool | None, resource_version_match: str | None,
              inactivity_timeout: float) -> EventStream:
        """Open a watch with bookmarks allowed."""
        ...


@dataclass(frozen=True, slots=True)
class ListWatch:
    """The ListerWatcher for ``resource`` through ``client``, optionally scoped.

    A namespace is checked on construction (as every URL path segment), so a bad one
    fails here rather than in every retry of a reflector.

    Thread-safety: thread-safe (stateless over a thread-safe Client).

    Raises:
        ValueError: ``namespace`` is ``.`` or ``..`` or contains ``/`` or ``%``, or is
            given for a cluster-scoped resource.
    """

    client: Client
    resource: Resource
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None

    def __post_init__(self) -> None:
        if self.namespace:
            self.resource.path(self.namespace)  # raises ValueError when invalid

    @property
    def description(self) -> str:
        """``apiVersion/plural`` plus the scope."""
        parts = [str(self.resource)]
        if self.namespace:
            parts.append(f"ns={self.namespace}")
        if self.label_selector:
            parts.append(f"labels={self.label_selector}")
        if self.field_selector:
            parts.append(f"fields={self.field_selector}")
        return " ".join(parts)

    def list(self, *, resource_version: str | None, resource_version_match: str | None,
             limit: int | None, continue_token: str | None) -> dict[str, Any]:
        """One LIST page."""
        page: dict[str, Any] = self.client.list(
            self.resource, self.namespace, label_selector=self.label_selector,
            field_selector=self.field_selector, limit=limit, continue_token=continue_token,
            resource_version=resource_version, resource_version_match=resource_version_match,
        )
        return page

    def watch(self, *, resource_version: str | None, timeout_seconds: int,
              send_initial_events: bool | None, resource_version_match: str | None,
              inactivity_timeout: float) -> EventStream:
        """A WATCH with bookmarks."""
        return self.client.watch(
            self.resource, self.namespace, resource_version=resource_version,
            allow_bookmarks=True, timeout_seconds=timeout_seconds,
            label_selector=self.label_selector, field_selector=self.field_selector,
            send_initial_events=send_initial_events,
            resource_version_match=resource_version_match,
            inactivity_timeout=inactivity_timeout,
        )
