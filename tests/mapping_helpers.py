"""A read-only Mapping that is no dict, for the paths that take any Mapping (on sys.path
through pytest's ``pythonpath``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class ReadOnly(Mapping[str, Any]):
    """A copy of ``data`` as a Mapping but no dict: what a user's ListerWatcher or a
    transform's read-only metadata may hand the informer."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)
