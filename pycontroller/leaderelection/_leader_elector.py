"""Leader election over a resource lock (≙ tools/leaderelection/leaderelection.go).

Data flow: ``LeaderElector.run`` → ``ResourceLock`` (a Lease) → API server. Candidates poll
the lock every retry period; the one that writes itself as holder leads and renews; the
others take over when the record has not changed for the lease duration *by their own
clock*. The leader's work runs in ``on_started_leading`` on its own thread and must stop
when the event it receives is set::

    acquire ──ok──► on_started_leading(event) (thread) ──► renew every retry_period
       │                                                     │ no success within
       │ stop                                                │ renew_deadline, or stop
       ▼                                                     ▼
    on_stopped_leading()  ◄──────────── event.set(); on_stopped_leading(); join work;
                                        release (if release_on_cancel)
"""

from __future__ import annotations

import dataclasses
import math
import queue
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, Protocol, final

import structlog

from pycontroller._util._clock import REAL_CLOCK, Clock
from pycontroller._util._logging import log_exception
from pycontroller.errors import NotFoundError
from pycontroller.leaderelection._resource_lock import (
    LeaderElectionRecord,
    ResourceLock,
    record_bytes,
)

_log = structlog.get_logger(__name__)

JITTER_FACTOR: Final = 1.2
"""Acquire attempts are spaced ``retry_period * (1 + random() * JITTER_FACTOR)`` apart."""
# How much faster a candidate's clock may run than the leader's, together with the time the
# leader's work needs to stop after its event is set (see LeaderElectionConfig).
_SAFETY_FACTOR: Final = 1.2
_POLL: Final = 0.1  # seconds between checks of the stop event while a request runs
_ABSENT: Final = b"absent"  # _observed_raw once the lock object was seen deleted (not JSON)


class OnStartedLeading(Protocol):
    """The leader's work; runs on its own thread and must return soon after ``stop`` is set."""

    def __call__(self, stop: threading.Event, /) -> None:
        """Do the work until ``stop`` is set (leadership lost or the elector stopped)."""
        ...


class OnStoppedLeading(Protocol):
    """Called once on every exit of ``run``, also when this candidate never led."""

    def __call__(self) -> None:
        """React to the end of leadership (the usual advice: exit the process)."""
        ...


class OnNewLeader(Protocol):
    """Called with each newly observed holder identity (``""``: the lease was released)."""

    def __call__(self, identity: str, /) -> None:
        """Note that ``identity`` now holds the lock."""
        ...


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LeaderElectionConfig:
    """Timing of the election (≙ LeaderElectionConfig); validated on construction.

    Attributes:
        lease_duration: seconds a non-leader waits, after it last saw the record change,
            before taking over. Written to the Lease truncated to whole seconds.
        renew_deadline: seconds the leader may lead, counted from the start of its last
            successful renewal (or of its acquisition): it retries failed renewals within
            that time and steps down at its end at the latest.
        retry_period: seconds between attempts (acquire attempts are jittered by 1.2).
        release_on_cancel: on exit, once the work has returned, write an empty holder with
            a 1 s lease so that a standby takes over within one retry period.
        name: names the log entries and threads; defaults to the lock's description.

    Invariants:
        ``int(lease_duration) > 1.2 * renew_deadline`` and
        ``renew_deadline > 1.2 * retry_period > 0``. Why: a leader whose last successful
        write started at ``s`` (its clock) leads until ``s + renew_deadline`` at the latest;
        that write reached the server no earlier than ``s``, and another candidate starts
        its ``int(lease_duration)`` wait (its clock) only once it has read it. So no two
        lead at once while ``int(lease_duration) / r_candidate > renew_deadline / r_leader
        + stop_latency``, ``r`` being clock rates. The factor 1.2 covers candidate clocks
        running up to 20 % faster than the leader's, or the equivalent time
        (``0.2 * renew_deadline``) for the work to stop after its event is set.
    """

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    release_on_cancel: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        for field in ("lease_duration", "renew_deadline", "retry_period"):
            value = getattr(self, field)
            if not (isinstance(value, int | float) and 0 < value < math.inf):
                raise ValueError(f"{field} must be a finite number > 0, got {value!r}")
        if self.lease_duration < 1:
            raise ValueError(f"lease_duration must be >= 1 s (the Lease stores whole seconds), "
                             f"got {self.lease_duration}")
        if int(self.lease_duration) <= _SAFETY_FACTOR * self.renew_deadline:
            raise ValueError(
                f"lease_duration ({self.lease_duration}, {int(self.lease_duration)} whole s "
                f"in the Lease) must be greater than {_SAFETY_FACTOR} x renew_deadline "
                f"({self.renew_deadline}): others could take over while this leader still "
                "leads")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError(f"renew_deadline ({self.renew_deadline}) must be greater than "
                             f"{JITTER_FACTOR} x retry_period ({self.retry_period})")


