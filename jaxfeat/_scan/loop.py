"""The loop of a scan: compute and write each unfinished chunk that no other writer holds, wait
for the chunks others hold, stop cleanly between chunks on Ctrl-C, and recompute damaged ones."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, ThreadPoolExecutor, wait

from . import store as _store
from .program import Runner


def forget_damaged(store) -> None:
    """Chunks whose files no longer match their markers are unmarked, so they are recomputed."""
    v = _store.verify_scan(store.path)
    attrs = _store.layout(store.path)
    for (s, c), why in sorted(v.damaged.items()):
        print(
            f"jaxfeat: {_store.describe_chunk(attrs, s, c)} of {store.path} is damaged ({why}); "
            "recomputing it",
            file=sys.stderr,
        )
        store.unmark(s, c)


def run_chunks(runner: Runner, store, todo: list, progress: bool) -> None:
    """Compute and write every chunk in `todo` that no other writer holds, then wait for the
    chunks other writers hold (taking over those whose writer died); a first Ctrl-C stops after
    the chunks in flight. `runner.workers` chunks are computed at once (threads: XLA releases
    the GIL); claims, writes and releases stay in this thread."""
    from tqdm.auto import tqdm

    if not todo:  # nothing to compute: no progress bar either
        return
    stop = _StopFlag()
    runner.mark_loop()
    waiting_said = False
    pending = list(todo)
    pool = ThreadPoolExecutor(runner.workers, thread_name_prefix="jaxfeat-chunk")
    # tqdm's own remaining time knows nothing of the programs still to compile: the bar shows
    # `_Rate`'s ETA instead
    fmt = "{l_bar}{bar}| {n_fmt}/{total_fmt} chunks [{elapsed}{postfix}]"
    with (
        stop,
        tqdm(total=len(todo), disable=not progress, file=sys.stderr, bar_format=fmt) as bar,
        _shut_down(pool),
    ):
        rate = _Rate(bar, runner, len(todo))
        while pending:
            held = _run_pass(runner, store, pending, pool, bar, rate, stop)
            left = [sc for sc in pending if not store.is_done(*sc)]
            if stop.requested and left:
                print(
                    f"jaxfeat: interrupted; {bar.n}/{len(todo)} chunks of this run are "
                    "saved, rerun the same command to continue",
                    file=sys.stderr,
                )
                raise KeyboardInterrupt
            pending = held
            if pending:
                waiting_said = _wait_for_others(pending, waiting_said or not progress, stop)


def _run_pass(runner: Runner, store, pending, pool, bar, rate, stop) -> list:
    """One pass over `pending`: claim each free chunk and compute it in `pool`, at most
    `runner.workers` at once, writing each as it finishes. **Returns:** the chunks other
    writers hold."""
    held, flight = [], {}
    stop.in_flight = flight.__len__
    try:
        for s, c in pending:
            if stop.requested:
                break
            if store.is_done(s, c):  # finished by another writer
                bar.update()
                continue
            if not store.claim(s, c):
                held.append((s, c))
                continue
            flight[pool.submit(_compute_chunk, runner, store, s, c)] = (s, c)
            if len(flight) >= runner.workers:
                _finish(flight, store, bar, rate, FIRST_COMPLETED)
        _finish(flight, store, bar, rate, ALL_COMPLETED)
    finally:
        for fut, (s, c) in flight.items():  # an error or a second Ctrl-C: no claim is left held
            fut.cancel()
            store.release(s, c)
    return held


def _finish(flight: dict, store, bar, rate, when) -> None:
    """Wait for chunks in flight (`when`), write the finished ones and release their claims."""
    done, _ = wait(flight, return_when=when)
    for fut in done:
        s, c = flight.pop(fut)
        try:
            count, result = fut.result()
            if result is not None:
                store.write(s, c, result)
        finally:
            store.release(s, c)
        rate.add(count)


def _compute_chunk(runner: Runner, store, s: int, c: int) -> tuple[int, dict | None]:
    """Compute chunk c of static point s, which this writer has claimed (in a worker thread;
    the caller writes it). **Returns:** (seeds computed, outputs), (0, None) if another writer
    finished it meanwhile."""
    if store.is_done(s, c):
        return 0, None
    start = c * store.chunk_size
    count = min(store.chunk_size, runner.plan.seeds - start)
    return count, runner.run(s, start, count)


@contextlib.contextmanager
def _shut_down(pool: ThreadPoolExecutor):
    """Shut `pool` down; on an error or a second Ctrl-C without waiting for running chunks."""
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


class _Rate:
    """Seeds per second and the ETA on the progress bar. The ETA counts the programs still to
    compile (their calibrated compile time, `Runner.pending_compile_seconds`) and the chunks
    still to compute (at the pace measured so far, or before the first chunk, the calibrated
    estimate), one after the other: on a CPU both use every core (`program` module docstring)."""

    def __init__(self, bar, runner=None, total: int = 0):
        self.bar, self.runner, self.total = bar, runner, total
        self.t0, self.seeds, self.chunks = time.perf_counter(), 0, 0
        self._show()

    def add(self, seeds: int) -> None:
        self.seeds += seeds
        self.chunks += 1
        self._show()
        self.bar.update()

    def _show(self) -> None:
        elapsed = time.perf_counter() - self.t0
        parts = []
        eta = self.eta(elapsed)
        if eta is not None:
            parts.append(f"ETA {_fmt(eta)}")
        if self.seeds:
            parts.append(f"{self.seeds / elapsed:.3g} seeds/s")
        self.bar.set_postfix_str(", ".join(parts), refresh=False)

    def eta(self, elapsed: float) -> float | None:
        if self.runner is None:
            return None
        compiling = self.runner.pending_compile_seconds()
        left = self.total - self.chunks
        if self.chunks:
            computing = left * max(elapsed - self.runner.compiling_in_loop(), 0.0) / self.chunks
        else:
            computing = left * self.runner.chunk_seconds_estimate()
        return compiling + computing


def _fmt(t: float) -> str:
    t = max(t, 0.0)
    return f"{t:.0f} s" if t < 90 else f"{t / 60:.1f} min" if t < 5400 else f"{t / 3600:.1f} h"


def _wait_for_others(pending, said: bool, stop) -> bool:
    """Wait a moment for chunks held by other writers (saying so once). **Returns:** True."""
    if not said:
        print(
            f"\njaxfeat: waiting for {len(pending)} chunks that another writer is computing",
            file=sys.stderr,
        )
    time.sleep(0.2)
    if stop.requested:
        raise KeyboardInterrupt
    return True


class _StopFlag:
    """SIGINT sets a flag (checked between chunks); a second SIGINT interrupts at once."""

    requested = False
    in_flight = staticmethod(lambda: 0)  # chunks being computed, for the message (the loop's)

    def __enter__(self):
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        n = self.in_flight()
        what = f"after the {n} chunks in flight" if n > 1 else "after the chunk in flight"
        what = what if n else "(no chunk in flight)"
        print(f"\njaxfeat: stopping {what} (Ctrl-C again to abort)", file=sys.stderr)

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False
