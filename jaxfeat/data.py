"""Data distributions as Equinox modules with `.sample(key, n) -> (X (n, d), y (n,))`.

Single-/multi-index models (x ~ N(0, I_d), or i.i.d. unit-variance Rademacher or uniform
coordinates: `inputs=`, MATH §4.5) and teacher networks (x ~ N(0, I_d)), Gaussian mixtures
(XOR preset), sparse parity on {±1}^d (uniform, or the structured mixture of MATH §6.2) and
linearly separable data with a margin. Every argument is checked in Python when the module is
built, and `n`/`key` when `sample` is called, before anything compiles.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from . import _checks, _exact_gradient as _G, _sized
from ._checks import InputError, InputTypeError
from ._quadrature import hermite_polynomials

__all__ = [
    "Distribution",
    "Network",
    "SingleIndex",
    "MultiIndex",
    "HERMITE_BASES",
    "INPUT_LAWS",
    "orthonormal_directions",
    "Teacher",
    "GaussianMixture",
    "SparseParity",
    "LinearSeparable",
]


class Distribution(eqx.Module):
    """A joint law of (x, y), abstract (equinox's abstract/final pattern: the concrete laws
    below are final). A law implements `dim`, `_sample` (`sample` validates first) and owns its
    exact population gradient: `why_no_exact_gradient` says whether it has one, in Python and
    without array work, and `exact_gradient` computes it. Numeric parameters (`noise`, `flip`,
    `margin`) are array fields, so a sweep over them under `jit`/`vmap` compiles once."""

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Input dimension d."""

    @abc.abstractmethod
    def _sample(self, key: PRNGKeyArray, n: int) -> tuple[Array, Array]:
        """Draw n pairs; arguments already validated."""

    @abc.abstractmethod
    def why_no_exact_gradient(self) -> str | None:
        """None when `exact_gradient` is exact for this law, else the reason it is not (the
        message `jaxfeat.population_gradient` raises). Python only: cheap, no tracing."""

    @abc.abstractmethod
    def exact_gradient(
        self, W: Float[Array, "width dim"], b: Float[Array, " width"]
    ) -> Float[Array, "width dim"]:
        """G(w_i, b_i) = E[y x 1{w_i·x > b_i}] exactly (MATH §3), for checked arrays; raises
        `InputError` (`why_no_exact_gradient`) when the law has no exact G. Callers check the
        arguments first: use `jaxfeat.population_gradient`."""

    def sample(
        self, key: PRNGKeyArray, n, *, capacity: int | None = None
    ) -> tuple[Float[Array, "n dim"], Float[Array, " n"]]:
        """Draw `n` i.i.d. pairs: X of shape (n, dim) and y of shape (n,).

        With a static `capacity`, `n` may be a traced size: X (capacity, dim) and y
        (capacity,) hold the same n pairs in their first rows and zeros after them
        (`jaxfeat._sized`: row j never depends on the capacity), so a sweep over n under
        `jit`/`vmap` compiles once."""
        _checks.check_key(key)
        n, cap = _sized.check_size("n", n, capacity)
        X, y = self._sample(key, cap)
        if capacity is None:
            return X, y
        return _sized.mask_rows(X, n), _sized.mask_rows(y, n)


def _vector(name: str, x, expected: str = "(dim,)") -> Array:
    (d,) = _checks.check_ndim(name, x, 1, expected)
    if d == 0:
        raise InputError(f"{name} must be non-empty")
    _checks.check_finite(name, x)
    return jnp.asarray(x, dtype=jnp.zeros(()).dtype)


def _unit_vector(name: str, x) -> Array:
    _vector(name, x)
    v = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(v)
    if norm == 0.0:
        raise InputError(f"{name} must be non-zero")
    return jnp.asarray(v / norm, dtype=jnp.zeros(()).dtype)


def _flip_labels(key, y, flip):
    return jnp.where(jax.random.bernoulli(key, flip, y.shape), -y, y)


