"""Controllers, their declarations (watches, predicates) and the Manager that runs them."""

from __future__ import annotations

from pycontroller.controller._controller import Controller, Requeue
from pycontroller.controller._manager import Manager
from pycontroller.controller._predicates import (
    Predicate,
    and_,
    annotations_changed,
    generation_changed,
    labels_changed,
    not_,
    or_,
    resource_version_changed,
    where,
)
from pycontroller.controller._watches import Owns, Watch

__all__ = [
    "Controller",
    "Manager",
    "Owns",
    "Predicate",
    "Requeue",
    "Watch",
    "and_",
    "annotations_changed",
    "generation_changed",
    "labels_changed",
    "not_",
    "or_",
    "resource_version_changed",
    "where",
]

for _name in ("Owns", "Predicate", "Watch", "and_", "or_", "not_", "where"):
    globals()[_name].__module__ = __name__
del _name
