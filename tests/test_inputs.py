"""Non-Gaussian inputs of `SingleIndex`/`MultiIndex` (`inputs=`, MATH §4.5).

Moments are checked against the law's own values: |estimate − truth| < 5 standard errors, the
error computed from the law's higher moments (a false alarm has probability < 1e-6; seeds are
fixed, so runs are deterministic).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxfeat as jf
from jaxfeat._checks import InputError
from jaxfeat._static_key import structural_key

LAWS = ("gaussian", "rademacher", "uniform")
# E x^2, E x^4, E x^8 of each unit-variance law (uniform on [−a, a]: E x^p = a^p/(p + 1), a = √3)
MOMENTS = {"gaussian": (1.0, 3.0, 105.0), "rademacher": (1.0, 1.0, 1.0), "uniform": (1.0, 1.8, 9.0)}
ROOT3 = math.sqrt(3.0)
HERMITE = [0.0, 1.0, 0.5]


def single(law, dim=4, pad=0, **kw):
    """β ∝ (1, …, dim), with `pad` zero coordinates appended."""
    beta = np.pad(np.arange(1.0, dim + 1), (0, pad))
    return jf.data.SingleIndex(beta, HERMITE, inputs=law, **kw)


def multi(law, dim=4, pad=0, **kw):
    """B = the first two unit vectors of R^dim, with `pad` zero columns appended."""
    return jf.data.MultiIndex(np.pad(np.eye(2, dim), ((0, 0), (0, pad))), HERMITE, inputs=law, **kw)


def assert_moment(x, p, truth, var, z=5.0):
    """|mean(x^p) − truth| < z standard errors, with Var(x^p) = `var` known from the law."""
    est = float(np.mean(np.asarray(x, np.float64) ** p))
    se = math.sqrt(var / x.size)
    assert abs(est - truth) <= z * se + 1e-12, (p, est, truth, se)


@pytest.mark.parametrize("make", [single, multi], ids=["single", "multi"])
@pytest.mark.parametrize("law", LAWS)
def test_input_moments(law, make, getkey):
    """Mean 0, variance 1, E x⁴ = 3 | 1 | 9/5, and the support of each law, from 10⁶ draws."""
    X, _ = make(law, dim=5).sample(getkey(), 200_000)
    X = np.asarray(X)
    m2, m4, m8 = MOMENTS[law]
    assert_moment(X, 1, 0.0, m2)
    assert_moment(X, 2, m2, m4 - m2**2)
    assert_moment(X, 4, m4, m8 - m4**2)
    assert_moment(X[:, 0] * X[:, 1], 1, 0.0, 1.0)  # independent coordinates
    if law == "rademacher":
        assert set(np.unique(X)) == {-1.0, 1.0}
    if law == "uniform":
        assert np.abs(X).max() <= ROOT3 and np.abs(X).max() > ROOT3 - 1e-3
        # the law itself, not only its moments: P(x ≤ t) = (t + √3)/(2√3) at a few t
        for t in (-1.5, -0.5, 0.0, 0.7, 1.6):
            p = (t + ROOT3) / (2 * ROOT3)
            assert_moment((X <= t).astype(float), 1, p, p * (1 - p))


@pytest.mark.parametrize("law", LAWS)
def test_labels_use_the_link(law, getkey):
    """y = f*(β·x) (single index, Hermite and named links) and g(Bx) (multi-index), the same
    link as for Gaussian inputs; noise adds on top."""
    key = getkey()
    for dist in (single(law), jf.data.SingleIndex(np.ones(4), target="relu", inputs=law)):
        X, y = dist.sample(key, 64)
        np.testing.assert_allclose(y, dist.link(X @ dist.beta), rtol=1e-14, atol=1e-14)
    dist = multi(law)
    X, y = dist.sample(key, 64)
    np.testing.assert_allclose(y, dist.link(X @ dist.B.T), rtol=1e-14, atol=1e-14)
    Xn, yn = multi(law, noise=0.5).sample(key, 64)
    np.testing.assert_array_equal(Xn, X)
    assert 0.05 < float(jnp.std(yn - y)) < 1.0  # the noise is there, about 0.5


@pytest.mark.parametrize("make", [single, multi], ids=["single", "multi"])
@pytest.mark.parametrize("law", LAWS)
@pytest.mark.slow
def test_padded_draws_equal_exact_draws(law, make, getkey):
    """`sample(key, n, capacity=c)` (n traced under jit) and `live_dim=` padding reproduce the
    exact-size draw of X bit for bit on their live block (y to rounding), zeros elsewhere."""
    key, n, dim = getkey(), 5, 3
    X, y = make(law, dim=dim).sample(key, n)
    dist = make(law, dim=dim)
    Xc, yc = jax.jit(lambda k: dist.sample(key, k, capacity=9))(jnp.asarray(n))
    np.testing.assert_array_equal(Xc[:n], X)
    np.testing.assert_allclose(yc[:n], y, rtol=1e-14, atol=1e-14)  # X @ β: jit vs eager
    assert not np.any(Xc[n:]) and not np.any(yc[n:])
    Xl, yl = make(law, dim=dim, pad=4, live_dim=dim).sample(key, n, capacity=8)
    np.testing.assert_array_equal(Xl[:n, :dim], X)
    np.testing.assert_allclose(yl[:n], y, rtol=1e-14, atol=1e-14)
    assert not np.any(Xl[:, dim:]) and not np.any(Xl[n:]) and not np.any(yl[n:])


@pytest.mark.parametrize("law", ["rademacher", "uniform"])
def test_streamed_rows_follow_the_law(law, getkey):
    """`SampledRows` draws tile t as `dist.sample(fold_in(key, t), tile)`: the law's rows."""
    key, dist = getkey(), single(law)
    X, y = jf.rows.materialize(jf.rows.SampledRows(dist, 10, key=key, tile=4))
    X1, y1 = dist.sample(jax.random.fold_in(key, 1), 4)
    np.testing.assert_array_equal(X[4:8], X1)
    np.testing.assert_allclose(y[4:8], y1, rtol=1e-14, atol=1e-14)  # scan vs eager X @ β
    assert X.shape == (10, 4) and np.all(np.abs(X) <= ROOT3)
    assert law != "rademacher" or np.all(np.abs(X) == 1)


