"""Run a function over ``range(pieces)`` on worker threads
(≙ client-go util/workqueue/parallelizer.go ``ParallelizeUntil``).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable


def parallelize(
    workers: int, pieces: int, fn: Callable[[int], object], *,
    stop: threading.Event | None = None, chunk_size: int = 1,
) -> None:
    """Call ``fn(i)`` for every ``i`` in ``range(pieces)`` using up to ``workers`` threads.

    Pieces are handed out in chunks of ``chunk_size`` consecutive indices, in increasing
    order; ``min(workers, number of chunks)`` threads (named ``pycontroller-parallelize-<n>``)
    are started, or none when that is 1 (``fn`` then runs on the calling thread). Before
    each piece a worker checks ``stop``; once it is set, or once any ``fn`` raised, the
    remaining pieces are skipped. Returns when every thread has finished. ``fn`` sees the
    caller's context variables (each thread runs in a copy of them), so inside a
    ``Controller.reconcile`` its writes count as the reconcile's own and ``self.log``
    stays bound to the key.

    Args:
        workers: the most threads to use (≥ 1).
        pieces: how many pieces (≥ 0).
        fn: called with the piece index; its return value is ignored.
        stop: when set, remaining pieces are cancelled (≙ the Go context).
        chunk_size: pieces taken per hand-out (≥ 1); larger chunks mean less locking.

    Raises:
        Exception: the first exception raised by ``fn``, re-raised after all threads
            stopped; later exceptions are dropped.
        ValueError: ``workers`` or ``chunk_size`` is below 1, or ``pieces`` is negative.

    Thread-safety: ``fn`` is called concurrently from several threads.
    """
    if workers < 1 or chunk_size < 1 or pieces < 0:
        raise ValueError(
            f"need workers >= 1, chunk_size >= 1, pieces >= 0; got {workers}, "
            f"{chunk_size}, {pieces}")
    if pieces == 0:
        return
    chunks = -(-pieces // chunk_size)
    run = _Run(pieces, fn, stop, chunk_size)
    n_threads = min(workers, chunks)
    if n_threads == 1:
        run.work()
    else:
        # Each thread runs in a copy of the caller's context variables (Go passes its ctx):
        # a reconcile's writes made in ``fn`` are still its own (read your own writes).
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(run.work,),
                             name=f"pycontroller-parallelize-{i}", daemon=True)
            for i in range(n_threads)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if run.error is not None:
        raise run.error


class _Run:
    """The shared state of one ``parallelize`` call."""

    def __init__(
        self, pieces: int, fn: Callable[[int], object], stop: threading.Event | None,
        chunk_size: int,
    ) -> None:
        self._pieces = pieces
        self._fn = fn
        self._stop = stop
        self._chunk = chunk_size
        self._lock = threading.Lock()
        self._next = 0  # guarded by _lock; first piece not yet handed out
        self._failed = threading.Event()
        self.error: BaseException | None = None  # guarded by _lock; the first failure

    def _take(self) -> range | None:
        with self._lock:
            start = self._next
            if start >= self._pieces:
                return None
            self._next = min(start + self._chunk, self._pieces)
            return range(start, self._next)

    def work(self) -> None:
        stop, failed, fn = self._stop, self._failed, self._fn
        while (chunk := self._take()) is not None:
            for i in chunk:
                if failed.is_set() or (stop is not None and stop.is_set()):
                    return
                try:
                    fn(i)
                except BaseException as exc:  # re-raised by parallelize() in the caller
                    with self._lock:
                        if self.error is None:
                            self.error = exc
                    failed.set()
                    return
