"""Population loss and its gradient (MATH §2) against worked values, Monte Carlo, jax.grad."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxfeat as jf
from jaxfeat import kernels

W_S = np.array([[0.9, 0.1, 0, 0.2, 0], [0.1, -0.8, 0.3, 0, 0.1], [-0.2, 0.3, 0.5, -0.6, 0.4]])
A_S = np.array([0.8, 0.5, -0.3])
W_T, A_T = np.eye(5)[:2], np.array([1.0, -0.7])


def worked_pair(act):
    return (jf.TwoLayer(W_S, np.zeros(3), A_S, act), jf.TwoLayer(W_T, np.zeros(2), A_T, act))


def test_worked_values_math_2_3():
    assert float(jf.population_loss(*worked_pair("relu"))) == pytest.approx(0.2395848493, abs=1e-9)
    assert float(jf.population_loss(*worked_pair("sigma_ge2"))) == pytest.approx(
        0.1257521861, abs=1e-9
    )
    tanh = jf.population_loss(*worked_pair("tanh"), degree=100)
    assert float(tanh) == pytest.approx(0.0921165963, abs=1e-10)


def mc_loss(key, student, teacher, n=1_000_000, chunk=100_000):
    """Mean and standard error of (f_s(x) − f_t(x))² with the modules' own forward passes."""

    @jax.jit
    def moments(k):
        X = jax.random.normal(k, (chunk, student.dim))
        r2 = (student(X) - teacher(X)) ** 2
        return jnp.sum(r2), jnp.sum(r2**2)

    s1 = s2 = 0.0
    for i in range(n // chunk):
        a, b = moments(jax.random.fold_in(key, i))
        s1, s2 = s1 + float(a), s2 + float(b)
    mean = s1 / n
    return mean, math.sqrt((s2 / n - mean**2) / n)


def random_pair(key, act, m=4, mt=3, d=6, bias=0.0, scale=1.0):
    ks = jax.random.split(key, 6)
    s = jf.TwoLayer(
        scale * jax.random.normal(ks[0], (m, d)) / math.sqrt(d),
        bias * jax.random.normal(ks[1], (m,)),
        jax.random.normal(ks[2], (m,)),
        act,
    )
    t = jf.TwoLayer(
        jax.random.normal(ks[3], (mt, d)) / math.sqrt(d),
        bias * jax.random.normal(ks[4], (mt,)),
        jax.random.normal(ks[5], (mt,)),
        act,
    )
    return s, t


ACTS = [
    "relu",
    "sigma_ge2",
    "shifted_relu",
    "abs",
    "erf",
    "tanh",
    "gelu",
    "softplus",
    "elu",
    "sigmoid",
    "he3",
]


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.slow
def test_loss_equals_monte_carlo_of_forward_pass(getkey, act):
    """One meaning everywhere: population_loss is the MC mean with TwoLayer's own forward pass,
    for several random configurations (norms ≠ 1 exercise the homogeneous neurons)."""
    for scale in (0.7, 2.0):
        s, t = random_pair(getkey(), act, scale=scale)
        exact = float(jf.population_loss(s, t, degree=80))
        mean, se = mc_loss(getkey(), s, t)
        assert abs(exact - mean) < 5 * se, (act, exact, mean, se)


@pytest.mark.parametrize("act", ["relu", "sigma_ge2", "abs", "tanh", "elu", "gelu"])
@pytest.mark.slow
def test_biased_hermite_loss_equals_monte_carlo(getkey, act):
    s, t = random_pair(getkey(), act, bias=0.5, scale=1.5)
    exact = float(jf.population_loss(s, t, method="hermite", degree=80))
    bound = float(jf.population_loss_error_bound(s, t, degree=80))
    mean, se = mc_loss(getkey(), s, t)
    assert abs(exact - mean) < 5 * se + bound, (act, exact, mean, se, bound)


@pytest.mark.slow
def test_closed_form_and_hermite_agree_within_bound(getkey):
    for act in ("relu", "sigma_ge2", "abs", "erf"):
        s, t = random_pair(getkey(), act, scale=1.3)
        closed = float(jf.population_loss(s, t, method="closed_form"))
        for K in (5, 20, 60):
            herm = float(jf.population_loss(s, t, method="hermite", degree=K))
            bound = float(jf.population_loss_error_bound(s, t, degree=K))
            assert abs(herm - closed) <= bound + 1e-13, (act, K, herm, closed, bound)


def test_hermite_truncation_converges_at_the_math_1_3_rate():
    """Without the exact diagonal the truncated ReLU loss errs by −1.65e-2 (K = 2), −2.1e-3
    (K = 10) on MATH §2.3's pair; the error falls like K^{−3/2} (MATH §1.3), so from K = 10 to 50
    the log-log slope is ≈ −1.5."""
    s, t = worked_pair("relu")
    exact = float(jf.population_loss(s, t))
    err = {
        K: float(jf.population_loss(s, t, method="hermite", degree=K, exact_diagonal=False)) - exact
        for K in (2, 10, 50)
    }
    assert err[2] == pytest.approx(-1.65e-2, rel=0.02)
    assert err[10] == pytest.approx(-2.1e-3, rel=0.03)
    slope = math.log(abs(err[50] / err[10])) / math.log(5)
    assert -1.7 < slope < -1.3, slope
    # the exact diagonal removes the slowest (ρ = 1) terms: smaller error at every K
    for K in (2, 10, 50):
        assert abs(float(jf.population_loss(s, t, method="hermite", degree=K)) - exact) < abs(
            err[K]
        )


def explicit_grad_W(h, dh, W, a, Wt, at):
    """MATH §2.2: ∂L/∂w_i = 2a_i[Σ_j a_j ∇_1K(w_i,w_j) − Σ_j a*_j ∇_1K(w_i,w*_j)],
    ∇_1K(w,v) = |v|[(h(ρ) − ρh'(ρ)) ŵ + h'(ρ) v̂]."""

    def grad1(w, v):
        nw, nv = np.linalg.norm(w), np.linalg.norm(v)
        rho = np.clip(w @ v / (nw * nv), -1, 1)
        return nv * ((h(rho) - rho * dh(rho)) * w / nw + dh(rho) * v / nv)

    return np.array(
        [
            2
            * a[i]
            * (
                sum(a[j] * grad1(W[i], W[j]) for j in range(len(a)))
                - sum(at[j] * grad1(W[i], Wt[j]) for j in range(len(at)))
            )
            for i in range(len(a))
        ]
    )


KAPPA1 = (
    lambda r: (np.sqrt(1 - r * r) + (np.pi - np.arccos(r)) * r) / (2 * np.pi),
    lambda r: (np.pi - np.arccos(r)) / (2 * np.pi),
)
KAPPA2 = (
    lambda r: (np.sqrt(1 - r * r) + r * np.arcsin(r) - 1) / (2 * np.pi),
    lambda r: np.arcsin(r) / (2 * np.pi),
)


@pytest.mark.parametrize("act, hk", [("relu", KAPPA1), ("sigma_ge2", KAPPA2)])
@pytest.mark.slow
def test_grad_matches_explicit_formula(act, hk):
    s, t = worked_pair(act)
    gW = jax.grad(lambda W: jf.population_loss(jf.TwoLayer(W, s.b, s.a, act), t))(s.W)
    np.testing.assert_allclose(gW, explicit_grad_W(*hk, W_S, A_S, W_T, A_T), atol=1e-13)


def test_grad_matches_monte_carlo(getkey):
    """∇_{w_i}L = 2 a_i E[(f − f*)(x) σ'(w_i·x) x] for relu, by 10⁶ samples (MATH §2.2)."""
    s, t = random_pair(getkey(), "relu", m=3, mt=2, d=4)
    gW = jax.grad(lambda W: jf.population_loss(jf.TwoLayer(W, s.b, s.a, "relu"), t))(s.W)

    @jax.jit
    def sums(k):
        X = jax.random.normal(k, (100_000, 4))
        g = (
            2
            * s.a[None, :, None]
            * ((s(X) - t(X))[:, None, None] * (X @ s.W.T > 0)[:, :, None] * X[:, None, :])
        )
        return jnp.sum(g, 0), jnp.sum(g**2, 0)

    tot = [sums(jax.random.fold_in(getkey(), i)) for i in range(10)]
    m1 = sum(t_[0] for t_ in tot) / 1e6
    se = jnp.sqrt((sum(t_[1] for t_ in tot) / 1e6 - m1**2) / 1e6)
    assert float(jnp.max(jnp.abs(gW - m1) / se)) < 5


@pytest.mark.parametrize(
    "act, method",
    [
        ("relu", "closed_form"),
        ("sigma_ge2", "closed_form"),
        ("abs", "closed_form"),
        ("erf", "closed_form"),
        ("tanh", "hermite"),
        ("relu", "hermite"),
    ],
)
@pytest.mark.slow
def test_grad_finite_for_parallel_identical_and_antiparallel_neurons(getkey, act, method):
    w = jax.random.normal(getkey(), (5,))
    W = jnp.stack([w, w, -w, 2 * w, W_T[0]])  # duplicate, antiparallel, parallel, = a teacher row
    s = jf.TwoLayer(W, jnp.zeros(5), jnp.array([0.3, -0.3, 0.5, 0.2, 0.7]), act)
    t = jf.TwoLayer(W_T, np.zeros(2), A_T, act)
    loss = lambda net: jf.population_loss(net, t, method=method, degree=30)  # noqa: E731
    g = eqx.filter_grad(loss)(s)
    assert np.all(np.isfinite(g.W)) and np.all(np.isfinite(g.a))
    # and it is the true derivative: a central difference along a random direction
    V = jax.random.normal(getkey(), W.shape)
    eps = 1e-6
    fd = (
        loss(jf.TwoLayer(W + eps * V, s.b, s.a, act))
        - loss(jf.TwoLayer(W - eps * V, s.b, s.a, act))
    ) / (2 * eps)
    assert float(jnp.sum(g.W * V)) == pytest.approx(float(fd), rel=1e-5, abs=1e-8)


@pytest.mark.slow
def test_symmetric_init_student_has_finite_gradient(getkey):
    s = jf.TwoLayer.init(getkey(), 8, 5, "relu", "symmetric", dtype=jnp.float64)
    t = jf.TwoLayer(W_T, np.zeros(2), A_T, "relu")
    # f_s ≡ 0, so L = a*ᵀK(W*,W*)a* = ½ + 0.49·½ − 2·0.7·κ_1(0), κ_1(0) = 1/(2π)
    assert float(jf.population_loss(s, t)) == pytest.approx(0.745 - 1.4 / (2 * math.pi), rel=1e-12)
    g = eqx.filter_grad(jf.population_loss)(s, t)
    assert np.all(np.isfinite(g.W)) and np.all(np.isfinite(g.a))


def test_vmap_over_students_compiles_once(getkey):
    from conftest import compile_log

    t = jf.TwoLayer(W_T, np.zeros(2), A_T, "sigma_ge2")
    f = jax.jit(jax.vmap(lambda s: jf.population_loss(s, t)))
    students = jf.init_ensemble(getkey(), [3], 5, "sigma_ge2", seeds=16)
    students = jax.tree_util.tree_map(lambda x: x[0], students)
    out = f(students)
    one = jf.population_loss(jax.tree_util.tree_map(lambda x: x[3], students), t)
    assert out.shape == (16,) and float(out[3]) == pytest.approx(float(one), rel=1e-12)
    others = jax.tree_util.tree_map(
        lambda x: x[0], jf.init_ensemble(getkey(), [3], 5, "sigma_ge2", seeds=16)
    )
    with compile_log() as msgs:
        f(others)  # new students, same shapes: no recompilation
    assert not msgs


def test_neuron_second_moments_and_mehler_diagonal(getkey):
    """E[n²] per neuron against scipy quadrature (split at the kink b/|w|); the Mehler diagonal
    Σ_k c_k² approaches it from below, within the tail bound."""
    import scipy.integrate as si

    W = jax.random.normal(getkey(), (4, 3))
    b = jax.random.normal(getkey(), (4,))
    norms, bn = np.linalg.norm(W, axis=1), np.asarray(b)
    for act in ("tanh", "relu", "sigma_ge2", "abs", "elu"):
        C, m2 = kernels.neuron_coefficients(act, kernels.smoothed_norms(W), b, 60)
        A = jf.activations.get(act)
        for i in range(4):
            g = lambda z: A.numpy(norms[i] * z - bn[i], norms[i]) ** 2 * np.exp(-z * z / 2)  # noqa
            kink = float(bn[i] / norms[i])
            ref = sum(si.quad(g, lo, hi, epsabs=1e-14)[0] for lo, hi in [(-30, kink), (kink, 30)])
            assert float(m2[i]) == pytest.approx(ref / math.sqrt(2 * math.pi), rel=1e-10)
        K = kernels.dual_kernel(act, W, W, b, b, method="hermite", degree=60)
        tail = kernels.mehler_tail(C, m2)
        assert np.all(np.diag(K) <= m2 + 1e-12)
        np.testing.assert_allclose(np.diag(K) + tail**2, m2, rtol=1e-12)


# each case builds (args, kwargs) for jf.population_loss outside the no-compile block
BAD = [
    (
        lambda: (
            (worked_pair("relu")[0], jf.TwoLayer(np.ones((2, 4)), np.zeros(2), np.ones(2), "relu")),
            {},
        ),
        ValueError,
        "teacher.dim must equal student.dim",
    ),
    (lambda: ((worked_pair("relu")[0], worked_pair("tanh")[1]), {}), ValueError, "activation"),
    (lambda: (worked_pair("tanh"), {"method": "closed_form"}), ValueError, "closed_form"),
    (
        lambda: (
            (jf.TwoLayer(W_S, np.ones(3), A_S, "relu"), worked_pair("relu")[1]),
            {"method": "closed_form"},
        ),
        ValueError,
        "student.b must be zero",
    ),
    (lambda: (worked_pair("relu"), {"method": "exact"}), ValueError, "method"),
    (lambda: (worked_pair("tanh"), {"degree": -1}), ValueError, "degree"),
    (lambda: (("net", worked_pair("relu")[1]), {}), TypeError, "student"),
]


@pytest.mark.parametrize("make, exc, match", BAD)
def test_bad_input(make, exc, match, no_compile):
    args, kwargs = make()
    with no_compile(), pytest.raises(exc, match=match):  # refused before anything compiles
        jf.population_loss(*args, **kwargs)


@pytest.mark.parametrize("K", [0, 1, 7])
@pytest.mark.slow
def test_mehler_kernel_custom_vjp_matches_autodiff_of_the_plain_sum(getkey, K):
    CA = jax.random.normal(getkey(), (5, K + 1))
    CB = jax.random.normal(getkey(), (4, K + 1))
    rho = jnp.clip(jax.random.normal(getkey(), (5, 4)), -1, 1)

    def plain(CA, CB, rho):
        return sum(CA[:, k][:, None] * CB[:, k][None, :] * rho**k for k in range(K + 1))

    np.testing.assert_allclose(kernels.mehler_kernel(CA, CB, rho), plain(CA, CB, rho), atol=1e-13)
    f = lambda fn: lambda *a: jnp.sum(jnp.sin(fn(*a)))  # noqa: E731
    for i in range(3):
        np.testing.assert_allclose(
            jax.grad(f(kernels.mehler_kernel), i)(CA, CB, rho),
            jax.grad(f(plain), i)(CA, CB, rho),
            atol=1e-12,
        )


FORM_ACTS = ["relu", "abs", "sigma_ge2", jf.activations.get("relu").centred((0,))]


@pytest.mark.parametrize("act", FORM_ACTS)
@pytest.mark.parametrize("self_form", [False, True])
@pytest.mark.slow
def test_kernel_form_gradient_matches_autodiff_of_the_kernel_matrix(getkey, act, self_form):
    """`kernel_form`'s hand-derived derivative (every argument) against autodiff of
    p @ dual_kernel(A, B) @ q, with a duplicated, an antiparallel and a zero (padding) row."""
    A = jax.random.normal(getkey(), (6, 5))
    A = A.at[1].set(A[0]).at[2].set(-0.5 * A[0]).at[5].set(0.0)
    p = jax.random.normal(getkey(), (6,))
    B, q = jax.random.normal(getkey(), (3, 5)), jax.random.normal(getkey(), (3,))

    def plain(*args):
        A, p, B, q = args * 2 if self_form else args
        return p @ kernels.dual_kernel(act, A, B, method="closed_form") @ q

    def mine(*args):
        return kernels.kernel_form(act, *args)

    args = (A, p) if self_form else (A, p, B, q)
    assert float(mine(*args)) == pytest.approx(float(plain(*args)), rel=1e-14)
    for i in range(len(args)):
        np.testing.assert_allclose(
            jax.grad(mine, i)(*args), jax.grad(plain, i)(*args), rtol=1e-12, atol=1e-13
        )
    # second derivatives differentiate the rule: a Hessian-vector product against central
    # differences of the gradient (rows 1, 2 and 5 moved off ρ = ±1 and |w| = 0 first, where the
    # second derivatives are infinite)
    A2 = A.at[1].add(0.3).at[2].add(-0.2).at[5].set(A[3] + A[4])
    g = jax.grad(lambda A: mine(A, *args[1:]))
    V = jax.random.normal(getkey(), A.shape)
    hvp = jax.jvp(g, (A2,), (V,))[1]
    fd = (g(A2 + 1e-6 * V) - g(A2 - 1e-6 * V)) / 2e-6
    np.testing.assert_allclose(hvp, fd, rtol=1e-5, atol=1e-7)


def test_auto_takes_the_hermite_series_for_concretely_biased_relu_neurons():
    """`method="auto"` looks at concrete biases: a biased relu pair gets the Mehler series (the
    closed form would refuse it), an unbiased one the closed form."""
    student = jf.TwoLayer(W_S, np.array([0.3, -0.2, 0.1]), A_S, "relu")
    teacher = worked_pair("relu")[1]
    got = jf.population_loss(student, teacher)
    want = jf.population_loss(student, teacher, method="hermite")
    assert float(got) == float(want)
    pair = worked_pair("relu")
    assert float(jf.population_loss(*pair)) == float(
        jf.population_loss(*pair, method="closed_form")
    )
