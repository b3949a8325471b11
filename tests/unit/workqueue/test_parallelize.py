"""parallelize: ParallelizeUntil with stop and error handling (spec §5.5)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from pycontroller.workqueue import parallelize


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pieces: Counter[int] = Counter()
        self.threads: set[str] = set()

    def __call__(self, i: int) -> None:
        with self.lock:
            self.pieces[i] += 1
            self.threads.add(threading.current_thread().name)


@pytest.mark.parametrize(("workers", "pieces", "chunk"), [
    (1, 10, 1), (4, 100, 1), (4, 100, 7), (16, 3, 1), (3, 1000, 50), (2, 5, 10),
])
def test_every_piece_runs_exactly_once(workers: int, pieces: int, chunk: int) -> None:
    rec = Recorder()
    parallelize(workers, pieces, rec, chunk_size=chunk)
    assert rec.pieces == Counter(range(pieces))


def test_threads_are_named_and_capped_by_the_number_of_chunks() -> None:
    barrier = threading.Barrier(3, timeout=5.0)
    names: set[str] = set()
    lock = threading.Lock()

    def fn(i: int) -> None:
        with lock:
            names.add(threading.current_thread().name)
        barrier.wait()  # all three pieces run at the same time, on three threads

    parallelize(8, 3, fn)
    assert names == {f"pycontroller-parallelize-{i}" for i in range(3)}


def test_one_worker_runs_on_the_calling_thread() -> None:
    rec = Recorder()
    parallelize(1, 5, rec)
    assert rec.threads == {threading.current_thread().name}


def test_zero_pieces_calls_nothing() -> None:
    rec = Recorder()
    parallelize(4, 0, rec)
    assert not rec.pieces


def test_stop_set_before_start_cancels_everything() -> None:
    rec = Recorder()
    stop = threading.Event()
    stop.set()
    parallelize(4, 100, rec, stop=stop)
    assert not rec.pieces


def test_stop_cancels_the_remaining_pieces() -> None:
    rec = Recorder()
    stop = threading.Event()

    def fn(i: int) -> None:
        rec(i)
        if i == 10:
            stop.set()

    parallelize(1, 100, fn, stop=stop)
    assert rec.pieces == Counter(range(11))


def test_stop_with_many_workers_stops_all_of_them() -> None:
    rec = Recorder()
    stop = threading.Event()

    def fn(i: int) -> None:
        rec(i)
        if i == 10:
            stop.set()
        elif i > 10:
            assert stop.wait(5.0)  # later pieces are in flight when stop is set

    parallelize(4, 10_000, fn, stop=stop)
    assert rec.pieces[10] == 1
    assert all(n == 1 for n in rec.pieces.values())
    # Besides piece 10's worker, each of the 3 others finishes at most its current piece.
    assert len([i for i in rec.pieces if i > 10]) <= 3


def test_first_exception_is_reraised_after_all_workers_stopped() -> None:
    lock = threading.Lock()
    seen: list[int] = []
    running = 0
    failing_thread: list[threading.Thread] = []
    failed = threading.Event()

    def fn(i: int) -> None:
        nonlocal running
        with lock:
            running += 1
            seen.append(i)
        try:
            if i == 0:
                failing_thread.append(threading.current_thread())
                failed.set()
                raise KeyError("piece 0")
            # Piece 1 is in flight when piece 0 fails, and ends only after the failing
            # worker has exited, so parallelize() must wait for it before raising.
            assert failed.wait(5.0)
            failing_thread[0].join(5.0)
            assert not failing_thread[0].is_alive()
        finally:
            with lock:
                running -= 1

    with pytest.raises(KeyError, match="piece 0"):
        parallelize(2, 1000, fn)
    assert running == 0
    assert 0 in seen
    assert set(seen) <= {0, 1}  # everything after the failure was cancelled


def test_exception_on_a_single_worker_cancels_the_rest() -> None:
    rec = Recorder()

    def fn(i: int) -> None:
        rec(i)
        if i == 3:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        parallelize(1, 10, fn)
    assert rec.pieces == Counter(range(4))


@pytest.mark.parametrize(("workers", "pieces", "chunk"), [(0, 1, 1), (1, -1, 1), (1, 1, 0)])
def test_bad_arguments_are_rejected(workers: int, pieces: int, chunk: int) -> None:
    with pytest.raises(ValueError):
        parallelize(workers, pieces, lambda i: None, chunk_size=chunk)


def test_fn_sees_the_callers_context_variables_on_every_thread() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("test-var", default="unset")
    seen: list[str] = []
    lock = threading.Lock()

    def fn(i: int) -> None:
        with lock:
            seen.append(var.get())

    token = var.set("caller")
    try:
        parallelize(4, 16, fn)
    finally:
        var.reset(token)
    assert seen == ["caller"] * 16