def _scalar(name: str, x, upper: float | None = None) -> Array:
    """A numeric parameter >= 0 (and <= `upper`) as a 0-d array of the default float dtype, so
    it is a pytree leaf (no recompile when it changes). Tracers are checked for shape only."""
    if not _checks.is_concrete(x):
        _checks.check_shape(name, x, (), "()")
        return jnp.asarray(x, dtype=jnp.zeros(()).dtype)
    v = _checks.check_nonneg_float(name, x)
    if upper is not None and v > upper:
        raise InputError(f"{name} must be a probability in [0, {upper}], got {v}")
    return jnp.asarray(v, dtype=jnp.zeros(()).dtype)


def _check_flip(flip) -> Array:
    return _scalar("flip", flip, upper=0.5)


def _no_exact_gradient(dist: Distribution) -> str:
    return (
        f"dist: no exact population gradient for {type(dist).__name__}; supported: "
        "GaussianMixture, SingleIndex, MultiIndex (hermite), SparseParity "
        f"(dim <= {_G.PARITY_ENUMERATION_MAX_DIM}); use monte_carlo_gradient"
    )


def _raise_no_exact_gradient(dist: Distribution):
    raise InputError(dist.why_no_exact_gradient())


Scalar = float | Float[Array, ""]  # a numeric parameter: a number, or a 0-d (maybe traced) array

_NAMED_LINKS = {"relu": jax.nn.relu, "sign": jnp.sign}


def _check_target(hermite, target) -> Array | None:
    if (hermite is None) == (target is None):
        raise InputError("give exactly one of hermite= (coefficients) or target= (a callable)")
    if isinstance(target, str) and target not in _NAMED_LINKS:
        raise InputError(
            f"target must be a callable or one of {sorted(_NAMED_LINKS)}, got {target!r}"
        )
    if target is not None and not isinstance(target, str) and not callable(target):
        raise InputTypeError(f"target must be callable, got {type(target).__name__}")
    return None if hermite is None else _vector("hermite", hermite, "(degree + 1,)")


HERMITE_BASES = ("normalised", "probabilists")


def _to_normalised(hermite, basis: str):
    """Coefficients in the normalised basis h_k = He_k/√(k!) (MATH §1) from `basis`:
    `"normalised"` as they are, `"probabilists"` (f = Σ c_k He_k) as c_k·√(k!)."""
    if basis not in HERMITE_BASES:
        raise InputError(f"basis must be one of {HERMITE_BASES}, got {basis!r}")
    if hermite is None or basis == "normalised":
        return hermite
    c = np.asarray(hermite, dtype=np.float64)
    return c * np.sqrt([float(math.factorial(k)) for k in range(c.shape[-1])])


def orthonormal_directions(key: PRNGKeyArray, k: int, dim: int) -> Float[Array, "k dim"]:
    """k orthonormal rows in R^dim, uniformly (Haar) distributed: the index space of a
    multi-index target (`MultiIndex(B=…)`), e.g. Dandi et al.'s two orthonormal teachers."""
    _checks.check_key(key)
    k, dim = _checks.check_positive_int("k", k), _checks.check_positive_int("dim", dim)
    if k > dim:
        raise InputError(f"k must be <= dim for orthonormal directions, got k={k}, dim={dim}")
    Q, R = jnp.linalg.qr(jax.random.normal(key, (dim, k)))
    return (Q * jnp.sign(jnp.diag(R))[None, :]).T  # the sign fix makes the law Haar


_PADDED_NO_EXACT = (
    "dist: padded inputs (live_dim=) are not N(0, I_dim); the exact G needs Gaussian inputs in "
    "every coordinate"
)


def _check_live_dim(live_dim, directions) -> Array | None:
    """`live_dim` as an int32 scalar (None stays None): 1 ≤ live_dim ≤ dim, and the index
    directions (rows of `directions`) zero beyond it, when concrete."""
    if live_dim is None:
        return None
    dim = directions.shape[1]
    live, _ = _sized.check_size("live_dim", live_dim, dim)
    if _sized.is_static(live) and _checks.is_concrete(directions):
        if np.any(np.asarray(directions)[:, int(live) :] != 0):
            raise InputError(f"live_dim={live}: the index directions must be zero beyond it")
    return jnp.asarray(live, jnp.int32)


