"""The `equivalence` experiment's cost per seed (issue #24) against a NumPy loop of the same
protocol: one step, then for F₁, F₀ and F₀ + k spike terms (k = 1..K) a ridge path over 15 λ
with exact leave-one-out, the test errors and the Hermite projections.

    python benchmarks/bench_equivalence.py [--n 1000,2000] [--seeds 16] [--terms 3]

jaxfeat: `jf.scan("equivalence", ...)` over `--seeds` seeds at one (α, n) point, first call
(tracing + compiling + computing, persistent cache off) and a second call (computing only);
NumPy: the same protocol seed by seed in float32 (OpenBLAS, default threads), its draws its own.
Both in this process, jaxfeat in float32. Results: `results/equivalence-PLATFORM.json`, with
the mean test MSE of F₁ from both (they agree to sampling error, not to rounding).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
LAMBDAS = np.logspace(-7, 0, 15)
C = [0.0, 0.5, 1 / math.sqrt(2 * math.pi), 0.0, -1 / math.sqrt(2 * math.pi)]  # ReLU μ'_k


def numpy_seed(rng, n, terms, n_test, alpha=0.3):
    """One seed of the protocol in NumPy float32 (d = N = n/4, f* = He₁ + ½He₂, noise 0.1)."""
    d = N = n // 4
    f32 = np.float32

    def sample(m):
        X = rng.standard_normal((m, d), dtype=f32)
        z = X[:, 0]
        return X, z + 0.5 * (z**2 - 1) + 0.1 * rng.standard_normal(m, dtype=f32)

    W0 = rng.standard_normal((N, d), dtype=f32)
    W0 /= np.linalg.norm(W0, axis=1, keepdims=True)
    a = rng.standard_normal(N, dtype=f32) / np.sqrt(N)
    X, y = sample(n)
    Z = X @ W0.T
    r = y - np.maximum(Z, 0) @ a / np.sqrt(N)
    W1 = W0 + f32(n**alpha) / n * ((Z > 0) * r[:, None] * a[None, :]).T @ X
    zeta = X.T @ r / n
    u = zeta / np.linalg.norm(zeta)
    delta = (W1 - W0) @ u

    def maps(X):
        s, F0 = X @ u, np.maximum(X @ W0.T, 0)
        he = [np.ones_like(s), s, s * s - 1, s**3 - 3 * s, s**4 - 6 * s * s + 3]
        out, F = [np.maximum(X @ W1.T, 0), F0], F0
        for k in range(1, terms + 1):
            F = F + C[k] / math.factorial(k) * np.outer(he[k], delta**k)
            out.append(F)
        return out

    (Xt, yt), (Xs, ys) = sample(n), sample(n_test)
    return [_ridge(F, yt, G, ys) for F, G in zip(maps(Xt), maps(Xs))]


def _ridge(F, y, G, ys):
    """Ridge path with intercept, exact LOO; (test MSE at the LOO λ, oracle)."""
    n = len(y)
    Fm, ym = F.mean(0), y.mean()
    Fc, yc = F - Fm, y - ym
    e, V = np.linalg.eigh(Fc.T @ Fc / n)
    FV = Fc @ V
    proj = V.T @ (Fc.T @ yc) / n
    coef = (V[None] * (proj / (e[None, :] + LAMBDAS[:, None]))[:, None, :]).sum(-1)  # (L, N)
    resid = yc[:, None] - Fc @ coef.T
    lev = (FV**2) @ (1 / (e[None, :] + LAMBDAS[:, None])).T / n + 1 / n
    j = np.argmin(np.mean((resid / (1 - lev)) ** 2, 0))
    test = np.mean(((G - Fm) @ coef.T + ym - ys[:, None]) ** 2, 0)
    return test[j], test.min()


def jaxfeat_seconds(n, seeds, terms, n_test):
    import jax

    import jaxfeat as jf

    kw = dict(grid={"alpha": [0.3]}, seeds=seeds, cache_dir=None, progress=False)
    params = {"n": n, "terms": terms, "n_test": n_test}
    t0 = time.perf_counter()
    ds = jf.scan("equivalence", params=params, **kw)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jf.scan("equivalence", params=params, seed=1, **kw)
    second = time.perf_counter() - t0
    jax.clear_caches()
    return first, second, float(ds["test_mse"].sel(features="F1").mean())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", default="1000,2000")
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--terms", type=int, default=3)
    p.add_argument("--n-test", type=int, default=1000)
    args = p.parse_args()
    rows = []
    for n in (int(v) for v in args.n.split(",")):
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        errs = [numpy_seed(rng, n, args.terms, args.n_test) for _ in range(args.seeds)]
        numpy_s = time.perf_counter() - t0
        first, second, mse = jaxfeat_seconds(n, args.seeds, args.terms, args.n_test)
        row = {
            "n": n, "width": n // 4, "seeds": args.seeds, "terms": args.terms,
            "numpy_s_per_seed": numpy_s / args.seeds,
            "jaxfeat_first_call_s_per_seed": first / args.seeds,
            "jaxfeat_warm_s_per_seed": second / args.seeds,
            "speedup_warm": numpy_s / second, "speedup_first_call": numpy_s / first,
            "test_mse_F1_jaxfeat": mse,
            "test_mse_F1_numpy": float(np.mean([e[0][0] for e in errs])),
        }  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    sys.path.insert(0, HERE)
    import jax
    from _timing import machine

    path = os.path.join(HERE, "results", f"equivalence-{jax.devices()[0].platform}.json")
    with open(path, "w") as f:
        cmd = "python benchmarks/bench_equivalence.py " + " ".join(sys.argv[1:])
        json.dump({"machine": machine(), "command": cmd, "rows": rows}, f, indent=1)
    print(path)


if __name__ == "__main__":
    main()
