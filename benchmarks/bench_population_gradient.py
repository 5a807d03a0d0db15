"""G(w, b) for 100,000 neurons at d = 100 on a 4-component Gaussian mixture, in one call.

Reports neurons/s and how close the kernel's matrix-product part comes to the machine's matmul
throughput: FLOPs of the two products (m,d)(d,k) and (m,k)(k,d) divided by the kernel's whole
run time, against (a) the same two products timed alone and (b) a square 2048² matmul.

    python benchmarks/bench_population_gradient.py [--neurons 100000] [--dim 100]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from _timing import matmul_flops, save, time_jitted

import jaxfeat as jf


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--neurons", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--components", type=int, default=4)
    args = p.parse_args(argv)
    m, d, k = args.neurons, args.dim, args.components
    key = jax.random.key(0)
    means = np.asarray(jax.random.normal(key, (k, d))) / np.sqrt(d)
    dist = jf.data.GaussianMixture(means, np.full(k, 0.3), np.array([1.0, -1.0] * (k // 2)))
    W = jax.random.normal(jax.random.key(1), (m, d)) / np.sqrt(d)
    b = 0.1 * jax.random.normal(jax.random.key(2), (m,))

    kernel = jax.jit(lambda W, b: jf.population_gradient(dist, W, b))
    t_kernel = time_jitted(kernel, W, b)
    M = dist.means
    products = jax.jit(lambda W, P: (W @ M.T, P @ M))
    t_products = time_jitted(products, W, jnp.ones((m, k), W.dtype))
    flops = 2.0 * 2 * m * d * k
    peak = matmul_flops()
    result = {
        "neurons": m,
        "dim": d,
        "components": k,
        "kernel": t_kernel,
        "neurons_per_s": m / t_kernel["steady_s"],
        "matmul_part_flops": flops,
        "matmul_part_flops_per_s_in_kernel": flops / t_kernel["steady_s"],
        "same_products_alone": t_products,
        "same_products_alone_flops_per_s": flops / t_products["steady_s"],
        "square_matmul_flops_per_s": peak,
        "fraction_of_same_products": t_products["steady_s"] / t_kernel["steady_s"],
        "fraction_of_square_peak": flops / t_kernel["steady_s"] / peak,
    }
    print(
        f"G for {m} neurons, d={d}, {k} components: {t_kernel['steady_s'] * 1e3:.1f} ms "
        f"({result['neurons_per_s']:.3g} neurons/s), compile+first {t_kernel['first_call_s']:.2f} s"
    )
    alone = result["same_products_alone_flops_per_s"] / 1e9
    print(
        f"matrix-product part: {result['matmul_part_flops_per_s_in_kernel'] / 1e9:.2f} GFLOP/s "
        f"in the kernel; the same products alone {alone:.2f} GFLOP/s (kernel reaches "
        f"{100 * result['fraction_of_same_products']:.0f}% of it); square 2048² matmul "
        f"{peak / 1e9:.1f} GFLOP/s"
    )
    print("saved", save("population_gradient", result))


if __name__ == "__main__":
    main()
