"""Which CPUs jaxfeat computes on: all of them on a quiet machine, the free ones on a busy one.

Why (issue #27, `benchmarks/bench_busy_machine.py`): XLA's CPU runtime hands every program's
thunks to a pool of worker threads that wait on one another. Next to a CPU-bound competitor
whose threads are not pinned (a multi-threaded OpenBLAS loop), the scheduler keeps moving
those workers onto the competitor's cores, and a call that takes 0.06 s alone sometimes takes
seconds (the tail: 4.0 s max over 15 calls measured here, 13 s in the issue), although its
median slows no more than a NumPy version of the same work. Neither a one-thread intra-op pool
(`--xla_cpu_multi_thread_eigen=false`) nor a one-thread PJRT pool (`PJRT_NPROC=1`) removes the
tail; confining the process to the cores that were free when it started does (max 0.12 s
under the same competitor), because the scheduler then balances the competitor away from
them. On a quiet machine nothing is pinned.

The choice is made once, before JAX creates its CPU client (whose thread pools are sized from
the affinity mask): at `import jaxfeat` from `$JAXFEAT_CPUS` (default `auto`), again by
`jaxfeat.config(cpus=…)` or `jaxfeat run --cpus …` as long as nothing has run yet.
"""

from __future__ import annotations

import os
import sys
import time

from ._checks import InputError

#: the CPUs this process may use when jaxfeat was imported, before any pinning
ORIGINAL: tuple[int, ...] = (
    tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else ()
)
#: a core busier than this (fraction of the sampling window) counts as taken
BUSY = 0.75
#: how long `auto` watches /proc/stat
WINDOW_S = 0.06


def cpu_ticks(text: str) -> dict[int, tuple[int, int]]:
    """Per-CPU (idle, total) jiffies from the text of `/proc/stat` (idle includes iowait)."""
    out = {}
    for line in text.splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        ticks = [int(v) for v in fields[:8]]
        out[int(name[3:])] = (ticks[3] + ticks[4], sum(ticks))
    return out


def busy_fractions(before: dict, after: dict) -> dict[int, float]:
    """The fraction of the window each CPU spent busy (0 where no tick elapsed)."""
    out = {}
    for cpu, (idle1, total1) in after.items():
        idle0, total0 = before.get(cpu, (idle1, total1))
        span = total1 - total0
        out[cpu] = 0.0 if span <= 0 else 1.0 - (idle1 - idle0) / span
    return out


def choose(mask, busy: dict[int, float], threshold: float = BUSY) -> list[int] | None:
    """The CPUs of `mask` to run on: None (leave the process unpinned) when every one is free,
    else the free ones, or the least busy one when none is free."""
    mask = sorted(mask)
    free = [c for c in mask if busy.get(c, 0.0) <= threshold]
    if len(free) == len(mask):
        return None
    return free or [min(mask, key=lambda c: (busy.get(c, 0.0), c))]


def _sample_busy(window: float = WINDOW_S) -> dict[int, float]:
    with open("/proc/stat") as f:
        before = cpu_ticks(f.read())
    time.sleep(window)
    with open("/proc/stat") as f:
        after = cpu_ticks(f.read())
    return busy_fractions(before, after)


def _backend_started() -> bool:
    xb = sys.modules.get("jax._src.xla_bridge")
    return bool(xb is not None and getattr(xb, "_backends", None))


def _parse(cpus) -> str | int:
    if isinstance(cpus, str):
        s = cpus.strip().lower()
        if s in ("auto", "all"):
            return s
        if s.isdigit():
            cpus = int(s)
        else:
            raise InputError(f"cpus must be 'auto', 'all' or a number of CPUs, got {cpus!r}")
    if isinstance(cpus, bool) or not isinstance(cpus, int):
        raise InputError(f"cpus must be 'auto', 'all' or a number of CPUs, got {cpus!r}")
    if not 1 <= cpus <= len(ORIGINAL):
        raise InputError(
            f"cpus must be between 1 and {len(ORIGINAL)} (the CPUs available), got {cpus}"
        )
    return cpus


def config(cpus: str | int = "auto") -> list[int]:
    """Choose the CPUs jaxfeat (and JAX in this process) computes on; returns them.

    **Arguments:**

    - `cpus`: `"auto"` (the default at import: every CPU on a quiet machine, else only those
      free during a 60 ms look at `/proc/stat`), `"all"` (every CPU this process was started
      with, unpinned), or a number `k` (pinned to `k` of them, chosen from an offset set by the
      process id so that several pinned runs on one node spread over its cores).

    Must be called before the first JAX computation, which sizes XLA's thread pools from the
    CPUs allowed then; afterwards it raises. The environment variable `JAXFEAT_CPUS` sets the
    choice made at `import jaxfeat`; `jaxfeat run --cpus` sets it for the CLI.
    """
    choice = _parse(cpus)
    if not hasattr(os, "sched_setaffinity"):
        if choice in ("auto", "all"):
            return list(ORIGINAL)
        raise InputError("cpus: this platform cannot pin a process to CPUs")
    if _backend_started():
        raise InputError(
            "cpus: JAX has already started its CPU backend in this process; call "
            "jaxfeat.config(cpus=...) (or set JAXFEAT_CPUS) before the first computation"
        )
    if choice == "all":
        chosen = list(ORIGINAL)
    elif choice == "auto":
        chosen = choose(ORIGINAL, _sample_busy()) or list(ORIGINAL)
    else:
        assert isinstance(choice, int)  # _parse: "auto", "all" or a count
        start = os.getpid() % len(ORIGINAL)
        chosen = [ORIGINAL[(start + i) % len(ORIGINAL)] for i in range(choice)]
    os.sched_setaffinity(0, chosen)
    return chosen


def configure_at_import() -> list[int] | None:
    """`$JAXFEAT_CPUS` (default `auto`) applied when jaxfeat is imported, unless JAX has already
    computed something; one line on stderr when it pins. Returns the CPUs chosen (None: left
    alone)."""
    value = os.environ.get("JAXFEAT_CPUS", "auto")
    if _backend_started():
        return None
    try:
        chosen = config(value)
    except InputError as e:
        print(f"jaxfeat: JAXFEAT_CPUS ignored: {e}", file=sys.stderr)
        return None
    if value.strip().lower() == "auto" and len(chosen) < len(ORIGINAL):
        print(
            f"jaxfeat: {len(ORIGINAL) - len(chosen)} of {len(ORIGINAL)} CPUs busy at start; "
            f"computing on CPU {','.join(map(str, chosen))} only (JAXFEAT_CPUS=all or "
            "--cpus all to use every CPU)",
            file=sys.stderr,
        )
    return chosen
