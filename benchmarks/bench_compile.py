"""Compile time against problem parameters: it should not grow with them (issue #16, item 4).

- **degree**: `jax.jit(jax.value_and_grad(population_loss(method="hermite", degree=K)))`, 64
  students against 4 teachers, d = 20, tanh and relu with biases (the Mehler series; its
  orders run in `lax.scan`/array ops, not unrolled Python loops);
- **steps**: `jax.jit(jf.train)` on the exact population loss (d = 20, width 50, SGD) for a
  number of steps (one `lax.scan` per logging interval);
- **grid**: `jf.scan` of the `random_features` experiment over a vmapped grid axis of G points
  (`ridge` values: one program for all of them) and over a static axis of G values (`n_train`:
  one program each, so compile time grows as G by design); each scan in a fresh program cache;
- **presets** (`--only presets,buckets` runs these two alone, into
  `results/compile_presets-PLATFORM.json`): every experiment's `quick` preset, the compile
  seconds of each program it compiled (the scan's `programs` record: static point, equations,
  trace and compile seconds);
- **buckets**: `spikes` over G sample sizes n evenly spread on [250, 1000] with capacity
  buckets (`buckets="auto"`): the programs compiled and their total compile seconds must stay
  at one per bucket, not grow with G.

Each program is compiled once (`lower(...).compile()`, or the scan's own `compile_seconds`);
JAX's persistent compilation cache is off. `python benchmarks/bench_compile.py` writes
`results/compile-PLATFORM.json`.
"""

from __future__ import annotations

import argparse
import json
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from _timing import save

import jaxfeat as jf
from jaxfeat._scan import program


def compile_seconds(fn, *args) -> float:
    t0 = time.perf_counter()
    jax.jit(fn).lower(*args).compile()
    return time.perf_counter() - t0


def against_degree(degrees) -> dict:
    out = {}
    for act in ("tanh", "relu"):
        student = jf.TwoLayer.init(jax.random.key(0), 64, 20, act, "small")
        student = eqx.tree_at(lambda n: n.b, student, 0.1 * jnp.ones(64))
        teacher = jf.TwoLayer.init(jax.random.key(1), 4, 20, act, "sphere")
        params, static = eqx.partition(student, eqx.is_inexact_array)
        times = []
        for k in degrees:

            def loss(p, k=k):
                net = eqx.combine(p, static)
                return jf.population_loss(net, teacher, method="hermite", degree=k)

            times.append(compile_seconds(jax.value_and_grad(loss), params))
            print(f"degree {k:4d} {act}: compile {times[-1]:.2f} s", flush=True)
        out[act] = {"compile_s": times, "max_over_min": max(times) / min(times)}
    return {"degrees": list(degrees), **out}


def against_steps(steps_list) -> dict:
    teacher = jf.TwoLayer.init(jax.random.key(1), 4, 20, "sigma_ge2", "sphere")
    net = jf.TwoLayer.init(jax.random.key(0), 50, 20, "sigma_ge2", "small")
    times = []
    for steps in steps_list:
        run = lambda key, net, steps=steps: jf.train(  # noqa: E731
            key, net, jf.objectives.Population(teacher), optax.sgd(0.05), steps=steps
        )
        times.append(compile_seconds(run, jax.random.key(2), net))
        print(f"steps {steps:6d}: compile {times[-1]:.2f} s", flush=True)
    return {"steps": list(steps_list), "compile_s": times, "max_over_min": max(times) / min(times)}


def against_grid(sizes) -> dict:
    params = {"dim": 8, "width": 32, "n_test": 128}
    out = {"points": list(sizes), "dynamic_ridge": [], "static_n_train": []}
    for g in sizes:
        for axis, grid in (
            ("dynamic_ridge", {"ridge": [10.0 ** (-3 + 3 * i / g) for i in range(g)]}),
            ("static_n_train", {"n_train": [64 + 8 * i for i in range(g)]}),
        ):
            program.clear_caches()
            ds = jf.scan("random_features", grid, 4, params=params, progress=False)
            out[axis].append(float(ds.attrs["compile_seconds"]))
            print(f"grid {g:3d} points, {axis}: compile {out[axis][-1]:.2f} s", flush=True)
    d = out["dynamic_ridge"]
    out["dynamic_max_over_min"] = max(d) / min(d)
    return out


def _fresh():
    program.clear_caches()


def against_presets() -> dict:
    out = {}
    for name in jf.experiments.names():
        preset = jf.experiments.get(name).presets["quick"]
        _fresh()
        t0 = time.perf_counter()
        ds = jf.scan(name, preset["grid"], preset["seeds"], params=preset.get("set", {}),
                     progress=False, cache_dir=None)  # fmt: skip
        programs = json.loads(ds.attrs["programs"])
        out[name] = {
            "wall_s": time.perf_counter() - t0,
            "compile_s": float(ds.attrs["compile_seconds"]),
            "programs": programs,
        }
        print(
            f"{name}: {len(programs)} programs, compile {out[name]['compile_s']:.1f} s", flush=True
        )
    return out


def against_buckets(sizes) -> dict:
    out = {"values_of_n": list(sizes), "programs": [], "compile_s": []}
    for g in sizes:
        ns = sorted({int(round(250 + 750 * i / max(g - 1, 1))) for i in range(g)})
        _fresh()
        ds = jf.scan("spikes", {"alpha": [0.3], "n": ns}, 4, params={"n_test": 250},
                     progress=False, cache_dir=None)  # fmt: skip
        out["programs"].append(len(json.loads(ds.attrs["programs"])))
        out["compile_s"].append(float(ds.attrs["compile_seconds"]))
        print(f"{g} values of n: {out['programs'][-1]} programs, {out['compile_s'][-1]:.1f} s")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--degrees", default="10,50,80,160")
    p.add_argument("--steps", default="10,100,1000,10000")
    p.add_argument("--grid", default="1,4,16,64")
    p.add_argument("--buckets", default="3,6,12,24", help="numbers of values of n")
    p.add_argument("--only", help="presets,buckets: those sections alone (a file of their own)")
    args = p.parse_args()
    jax.config.update("jax_compilation_cache_dir", None)
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    if args.only:
        parts = {"presets": against_presets, "buckets": lambda: against_buckets(ints(args.buckets))}
        result = {k: parts[k]() for k in args.only.split(",")}
        print("wrote", save("compile_presets", result))
        return
    result = {
        "degree": against_degree(ints(args.degrees)),
        "steps": against_steps(ints(args.steps)),
        "grid": against_grid(ints(args.grid)),
    }
    print("wrote", save("compile", result))


if __name__ == "__main__":
    main()
