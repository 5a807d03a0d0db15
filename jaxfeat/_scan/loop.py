"""The loop of a scan: compute and write each unfinished chunk that no other writer holds, wait
for the chunks others hold, stop cleanly between chunks on Ctrl-C, and recompute damaged ones."""

from __future__ import annotations

import signal
import sys
import threading
import time

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
    the current chunk."""
    from tqdm.auto import tqdm

    stop = _StopFlag()
    t0, seeds_done, waiting_said = time.perf_counter(), 0, False
    pending = list(todo)
    with stop, tqdm(total=len(todo), unit="chunk", disable=not progress, file=sys.stderr) as bar:
        while pending:
            held = []
            for s, c in pending:
                if store.is_done(s, c):  # finished by another writer
                    bar.update()
                    continue
                if not store.claim(s, c):
                    held.append((s, c))
                    continue
                seeds_done += _compute_chunk(runner, store, s, c)
                bar.set_postfix(seeds_per_s=f"{seeds_done / (time.perf_counter() - t0):.3g}")
                bar.update()
                if stop.requested:
                    print(
                        f"jaxfeat: interrupted; {bar.n}/{len(todo)} chunks of this run are "
                        "saved, rerun the same command to continue",
                        file=sys.stderr,
                    )
                    raise KeyboardInterrupt
            pending = held
            if pending:
                waiting_said = _wait_for_others(pending, waiting_said or not progress, stop)


def _compute_chunk(runner: Runner, store, s: int, c: int) -> int:
    """Compute and write chunk c of static point s, which this writer has claimed; release the
    claim whatever happens. **Returns:** the seeds computed (0 if another writer finished it
    while we claimed it)."""
    try:
        if store.is_done(s, c):
            return 0
        start = c * store.chunk_size
        count = min(store.chunk_size, runner.plan.seeds - start)
        store.write(s, c, runner.run(s, start, count))
        return count
    finally:
        store.release(s, c)


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

    def __enter__(self):
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\njaxfeat: stopping after the current chunk (Ctrl-C again to abort)", file=sys.stderr
        )

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False