INPUT_LAWS = ("gaussian", "rademacher", "uniform")


def _check_inputs(inputs) -> str:
    """The law of the input coordinates, one of `INPUT_LAWS`."""
    if not isinstance(inputs, str) or inputs not in INPUT_LAWS:
        raise InputError(
            f"inputs must be one of {INPUT_LAWS} (the law of each input coordinate), got {inputs!r}"
        )
    return str(inputs)


def _non_gaussian(inputs: str) -> str:
    """Why a law with non-Gaussian `inputs` has no exact G (`why_no_exact_gradient`)."""
    return (
        f"dist: inputs={inputs!r} has no exact population gradient; the exact G (MATH §3: "
        "Hermite addition formula, Gaussian quadrature) needs Gaussian inputs x ~ N(0, I_d) "
        "(MATH §4.5); use monte_carlo_gradient"
    )


def _coordinates(g: Float[Array, "*shape"], inputs: str) -> Float[Array, "*shape"]:
    """Unit-variance coordinates of law `inputs` as an exact transform T(g) of g ~ N(0, 1):
    `"gaussian"` T(g) = g; `"rademacher"` T(g) = ±1 by the sign of g (P(g < 0) = ½);
    `"uniform"` T(g) = √3·erf(g/√2) = √3(2Φ(g) − 1), uniform on [−√3, √3] since Φ(g) ~ U(0, 1)
    (variance 3/3 = 1, E x⁴ = 9/5). A transform of the Gaussian draw inherits its exactness
    under padding (`jaxfeat._sized.normal`), and one key couples the three laws."""
    if inputs == "rademacher":
        return jnp.where(g < 0, -1, 1).astype(g.dtype)
    if inputs == "uniform":
        # bit-identical eager and under jit: the barrier stops XLA folding √0.5 into the √2 of
        # g = √2·erfinv(u) (jax.random.normal), and x·√0.5, unlike x/√2, is not rewritten
        g = jax.lax.optimization_barrier(g)
        return math.sqrt(3.0) * jax.scipy.special.erf(g * math.sqrt(0.5))
    return g


def _inputs(key, n: int, dim: int, live_dim, inputs: str = "gaussian") -> Array:
    """X of shape (n, dim) with i.i.d. coordinates of law `inputs` (`_coordinates`); with
    `live_dim` its first live_dim columns are the (n, live_dim) draw and the rest zero, exactly
    (`jaxfeat._sized.normal`)."""
    if live_dim is None:
        return _coordinates(jax.random.normal(key, (n, dim)), inputs)
    X = _sized.normal(key, (n, dim), (n, live_dim))
    if inputs == "gaussian":
        return X
    live = jnp.arange(dim) < live_dim  # T(0) = ±1 for rademacher: re-zero the padding
    return _sized.where(live[None, :], _coordinates(X, inputs), jnp.zeros((), X.dtype))


