"""Controllers and the Manager that runs them."""

from __future__ import annotations

from pycontroller.controller._controller import Controller, Requeue
from pycontroller.controller._manager import Manager

__all__ = ["Controller", "Manager", "Requeue"]
