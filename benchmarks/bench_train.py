"""`jf.train` vmapped over seeds in one compiled call, against the loops people write without it.

    python benchmarks/bench_train.py [--seeds 1024] [--steps 10000] [--loop-seeds 2] [--x64]

Set-up (issue: training engine): SGD (lr 0.05) on the exact population loss, d = 20, student
width 50 (Gaussian init), teacher of 4 orthonormal sigma_ge2 neurons with a* = (1, .8, 1.2, −.9),
`--steps` steps logged every 1,000. Timed in one process:

- **vmap**: `jax.jit(jax.vmap(run))` over `--seeds` seeds, `run(key) = train(key, init(key), …)`:
  compile and steady state separately (DESIGN §6.11);
- **(a) per-seed loop, jitted step**: a Python loop over seeds and steps calling one `jax.jit`-ed
  optax SGD step (what a JAX user writes without vmap), on `--loop-seeds` seeds;
- **(b) per-seed NumPy loop** of the same maths: the closed-form σ≥2 kernel and its gradient
  (MATH §2.2), on `--loop-seeds` seeds; its final loss is checked against `jf.train`'s;
- **(c) per-seed loop over the whole-run jitted `train`** (one call per seed): the fair
  single-seed baseline;
- throughput (seeds·steps/s) against the seed batch (issue 16's question: which batch is best on
  this machine), and compile times at steps = 10 and 10,000;
- achieved FLOP/s from XLA's cost analysis of the vmapped program against a 2048² matmul.
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _timing import block, matmul_flops, save, time_jitted

import jaxfeat as jf
from jaxfeat.bench import _numpy_sigma_ge2_grad, _numpy_sigma_ge2_loss

D, WIDTH, A_STAR, LR = 20, 50, (1.0, 0.8, 1.2, -0.9), 0.05


def teacher():
    k = len(A_STAR)
    return jf.TwoLayer(np.eye(k, D), np.zeros(k), np.asarray(A_STAR), "sigma_ge2")


def init(key):
    return jf.TwoLayer.init(key, WIDTH, D, "sigma_ge2", "gaussian")


def make_run(steps, log_every):
    obj = jf.objectives.Population(teacher())

    def run(key):
        net, hist = jf.train(key, init(key), obj, optax.sgd(LR), steps=steps, log_every=log_every)
        return hist["loss"][-1], net

    return run


def jitted_step():
    """One optax SGD step on (W, a), jitted: the per-seed loop's unit of work."""
    t, opt = teacher(), optax.sgd(LR)

    @jax.jit
    def step(params, state, net):
        def loss(p):
            return jf.population_loss(jf.TwoLayer(p[0], net.b, p[1], "sigma_ge2"), t)

        g = jax.grad(loss)(params)
        updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state

    return step, opt


def step_flops(keys) -> float:
    """XLA's flop count of one vmapped SGD step (loss, gradient, update) over `keys`' seeds."""
    t, opt = teacher(), optax.sgd(LR)

    def one(key):
        net = init(key)
        g = jax.grad(
            lambda W, a: jf.population_loss(jf.TwoLayer(W, net.b, a, "sigma_ge2"), t), (0, 1)
        )(net.W, net.a)
        u, _ = opt.update(g, opt.init(g))
        return optax.apply_updates((net.W, net.a), u)

    cost = jax.jit(jax.vmap(one)).lower(keys).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan"))) if cost else float("nan")


def numpy_grad(W, a, Ws, a_s):
    """Closed-form σ≥2 population loss L and (∂L/∂W, ∂L/∂a) in NumPy (MATH §2.2), the same
    functions `jaxfeat bench` times as its NumPy baseline (pinned to `jax.grad` in
    tests/test_bench.py)."""
    return (_numpy_sigma_ge2_loss(W, a, Ws, a_s), *_numpy_sigma_ge2_grad(W, a, Ws, a_s))