class SingleIndex(Distribution):
    """x ~ N(0, I_d) (or other `inputs`), y = f*(β·x) + noise·ε, ε ~ N(0, 1), with |β| = 1.

    `inputs` (`"gaussian"` | `"rademacher"` | `"uniform"`) is the law of the i.i.d. input
    coordinates, all of unit variance: N(0, 1), ±1 with probability ½, or uniform on
    [−√3, √3] (MATH §4.5); the labels use the same link of β·x. The exact population gradient
    (`population_gradient`) needs Gaussian inputs and refuses the others.

    f* is given by its normalised Hermite coefficients, f*(z) = Σ_k hermite[k] He_k(z)/√(k!)
    (MATH §1), or with `basis="probabilists"` by c_k in f*(z) = Σ_k c_k He_k(z) (stored
    converted, hermite[k] = c_k√(k!)), as `target="relu"` or `"sign"` (for which
    `population_gradient` is exact), or as a callable `target` acting elementwise on JAX
    arrays. `beta` is normalised to unit length.

    `live_dim` (an int ≤ dim, possibly traced) pads the input: only the first `live_dim`
    coordinates are drawn (exactly as `live_dim`-dimensional inputs would be) and the rest are
    zero, so a sweep over the dimension compiles once at dim = its capacity (`jaxfeat._sized`).
    """

    beta: Float[Array, " dim"]
    hermite: Float[Array, " degree"] | None
    noise: Float[Array, ""]
    live_dim: Array | None
    target: Callable | str | None = eqx.field(static=True)
    inputs: str = eqx.field(static=True)

    def __init__(
        self,
        beta,
        hermite=None,
        noise: Scalar = 0.0,
        *,
        target: Callable | str | None = None,
        basis: str = "normalised",
        live_dim=None,
        inputs="gaussian",
    ):
        self.inputs = _check_inputs(inputs)
        self.noise = _scalar("noise", noise)
        self.beta = _unit_vector("beta", beta)
        self.hermite = _check_target(_to_normalised(hermite, basis), target)
        self.target = target
        self.live_dim = _check_live_dim(live_dim, self.beta[None, :])

    @property
    def dim(self) -> int:
        return self.beta.shape[0]

    def link(self, z: Array) -> Array:
        """f*(z), elementwise."""
        if self.target is not None:
            return _NAMED_LINKS[self.target](z) if isinstance(self.target, str) else self.target(z)
        assert self.hermite is not None  # exactly one of hermite and target is set
        h = hermite_polynomials(z, self.hermite.shape[0] - 1)  # JAX in, JAX out
        return h @ self.hermite.astype(z.dtype)  # pyright: ignore[reportReturnType]

    def _sample(self, key, n):
        kx, ke = jax.random.split(key)
        X = _inputs(kx, n, self.dim, self.live_dim, self.inputs)
        y = self.link(X @ self.beta) + self.noise * jax.random.normal(ke, (n,))
        return X, y

    def why_no_exact_gradient(self):
        if self.inputs != "gaussian":
            return _non_gaussian(self.inputs)
        if self.live_dim is not None:
            return _PADDED_NO_EXACT
        if self.hermite is None and self.target not in ("relu", "sign"):
            return (
                "dist: SingleIndex with a callable target has no exact G; give it by "
                "hermite= coefficients, target='relu' or 'sign', or use "
                "monte_carlo_gradient"
            )
        return None

    def exact_gradient(self, W, b):
        """Hermite targets: the addition formula (MATH §3.2); relu/sign: a closed inner
        expectation and a 1-D Gauss–Legendre integral (≈1e-13). Gaussian inputs only."""
        if self.inputs != "gaussian":
            _raise_no_exact_gradient(self)
        if self.hermite is not None:
            return _G.index_gradient(self.beta, self.hermite, W, b)
        if self.target in ("relu", "sign"):
            return _G.quadrature_index_gradient(self.target, self.beta, W, b)
        _raise_no_exact_gradient(self)


