"""Test helpers: the pytest plugin (registered via ``pytest11``) and fakes."""

from pycontroller._util._wait import wait_for
from pycontroller.testing._fake_clock import FakeClock

__all__ = ["FakeClock", "wait_for"]