def numpy_run(W, a, steps):
    Ws, a_s = np.eye(len(A_STAR), D), np.asarray(A_STAR)
    for _ in range(steps):
        _, gW, ga = numpy_grad(W, a, Ws, a_s)
        W, a = W - LR * gW, a - LR * ga
    return numpy_grad(W, a, Ws, a_s)[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=1024)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--loop-seeds", type=int, default=2)
    p.add_argument("--batches", default="1,4,16,64,256,1024")
    p.add_argument("--batch-steps", type=int, default=1000)
    p.add_argument("--x64", action="store_true")
    args = p.parse_args()
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    steps, log_every = args.steps, min(1000, args.steps)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    res = {
        "set_up": dict(
            dim=D,
            width=WIDTH,
            teacher=A_STAR,
            lr=LR,
            steps=steps,
            seeds=args.seeds,
            dtype=str(jnp.zeros(()).dtype),
        )
    }

    run = make_run(steps, log_every)
    vm = jax.jit(jax.vmap(run))
    t0 = time.perf_counter()
    compiled = vm.lower(keys).compile()  # compile and one steady run (a run is minutes long)
    t = {"compile_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    final = np.asarray(block(compiled(keys))[0])
    t["steady_s"] = time.perf_counter() - t0
    flops = steps * step_flops(keys)  # XLA counts a while loop's body once: count one step
    res["vmap"] = t | {
        "seed_steps_per_s": args.seeds * steps / t["steady_s"],
        "xla_flops": flops,
        "achieved_flops_per_s": flops / t["steady_s"],
        "final_loss_median": float(np.median(final)),
    }
    print(
        f"vmap: {args.seeds} seeds × {steps} steps in {t['steady_s']:.2f} s "
        f"(compile {t['compile_s']:.1f} s)"
    )

    # (a) per-seed Python loop over a jitted step
    step, opt = jitted_step()
    ls = args.loop_seeds
    nets = [init(k) for k in keys[:ls]]
    params0 = (nets[0].W, nets[0].a)
    block(step(params0, opt.init(params0), nets[0]))  # compile
    t0 = time.perf_counter()
    trained = []
    for net in nets:
        params = (net.W, net.a)
        state = opt.init(params)
        for _ in range(steps):
            params, state = step(params, state, net)
        trained.append(block(params))
    ta = (time.perf_counter() - t0) / ls
    loss = jax.jit(lambda W, a, b: jf.population_loss(jf.TwoLayer(W, b, a, "sigma_ge2"), teacher()))
    loop_final = [float(loss(W, a, n.b)) for (W, a), n in zip(trained, nets)]
    res["loop_jitted_step"] = {
        "s_per_seed": ta,
        "seed_steps_per_s": steps / ta,
        "seeds_timed": ls,
        "final_loss": loop_final,
    }
    print(f"(a) per-seed loop of a jitted step: {ta:.2f} s per seed")

    # (b) NumPy loop of the same maths, from the same initial networks
    t0 = time.perf_counter()
    np_final = [
        numpy_run(np.asarray(n.W, np.float64), np.asarray(n.a, np.float64), steps) for n in nets
    ]
    tb = (time.perf_counter() - t0) / ls
    res["numpy_loop"] = {
        "s_per_seed": tb,
        "seed_steps_per_s": steps / tb,
        "final_loss": np_final,
        "jax_final_loss": final[:ls].tolist(),
    }
    print(
        f"(b) NumPy loop: {tb:.2f} s per seed; final loss NumPy {np_final} vs jf.train "
        f"{final[:ls].tolist()}"
    )

    # (c) per-seed loop over the whole-run jitted train
    one = jax.jit(run)
    block(one(keys[0]))
    t0 = time.perf_counter()
    for k in keys[:ls]:
        block(one(k))
    tc = (time.perf_counter() - t0) / ls
    res["loop_jitted_train"] = {"s_per_seed": tc, "seed_steps_per_s": steps / tc}
    print(f"(c) per-seed loop of the jitted whole run: {tc:.3f} s per seed")

    tv = t["steady_s"] / args.seeds
    res["speedup"] = {
        "vs_loop_jitted_step": ta / tv,
        "vs_numpy_loop": tb / tv,
        "vs_loop_jitted_train": tc / tv,
    }
    print(
        f"speed-up of vmap per seed: {ta / tv:.1f}× over (a), {tb / tv:.1f}× over (b), "
        f"{tc / tv:.2f}× over (c)"
    )

    # throughput against the seed batch (shorter runs)
    bs = make_run(args.batch_steps, args.batch_steps)
    res["by_batch"] = []
    for b in [int(x) for x in args.batches.split(",")]:
        f = jax.jit(jax.vmap(bs))
        tb_ = time_jitted(
            f, keys[:b] if b <= args.seeds else jax.random.split(keys[0], b), repeats=3
        )
        rate = b * args.batch_steps / tb_["steady_s"]
        res["by_batch"].append({"batch": b, "steady_s": tb_["steady_s"], "seed_steps_per_s": rate})
        print(f"batch {b:5d}: {rate:.3g} seed·steps/s")

    # compile time does not grow with steps
    ct = {}
    for s in (10, 10_000):
        f = jax.jit(jax.vmap(make_run(s, 10)))
        lowered = f.lower(keys[:8])
        t0 = time.perf_counter()
        lowered.compile()
        ct[s] = time.perf_counter() - t0
    res["compile_s"] = {"steps_10": ct[10], "steps_10000": ct[10_000], "ratio": ct[10_000] / ct[10]}
    print(f"compile: {ct[10]:.2f} s at 10 steps, {ct[10_000]:.2f} s at 10,000")

    gemm = matmul_flops(2048, str(jnp.zeros(()).dtype))
    res["gemm_flops_per_s"] = gemm
    res["fraction_of_gemm"] = res["vmap"]["achieved_flops_per_s"] / gemm
    print(
        f"achieved {res['vmap']['achieved_flops_per_s'] / 1e9:.2f} GFLOP/s "
        f"= {100 * res['fraction_of_gemm']:.1f} % of a 2048² matmul ({gemm / 1e9:.0f} GFLOP/s)"
    )
    assert math.isfinite(res["vmap"]["final_loss_median"])
    print(save("train" + ("-x64" if args.x64 else ""), res))


if __name__ == "__main__":
    main()
