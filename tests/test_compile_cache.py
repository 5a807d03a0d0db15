"""The persistent compilation cache for Python users (`jf.enable_compile_cache`, issue 27).

Each process-level check runs in a fresh subprocess: the cache is process-wide JAX state, and
the test process keeps it off (conftest) so that compile counts elsewhere see real compiles.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
import threading

import pytest

from jaxfeat import _compile_cache

# JAX records these monitoring events per compile request that uses the cache
_HITS, _MISSES = "/jax/compilation_cache/cache_hits", "/jax/compilation_cache/cache_misses"

_PROLOGUE = f"""
import json, os, sys
import jax, jax.numpy as jnp
import jaxfeat as jf
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
def counts():
    return {{"hits": events.count({_HITS!r}), "misses": events.count({_MISSES!r})}}
def entries(path):
    return len(os.listdir(path)) if os.path.isdir(path) else 0
"""


def _python(body: str) -> tuple[dict, str]:
    """Run `body` after `_PROLOGUE` in a fresh process; its last stdout line is JSON."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("JAXFEAT_CACHE_DIR", None)
    code = _PROLOGUE + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


_ROUND_TRIP = """
path = jf.enable_compile_cache({path!r})
f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum(axis=0) * 3.0)  # compiles in well under 1 s
x = jnp.arange(48.0).reshape(6, 8) / 48
value = f(x).tolist()
print(json.dumps(dict(counts(), entries=entries(path), value=value)))
"""


def _error_lines(stderr: str) -> list[str]:
    """absl/glog error lines (`E1205 12:00:00.000000  123 file.cc:42] …`) and any line that
    mentions the AOT loader."""
    return [ln for ln in stderr.splitlines() if re.match(r"E\d{4} ", ln) or "aot_loader" in ln]


@pytest.mark.slow
def test_second_process_loads_from_the_cache_and_prints_no_error_lines(tmp_path):
    """A fresh cache: the first process compiles and writes (a program that compiles in
    milliseconds is cached too); a second process loads it (cache hits, no misses), computes
    the same numbers, and neither prints an XLA error line (jaxlib 0.9.2 on an AVX-512 CPU
    logged two false `cpu_aot_loader` errors per program loaded)."""
    body = _ROUND_TRIP.format(path=str(tmp_path / "cache"))
    first, err1 = _python(body)
    assert first["misses"] >= 1 and first["hits"] == 0 and first["entries"] >= 1, first
    second, err2 = _python(body)
    assert second["hits"] >= 1 and second["misses"] == 0, second
    assert second["entries"] == first["entries"] and second["value"] == first["value"]
    assert not _error_lines(err1) and not _error_lines(err2), (err1 + err2)[:2000]


