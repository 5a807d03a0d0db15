"""Seeds × α of the whole one-step experiment (MATH §4.4 sizes) in one compiled call, against a
plain per-seed NumPy loop of the same maths (full SVD, `np.linalg.inv` ridge per λ).

    python benchmarks/bench_one_step_seeds.py [--seeds 64] [--numpy-seeds 2] [--n 4000] [--N 1000]

The JAX side runs every (seed, α) pair in one `jit` (`lax.map` in batches of `--batch`, so memory
stays bounded); the NumPy loop runs `--numpy-seeds` seeds × the same α and is timed per pair.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from _timing import machine, save

from jaxfeat.experiments.spikes import run as spikes_run

ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.4)
LAMBDAS = np.logspace(-7, 0, 15)


def jax_program(n, N, n_test, batch):
    def one(key_alpha):
        key, alpha = key_alpha
        out = spikes_run(key, alpha=alpha, n=n, dim=N, width=N, n_test=n_test)
        return out["n_outliers"], out["test_mse_w1"]

    @jax.jit
    def all_pairs(keys, alphas):
        return jax.lax.map(one, (keys, alphas), batch_size=batch)

    return all_pairs


def numpy_one(rng, alpha, n, N, n_test, degree=8, margin=1.02, c=1.0):
    """The same experiment in NumPy: relu, sphere W₀, a ~ N(0, 1/N), scale 1/√N, y = He₁ + ½He₂."""
    d = N

    def sample(m):
        X = rng.standard_normal((m, d))
        z = X[:, 0]
        return X, z + 0.5 * (z**2 - 1) + 0.1 * rng.standard_normal(m)

    X, y = sample(n)
    W0 = rng.standard_normal((N, d))
    W0 /= np.linalg.norm(W0, axis=1, keepdims=True)
    a = rng.standard_normal(N) / np.sqrt(N)
    scale = 1 / np.sqrt(N)
    pre = X @ W0.T
    r = y - scale * np.maximum(pre, 0) @ a
    grad = -(scale / n) * ((r[:, None] * (pre > 0)) * a[None, :]).T @ X
    eta = c * n**alpha
    W1 = W0 - (eta / scale) * grad
    zeta = X.T @ r / n
    Xt, yt = sample(n)
    Xs, ys = sample(n_test)
    F1 = np.maximum(Xt @ W1.T, 0)
    F1c = F1 - F1.mean(0)
    s = np.linalg.svd(F1c, compute_uv=False)
    u = Xt @ (zeta / np.linalg.norm(zeta))
    H = np.stack(
        [np.polynomial.hermite_e.hermeval(u, np.eye(degree + 1)[k]) for k in range(1, degree + 1)],
        1,
    )
    Q = np.linalg.qr(H)[0]
    edge = np.linalg.svd(F1c - Q @ (Q.T @ F1c), compute_uv=False)[0]
    count = int(np.sum(s[:10] > margin * edge))
    mses = []
    for W in (W1, W0):
        F = np.maximum(Xt @ W.T, 0)
        mu = F.mean(0)
        Fc = F - mu
        Fs = np.maximum(Xs @ W.T, 0) - mu
        best = np.inf
        for lam in LAMBDAS:
            coef = (
                np.linalg.inv(Fc.T @ Fc / n + lam * np.eye(N))
                @ (Fc.T @ (y_c := yt - yt.mean()))
                / n
            )
            best = min(best, np.mean((Fs @ coef + yt.mean() - ys) ** 2))
            del y_c
        mses.append(best)
    return count, mses[0]


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=64)
    p.add_argument("--numpy-seeds", type=int, default=2)
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--N", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--batch", type=int, default=4)
    args = p.parse_args(argv)
    pairs = args.seeds * len(ALPHAS)
    keys = jax.vmap(jax.random.fold_in, (None, 0))(
        jax.random.key(0), jnp.arange(pairs) // len(ALPHAS)
    )
    alphas = jnp.tile(jnp.asarray(ALPHAS, jnp.float32), args.seeds)
    prog = jax_program(args.n, args.N, args.n_test, args.batch)
    t0 = time.perf_counter()
    compiled = prog.lower(keys, alphas).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    counts, mse = jax.block_until_ready(compiled(keys, alphas))
    jax_s = time.perf_counter() - t0
    counts = np.asarray(counts).reshape(args.seeds, len(ALPHAS))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    np_counts = [
        [numpy_one(rng, a, args.n, args.N, args.n_test)[0] for a in ALPHAS]
        for _ in range(args.numpy_seeds)
    ]
    numpy_s = time.perf_counter() - t0
    per_pair_jax = jax_s / pairs
    per_pair_np = numpy_s / (args.numpy_seeds * len(ALPHAS))
    result = {
        "n": args.n,
        "n_tilde": args.n,
        "d": args.N,
        "N": args.N,
        "n_test": args.n_test,
        "alphas": ALPHAS,
        "seeds": args.seeds,
        "numpy_seeds": args.numpy_seeds,
        "jax_compile_s": compile_s,
        "jax_run_s": jax_s,
        "jax_s_per_pair": per_pair_jax,
        "numpy_s_per_pair": per_pair_np,
        "speedup_per_pair": per_pair_np / per_pair_jax,
        "mean_spike_count_jax": counts.mean(0).tolist(),
        "mean_spike_count_numpy": np.mean(np_counts, 0).tolist(),
        "machine": machine(),
    }
    print(result)
    print(f"saved {save('one_step_seeds', result)}")


if __name__ == "__main__":
    main()