class MultiIndex(Distribution):
    """x ~ N(0, I_d) (or other `inputs`), y = g(Bx) + noise·ε with B of shape (k, d).

    g is a callable on the last axis (`target(Z)` with Z (n, k) -> (n,)), or, with `hermite` of
    shape (k, K+1), the additive model g(z) = Σ_j Σ_k hermite[j, k] h_k(z_j); a 1-D `hermite`
    (K+1,) is the same link for every direction. `basis`, `live_dim` and `inputs` (the law of
    the input coordinates; exact G for Gaussian inputs only) as in `SingleIndex`.
    """

    B: Float[Array, "k dim"]
    hermite: Float[Array, "k degree"] | None
    noise: Float[Array, ""]
    live_dim: Array | None
    target: Callable | None = eqx.field(static=True)
    inputs: str = eqx.field(static=True)

    def __init__(
        self,
        B,
        hermite=None,
        noise: Scalar = 0.0,
        *,
        target: Callable | None = None,
        basis: str = "normalised",
        live_dim=None,
        inputs="gaussian",
    ):
        self.inputs = _check_inputs(inputs)
        self.noise = _scalar("noise", noise)
        k, d = _checks.check_ndim("B", B, 2, "(k, dim)")
        if k == 0 or d == 0:
            raise InputError(f"B must have shape (k, dim) with k, dim >= 1, got {(k, d)}")
        _checks.check_finite("B", B)
        hermite = _to_normalised(hermite, basis)
        if hermite is not None and len(_checks.shape_of("hermite", hermite)) == 1:
            hermite = np.tile(np.asarray(hermite, dtype=np.float64), (k, 1))
        if (hermite is None) == (target is None):
            raise InputError("give exactly one of hermite= (coefficients) or target= (a callable)")
        if hermite is not None:
            kh, deg = _checks.check_ndim("hermite", hermite, 2, "(k, degree + 1)")
            if kh != k or deg == 0:
                raise InputError(
                    f"hermite must have shape (k, degree + 1) = ({k}, K+1), got {(kh, deg)}"
                )
            _checks.check_finite("hermite", hermite)
        elif not callable(target):
            raise InputTypeError(f"target must be callable, got {type(target).__name__}")
        self.B = jnp.asarray(B, dtype=jnp.zeros(()).dtype)
        if hermite is not None:
            hermite = jnp.asarray(hermite, dtype=self.B.dtype)
        self.hermite, self.target = hermite, target
        self.live_dim = _check_live_dim(live_dim, self.B)

    @property
    def dim(self) -> int:
        return self.B.shape[1]

    def link(self, Z: Float[Array, "*batch k"]) -> Float[Array, "*batch"]:
        if self.target is not None:
            return self.target(Z)
        assert self.hermite is not None  # exactly one of hermite and target is set
        H = hermite_polynomials(Z, self.hermite.shape[1] - 1)  # (..., k, K+1)
        return jnp.einsum("...jk,jk->...", H, self.hermite.astype(H.dtype))

    def _sample(self, key, n):
        kx, ke = jax.random.split(key)
        X = _inputs(kx, n, self.dim, self.live_dim, self.inputs)
        return X, self.link(X @ self.B.T) + self.noise * jax.random.normal(ke, (n,))

    def why_no_exact_gradient(self):
        if self.inputs != "gaussian":
            return _non_gaussian(self.inputs)
        if self.live_dim is not None:
            return _PADDED_NO_EXACT
        return None if self.hermite is not None else _no_exact_gradient(self)

    def exact_gradient(self, W, b):
        """Additive Hermite targets: a sum of single-index G (MATH §3.2); B concrete; Gaussian
        inputs only."""
        if self.hermite is None or self.inputs != "gaussian":
            _raise_no_exact_gradient(self)
        return _G.multi_index_gradient(self.B, self.hermite, W, b)


@runtime_checkable
class Network(Protocol):
    """What a `Teacher` needs of its network: first-layer weights `W` (width, dim), which fix
    the input dimension and dtype, and f(X) of a batch (n, dim) -> (n,). `jaxfeat.TwoLayer` is
    one; the protocol keeps `data` below `nets` in the import graph."""

    W: Array

    def __call__(self, x: Array) -> Array: ...


class Teacher(Distribution):
    """x ~ N(0, I_d), y = teacher(x) + noise·ε for a teacher network (a `jaxfeat.TwoLayer`)."""

    net: Network
    noise: Float[Array, ""]

    def __init__(self, net: Network, noise: Scalar = 0.0):
        if not isinstance(net, Network) or len(_checks.shape_of("net.W", net.W)) != 2:
            raise InputTypeError(
                "net must be a single (not ensembled) network such as jaxfeat.TwoLayer"
            )
        self.net = net
        self.noise = _scalar("noise", noise)

    @property
    def dim(self) -> int:
        return self.net.W.shape[1]

    def _sample(self, key, n):
        kx, ke = jax.random.split(key)
        dt = self.net.W.dtype
        X = jax.random.normal(kx, (n, self.dim), dt)
        return X, self.net(X) + self.noise.astype(dt) * jax.random.normal(ke, (n,), dt)

    def why_no_exact_gradient(self):
        return _no_exact_gradient(self)

    def exact_gradient(self, W, b):
        _raise_no_exact_gradient(self)