def test_off_disables_and_the_directory_can_change_after_compiling(tmp_path):
    """`enable_compile_cache(None)` after the cache was used: nothing more is written to or
    read from it. A new directory afterwards takes effect at once (JAX opens its cache object
    at the first compile and keeps it; a reset is needed). The same path again is a no-op."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    body = f"""
    from jax._src import compilation_cache as cc
    out = {{}}
    jf.enable_compile_cache({a!r})
    jax.jit(lambda x: x * 2.0 + 1.0)(1.0)
    out["a_used"] = entries({a!r})
    assert jf.enable_compile_cache(None) is None and jax.config.jax_compilation_cache_dir is None
    before = counts()
    jax.jit(lambda x: x * 2.0 + 1.0)(1.0)  # the same program: a hit, if the cache were on
    jax.jit(lambda x: x * 5.0 - 1.0)(1.0)  # a new one: a write, if it were on
    out["a_after_off"], out["counts_off"] = entries({a!r}), [counts(), before]
    out["b_path"] = jf.enable_compile_cache({b!r})
    opened = cc._cache
    out["again"] = jf.enable_compile_cache({b!r})
    out["same_object"] = opened is cc._cache
    jax.jit(lambda x: x * 7.0)(1.0)
    out["b_used"], out["a_final"] = entries({b!r}), entries({a!r})
    print(json.dumps(out))
    """
    out, _ = _python(body)
    assert out["a_used"] >= 1
    assert out["a_after_off"] == out["a_used"], out
    assert out["counts_off"][0] == out["counts_off"][1], "a compile used the cache while off"
    assert out["b_path"] == out["again"] == b and out["same_object"]
    assert out["b_used"] >= 1 and out["a_final"] == out["a_used"], out


def test_default_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXFEAT_CACHE_DIR", str(tmp_path / "x"))
    assert _compile_cache.default_cache_dir() == str(tmp_path / "x")
    monkeypatch.setenv("JAXFEAT_CACHE_DIR", "off")
    assert _compile_cache.default_cache_dir() is None
    monkeypatch.delenv("JAXFEAT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _compile_cache.default_cache_dir() == str(tmp_path / "xdg" / "jaxfeat" / "xla")


# The two lines jaxlib 0.9.2 printed for every cached program loaded (features list shortened)
_ALARM = (
    "E1205 22:29:13.069722    3163 cpu_aot_loader.cc:220] Loading XLA:CPU AOT result. Target "
    "machine feature +prefer-no-{} is not  supported on the host machine. Machine type used for "
    "XLA:CPU compilation doesn't match the machine type for execution. Compile machine features: "
    "[+64bit,+avx512f,+prefer-no-gather,+prefer-no-scatter] vs host machine features: "
    "[64bit,avx512f]. This could lead to execution errors such as SIGILL.\n"
)
_VERSION_WARNING = (
    "W1205 22:29:13.047065    3150 pjrt_executable.cc:642] Assume version compatibility. "
    "PjRt-IFRT does not track XLA executable versions.\n"
)


def test_only_the_false_alarms_are_dropped():
    """The two tuning-flag lines and the version warning go; a real feature mismatch (a line
    of its own naming an instruction-set feature), other errors and plain text stay."""
    real = _ALARM.replace("+prefer-no-{}", "+avx512f")
    other = "E1205 22:29:13.1 3163 cpu_client.cc:1] something else failed\n"
    text = (
        "hello\n"
        + _ALARM.format("gather")
        + _VERSION_WARNING
        + _ALARM.format("scatter")
        + real
        + other
        + "no newline at the end"
    )
    kept = _compile_cache.drop_false_alarms(text.encode()).decode()
    assert kept == "hello\n" + real + other + "no newline at the end"


def test_filtered_stderr_passes_on_everything_else_from_every_thread(capfd):
    """While a load is filtered, whatever any thread writes to fd 2 still arrives, in order,
    and stderr is the real one again afterwards (threads share one redirection)."""
    start = threading.Barrier(3)

    def load(name):
        start.wait()
        with _compile_cache._filtered_stderr():
            os.write(2, f"{name} before\n".encode() + _ALARM.format("gather").encode())
            os.write(2, f"{name} after\n".encode())

    threads = [threading.Thread(target=load, args=(f"t{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    load("t2")
    for t in threads:
        t.join()
    os.write(2, b"done\n")
    err = capfd.readouterr().err
    assert "cpu_aot_loader" not in err
    for name in ("t0", "t1", "t2"):
        assert err.index(f"{name} before") < err.index(f"{name} after") < err.index("done")
    assert _compile_cache._held == {"depth": 0}


@pytest.mark.parametrize("flag, expected", [("off", None), ("/x/y", "/x/y")])
def test_cli_flag_wins_over_the_environment(monkeypatch, flag, expected):
    from jaxfeat import cli

    monkeypatch.setenv("JAXFEAT_CACHE_DIR", "/elsewhere")
    assert cli.compilation_cache_dir(flag) == expected
    assert cli.compilation_cache_dir(None) == "/elsewhere"
