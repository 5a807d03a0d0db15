"""Fast to start (issue #27): cold-cache wall time of every quick preset against a baseline
checkout, the dry run's ETA against the real wall, and a one-step learning curve against a
per-seed NumPy loop.

1. **Quick presets, before and after**: `jaxfeat run NAME` (cold: `--cache-dir off`, a fresh
   store) with this checkout and with `--baseline DIR` (another commit's checkout, e.g.
   `git worktree add /tmp/old 407e772`), run in turn A, B, A, B … (this host drifts 2×
   within minutes), each in its own process; the median wall and the parsed tracing /
   compiling / computing seconds of each side.
2. **ETA**: `jaxfeat run NAME --dry-run` (this checkout) against the real run's wall; the
   calibration is read from and written to a temporary file that starts empty (cold: the
   default rates) and the dry run is repeated after the run (warm: this machine's rates).
3. **Learning curve**: one step on n₀ = 2d samples (η = n₀^0.3), then ridge (λ = 10⁻³) on ñ fresh
   samples for 7 values of ñ, test MSE on 1,000 points, 3 seeds, d = width ∈ {128, 400}:
   jaxfeat with ñ a dynamic size below one capacity (`jf.Capacity`, `dist.sample(capacity=)`,
   `ridge_fit(n=)`: one program for the 7 sizes) timed from a cold start (compiling included)
   and warm, against a NumPy loop of the same protocol (float32, one seed and one ñ at a time).

`python benchmarks/bench_start.py --baseline /tmp/old` writes `results/start-PLATFORM.json`.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from _timing import save

import jaxfeat as jf
from jaxfeat._scan import cost

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = ("spikes", "random_features", "teacher_student", "local_convergence")
PRESETS += ("gradient_features",)
TIMING = re.compile(
    r"in ([\d.]+) s \(tracing ([\d.]+) s, compiling ([\d.]+) s, computing ([\d.]+) s\)"
)
ETA = re.compile(r"ETA: ([\d.]+) (ms|s|min|h)")


def cli(checkout: str, args: list[str], env: dict) -> tuple[float, str]:
    """(wall seconds, stdout + stderr) of `jaxfeat ARGS` with the package from `checkout`."""
    code = "import sys; from jaxfeat.cli import main; sys.exit(main())"
    env = {**os.environ, **env, "PYTHONPATH": checkout}
    t0 = time.perf_counter()
    got = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=checkout, env=env, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return time.perf_counter() - t0, got.stdout + got.stderr


def run_preset(checkout: str, name: str, out: str, env: dict) -> dict:
    args = ["run", name, "--cache-dir", "off", "--out", out, "--overwrite", "--quiet"]
    wall, text = cli(checkout, args + ["--no-plot"], env)
    m = TIMING.search(text)
    assert m is not None, text[-2000:]
    scan, tracing, compiling, computing = map(float, m.groups())
    return dict(wall=wall, scan=scan, tracing=tracing, compiling=compiling, computing=computing)


def eta_seconds(checkout: str, name: str, env: dict) -> float:
    _, text = cli(checkout, ["run", name, "--dry-run", "--cache-dir", "off"], env)
    m = ETA.search(text)
    assert m is not None, text[-2000:]
    value, unit = float(m.group(1)), m.group(2)
    return value * {"ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}[unit]


def presets(baseline: str | None, repeats: int, names) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {"JAXFEAT_CALIBRATION": os.path.join(tmp, "calibration.json")}
        for name in names:
            store = os.path.join(tmp, f"{name}.zarr")
            eta_cold = eta_seconds(HERE, name, env)
            rows = {"new": [], "old": []}
            for _ in range(repeats):  # A, B, A, B …
                rows["new"].append(run_preset(HERE, name, store, env))
                if baseline:
                    rows["old"].append(run_preset(baseline, name, store + "-old", {}))
            eta_warm = eta_seconds(HERE, name, env)
            res = {side: _medians(r) for side, r in rows.items() if r}
            wall = res["new"]["wall"]
            res["eta"] = dict(
                cold_s=eta_cold, warm_s=eta_warm, wall_s=wall,
                cold_ratio=eta_cold / wall, warm_ratio=eta_warm / wall,
            )  # fmt: skip
            if baseline:
                res["new_over_old_wall"] = wall / res["old"]["wall"]
            out[name] = res
            print(name, res, flush=True)
    return out


def _medians(rows: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]} | {"runs": rows}


# ----------------------------------------------------------------------------- learning curve


def _protocol(d: int):
    n0, sizes = 2 * d, [d // 2, d, 2 * d, 3 * d, 4 * d, 6 * d, 8 * d]
    return n0, sizes, 1000, 1e-3


def jaxfeat_curve(d: int, seeds: int) -> tuple[float, float, np.ndarray]:
    """(first-call seconds, warm seconds, test MSE (seeds, sizes)) of the whole curve: the step
    once per seed (vmapped), then the readout for each ñ, the sizes in two capacity buckets
    (`cost.choose_buckets`, cost ∝ ñ: two readout programs for seven sizes)."""
    n0, sizes, n_test, lam = _protocol(d)
    buckets = cost.choose_buckets(sizes, float, 0.0, programs=2)
    capacity = {s: max(b) for b in buckets for s in b}
    dist = jf.data.SingleIndex(np.eye(1, d)[0], [0.0, 1.0, 0.7], noise=0.1)

    @jax.jit
    def step(key):
        k_step, k_test = jax.random.split(key)
        res = jf.one_step(k_step, dist, n=n0, width=d, activation="relu", alpha=0.3)
        return res.W1, dist.sample(k_test, n_test)

    def readout(cap):
        @jax.jit
        def point(key, W1, test, n_tilde):
            X, y = dist.sample(jax.random.fold_in(key, 7), n_tilde, capacity=cap)
            feats = lambda X: jax.nn.relu(X @ W1.T)  # noqa: E731
            fit = jf.ridge.ridge_fit(feats(X), y, lam, feats(test[0]), test[1], n=n_tilde)
            return fit["test_mse"]

        return jax.vmap(point, (0, 0, 0, None))

    keys = jax.random.split(jax.random.key(0), seeds)
    programs = {c: readout(c) for c in set(capacity.values())}

    def whole():
        W1, test = jax.vmap(step)(keys)
        cols = [programs[capacity[s]](keys, W1, test, jnp.int32(s)) for s in sizes]
        return np.stack([np.asarray(c) for c in cols], axis=1)

    t0 = time.perf_counter()
    first = whole()
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    whole()
    return cold, time.perf_counter() - t0, first


def numpy_curve(d: int, seeds: int) -> tuple[float, np.ndarray]:
    """Seconds and test MSE of the same protocol as a NumPy loop (float32, one seed and one
    ñ at a time; the step as `one_step`'s rule with ReLU, sphere rows, a ~ N(0, I/d))."""
    n0, sizes, n_test, lam = _protocol(d)
    rng = np.random.default_rng(0)
    f = np.float32

    def sample(n):
        X = rng.standard_normal((n, d), f)
        z = X[:, 0]
        y = z + 0.7 * (z * z - 1) / np.sqrt(2) + 0.1 * rng.standard_normal(n, f)
        return X, y.astype(f)

    t0 = time.perf_counter()
    out = np.zeros((seeds, len(sizes)))
    for s in range(seeds):
        X, y = sample(n0)
        W0 = rng.standard_normal((d, d), f)
        W0 /= np.linalg.norm(W0, axis=1, keepdims=True)
        a = rng.standard_normal(d, f) / np.sqrt(d)
        pre = X @ W0.T
        r = y - np.maximum(pre, 0) @ a
        D = (r[:, None] * a[None, :]) * (pre > 0)
        W1 = W0 + (n0**0.3 / n0) * D.T @ X
        Xt, yt = sample(n_test)
        Ft = np.maximum(Xt @ W1.T, 0)
        for j, nt in enumerate(sizes):
            Xr, yr = sample(nt)
            F = np.maximum(Xr @ W1.T, 0)
            fm, ym = F.mean(0), yr.mean()
            Fc = F - fm
            coef = np.linalg.solve(Fc.T @ Fc / nt + lam * np.eye(d, dtype=f), Fc.T @ (yr - ym) / nt)
            out[s, j] = np.mean((Ft @ coef + ym - fm @ coef - yt) ** 2)
    return time.perf_counter() - t0, out


def learning_curves(dims, seeds: int) -> dict:
    res = {}
    for d in dims:
        cold, warm, mse = jaxfeat_curve(d, seeds)
        numpy_s, mse_np = numpy_curve(d, seeds)
        res[str(d)] = dict(
            sizes=_protocol(d)[1], jaxfeat_cold_s=cold, jaxfeat_warm_s=warm, numpy_s=numpy_s,
            speedup_cold=numpy_s / cold, speedup_warm=numpy_s / warm,
            test_mse_jaxfeat=mse.mean(0).tolist(), test_mse_numpy=mse_np.mean(0).tolist(),
        )  # fmt: skip
        print(d, {k: v for k, v in res[str(d)].items() if "mse" not in k}, flush=True)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", help="a checkout of the commit to compare with")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--presets", nargs="*", default=list(PRESETS))
    p.add_argument("--curve-dims", nargs="*", type=int, default=[128, 400])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--name", default="start", help="results/NAME-PLATFORM.json")
    args = p.parse_args()
    out = {"baseline": args.baseline, "repeats": args.repeats}
    out["learning_curve"] = learning_curves(args.curve_dims, args.seeds)
    out["presets"] = presets(args.baseline, args.repeats, args.presets)
    print(save(args.name, out))


if __name__ == "__main__":
    main()