@final
class _Call:
    """One lock operation on its own thread, so a hung request cannot hold the elector.

    ``done`` and ``ok`` are guarded by the elector's condition, which is notified on
    completion.
    """

    def __init__(self, fn: Callable[[], bool], cond: threading.Condition, name: str) -> None:
        self._fn = fn
        self._cond = cond
        self.done = False  # guarded by _cond
        self.ok = False  # guarded by _cond
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        ok = False
        try:
            ok = self._fn()
        finally:
            with self._cond:
                self.done, self.ok = True, ok
                self._cond.notify_all()


@final
class LeaderElector:
    """Runs for leadership on a lock and calls back when it starts and stops leading.

    Guarantees: at most one candidate is recorded as holder at a time (optimistic
    concurrency on the lock); the leader renews every ``retry_period``; a leader never leads
    at or past ``renew_deadline`` after the start of its last successful renewal: it steps
    down (sets the work's event, then calls ``on_stopped_leading``) by then, even when a
    request hangs; others take over no sooner than ``lease_duration`` after they saw the
    record's last change. Hence, with a valid config, two electors never lead at the same
    instant while their clock rates differ by less than the config's margin. Mutual
    exclusion of the *work* additionally needs the work to honour its event (see the
    docs).

    Thread-safety: thread-safe; ``run`` may be active on one thread at a time, the queries
    from any thread. Callbacks are never called with a lock held.

    Invariants:
        at most one lock operation is in flight (``_call``); ``_leading`` implies the last
        successful acquire or renewal started less than ``renew_deadline`` ago (our clock).
    """

    def __init__(
        self, lock: ResourceLock, config: LeaderElectionConfig, *,
        on_started_leading: OnStartedLeading, on_stopped_leading: OnStoppedLeading,
        on_new_leader: OnNewLeader | None = None, clock: Clock = REAL_CLOCK,
    ) -> None:
        if not lock.identity:
            raise ValueError("the lock needs a non-empty identity")
        self._lock = lock
        self._config = config
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._on_new_leader = on_new_leader
        self._clock = clock
        self._identity = lock.identity
        self._name = config.name or lock.describe()
        self._thread_name = f"pycontroller-leader-elector-{self._name}"
        self._random = random.Random()
        self._log = _log.bind(component="leader_elector", election=self._name,
                              lock=lock.describe(), identity=self._identity)
        self._cond = threading.Condition()
        self._running = False  # guarded by _cond
        self._leading = False  # guarded by _cond
        self._call: _Call | None = None  # guarded by _cond
        self._observed: LeaderElectionRecord | None = None  # guarded by _cond
        self._observed_raw = b""  # guarded by _cond
        self._observed_time = 0.0  # guarded by _cond; our clock when _observed last changed
        self._reported: str | None = None  # guarded by _cond; last holder told to callbacks
        self._notices: queue.SimpleQueue[str | None] = queue.SimpleQueue()

    @property
    def identity(self) -> str:
        """This candidate's identity."""
        return self._identity

    def is_leader(self) -> bool:
        """Whether this candidate leads now (acquired, not yet stepped down)."""
        with self._cond:
            return self._leading

    def get_leader(self) -> str:
        """The holder in the last observed record; ``""`` if none was observed or released."""
        with self._cond:
            return self._observed.holder_identity if self._observed is not None else ""

    def run(self, stop: threading.Event) -> None:
        """Run for leadership until ``stop`` is set or leadership is lost; then return.

        Calls ``on_stopped_leading`` on every exit, and returns only after the work thread,
        any request in flight (bounded by the client's timeout) and the ``on_new_leader``
        thread have finished. Run it again to stand for election again.

        Raises:
            RuntimeError: ``run`` is already active on another thread.
        """
        with self._cond:
            if self._running:
                raise RuntimeError(f"leader elector {self._name} is already running")
            self._running = True
        notifier = self._start_thread(self._notify_loop, "notify")
        leading = threading.Event()
        work: threading.Thread | None = None
        try:
            acquired_at = self._acquire(stop)
            if acquired_at is not None:
                with self._cond:
                    self._leading = True
                self._log.info("leader_acquired")
                work = self._start_thread(lambda: self._work(leading), None)
                self._renew(stop, acquired_at)
        finally:
            try:
                self._step_down(leading, work)
            finally:
                self._notices.put(None)
                notifier.join()
                self._join_call()
                with self._cond:
                    self._running = False

    # -- loops (caller's thread) ------------------------------------------------------
    def _acquire(self, stop: threading.Event) -> float | None:
        """Try until we hold the lock (return when that attempt started) or ``stop``."""
        cfg = self._config
        while not stop.is_set():
            start = self._clock.now()
            deadline = start + cfg.renew_deadline
            ok = self._attempt(self._try_acquire_or_renew, stop, deadline)
            self._report_transition()
            # A success that arrives at the deadline would leave no time to lead: the next
            # attempt renews it (we are the holder) with a fresh deadline.
            if ok and self._clock.now() < deadline:
                return start
            delay = cfg.retry_period * (1 + self._random.random() * JITTER_FACTOR)
            if self._clock.sleep(delay, stop):
                break
        return None

    def _renew(self, stop: threading.Event, last_ok: float) -> None:
        """Renew every retry period; return on ``stop`` or at the renew deadline.

        The deadline is ``renew_deadline`` after the start of the last successful attempt.
        No wait and no attempt outlasts it: a failed renewal is retried after
        ``retry_period`` or at the deadline, whichever is sooner, and reaching the deadline
        without a success that arrived before it returns at once (the caller steps down).
        """
        cfg = self._config
        while True:
            deadline = last_ok + cfg.renew_deadline
            pause = min(cfg.retry_period, deadline - self._clock.now())
            if (pause > 0 and self._clock.sleep(pause, stop)) or stop.is_set():
                return
            start = self._clock.now()
            ok = start < deadline and self._attempt(self._try_acquire_or_renew, stop, deadline)
            self._report_transition()
            if stop.is_set():
                return
            if self._clock.now() >= deadline:
                self._log.warning("leader_lost", renew_deadline=cfg.renew_deadline)
                return
            if ok:
                last_ok = start
                self._log.debug("leader_renewed")

    def _step_down(self, leading: threading.Event, work: threading.Thread | None) -> None:
        with self._cond:
            self._leading = False
        leading.set()
        try:
            self._on_stopped()
        finally:
            if work is not None:
                work.join()
                # Release only once the guarded work has returned.
                if self._config.release_on_cancel:
                    deadline = self._clock.now() + self._config.renew_deadline
                    self._attempt(self._release, None, deadline)

    # -- lock operations (on a _Call thread) -------------------------------------------
    def _attempt(self, fn: Callable[[], bool], stop: threading.Event | None,
                 deadline: float) -> bool:
        """Run ``fn`` on a fresh thread; False if it fails or outlives ``deadline``/``stop``."""
        with self._cond:
            if not self._wait_call_locked(stop, deadline):
                return self._timed_out()  # the previous request still hangs
            call = _Call(fn, self._cond, f"{self._thread_name}-api")
            self._call = call
        call.thread.start()
        with self._cond:
            if not self._wait_call_locked(stop, deadline):
                return False if stop is not None and stop.is_set() else self._timed_out()
            return call.ok

    def _wait_call_locked(self, stop: threading.Event | None, deadline: float) -> bool:
        """Wait until no call is in flight; False on ``deadline`` (our clock) or ``stop``."""
        while self._call is not None and not self._call.done:
            now = self._clock.now()
            if now >= deadline or (stop is not None and stop.is_set()):
                return False
            self._clock.wait(self._cond, min(_POLL, deadline - now))
        return True

    def _timed_out(self) -> bool:
        self._log.warning("leader_election_failed", error_type="TimeoutError",
                          error="lock request still running at the deadline")
        return False

    def _join_call(self) -> None:
        with self._cond:
            call = self._call
        if call is not None:
            call.thread.join()

    def _try_acquire_or_renew(self) -> bool:
        """One attempt (≙ tryAcquireOrRenew); True when we hold the lock afterwards."""
        start = self._clock.now()
        wall = datetime.now(UTC)
        desired = LeaderElectionRecord(
            holder_identity=self._identity,
            lease_duration_seconds=int(self._config.lease_duration),
            acquire_time=wall, renew_time=wall)
        with self._cond:
            old = self._observed
            fast = (old is not None and old.holder_identity == self._identity
                    and self._lease_valid_locked(start))
        if fast and old is not None:  # we hold it and our view is fresh: update directly
            mine = dataclasses.replace(desired, acquire_time=old.acquire_time,
                                       leader_transitions=old.leader_transitions)
            if self._write(self._lock.update, mine, start):
                return True
        try:
            current, raw = self._lock.get()
        except NotFoundError:
            if self._deleted_under_live_holder():
                return False
            return self._write(self._lock.create, desired, start)
        except Exception as exc:
            self._failed(exc)
            return False
        seen = self._clock.now()
        with self._cond:
            if raw != self._observed_raw:
                self._set_observed_locked(current, raw, seen)
            if current.holder_identity not in ("", self._identity) \
                    and self._lease_valid_locked(seen):
                return False  # held by someone else, and not expired by our clock
        if current.holder_identity == self._identity:
            new = dataclasses.replace(desired, acquire_time=current.acquire_time,
                                      leader_transitions=current.leader_transitions)
        else:
            new = dataclasses.replace(desired,
                                      leader_transitions=current.leader_transitions + 1)
        return self._write(self._lock.update, new, start)

    def _deleted_under_live_holder(self) -> bool:
        """The lock object is gone: True while another holder we saw may still lead.

        A deletion (by hand, say) is a change of the record, not a release: the holder we
        last saw may still be within its renew deadline, so we wait ``lease_duration`` from
        when we noticed it, as for any change. Without a previous holder (a first start, a
        release, ourselves) we create at once.
        """
        now = self._clock.now()
        with self._cond:
            observed = self._observed
            if observed is None or observed.holder_identity in ("", self._identity):
                return False
            if self._observed_raw != _ABSENT:
                self._observed_raw, self._observed_time = _ABSENT, now
            return self._lease_valid_locked(now)

    def _release(self) -> bool:
        """Write an empty holder with a 1 s lease if we still hold the lock."""
        try:
            current, _ = self._lock.get()
        except Exception as exc:
            self._failed(exc)
            return False
        if current.holder_identity != self._identity:
            return False
        wall = datetime.now(UTC)
        released = LeaderElectionRecord(
            lease_duration_seconds=1, acquire_time=wall, renew_time=wall,
            leader_transitions=current.leader_transitions)
        if not self._write(self._lock.update, released, self._clock.now()):
            return False
        self._log.info("leader_released")
        return True

    def _write(self, op: Callable[[LeaderElectionRecord], None], record: LeaderElectionRecord,
               when: float) -> bool:
        try:
            op(record)
        except Exception as exc:
            self._failed(exc)
            return False
        with self._cond:
            # ``when`` is the attempt's start: never later than the server's write.
            self._set_observed_locked(record, record_bytes(record), when)
        return True

    def _failed(self, exc: Exception) -> None:
        self._log.warning("leader_election_failed", error=str(exc),
                          error_type=type(exc).__name__)

    def _set_observed_locked(self, record: LeaderElectionRecord, raw: bytes,
                             when: float) -> None:
        self._observed, self._observed_raw, self._observed_time = record, raw, when

    def _lease_valid_locked(self, now: float) -> bool:
        observed = self._observed
        return observed is not None and \
            self._observed_time + observed.lease_duration_seconds > now

    # -- callbacks --------------------------------------------------------------------
    def _report_transition(self) -> None:
        with self._cond:
            holder = self._observed.holder_identity if self._observed is not None else None
            if holder is None or holder == self._reported:
                return
            self._reported = holder
        self._log.info("leader_observed", holder=holder)
        self._notices.put(holder)

    def _notify_loop(self) -> None:
        while (holder := self._notices.get()) is not None:
            if self._on_new_leader is None:
                continue
            try:
                self._on_new_leader(holder)
            except Exception:
                log_exception(self._log, "leader_callback_failed", callback="on_new_leader")

    def _work(self, leading: threading.Event) -> None:
        try:
            self._on_started(leading)
        except Exception:
            log_exception(self._log, "leader_callback_failed", callback="on_started_leading")

    def _start_thread(self, target: Callable[[], None], suffix: str | None) -> threading.Thread:
        name = self._thread_name if suffix is None else f"{self._thread_name}-{suffix}"
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def __repr__(self) -> str:
        return f"LeaderElector({self._name!r}, identity={self._identity!r})"
