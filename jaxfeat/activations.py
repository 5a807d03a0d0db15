"""Activations as named, hashable callables that know their Hermite coefficients (MATH §1.1).

An `Activation` is a frozen dataclass, so it is hashable and can sit in a static field of an
`eqx.Module` or be a static argument of `jax.jit`. Each one evaluates with JAX (`act(z)`) and
with float64 NumPy (for quadrature), and has closed-form Hermite coefficients where MATH §1.1
gives them.

**Neurons and norms.** A network neuron is `act.neuron(w·x − b, |w|)`. For every activation but the
centred homogeneous ones this is just σ(w·x − b). A *centred* activation subtracts some of its
Hermite components (orders 0 and/or 1). When its base is positively 1-homogeneous (relu, abs)
the subtraction is done at the neuron's own scale, giving the homogeneous neuron of Zhou–Ge
(MATH §2.1): `sigma_ge2` computes relu(u) − |w|/√(2π) − u/2 with u = w·x − b, which for b = 0 is
exactly |w| σ≥2(ŵ·x). `act(z)` is the neuron at |w| = 1.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special as sps
from jaxtyping import Array, ArrayLike, Float

from ._checks import InputError, InputTypeError
from ._quadrature import check_degree, check_scale, choose_rule, hermite_polynomials, project

__all__ = [
    "Activation",
    "get",
    "names",
    "weight_norms",
    "hermite",
    "polynomial",
    "relu",
    "sigma_ge2",
    "shifted_relu",
    "abs",
    "tanh",
    "erf",
    "gelu",
    "softplus",
    "elu",
    "sigmoid",
]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# --------------------------------------------------------------------------------------------
# Closed forms c_k(s) = E[σ(s z) h_k(z)], z ~ N(0,1) (MATH §1.1; derivations in the docstrings).
# --------------------------------------------------------------------------------------------


def _relu_coefficients(degree: int) -> np.ndarray:
    """c_0 = 1/√(2π), c_1 = ½, c_{2m+2} = (−1)^m (2m−1)!!/√(2π (2m+2)!), odd k ≥ 3 vanish.

    Computed in log space (MATH §1.1: log|c_{2m+2}| = lgamma(2m+1) − m log 2 − lgamma(m+1)
    − ½ log 2π − ½ lgamma(2m+3)) so any degree is safe.
    """
    c = np.zeros(degree + 1)
    c[0] = _INV_SQRT_2PI
    if degree >= 1:
        c[1] = 0.5
    for k in range(2, degree + 1, 2):
        m = (k - 2) // 2
        log_c = (
            math.lgamma(2 * m + 1)
            - m * math.log(2.0)
            - math.lgamma(m + 1)
            - 0.5 * math.log(2 * math.pi)
            - 0.5 * math.lgamma(2 * m + 3)
        )
        c[k] = (-1) ** m * math.exp(log_c)
    return c


def _relu_closed(degree: int, s: float, params: tuple) -> np.ndarray:
    return s * _relu_coefficients(degree)  # positively 1-homogeneous: c_k(s) = s c_k


def _abs_closed(degree: int, s: float, params: tuple) -> np.ndarray:
    # |z| = 2 relu(z) − z, so c_0 = √(2/π), c_1 = 0, c_k = 2 c_k(relu) for k ≥ 2.
    c = 2.0 * _relu_coefficients(degree)
    if degree >= 1:
        c[1] = 0.0
    return s * c


def _erf_closed(degree: int, s: float, params: tuple) -> np.ndarray:
    """erf(s z): with a = s²/(1+2s²), μ'_{2j+1} = 2s/√(π(1+2s²)) (−a)^j (2j)!/j!, even k vanish.

    From E[σ'(z+t)] = 2s/√(π(1+2s²)) exp(−a t²) = Σ_k μ'_{k+1} t^k/k! (Stein), c_k = μ'_k/√(k!);
    at s = 1 this is MATH §1.1's c_{2j+1} = (2/√(3π)) (−1/3)^j (2j)!/(j! √(k!)).
    """
    c = np.zeros(degree + 1)
    a = s * s / (1.0 + 2.0 * s * s)
    pref = 2.0 * s / math.sqrt(math.pi * (1.0 + 2.0 * s * s))
    for k in range(1, degree + 1, 2):
        j = (k - 1) // 2
        log_mag = math.lgamma(2 * j + 1) - math.lgamma(j + 1) - 0.5 * math.lgamma(k + 1)
        c[k] = pref * (-1) ** j * a**j * math.exp(log_mag) if a > 0 else 0.0
    return c


def _gelu_closed(degree: int, s: float, params: tuple) -> np.ndarray:
    """GELU(s z) = s z Φ(s z). With r = s/√(1+s²), E[σ(z+t)] = s[r φ(r t) + t Φ(r t)], so

    μ'_0 = s r/√(2π), μ'_1 = s/2, odd μ'_k = 0 for k ≥ 3 and, for k = 2i ≥ 2,
    μ'_k/k! = (s/√(2π)) [r^{2i+1} (−½)^i/i! + r^{2i−1} (−½)^{i−1}/((i−1)! (2i−1))].
    At s = 1 this is MATH §1.1's c_k = [e_k + k e_{k−2}]/√(k!).
    """
    c = np.zeros(degree + 1)
    r = s / math.sqrt(1.0 + s * s)
    c[0] = s * r * _INV_SQRT_2PI
    if degree >= 1:
        c[1] = 0.5 * s
    for k in range(2, degree + 1, 2):
        i = k // 2
        term = r ** (2 * i + 1) * (-0.5) ** i * math.exp(-math.lgamma(i + 1))
        term += r ** (2 * i - 1) * (-0.5) ** (i - 1) * math.exp(-math.lgamma(i)) / (2 * i - 1)
        # μ'_k/√(k!) = √(k!) · (μ'_k/k!)
        c[k] = s * _INV_SQRT_2PI * term * math.exp(0.5 * math.lgamma(k + 1))
    return c


def _polynomial_closed(degree: int, s: float, params: tuple) -> np.ndarray | None:
    if s != 1.0:
        return None  # He_j(s z) mixes degrees; Gauss–Hermite is exact for it anyway
    c = np.zeros(degree + 1)
    n = min(degree + 1, len(params))
    c[:n] = params[:n]
    return c


# --------------------------------------------------------------------------------------------
# Base functions: JAX and float64 NumPy forms, kinks, homogeneity, closed form.
# --------------------------------------------------------------------------------------------


def _poly_jax(z, params):
    return hermite_polynomials(z, len(params) - 1) @ jnp.asarray(params, dtype=z.dtype)


def _poly_np(z, params):
    return hermite_polynomials(z, len(params) - 1) @ np.asarray(params, dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class _Base:
    jax_fn: Callable
    np_fn: Callable
    kinks: tuple[float, ...] = ()
    homogeneous: bool = False
    closed_form: Callable | None = None
    polynomial: bool = False


_BASES: dict[str, _Base] = {
    "relu": _Base(
        lambda z, p: jax.nn.relu(z), lambda z, p: np.maximum(z, 0.0), (0.0,), True, _relu_closed
    ),
    "abs": _Base(lambda z, p: jnp.abs(z), lambda z, p: np.abs(z), (0.0,), True, _abs_closed),
    "tanh": _Base(lambda z, p: jnp.tanh(z), lambda z, p: np.tanh(z)),
    "erf": _Base(
        lambda z, p: jax.scipy.special.erf(z), lambda z, p: sps.erf(z), closed_form=_erf_closed
    ),
    "gelu": _Base(
        lambda z, p: jax.nn.gelu(z, approximate=False),
        lambda z, p: z * sps.ndtr(z),
        closed_form=_gelu_closed,
    ),
    "softplus": _Base(lambda z, p: jax.nn.softplus(z), lambda z, p: np.logaddexp(0.0, z)),
    # ELU is C¹ but not C² at 0: split the quadrature there.
    "elu": _Base(
        lambda z, p: jax.nn.elu(z),
        lambda z, p: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
        (0.0,),
    ),
    "sigmoid": _Base(lambda z, p: jax.nn.sigmoid(z), lambda z, p: sps.expit(z)),
    "polynomial": _Base(_poly_jax, _poly_np, closed_form=_polynomial_closed, polynomial=True),
}


@functools.lru_cache(maxsize=256)
def _base_coefficients_at_one(base: str, params: tuple) -> tuple[float, float]:
    """(c_0, c_1) of the base function at scale 1: what a centred activation subtracts."""
    c = _raw_coefficients(base, params, 1, 1.0, "auto")
    return float(c[0]), float(c[1])


def _raw_coefficients(base: str, params: tuple, degree: int, s: float, method: str) -> np.ndarray:
    spec = _BASES[base]
    if method in ("auto", "closed_form") and spec.closed_form is not None:
        c = spec.closed_form(degree, s, params)
        if c is not None:
            return c
    if method == "closed_form":
        raise InputError(f"method='closed_form': activation base {base!r} has none at scale {s}")
    x, w = _nodes(spec, params, degree, s, method)
    return project(spec.np_fn(s * x, params), x, w, degree)


def _nodes(spec: _Base, params: tuple, degree: int, s: float, method: str):
    """Pick the quadrature rule of MATH §1.2 for E[σ(s z) h_k(z)], k ≤ degree."""
    # a polynomial of degree p: Gauss–Hermite is exact once 2n − 1 ≥ p + degree
    poly = (len(params) + degree) // 2 + 2 if spec.polynomial else None
    return choose_rule(spec.kinks, s, method, poly)


# --------------------------------------------------------------------------------------------
# The public Activation type
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Activation:
    """A named activation σ with its Hermite coefficients.

    **Fields:**
    - `name`: display name, e.g. `"relu"`, `"sigma_ge2"`, `"he3"`.
    - `base`: the underlying function (`"relu"`, `"tanh"`, `"polynomial"`, ...).
    - `params`: base parameters (the Hermite coefficients of a polynomial activation).
    - `removed`: Hermite orders (a subset of (0, 1)) subtracted from the base; see the module
      docstring for how that interacts with |w| in a network.
    """

    name: str
    base: str
    params: tuple[float, ...] = ()
    removed: tuple[int, ...] = ()

    def __post_init__(self):
        if self.base not in _BASES:
            raise InputError(f"unknown activation base {self.base!r}; known: {sorted(_BASES)}")
        if not set(self.removed) <= {0, 1}:
            raise InputError(f"removed must be a subset of (0, 1), got {self.removed}")

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"

    @property
    def homogeneous(self) -> bool:
        """True when the neuron is positively 1-homogeneous in w (relu, abs and their centrings)."""
        return _BASES[self.base].homogeneous

    @property
    def kinks(self) -> tuple[float, ...]:
        return _BASES[self.base].kinks

    def __call__(self, z: Float[ArrayLike, "*shape"]) -> Float[Array, "*shape"]:
        """σ(z), the neuron at |w| = 1, in JAX."""
        return self.neuron(z, 1.0)

    def neuron(self, pre, norm):
        """JAX neuron value for pre-activation `pre = w·x − b` and weight norm `norm = |w|`.

        Equals σ(pre) unless the activation is centred; then the removed Hermite parts are
        subtracted, at scale `norm` for homogeneous bases (module docstring).
        """
        pre = jnp.asarray(pre)
        out = _BASES[self.base].jax_fn(pre, self.params)
        if not self.removed:
            return out
        # explicit broadcast: a per-neuron norm (width,) against pre (..., width)
        return out - self._removed_part(
            pre, jnp.broadcast_to(jnp.asarray(norm, pre.dtype), pre.shape)
        )

    def numpy(self, z: ArrayLike, norm: float = 1.0) -> np.ndarray | np.floating:
        """The same neuron in float64 NumPy (used by quadrature and by reference tests)."""
        z = np.asarray(z, dtype=np.float64)
        return _BASES[self.base].np_fn(z, self.params) - self._removed_part(z, norm)

    def _removed_part(self, pre, norm):
        if not self.removed:
            return 0.0
        c0, c1 = self.centring_coefficients()
        part = 0.0
        if 0 in self.removed:
            part = part + c0 * (norm if self.homogeneous else 1.0)
        if 1 in self.removed:
            part = part + c1 * pre
        return part

    def centring_coefficients(self) -> tuple[float, float]:
        """(c_0, c_1): the order-0 and order-1 Hermite coefficients of the base function at
        |w| = 1, which a centred activation subtracts (c_0 per unit |w| for a homogeneous base,
        c_1 per unit pre-activation; see the module docstring). Cached per base."""
        return _base_coefficients_at_one(self.base, self.params)

    def layer(
        self,
        x: Float[ArrayLike, "*batch dim"],
        W: Float[Array, "width dim"],
        b: Float[Array, " width"] | None = None,
    ) -> Float[Array, "*batch width"]:
        """The neurons σ(w_i·x − b_i) of a layer with weights `W` and biases `b` (zero if None):
        the hidden-layer features of a two-layer network. A centred homogeneous activation is
        taken at each neuron's own norm `weight_norms(W)` (module docstring)."""
        norm = weight_norms(W) if self.removed and self.homogeneous else 1.0
        pre = x @ W.T
        return self.neuron(pre if b is None else pre - jnp.broadcast_to(b, pre.shape), norm)

    def hermite_coefficients(self, degree: int, scale: float = 1.0, method: str = "auto"):
        """c_k(s) = E[n_s(z) h_k(z)], k = 0..degree, where n_s is the neuron at |w| = s.

        For non-centred activations n_s(z) = σ(s z). `method` is `"auto"` (closed form where
        MATH §1.1 has one, else quadrature), `"closed_form"`, `"gauss_hermite"` or `"legendre"`.
        Float64 NumPy; accurate to ~1e-13 for degree ≤ 20 (tested).
        """
        degree = check_degree(degree)
        s = check_scale(scale)
        if method not in ("auto", "closed_form", "gauss_hermite", "legendre"):
            raise InputError(
                "method must be 'auto', 'closed_form', 'gauss_hermite' or 'legendre', "
                f"got {method!r}"
            )
        if method in ("gauss_hermite", "legendre") and self.removed:
            # quadrature of the full neuron (independent of the closed forms)
            spec = _BASES[self.base]
            x, w = _nodes(spec, self.params, degree, s, method)
            return project(self.numpy(s * x, norm=s), x, w, degree)
        c = _raw_coefficients(self.base, self.params, degree, s, method).copy()
        c0, c1 = self.centring_coefficients() if self.removed else (0, 0)
        if 0 in self.removed:
            c[0] -= c0 * (s if self.homogeneous else 1.0)
        if 1 in self.removed and degree >= 1:
            c[1] -= c1 * s
        return c

    def mean_derivatives(self, degree: int, scale: float = 1.0) -> np.ndarray:
        """μ'_k = E[σ^{(k)}(z)] = √(k!) c_k (Stein's identity, MATH §1), k = 0..degree."""
        c = self.hermite_coefficients(degree, scale)
        return c * np.exp(0.5 * np.array([math.lgamma(k + 1) for k in range(degree + 1)]))

    def centred(self, orders: tuple[int, ...] = (0, 1), name: str | None = None) -> Activation:
        """This activation with its Hermite components of the given orders removed."""
        removed = tuple(sorted(set(self.removed) | set(orders)))
        return Activation(
            name or f"{self.name}_centred{''.join(map(str, removed))}",
            self.base,
            self.params,
            removed,
        )


def weight_norms(W: Float[Array, "*batch width dim"]) -> Float[Array, "*batch width"]:
    """|w_i| = √(|w_i|² + tiny), smoothed at w = 0 (tiny: the dtype's smallest normal number) so
    that its gradient stays finite (MATH §2.2)."""
    return jnp.sqrt(jnp.sum(W**2, axis=-1) + jnp.finfo(W.dtype).tiny)


def polynomial(coefficients, name: str | None = None) -> Activation:
    """σ(z) = Σ_k coefficients[k] h_k(z): a polynomial by its normalised Hermite coefficients."""
    coeffs = tuple(float(c) for c in np.asarray(coefficients, dtype=np.float64).ravel())
    if not coeffs or not all(math.isfinite(c) for c in coeffs):
        raise InputError(f"coefficients must be a non-empty finite sequence, got {coefficients!r}")
    return Activation(name or f"poly{len(coeffs) - 1}", "polynomial", coeffs)


def hermite(k: int) -> Activation:
    """σ = h_k = He_k/√(k!), the normalised Hermite polynomial (so c_j = δ_jk); named `he{k}`."""
    k = check_degree(k)
    return polynomial([0.0] * k + [1.0], name=f"he{k}")


relu = Activation("relu", "relu")
sigma_ge2 = Activation("sigma_ge2", "relu", removed=(0, 1))  # ReLU − 1/√(2π) − z/2 (MATH §1.1)
shifted_relu = Activation("shifted_relu", "relu", removed=(0,))  # ReLU − 1/√(2π) (MATH §10)
abs = Activation("abs", "abs")  # noqa: A001 - the activation's name
tanh = Activation("tanh", "tanh")
erf = Activation("erf", "erf")
gelu = Activation("gelu", "gelu")
softplus = Activation("softplus", "softplus")
elu = Activation("elu", "elu")
sigmoid = Activation("sigmoid", "sigmoid")

_NAMED = {
    a.name: a for a in (relu, sigma_ge2, shifted_relu, abs, tanh, erf, gelu, softplus, elu, sigmoid)
}


def names() -> list[str]:
    """Names accepted by `get` (plus `he<k>` for any k ≥ 0)."""
    return sorted(_NAMED) + ["he<k>"]


def get(activation: str | Activation) -> Activation:
    """Resolve an activation given by name or as an `Activation`; errors name the argument."""
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        if activation in _NAMED:
            return _NAMED[activation]
        if m := re.fullmatch(r"he(\d+)", activation):
            return hermite(int(m.group(1)))
        raise InputError(f"activation: unknown name {activation!r}; known: {', '.join(names())}")
    raise InputTypeError(
        f"activation must be a name or a jaxfeat Activation, got {type(activation).__name__}"
    )
