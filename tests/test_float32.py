"""The float32 tier: the dtype users get (JAX's default). The suite runs in float64
(conftest); here each key kernel runs inside `jax.enable_x64(False)` (a context: nothing leaks
to other tests) on the same float64 inputs, and is checked against its float64 result with a
float32 tolerance (DESIGN §6.9). Observed errors are noted next to each tolerance.

Not here: `one_step_spikes`, whose float32 run draws other samples (jax.random.normal in float32
is not the float64 draw rounded), so its outputs differ by sampling noise (top singular value
36 vs 46), not by rounding; a float32 check of it needs the same draws."""

import jax
import numpy as np
import optax
import pytest

import jaxfeat as jf

RNG = np.random.default_rng(7)
D = 6
W_S, A_S = RNG.normal(size=(5, D)), RNG.normal(size=5)
W_T, A_T = RNG.normal(size=(2, D)), RNG.normal(size=2)
W_G, B_G = RNG.normal(size=(9, D)), 0.3 * RNG.normal(size=9)
BETA = RNG.normal(size=D)


def both(fn, check_dtype=True):
    """fn() in float64 and in float32, as float64 numpy arrays; the float32 run must be float32
    (`check_dtype=False` for host-side NumPy results)."""
    ref = jax.tree_util.tree_map(np.asarray, fn())
    with jax.enable_x64(False):
        low = fn()
        dtypes = {np.asarray(x).dtype for x in jax.tree_util.tree_leaves(low)}
        assert not check_dtype or dtypes <= {
            np.dtype("float32"),
            np.dtype("int32"),
            np.dtype("bool"),
        }, dtypes
        low = jax.tree_util.tree_map(lambda x: np.asarray(x, dtype=np.float64), low)
    return ref, low


def rel_err(low, ref):
    return float(np.max(np.abs(low - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize(
    "activation, method, tol",
    # observed: 2e-8 (relu), 1e-7 (tanh)
    [("relu", "closed_form", 1e-5), ("tanh", "hermite", 1e-5)],
)
@pytest.mark.slow
def test_population_loss(activation, method, tol):
    def fn():
        s = jf.TwoLayer(W_S, np.zeros(5), A_S, activation)
        t = jf.TwoLayer(W_T, np.zeros(2), A_T, activation)
        return jf.population_loss(s, t, method=method, degree=30)

    ref, low = both(fn)
    assert rel_err(low, ref) < tol, (rel_err(low, ref), ref)


@pytest.mark.parametrize("kind", ["single_index", "mixture"])
@pytest.mark.slow
def test_population_gradient(kind):
    def fn():
        if kind == "single_index":
            dist = jf.data.SingleIndex(BETA, [0.0, 1.0, 0.5, 0.2])
        else:
            dist = jf.data.GaussianMixture.xor(D)
        return jf.population_gradient(dist, W_G, B_G)

    ref, low = both(fn)
    assert rel_err(low, ref) < 1e-5, rel_err(low, ref)  # observed ≤ 1e-7


def test_hermite_coefficients():
    # computed on the host by NumPy quadrature: float64 whatever JAX's mode (no float32 path)
    ref, low = both(lambda: jf.hermite_coefficients("tanh", 12), check_dtype=False)
    assert np.max(np.abs(low - ref)) < 1e-6, np.max(np.abs(low - ref))  # observed ~1e-8


def test_train_a_few_steps():
    def fn():
        teacher = jf.TwoLayer(W_T, np.zeros(2), A_T, "sigma_ge2")
        net = jf.TwoLayer(W_S, np.zeros(5), A_S, "sigma_ge2")
        objective = jf.objectives.Population(teacher)
        _, hist = jf.train(jax.random.key(0), net, objective, optax.sgd(0.05), steps=20)
        return hist["loss"]

    ref, low = both(fn)
    assert rel_err(low, ref) < 1e-5, rel_err(low, ref)  # observed ~1e-7
