"""One eigendecomposition of F₁'s centred Gram matrix serves the spike count and the ridge path
(`gram_eigh=`, `jaxfeat.spectrum.centred_gram_eigh`): each gives what it computes on its own, in
float64, with padding rows, and `one_step_spikes` and `one_step_equivalence` decompose F₁'s
N×N Gram matrix once."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxfeat as jf
from jaxfeat._checks import InputError
from jaxfeat.algorithms import one_gradient_step
from jaxfeat.algorithms.equivalence import one_step_equivalence
from jaxfeat.ridge import ridge_path
from jaxfeat.spectrum import DenseFeatures, centred_gram_eigh, count_spikes, hermite_features

LAMS = jnp.logspace(-4, 0, 6)


def problem(live=None, rows=40, N=9):
    """Features far from centred (padding rows beyond `live` filled with junk), labels, H."""
    k = jax.random.split(jax.random.key(3), 3)
    X = jax.random.normal(k[0], (rows, 5))
    F = jax.nn.relu(X @ jax.random.normal(k[1], (5, N)) + 0.5) + jnp.linspace(0, 1, N)[None, :]
    y = X[:, 0] + X[:, 1] ** 2 + 0.1 * jax.random.normal(k[2], (rows,))
    if live is not None:  # the rows beyond `live` are padding: junk that must not count
        pad = jnp.arange(rows) >= live
        F = jnp.where(pad[:, None], 7.0, F)
        y = jnp.where(pad, -3.0, y)
    return F, y, hermite_features(X, jnp.eye(5)[0], 4)


@pytest.mark.parametrize("live", [None, 29])
def test_ridge_path_from_a_given_eigendecomposition(live):
    F, y, _ = problem(live)
    eig = centred_gram_eigh(DenseFeatures(F, n=live))
    own, shared = ridge_path(F, y, LAMS, n=live), ridge_path(F, y, LAMS, n=live, gram_eigh=eig)
    for key in ("coef", "intercept", "gram_eigenvalues", "train_mse", "loo_mse", "gcv"):
        np.testing.assert_allclose(shared[key], own[key], rtol=1e-11, atol=1e-13, err_msg=key)
    assert int(shared["best_loo"]) == int(own["best_loo"])


@pytest.mark.parametrize("live", [None, 29])
def test_count_spikes_from_a_given_eigendecomposition(live):
    F, _, H = problem(live)
    Fd = DenseFeatures(F, n=live)
    own = count_spikes(Fd, H, k=4)
    shared = count_spikes(Fd, H, k=4, gram_eigh=centred_gram_eigh(Fd))
    for key in ("singular_values", "deflated_edge", "mass_in_hermite_span", "capture"):
        np.testing.assert_allclose(shared[key], own[key], rtol=1e-12, atol=1e-14, err_msg=key)
    assert int(shared["n_outliers"]) == int(own["n_outliers"])


def test_the_decomposition_is_of_the_centred_live_rows():
    """Against NumPy: F_cᵀF_c over the live rows, centred on their mean."""
    F, _, _ = problem(29)
    e, V = centred_gram_eigh(DenseFeatures(F, n=29))
    Fc = np.asarray(F[:29]) - np.asarray(F[:29]).mean(0)
    np.testing.assert_allclose(e, np.linalg.eigvalsh(Fc.T @ Fc), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(V @ np.diag(e) @ V.T, Fc.T @ Fc, rtol=1e-10, atol=1e-10)


def test_wrong_shapes_and_the_krylov_path_are_refused():
    F, y, H = problem()
    e, V = centred_gram_eigh(F)
    with pytest.raises(InputError, match="gram_eigh must be"):
        ridge_path(F, y, LAMS, gram_eigh=(e[:-1], V))
    with pytest.raises(InputError, match="gram_eigh must be a pair"):
        count_spikes(F, H, k=3, gram_eigh=e)
    with pytest.raises(InputError, match="dense path"):
        count_spikes(F, H, k=3, method="krylov", key=jax.random.key(0), gram_eigh=(e, V))


def _gram_eighs(fn, width) -> int:
    """How many eigendecompositions of width×width matrices the traced program runs (every
    call of a nested jaxpr counted)."""

    def count(jaxpr) -> int:
        total = 0
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "eigh":
                total += eqn.invars[0].aval.shape[-2:] == (width, width)
            for p in eqn.params.values():
                for sub in p if isinstance(p, (tuple, list)) else (p,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        total += count(inner)
        return total

    return count(jax.make_jaxpr(fn)(jax.random.key(0)).jaxpr)


def test_one_step_programs_decompose_f1_once():
    """one_step_spikes: F₁ (shared by the spike count and the ridge path), the deflated Gram
    matrix and F₀ (four before); one_step_equivalence: F₁ (shared), the deflated Gram matrix
    and the ridge paths of F₀ and F₀ + 1, 2 spike terms (six before)."""
    dist = jf.data.SingleIndex(np.eye(1, 12)[0], [0.0, 1.0, 0.5], noise=0.1)
    width = 10

    def spikes(key):
        return jf.algorithms.one_step_spikes(
            key, dist, n=60, n_tilde=60, width=width, n_test=30, k=3
        )

    def equivalence(key):
        return one_step_equivalence(key, dist, n=60, width=width, n_test=30, terms=2)

    assert _gram_eighs(spikes, width) == 3

    def uncentred(key):  # without an intercept the path's matrix is not the spike count's
        return jf.algorithms.one_step_spikes(
            key, dist, n=60, n_tilde=60, width=width, n_test=30, k=3, intercept=False
        )

    assert _gram_eighs(uncentred, width) == 5  # F₁ twice, the deflated one, F₀ and its edge
    assert _gram_eighs(equivalence, width) == 5


# shares (padded rows and neurons, the sum loss), does not, shares in the dual form
SHARED_OR_NOT = {
    "padded": dict(n=50, capacity=jf.Capacity(n=70, n_tilde=70, width=14), ridge_loss="sum"),
    "scaled": dict(ridge_scale="1/sqrt(width)", intercept=False),
    "dual": dict(width=80),  # N > ñ: the path decomposes F₁F₁ᵀ, the spike count the shared one
}


@pytest.mark.slow
@pytest.mark.parametrize("config", SHARED_OR_NOT)
def test_one_step_spikes_gives_the_same_numbers_shared_or_not(config, monkeypatch):
    """Every output with the shared decomposition equals the one of the unshared program
    (`centred_gram_eigh` replaced by None: each consumer decomposes its own), float64."""
    dist = jf.data.SingleIndex(np.eye(1, 12)[0], [0.0, 1.0, 0.5], noise=0.1)
    kw = dict(n=60, n_tilde=60, width=10, n_test=30, k=3) | SHARED_OR_NOT[config]

    def run():
        return jax.jit(lambda k: one_gradient_step._one_step_spikes(k, dist, **kw))(
            jax.random.key(4)
        )

    shared = run()
    monkeypatch.setattr(one_gradient_step, "centred_gram_eigh", lambda F: None)
    own = run()
    for key, v in own.items():
        np.testing.assert_allclose(shared[key], v, rtol=1e-11, atol=1e-13, err_msg=key)
