"""Worker processes that cannot hang: every tool that starts processes (rendering the synthetic set, labelling faces,
preparing clips) runs its jobs through :func:`run_jobs`.

``multiprocessing.Pool`` replaces a worker that dies (the OOM killer, a crash in a native decoder, a worker that
cannot start) and never answers the job it held, so the caller waits forever. ``concurrent.futures``'
``ProcessPoolExecutor`` notices the dead process and fails every job still pending with ``BrokenProcessPool``;
:func:`run_jobs` then stops the workers and raises :class:`WorkersLost` naming the jobs that were not done, after
every finished result has been handed to the caller (who keeps it: a saved cache, a written entry), so that running
the tool again resumes. A pool in which no job finishes for ``stall_timeout_s`` is stopped the same way.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

STALL_TIMEOUT_S = 600.0  # no job of the pool finished for this long: the workers are stuck
STOP_TIMEOUT_S = 10.0  # how long stopped workers get to exit before they are killed
LOST_NAMED = 10  # lost jobs named in the message (all of them are in WorkersLost.lost)


class WorkersLost(RuntimeError):
    """A worker process died, could not start, or stalled; ``lost`` names the jobs that were not done."""

    def __init__(self, lost: Sequence[str], cause: str):
        self.lost = list(lost)
        more = f" and {len(self.lost) - LOST_NAMED} more" if len(self.lost) > LOST_NAMED else ""
        super().__init__(f"{cause}: {len(self.lost)} job(s) were not done: {', '.join(self.lost[:LOST_NAMED])}{more}. "
                         "Everything finished before was kept: run the same command again to resume.")


def run_jobs(function: Callable[[Any], Any], jobs: Sequence[Any], num_workers: int, name: Callable[[Any], str] = str,
             initializer: Callable | None = None, initargs: tuple = (),
             stall_timeout_s: float = STALL_TIMEOUT_S) -> Iterator[tuple[Any, Any]]:
    """Yield ``(job, function(job))`` for every job as it finishes: in ``num_workers`` processes, or in this process
    (in order, without ``initializer``) when ``num_workers`` <= 1 or there is one job.

    Workers start with "spawn" (a forked copy of OpenCV's or torch's thread pools can deadlock), each runs
    ``initializer(*initargs)`` first, and at most two jobs per worker wait at once. ``function`` must be a
    module-level function that reports a bad input in its result: an exception it raises ends the run.

    Raises:
        WorkersLost: a worker died, could not start, or no job finished for ``stall_timeout_s``; it names the jobs
            that were not done (``name(job)``).
    """
    if num_workers <= 1 or len(jobs) <= 1:
        yield from ((job, function(job)) for job in jobs)
        return
    pool = ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context("spawn"), initializer=initializer,
                               initargs=initargs)
    queue, pending, done = iter(jobs), {}, set()
    try:
        _submit(pool, function, queue, pending, 2 * num_workers)
        while pending:
            finished, _ = wait(pending, timeout=stall_timeout_s, return_when=FIRST_COMPLETED)
            if not finished:
                raise WorkersLost(_names(jobs, done, name), f"no job finished for {stall_timeout_s:g} s (the workers "
                                  "are stuck)")
            for future in finished:
                job = pending.pop(future)
                result = future.result()
                done.add(id(job))
                yield job, result
            _submit(pool, function, queue, pending, 2 * num_workers)
    except BrokenProcessPool as error:
        raise WorkersLost(_names(jobs, done, name), "a worker process died or could not start (killed, out of "
                          f"memory, or a crash in native code: {error})") from error
    finally:
        _stop(pool, pending)


def _submit(pool: ProcessPoolExecutor, function: Callable, queue: Iterator, pending: dict[Future, Any],
            window: int) -> None:
    while len(pending) < window:
        job = next(queue, _END)
        if job is _END:
            return
        pending[pool.submit(function, job)] = job


def _names(jobs: Sequence[Any], done: set[int], name: Callable[[Any], str]) -> list[str]:
    return [name(job) for job in jobs if id(job) not in done]


def _stop(pool: ProcessPoolExecutor, pending: dict[Future, Any]) -> None:
    """Cancel what waits, and make sure no worker outlives the run (killed after STOP_TIMEOUT_S)."""
    for future in pending:
        future.cancel()
    processes = list((getattr(pool, "_processes", None) or {}).values())
    if pending:  # stopped early: a worker may still be busy with a job nobody waits for
        for process in processes:
            process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(timeout=STOP_TIMEOUT_S)
        if process.is_alive():
            process.kill()
            process.join(timeout=STOP_TIMEOUT_S)


_END = object()


__all__ = ["STALL_TIMEOUT_S", "WorkersLost", "run_jobs"]
