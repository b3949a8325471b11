"""The test kit: run a Manager in a test, wait on conditions, fake time and fake watches.

* :func:`run_manager` runs a ``Manager`` for a ``with`` block and stops it cleanly;
  the pytest plugin's ``kube_manager`` fixture wraps it for the real control plane.
* :func:`wait_for` polls a condition with a deadline (never ``sleep`` in a test).
* :class:`FakeClock` is manual time for rate limiters, delaying queues and leader election.
* :class:`FakeAPIServer` is an in-memory API server behind a real ``Client``, for unit
  tests of a reconcile without a control plane (what it models faithfully and what only
  approximately is in its module documentation).
* :class:`FakeListerWatcher` is an in-memory ``ListerWatcher`` whose watch streams
  (:class:`FakeStream`) the test feeds, cuts or breaks, for unit tests of informers.

The pytest plugin itself (``pycontroller.testing.pytest_plugin``) is registered through
the ``pytest11`` entry point; importing this package does not import pytest.
"""

from pycontroller.testing._fake_apiserver import FakeAPIServer
from pycontroller.testing._fake_clock import FakeClock
from pycontroller.testing._fake_lister_watcher import Call, FakeListerWatcher, FakeStream
from pycontroller.testing._run import run_manager, wait_for

__all__ = ["Call", "FakeAPIServer", "FakeClock", "FakeListerWatcher", "FakeStream",
           "run_manager", "wait_for"]
