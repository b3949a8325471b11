"""Test helpers: the pytest plugin (registered via ``pytest11``) and fakes."""

from pycontroller.testing._fake_clock import FakeClock

__all__ = ["FakeClock"]