class GaussianMixture(Distribution):
    """x ~ Σ_j p_j N(μ_j, s_j² I_d), with label y = labels[j] for component j (MATH §3.1)."""

    means: Float[Array, "k dim"]
    scales: Float[Array, " k"]
    labels: Float[Array, " k"]
    weights: Float[Array, " k"]

    def __init__(self, means, scales, labels, weights=None):
        k, d = _checks.check_ndim("means", means, 2, "(k, dim)")
        if k == 0 or d == 0:
            raise InputError(f"means must have shape (k, dim) with k, dim >= 1, got {(k, d)}")
        _checks.check_finite("means", means)
        for name, x in (("scales", scales), ("labels", labels)):
            _checks.check_shape(name, x, (k,), "(k,)")
            _checks.check_finite(name, x)
        weights = np.full(k, 1.0 / k) if weights is None else weights
        _checks.check_shape("weights", weights, (k,), "(k,)")
        _checks.check_finite("weights", weights)
        if np.any(np.asarray(scales) <= 0):
            raise InputError("scales must be > 0")
        w = np.asarray(weights, dtype=np.float64)
        if np.any(w < 0) or w.sum() <= 0:
            raise InputError("weights must be >= 0 with a positive sum")
        dtype = jnp.zeros(()).dtype
        self.means = jnp.asarray(means, dtype)
        self.scales = jnp.asarray(scales, dtype)
        self.labels = jnp.asarray(labels, dtype)
        self.weights = jnp.asarray(w / w.sum(), dtype)

    @classmethod
    def xor(cls, dim: int, sigma: float | None = None, mu_norm: float = 1.0) -> GaussianMixture:
        """XOR: equiprobable means ±μ_1 (y = +1) and ±μ_2 (y = −1), μ_1 = |μ| e_1 ⊥ μ_2 = |μ| e_2.

        `sigma` defaults to 1/√dim (MATH §6.2's runs; the paper's constants are [R]).
        """
        dim = _checks.check_positive_int("dim", dim)
        if dim < 2:
            raise InputError(f"dim must be >= 2 for XOR, got {dim}")
        sigma = 1.0 / np.sqrt(dim) if sigma is None else sigma
        e = mu_norm * np.eye(2, dim)
        means = np.stack([e[0], -e[0], e[1], -e[1]])
        return cls(means, np.full(4, sigma), np.array([1.0, 1.0, -1.0, -1.0]))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _sample(self, key, n):
        kc, kx = jax.random.split(key)
        comp = jax.random.choice(kc, self.weights.shape[0], (n,), p=self.weights)
        xi = jax.random.normal(kx, (n, self.dim))
        return self.means[comp] + self.scales[comp][:, None] * xi, self.labels[comp]

    def why_no_exact_gradient(self):
        return None

    def exact_gradient(self, W, b):
        """Closed form with Φ̄ and φ (MATH §3.1)."""
        return _G.mixture_gradient(self.means, self.scales, self.labels, self.weights, W, b)


