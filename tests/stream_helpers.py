"""Watch-stream and LIST fakes shared by the reflector and informer unit tests (on sys.path
through pytest's ``pythonpath``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from pycontroller.errors import ResourceExpiredError
from pycontroller.testing._fake_lister_watcher import FakeListerWatcher


class GatedStream:
    """Delivers ``after`` events of ``inner``, then waits for ``gate`` before the rest."""

    def __init__(self, inner: Any, *, after: int, gate: threading.Event) -> None:
        self._inner, self._after, self._gate = inner, after, gate

    def __iter__(self) -> Iterator[Any]:
        for i, event in enumerate(self._inner):
            if i == self._after:
                assert self._gate.wait(10)
            yield event

    def close(self) -> None:
        self._inner.close()


def expire_continuations(lw: FakeListerWatcher) -> None:
    """Make every LIST continuation expire (410) after it was recorded; the page cap is
    lifted at the first one, so the unpaginated LIST that follows returns everything."""
    original = lw.list

    def expiring(**kw: Any) -> dict[str, Any]:
        if kw["continue_token"]:
            lw.page_size_cap = None
            original(**kw)  # record the call
            raise ResourceExpiredError(410, "Expired", "continue expired")
        return original(**kw)

    lw.list = expiring  # type: ignore[method-assign]
