"""A cheap experiment for scan-engine tests (imported by subprocesses too)."""

import jax
import jax.numpy as jnp

from jaxfeat.experiments import Experiment


def run(key, *, scale=1.0, n=64, nan_below=0.0):
    """Matrix work whose arithmetic depends on the batch layout (a dot product and a solve), and a
    NaN for seeds whose first uniform draw falls below `nan_below`."""
    k1, k2 = jax.random.split(key)
    X = scale * jax.random.normal(k1, (n, 8))
    G = X.T @ X / n + jnp.eye(8)
    v = jnp.linalg.solve(G, jnp.ones(8))
    u = jax.random.uniform(k2)
    bad = jnp.where(u < nan_below, jnp.nan, 1.0)
    return {"v": v * bad, "trace": jnp.trace(G), "u": u, "count": jnp.sum(X > 0)}


toy = Experiment(
    name="toy",
    fn=run,
    description="toy",
    defaults={"scale": 1.0, "n": 64, "nan_below": 0.0},
    dynamic=frozenset({"scale", "nan_below"}),
    dims={"v": ("j",)},
    check=("v", "trace"),
)

GRID = {"scale": [0.5, 1.0, 2.0], "n": [32, 64]}


def unfinish(out: str, *chunks: str) -> None:
    """Make chunks of the store at `out` unfinished, as if a run had stopped before them: their
    markers removed and the journal no longer listing them (a marker missing from a chunk the
    journal lists as finished is damage, not an unfinished chunk)."""
    import os

    done = os.path.join(out, "_done")
    for name in chunks:
        os.remove(os.path.join(done, name))
    journal = os.path.join(done, "journal")
    with open(journal) as f:
        kept = [line for line in f.read().split() if line not in chunks]
    with open(journal, "w") as f:
        f.write("".join(f"{line}\n" for line in kept))
