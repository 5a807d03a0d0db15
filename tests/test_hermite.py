"""Hermite polynomials and coefficients against independent references (MATH §1)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate as si
import scipy.special as sps

import jaxfeat as jf
from jaxfeat import activations as A

SQ2PI = math.sqrt(2 * math.pi)


def h_ref(k, z):
    """h_k = He_k/√(k!) via SciPy's probabilists' Hermite (independent of our recurrence)."""
    return sps.eval_hermitenorm(k, z) / math.sqrt(math.factorial(k))


def quad_coefficient(f, k, kinks=(0.0,), L=20.0):
    """E[f(z) h_k(z)] by adaptive quadrature split at the kinks (MATH §1.2 (c))."""
    g = lambda z: f(z) * h_ref(k, z) * math.exp(-z * z / 2) / SQ2PI
    pts = sorted({-L, *kinks, L})
    return sum(
        si.quad(g, lo, hi, epsabs=1e-15, epsrel=1e-13, limit=400)[0]
        for lo, hi in zip(pts[:-1], pts[1:])
    )


# Independent scalar definitions (plain math, not jaxfeat's NumPy forms).
REFERENCE = {
    "relu": lambda z: max(z, 0.0),
    "sigma_ge2": lambda z: max(z, 0.0) - 1 / SQ2PI - z / 2,
    "shifted_relu": lambda z: max(z, 0.0) - 1 / SQ2PI,
    "abs": abs,
    "tanh": math.tanh,
    "erf": math.erf,
    "gelu": lambda z: z * 0.5 * math.erfc(-z / math.sqrt(2)),
    "softplus": lambda z: math.log1p(math.exp(-abs(z))) + max(z, 0.0),
    "elu": lambda z: z if z > 0 else math.expm1(z),
    "sigmoid": lambda z: 1 / (1 + math.exp(-z)),
}


def test_polynomials_match_scipy_and_are_orthonormal():
    z = np.linspace(-6, 6, 101)
    H = jf.hermite_polynomials(z, 30)
    ref = np.stack([h_ref(k, z) for k in range(31)], axis=-1)
    np.testing.assert_allclose(H, ref, rtol=1e-10, atol=1e-10)
    x, w = np.polynomial.hermite_e.hermegauss(60)  # exact for degree ≤ 119
    Hq = jf.hermite_polynomials(x, 40)
    gram = Hq.T @ (Hq * (w / SQ2PI)[:, None])
    np.testing.assert_allclose(gram, np.eye(41), atol=1e-12)


def test_polynomials_jax_and_numpy_agree_under_jit():
    z = np.linspace(-3, 3, 7)
    out = jax.jit(lambda t: jf.hermite_polynomials(t, 12))(jnp.asarray(z))
    assert isinstance(out, jax.Array) and out.shape == (7, 13)
    np.testing.assert_allclose(out, jf.hermite_polynomials(z, 12), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_coefficients_match_adaptive_quadrature(name):
    c = jf.hermite_coefficients(name, 20)
    ref = np.array([quad_coefficient(REFERENCE[name], k) for k in range(21)])
    np.testing.assert_allclose(c, ref, rtol=0, atol=1e-12)  # observed 3.7e-14


@pytest.mark.parametrize("name", ["erf", "gelu", "tanh", "softplus", "elu", "sigmoid"])
@pytest.mark.parametrize("s", [0.4, 2.5, 4.0])
def test_scaled_coefficients_match_quadrature(name, s):
    c = jf.hermite_coefficients(name, 20, scale=s)
    ref = np.array([quad_coefficient(lambda z: REFERENCE[name](s * z), k) for k in range(21)])
    np.testing.assert_allclose(c, ref, rtol=0, atol=1e-13)  # observed 5.3e-15


@pytest.mark.parametrize("s", [0.0, 0.3, 1.0, 3.0])
def test_homogeneous_neuron_coefficients_scale_linearly(s):
    # sigma_ge2 neuron at |w| = s is s·σ≥2(z) (MATH §2.1): c_k(s) = s c_k for every k
    np.testing.assert_allclose(
        jf.hermite_coefficients("sigma_ge2", 20, scale=s),
        s * jf.hermite_coefficients("sigma_ge2", 20),
        atol=1e-15,
    )
    ref = [quad_coefficient(lambda z: max(s * z, 0) - s / SQ2PI - s * z / 2, k) for k in range(9)]
    np.testing.assert_allclose(jf.hermite_coefficients("sigma_ge2", 8, scale=s), ref, atol=1e-12)


def test_closed_form_values_from_math_md():
    relu = jf.hermite_coefficients("relu", 10)
    np.testing.assert_allclose(
        relu[[0, 1, 2, 4, 6, 8, 10]],
        [
            0.398942280401,
            0.5,
            0.282094791774,
            -0.081433751984,
            0.044603102904,
            -0.029801701688,
            0.021989626279,
        ],
        atol=1e-12,
    )
    assert np.all(relu[3::2] == 0)
    s2 = jf.hermite_coefficients("sigma_ge2", 10)
    assert s2[0] == 0 and s2[1] == 0 and np.array_equal(s2[2:], relu[2:])
    assert jf.hermite_coefficients("erf", 1)[1] == pytest.approx(2 / math.sqrt(3 * math.pi), 1e-15)
    np.testing.assert_allclose(
        jf.hermite_coefficients("tanh", 5)[[1, 3, 5]],
        [0.605705509602, -0.148437190787, 0.062547523753],
        atol=1e-12,
    )
    np.testing.assert_allclose(
        jf.hermite_coefficients("softplus", 2)[[0, 2]], [0.806059183347, 0.146103084880], atol=1e-12
    )
    # relu tail T(K) = ½ − Σ_{k≤K} c_k² (MATH §1.3), via lgamma at high degree
    c = jf.hermite_coefficients("relu", 1000)
    np.testing.assert_allclose(
        0.5 - np.cumsum(c**2)[[1, 2, 4, 10, 20, 100, 1000]],
        [9.085e-2, 1.127e-2, 4.636e-3, 1.275e-3, 4.623e-4, 4.214e-5, 1.338e-6],
        rtol=2e-3,
    )


MEAN_DERIVATIVES = {  # MATH §1.1 table, μ'_k = E σ^(k)(z), k = 0..6
    "relu": [0.39894, 0.5, 0.39894, 0, -0.39894, 0, 1.19683],
    "tanh": [0, 0.60571, 0, -0.36360, 0, 0.6851737935089189, 0],  # μ'_5 mpmath (table: .68520)
    # elu, derived exactly with E = E[e^z 1{z<0}] = e^{1/2}Φ(−1) and φ(0) = 1/√(2π) (the
    # MATH §1.1 row has 0.16050 and −0.13742, rounding slips of ~5e-5): μ'_0 = φ(0) + E − ½,
    # μ'_1 = ½ + E, μ'_2 = E, μ'_3 = μ'_4 = E − φ(0), μ'_5 = μ'_6 = E.
    "elu": [
        1 / SQ2PI + 0.26157829186512344 - 0.5,
        0.7615782918647731,
        0.26157829186512344,
        0.26157829186512344 - 1 / SQ2PI,
        0.26157829186512344 - 1 / SQ2PI,
        0.26157829186512344,
        0.26157829186512344,
    ],
    # softplus μ'_4, μ'_6 by 30-digit mpmath (E[softplus^(k)(z)] by quadrature of mp.diff); the
    # MATH §1.1 row's −0.06244 and 0.06442 are off by ~4e-5
    "softplus": [0.80606, 0.5, 0.20662, 0, -0.0623964839592591934, 0, 0.0643799732490441207],
    "gelu": [0.28209, 0.5, 0.42314, 0, -0.35262, 0, 0.74050],
}


@pytest.mark.parametrize("name", sorted(MEAN_DERIVATIVES))
def test_mean_derivatives_table(name):
    np.testing.assert_allclose(A.get(name).mean_derivatives(6), MEAN_DERIVATIVES[name], atol=6e-6)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_closed_form_and_both_quadratures_agree(name):
    act = A.get(name)
    auto = act.hermite_coefficients(20)
    np.testing.assert_allclose(act.hermite_coefficients(20, method="legendre"), auto, atol=1e-12)
    if not act.kinks:
        np.testing.assert_allclose(
            act.hermite_coefficients(20, method="gauss_hermite"), auto, atol=1e-12
        )


def test_polynomial_activations_are_exact():
    np.testing.assert_array_equal(jf.hermite_coefficients("he3", 6), [0, 0, 0, 1, 0, 0, 0])
    p = A.polynomial([0.5, -1.0, 0.25])
    np.testing.assert_allclose(
        p.hermite_coefficients(4, method="gauss_hermite"), [0.5, -1.0, 0.25, 0, 0], atol=1e-14
    )
    # He_2(s z)/√2 = (s² z² − 1)/√2 = s² h_2 + (s² − 1)/√2
    np.testing.assert_allclose(
        jf.hermite_coefficients("he2", 3, scale=3.0), [8 / math.sqrt(2), 0, 9, 0], atol=1e-12
    )


def test_plain_callables_numpy_and_jax():
    relu2 = lambda z: np.maximum(z, 0.0) ** 2
    ref = [quad_coefficient(lambda z: max(z, 0.0) ** 2, k) for k in range(11)]
    np.testing.assert_allclose(jf.hermite_coefficients(relu2, 10, kinks=(0.0,)), ref, atol=1e-12)
    np.testing.assert_allclose(
        jf.hermite_coefficients(jnp.tanh, 20), jf.hermite_coefficients("tanh", 20), atol=1e-13
    )


def test_parseval_sum_of_squares_is_second_moment():
    c = jf.hermite_coefficients("tanh", 120)
    m2 = si.quad(lambda z: math.tanh(z) ** 2 * math.exp(-z * z / 2) / SQ2PI, -20, 20)[0]
    assert np.sum(c**2) == pytest.approx(m2, abs=1e-10)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: jf.hermite_coefficients("relu", -1), ValueError, "degree"),
        (lambda: jf.hermite_coefficients("relu", 2.5), TypeError, "degree"),
        (lambda: jf.hermite_coefficients("swish", 3), ValueError, "activation"),
        (lambda: jf.hermite_coefficients("relu", 3, scale=-1.0), ValueError, "scale"),
        (lambda: jf.hermite_coefficients("relu", 3, scale=float("nan")), ValueError, "scale"),
        (
            lambda: jf.hermite_coefficients("tanh", 3, method="closed_form"),
            ValueError,
            "closed_form",
        ),
        (lambda: jf.hermite_coefficients("relu", 3, method="simpson"), ValueError, "method"),
        (lambda: jf.hermite_coefficients(3.0, 3), TypeError, "fn"),
        (lambda: jf.hermite_polynomials(np.ones(3), -2), ValueError, "degree"),
    ],
)
def test_bad_input(call, exc, match, no_compile):
    with no_compile(), pytest.raises(exc, match=match):
        call()