def test_laws_are_transforms_of_one_gaussian_draw(getkey):
    """One key couples the laws: x = T(g) for the same g (sign, √3·erf(g/√2))."""
    key = getkey()
    g, r, u = (np.asarray(single(law).sample(key, 50)[0]) for law in LAWS)
    np.testing.assert_array_equal(r, np.where(g < 0, -1.0, 1.0))
    np.testing.assert_allclose(u, ROOT3 * np.asarray(jax.scipy.special.erf(g / math.sqrt(2))))


def test_gaussian_draws_unchanged():
    """`inputs="gaussian"` (the default) draws what it drew before the option existed: X is
    `jax.random.normal(split(key)[0], (n, dim))`, values recorded before the change."""
    key = jax.random.key(7)
    dist = jf.data.SingleIndex(np.eye(1, 4)[0] + 0.5, HERMITE, noise=0.1)
    X, y = dist.sample(key, 3)
    np.testing.assert_array_equal(X, jax.random.normal(jax.random.split(key)[0], (3, 4)))
    assert X[0, 0] == 0.35160447220202895 and X[2, 3] == 0.9159397905651121
    np.testing.assert_array_equal(
        y, [-0.26367098287509017, 0.5362894474154153, -0.9867199985943597]
    )
    X2, _ = jf.data.SingleIndex(
        np.eye(1, 4)[0] + 0.5, HERMITE, noise=0.1, inputs="gaussian"
    ).sample(key, 3)
    np.testing.assert_array_equal(X2, X)
    padded = jf.data.MultiIndex(np.eye(2, 5), HERMITE, noise=0.1, live_dim=3)
    Xp, yp = padded.sample(key, 4, capacity=6)
    assert Xp[1, 0] == 0.6148258030800832 and Xp[3, 2] == 0.9159397905651121
    assert yp[3] == -1.8365091732361971


