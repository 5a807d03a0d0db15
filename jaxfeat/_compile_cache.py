"""JAX's persistent compilation cache, for the CLI, `jf.scan` and plain `jax.jit` alike.

A program compiled once is written to a directory and loaded, not compiled, by every later
process that asks for the same program (JAX keys an entry by the program, the jaxlib version,
the XLA flags and compile options, and the devices' topology, which on a CPU includes the target
triple, CPU model and feature string, so a stale or foreign entry is never loaded).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading

__all__ = ["default_cache_dir", "enable_compile_cache"]


class _Default:
    def __repr__(self) -> str:
        return "default_cache_dir()"


_DEFAULT = _Default()


def default_cache_dir() -> str | None:
    """The default cache directory: `$JAXFEAT_CACHE_DIR`, else `$XDG_CACHE_HOME/jaxfeat/xla`
    (`~/.cache/jaxfeat/xla`); None when `$JAXFEAT_CACHE_DIR` is "off"."""
    choice = os.environ.get("JAXFEAT_CACHE_DIR")
    if choice is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        choice = os.path.join(base, "jaxfeat", "xla")
    return None if choice == "off" else choice


def enable_compile_cache(
    path: str | os.PathLike[str] | None | _Default = _DEFAULT,
) -> str | None:
    """Keep JAX's persistent compilation cache in `path`, so that a program compiled once (by
    jaxfeat or by any `jax.jit` in this process) is loaded instead of compiled by later
    processes: a notebook kernel restarted, a script run again.

    Every program is cached, however small or quick to compile (JAX's defaults skip programs
    that compile in under a second). Programs already compiled in this process are not written
    back: call it before the work, e.g. at the top of a notebook, and not while another thread
    compiles. Calling it again with the same path does nothing (a microsecond); with another
    path, or None, it takes effect from the next compile, also after JAX has compiled things.
    `jaxfeat run` calls it (`--cache-dir`).

    **Arguments:**

    - `path`: the cache directory, created if missing. Default: `default_cache_dir()`
      (`$JAXFEAT_CACHE_DIR`, else `~/.cache/jaxfeat/xla`). None or "off" switches the
      cache off for this process: nothing is read from or written to any cache directory.

    **Returns:** the directory in use (absolute), or None when the cache is off.

    Loading a program compiled on this host prints no error lines: jaxlib 0.9.2 logs two false
    alarms per load on AVX-512 CPUs (the comment above `_FALSE_ALARMS` says why), which are
    dropped; every other line reaches stderr.
    """
    if isinstance(path, _Default):
        path = default_cache_dir()
    path = _resolve(path)
    if _settings_match(path):
        return path
    _apply(path)
    return path


def _resolve(path) -> str | None:
    if path is None:
        return None
    path = os.fspath(path)
    if path == "off":
        return None
    if "://" in path:  # a remote store (gs://…) that JAX opens through etils.epath
        return path
    return os.path.abspath(os.path.expanduser(path))


def _settings_match(path: str | None) -> bool:
    """Whether JAX already uses `path` with our settings (a repeated call costs a few reads)."""
    import jax
    from jax._src import compilation_cache

    def read(name):  # jax.config's options are dynamic attributes
        return getattr(jax.config, f"jax_{name}")

    if read("compilation_cache_dir") != path:
        return False
    if path is None:  # off, and no cache object left open from an earlier directory
        return getattr(compilation_cache, "_cache", None) is None
    return (
        read("enable_compilation_cache")
        and read("persistent_cache_min_compile_time_secs") == 0
        and read("persistent_cache_min_entry_size_bytes") == -1
    )


def _apply(path: str | None) -> None:
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    jax.config.update("jax_compilation_cache_dir", path)
    if path is not None:
        jax.config.update("jax_enable_compilation_cache", True)
        # cache every program: no minimum compile time, no minimum size (-1 also stops JAX
        # from overriding the size threshold when it opens the cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
        _quiet_loads()
    # JAX opens its cache object once, at the first compile, from the directory set then, and
    # keeps it: without a reset a later directory (or None) would be ignored
    compilation_cache.reset_cache()


# --- the false alarms of loading a cached CPU program ----------------------------------------
#
# Measured with jaxlib 0.9.2 on an AVX-512 host (`jaxfeat run spikes … --cache-dir D` twice):
# every program loaded from the cache logs
#   E… cpu_aot_loader.cc:220] Loading XLA:CPU AOT result. Target machine feature
#   +prefer-no-gather is not  supported on the host machine. … could lead to … SIGILL.
# and the same for +prefer-no-scatter, although this host compiled the program and the cache key
# holds this host's exact target (triple, CPU model and feature string). The cause is in XLA:
# for any CPU with AVX-512, XLA's CPU compiler appends `+prefer-no-scatter,+prefer-no-gather`
# to the LLVM target feature string (gathers and scatters are slow there; XLA's IrCompiler and
# TargetMachineOptions, whose test is "AVX512ImpliesNoScatterAndNoGather"). Those are LLVM
# *tuning* flags, not instruction-set features, so `llvm::sys::getHostCPUFeatures()`, which reads
# CPUID, never lists them, and the loader's check (every "+feature" of the compile target must
# be a host feature) fails on every load, on every AVX-512 machine. It is a log line, not a
# rejection: the program loads and runs (the cache hits; the numbers are those of a compile).
# Newer XLA skips "prefer-" and "fast-" flags in this check (openxla/xla#44565, jax#38445).
# Nothing in Python can change it: the features are added in C++ with no flag to turn them off
# short of `XLA_FLAGS=--xla_cpu_max_isa=AVX2`, which gives up AVX-512 code (measured: the lines
# go, and a float32 test sum changed in its 6th digit), and absl's log threshold has no per-file
# setting (`TF_CPP_MIN_LOG_LEVEL=3` would hide every real error). So, while a cached
# program loads, and only then, stderr (fd 2) goes to a temporary file, and what was written
# there is passed on except these exact lines: one per tuning flag, each naming only that flag
# (a real mismatch, e.g. +avx512f on a machine without it, is a line of its own and is kept),
# and the warning on the same path that PjRt does not track executable versions (JAX's cache
# key holds the jaxlib version, so an entry is only ever loaded by the jaxlib that wrote it).

_FALSE_ALARMS = re.compile(
    rb"^(?:E\d{4} [\d:.]+ +\d+ cpu_aot_loader\.cc:\d+\] Loading XLA:CPU AOT result\. Target "
    rb"machine feature \+prefer-no-(?:gather|scatter) is not +supported on the host machine\."
    rb"|W\d{4} [\d:.]+ +\d+ pjrt_executable\.cc:\d+\] Assume version compatibility\. PjRt-IFRT "
    rb"does not track XLA executable versions\.$)"
)


def drop_false_alarms(text: bytes) -> bytes:
    """`text` (what was written to stderr) without the lines that `_FALSE_ALARMS` matches."""
    lines = text.splitlines(keepends=True)
    return b"".join(ln for ln in lines if not _FALSE_ALARMS.match(ln.rstrip(b"\r\n")))


def _quiet_loads() -> None:
    """Filter stderr while JAX loads a program from the persistent cache (installed once)."""
    from jax._src import compilation_cache

    load = getattr(compilation_cache, "get_executable_and_time", None)
    if load is None or getattr(load, "_jaxfeat_quiet", False):
        return  # a JAX without this function: its messages go through unfiltered

    def quiet_load(*args, **kwargs):
        with _filtered_stderr():
            return load(*args, **kwargs)

    quiet_load._jaxfeat_quiet = True  # type: ignore[attr-defined]
    compilation_cache.get_executable_and_time = quiet_load


_lock = threading.Lock()
_held: dict = {"depth": 0}


@contextlib.contextmanager
def _filtered_stderr():
    """Send fd 2 to a temporary file for the block and pass its contents on, less the false
    alarms. Threads loading at once share one redirection (the last to leave passes it on);
    anything another thread writes meanwhile is delayed, never lost."""
    with _lock:
        if _held["depth"] == 0:
            _held["redirect"] = _redirect_stderr()
        _held["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _held["depth"] -= 1
            if _held["depth"] == 0:
                redirect = _held.pop("redirect")
                if redirect is not None:
                    _restore_stderr(*redirect)


def _redirect_stderr():
    """fd 2 → a temporary file; returns (a copy of the old fd 2, the file), or None (and
    nothing changed) where fd 2 cannot be redirected."""
    _flush_stderr()
    try:
        file = tempfile.TemporaryFile()
    except OSError:
        return None
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (a daemon)
        file.close()
        return None
    os.dup2(file.fileno(), 2)
    return saved, file


def _restore_stderr(saved: int, file) -> None:
    _flush_stderr()
    os.dup2(saved, 2)
    os.close(saved)
    file.seek(0)
    kept = drop_false_alarms(file.read())
    file.close()
    while kept:  # os.write may write less than asked
        kept = kept[os.write(2, kept) :]


def _flush_stderr() -> None:
    if sys.stderr is not None:
        sys.stderr.flush()