class SparseParity(Distribution):
    """x on {±1}^dim, y = Π_{i∈support} x_i (label flipped with probability `flip`).

    With `structured_weight` = 0, x is uniform. Otherwise (the Daniely–Malach-style mixture of
    MATH §6.2, whose constants are [R]) with that probability x_A is drawn uniformly from the rows
    of `patterns` (default: all +1 and all −1), the other coordinates staying uniform.
    """

    support: tuple[int, ...] = eqx.field(static=True)
    n_dim: int = eqx.field(static=True)
    structured_weight: float = eqx.field(static=True)
    patterns: Float[Array, "p k"]
    flip: Float[Array, ""]

    def __init__(
        self,
        dim: int,
        support,
        *,
        structured_weight: float = 0.0,
        patterns=None,
        flip: Scalar = 0.0,
    ):
        self.n_dim = _checks.check_positive_int("dim", dim)
        self.flip = _check_flip(flip)
        sup = tuple(int(i) for i in np.atleast_1d(np.asarray(support, dtype=np.int64)))
        if not sup or len(set(sup)) != len(sup) or min(sup) < 0 or max(sup) >= dim:
            raise InputError(f"support must be distinct indices in [0, {dim}), got {support!r}")
        self.support = sup
        self.structured_weight = _checks.check_nonneg_float("structured_weight", structured_weight)
        if self.structured_weight > 1:
            raise InputError(f"structured_weight must be in [0, 1], got {structured_weight}")
        k = len(sup)
        patterns = np.stack([np.ones(k), -np.ones(k)]) if patterns is None else patterns
        _checks.check_ndim("patterns", patterns, 2, f"(n_patterns, {k})")
        if np.shape(patterns)[1] != k or not np.all(np.abs(np.asarray(patterns)) == 1):
            raise InputError(f"patterns must have shape (n_patterns, {k}) with entries ±1")
        self.patterns = jnp.asarray(patterns, dtype=jnp.zeros(()).dtype)

    @property
    def dim(self) -> int:
        return self.n_dim

    def _sample(self, key, n):
        kx, ks, kp, kf = jax.random.split(key, 4)
        X = jax.random.rademacher(kx, (n, self.dim), jnp.zeros(()).dtype)
        if self.structured_weight > 0:
            structured = jax.random.bernoulli(ks, self.structured_weight, (n,))
            pat = self.patterns[jax.random.randint(kp, (n,), 0, self.patterns.shape[0])]
            idx = jnp.asarray(self.support)
            X = X.at[:, idx].set(jnp.where(structured[:, None], pat, X[:, idx]))
        y = jnp.prod(X[:, jnp.asarray(self.support)], axis=1)
        return X, _flip_labels(kf, y, self.flip)

    def why_no_exact_gradient(self):
        if self.dim > _G.PARITY_ENUMERATION_MAX_DIM:
            return (
                f"dist: exact parity enumeration needs dim <= "
                f"{_G.PARITY_ENUMERATION_MAX_DIM}, got {self.dim}; use "
                "monte_carlo_gradient"
            )
        return None

    def exact_gradient(self, W, b):
        """Exact enumeration of {±1}^dim in chunks (memory O(chunk·m)), conditioning on the
        patterns for the structured mixture; dim <= PARITY_ENUMERATION_MAX_DIM."""
        if self.why_no_exact_gradient() is not None:
            _raise_no_exact_gradient(self)
        return _G.parity_gradient(
            self.dim, self.support, self.patterns, self.structured_weight, self.flip, W, b
        )


class LinearSeparable(Distribution):
    """Gaussian inputs conditioned on |ŵ*·x| ≥ margin, labelled y = sign(ŵ*·x).

    x = x_⊥ + z ŵ* with x_⊥ ~ N(0, I − ŵ*ŵ*ᵀ) and z ~ N(0, 1) truncated to |z| ≥ margin, drawn
    exactly by inverse-CDF sampling, so every point has margin ≥ `margin`.
    """

    w_star: Float[Array, " dim"]
    margin: Float[Array, ""]
    flip: Float[Array, ""]

    def __init__(self, w_star, margin: Scalar, *, flip: Scalar = 0.0):
        self.margin = _scalar("margin", margin)
        self.flip = _check_flip(flip)
        self.w_star = _unit_vector("w_star", w_star)

    @property
    def dim(self) -> int:
        return self.w_star.shape[0]

    def _sample(self, key, n):
        kx, ku, ks, kf = jax.random.split(key, 4)
        G = jax.random.normal(kx, (n, self.dim))
        w = self.w_star[None, :]
        G = G - (G @ self.w_star)[:, None] * w
        lo = jax.scipy.special.ndtr(jnp.asarray(self.margin, G.dtype))
        u = jax.random.uniform(ku, (n,), G.dtype)
        z = jax.scipy.special.ndtri(lo + u * (1.0 - lo))
        z = jnp.maximum(z, self.margin.astype(G.dtype))  # guards round-off near lo = 1
        sign = jax.random.rademacher(ks, (n,), G.dtype)
        return G + (sign * z)[:, None] * w, _flip_labels(kf, sign, self.flip)

    def why_no_exact_gradient(self):
        return _no_exact_gradient(self)

    def exact_gradient(self, W, b):
        _raise_no_exact_gradient(self)