def test_inputs_is_static_config(getkey):
    """`inputs` is a static field: equal laws share a treedef (and a jit trace), different laws
    do not, and the law shows in the repr and the structural key of stores."""
    a, b, c = single("uniform"), single("uniform"), single("rademacher")
    ta, tb, tc = (jax.tree_util.tree_structure(d) for d in (a, b, c))
    assert ta == tb and hash(ta) == hash(tb) and ta != tc
    assert structural_key(a) == structural_key(b) != structural_key(c)
    assert "inputs='uniform'" in repr(a)
    traces = {"n": 0}

    @eqx.filter_jit
    def draw(dist, key):
        traces["n"] += 1
        return dist.sample(key, 8)

    key = getkey()
    draw(a, key)
    draw(b, key)
    assert traces["n"] == 1
    draw(c, key)
    assert traces["n"] == 2


REFUSED = [
    lambda law, W, b: jf.population_gradient(single(law), W, b),
    lambda law, W, b: jf.population_gradient(
        jf.data.SingleIndex(np.ones(4), target="sign", inputs=law), W, b
    ),
    lambda law, W, b: jf.population_gradient(multi(law), W, b),
    lambda law, W, b: single(law).exact_gradient(W, b),
    lambda law, W, b: multi(law).exact_gradient(W, b),
    lambda law, W, b: jf.features.gradient_feature_set(
        single(law), W, b, np.eye(1, 4), gamma=0.1, B_G=0.0, p=0.5
    ),
]


@pytest.mark.parametrize("law", ["rademacher", "uniform"])
@pytest.mark.parametrize("call", REFUSED)
def test_exact_gradient_refuses_non_gaussian(call, law, no_compile):
    """The exact G needs Gaussian inputs: one InputError line naming `inputs` and why, before
    anything compiles; `has_exact_gradient` agrees."""
    W, b = jnp.ones((2, 4)), jnp.zeros(2)
    with no_compile(), pytest.raises(InputError, match=f"inputs='{law}'") as err:
        call(law, W, b)
    assert "\n" not in str(err.value) and "Gaussian" in str(err.value)
    assert not jf.population.has_exact_gradient(single(law))
    assert not jf.population.has_exact_gradient(multi(law))
    assert jf.population.has_exact_gradient(single("gaussian"))


def test_monte_carlo_gradient_accepts_non_gaussian(getkey):
    """Monte Carlo G still works for Rademacher inputs: for y = β·x and b = −10 (every neuron
    active, |w·x| ≤ 3), G = E[y x] = β for any law with identity covariance."""
    dist = jf.data.SingleIndex(np.eye(1, 3)[0], [0.0, 1.0], inputs="rademacher")
    G, se = jf.monte_carlo_gradient(getkey(), dist, np.ones((1, 3)), np.full(1, -10.0), 20_000)
    assert np.all(np.abs(np.asarray(G - dist.beta[None, :])) <= 5 * np.asarray(se) + 1e-12)


@pytest.mark.parametrize("bad", ["normal", "Gaussian", "", 1, None, ("gaussian",)])
@pytest.mark.parametrize("cls", [jf.data.SingleIndex, jf.data.MultiIndex])
def test_bad_inputs(cls, bad, no_compile):
    """An unknown law or a non-string: one InputError line naming `inputs` and the choices."""
    with no_compile(), pytest.raises(InputError, match="inputs must be one of") as err:
        cls(np.ones((1, 3)) if cls is jf.data.MultiIndex else np.ones(3), HERMITE, inputs=bad)
    msg = str(err.value)
    assert "\n" not in msg and all(law in msg for law in LAWS)
