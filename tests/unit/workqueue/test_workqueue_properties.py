"""Property-based tests of the queue invariants (hypothesis).

* no key is handed to two workers at once;
* no key is lost: every add is followed by a get of that key;
* de-duplication: a key is at most once in the queue, FIFO for distinct keys;
* a delayed key is never added before its (earliest) ready time, nor after it once the
  loop has seen that time.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from pycontroller.errors import ShutDownError
from pycontroller.testing._fake_clock import FakeClock
from pycontroller.workqueue import DelayingQueue, WorkQueue

KEYS = st.integers(min_value=0, max_value=6)


class WorkQueueMachine(RuleBasedStateMachine):
    """Drives a WorkQueue from one thread and checks it against client-go's model."""

    def __init__(self) -> None:
        super().__init__()
        self.q = WorkQueue[int]()
        self.queue: list[int] = []  # model: queued keys, in order
        self.dirty: set[int] = set()
        self.processing: set[int] = set()
        self.owed: set[int] = set()  # keys added since their last get
        self.shut = False

    @rule(k=KEYS)
    def add(self, k: int) -> None:
        self.q.add(k)
        if self.shut or k in self.dirty:
            return
        self.dirty.add(k)
        self.owed.add(k)
        if k not in self.processing:
            self.queue.append(k)

    @rule()
    def get(self) -> None:
        try:
            got = self.q.get(timeout=0)
        except ShutDownError:
            assert self.shut and not self.queue
            return
        if got is None:
            assert not self.queue
            return
        assert got not in self.processing, "key handed out while being processed"
        assert got == self.queue.pop(0), "not FIFO"
        self.dirty.discard(got)
        self.processing.add(got)
        self.owed.discard(got)

    @precondition(lambda self: bool(self.processing))
    @rule(data=st.data())
    def done(self, data: st.DataObject) -> None:
        k = data.draw(st.sampled_from(sorted(self.processing)))
        self.q.done(k)
        self.processing.discard(k)
        if k in self.dirty:
            self.queue.append(k)

    @rule(k=KEYS)
    def spurious_done(self, k: int) -> None:
        if k not in self.processing:
            self.q.done(k)  # must change nothing

    @precondition(lambda self: not self.shut)
    @rule()
    def shut_down(self) -> None:
        self.q.shut_down()
        self.shut = True

    @invariant()
    def deduplicated(self) -> None:
        assert len(self.q) == len(self.queue) == len(set(self.queue))

    def teardown(self) -> None:
        # No key lost: finish everything in flight, then drain.
        for k in sorted(self.processing):
            self.q.done(k)
        self.q.shut_down()
        delivered: list[int] = []
        while True:
            try:
                k = self.q.get()
            except ShutDownError:
                break
            delivered.append(k)
            self.q.done(k)
        assert len(delivered) == len(set(delivered))
        assert self.owed <= set(delivered), f"lost keys: {self.owed - set(delivered)}"


TestWorkQueueMachine = WorkQueueMachine.TestCase
TestWorkQueueMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@dataclass(frozen=True)
class AddAfter:
    key: int
    delay: float


@dataclass(frozen=True)
class Add:
    key: int


@dataclass(frozen=True)
class Step:
    seconds: float


OPS = st.one_of(
    st.builds(AddAfter, KEYS, st.one_of(
        st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0, 10.0]),
        st.floats(min_value=0.001, max_value=20.0),
    )),
    st.builds(Add, KEYS),
    st.builds(Step, st.one_of(
        st.sampled_from([0.5, 1.0, 2.0]), st.floats(min_value=0.001, max_value=5.0))),
)


class DelayingQueueMachine(RuleBasedStateMachine):
    """Checks add_after against a model with a fake clock and a settled loop thread."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.q = DelayingQueue[int](clock=self.clock)
        self.live: dict[int, float] = {}  # model: key -> its earliest pending ready time
        self.queued: set[int] = set()  # model: keys added and not yet drained
        self.loop_started = False

    @rule(op=OPS)
    def apply(self, op: AddAfter | Add | Step) -> None:
        if isinstance(op, Add):
            self.q.add(op.key)
            self.queued.add(op.key)
        elif isinstance(op, AddAfter):
            ready = self.clock.now() + op.delay
            self.q.add_after(op.key, op.delay)
            if op.delay <= 0:
                self.queued.add(op.key)
            else:
                self.loop_started = True
                self.live[op.key] = min(ready, self.live.get(op.key, ready))
        else:
            self.clock.step(op.seconds)
        self.check_delivery()

    def check_delivery(self) -> None:
        if self.loop_started:
            assert self.clock.wait_for_waiters(1, after_step=True), "loop did not settle"
        now = self.clock.now()
        due = {k for k, ready in self.live.items() if ready <= now}
        delivered: list[int] = []
        while (k := self.q.get(timeout=0)) is not None:
            delivered.append(k)
            self.q.done(k)
        assert len(delivered) == len(set(delivered)), "duplicate delivery"
        early = set(delivered) - self.queued - due
        assert not early, f"delivered before ready: {early}"
        missing = (self.queued | due) - set(delivered)
        assert not missing, f"ready but not delivered: {missing}"
        for k in due:
            del self.live[k]
        self.queued.clear()

    def teardown(self) -> None:
        self.q.shut_down()


TestDelayingQueueMachine = DelayingQueueMachine.TestCase
TestDelayingQueueMachine.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None)
