"""Theory lines drawn next to measurements: the Moniri et al. spike count ℓ(α) (MATH §4.2).

These are predictions; `jaxfeat.count_spikes` measures spikes of a feature matrix.
Spike k of F₁ = σ(X̃W₁ᵀ) grows relative to the bulk like n^{kα − (k−1)/2}, so it survives iff
α > (k−1)/(2k): thresholds 0, 1/4, 1/3, 3/8, 2/5, 5/12, … → ½, and ℓ spikes for
α ∈ ((ℓ−1)/(2ℓ), ℓ/(2ℓ+2)). All arithmetic is exact (fractions), with α read as the decimal the
user wrote (`0.4` is 2/5, exactly the 4|5 boundary).

The step size η = c·n^α ranges over α ∈ [0, ½], but these formulas are for α < ½ only: ℓ(α) → ∞
as α → ½ (every spike separates), so α = ½ has no finite prediction and every function here
that takes α raises `InputError` for α ≥ ½ (or α < 0).
"""

from __future__ import annotations

import math
from fractions import Fraction

from . import _vocabulary
from ._checks import InputError, InputTypeError

__all__ = [
    "spike_threshold",
    "spike_thresholds",
    "spike_exponent",
    "predicted_spike_count",
    "on_boundary",
    "spike_strengths",
    "vanishing_from",
]


def _alpha(alpha) -> Fraction:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, str, Fraction)):
        raise InputTypeError(f"alpha must be a number, got {type(alpha).__name__}")
    a = Fraction(repr(alpha)) if isinstance(alpha, float) else Fraction(alpha)
    if not (0 <= a < Fraction(1, 2)):
        raise InputError(
            f"alpha must be in [0, 1/2) (ℓ(α) → ∞ as α → 1/2: no finite prediction), got {alpha}"
        )
    return a


def spike_threshold(k: int) -> Fraction:
    """α above which spike k separates: (k − 1)/(2k)."""
    if not isinstance(k, int) or k < 1:
        raise InputError(f"k must be an int >= 1, got {k!r}")
    return Fraction(k - 1, 2 * k)


def spike_thresholds(kmax: int) -> list[Fraction]:
    """[(k − 1)/(2k) for k = 1..kmax]: 0, 1/4, 1/3, 3/8, 2/5, …"""
    return [spike_threshold(k) for k in range(1, kmax + 1)]


def spike_exponent(alpha, k: int) -> Fraction:
    """kα − (k − 1)/2: spike k's strength over the bulk scales like n^{this} (MATH §4.2)."""
    return k * _alpha(alpha) - Fraction(k - 1, 2)


def predicted_spike_count(alpha) -> int:
    """The predicted number of spikes ℓ(α) = #{k ≥ 1 : kα − (k−1)/2 > 0} = ⌈1/(1 − 2α)⌉ − 1,
    exactly, for 0 ≤ α < ½ (α ≥ ½ raises: ℓ → ∞). `jaxfeat.count_spikes` measures them.

    On a boundary α = (ℓ−1)/(2ℓ) spike ℓ has exponent 0 (an O(1) ratio that c and the BBP
    threshold decide) and is *not* counted: predicted_spike_count(0) = 0, (0.4) = 4,
    (0.39) = 4, (0.41) = 5. `on_boundary` tells these cases apart.
    """
    a = _alpha(alpha)
    return math.ceil(1 / (1 - 2 * a)) - 1


def spike_count(alpha) -> int:
    """Deprecated name of `predicted_spike_count` (0.1)."""
    _vocabulary.deprecated("jaxfeat.theory", "spike_count", "predicted_spike_count", 3)
    return predicted_spike_count(alpha)


def on_boundary(alpha) -> bool:
    """True when α = (k−1)/(2k) for some k: spike k is marginal (α = 0: Ba et al.'s regime)."""
    a = _alpha(alpha)
    k = 1 / (1 - 2 * a)
    return k.denominator == 1


def spike_strengths(
    mean_derivatives,
    *,
    eta: float,
    zeta_norm: float,
    n_tilde: int,
    width: int | None = None,
    N: int | None = None,
):
    """Taylor predictions θ_k/bulk for k = 1..len(mean_derivatives)−1 (MATH §4.2):

    θ_k ≈ |μ'_k| √(ñ/k!) (η μ'_1 |ζ|)^k √((2k−1)!!) N^{(1−k)/2}, bulk ≈ √ñ + √N, with N =
    `width` (`N=` is its deprecated 0.1 name). `mean_derivatives` are μ'_0, μ'_1, … (e.g.
    `Activation.mean_derivatives(K)`). Valid only while the per-neuron shift η μ'_1 |ζ|/√N ≪ 1
    (MATH §4.4 caveats).
    """
    _, N = _vocabulary.renamed("spike_strengths", "width", width, "N", N)
    if N is None:
        raise InputError("spike_strengths: width= (the number of neurons) is required")
    mu = [float(m) for m in mean_derivatives]
    bulk = math.sqrt(n_tilde) + math.sqrt(N)
    out = []
    for k in range(1, len(mu)):
        dfact = math.prod(range(2 * k - 1, 0, -2))
        theta = (
            abs(mu[k])
            * math.sqrt(n_tilde / math.factorial(k))
            * (eta * mu[1] * zeta_norm) ** k
            * math.sqrt(dfact)
            * N ** ((1 - k) / 2)
        )
        out.append(theta / bulk)
    return out


def vanishing_from(alpha) -> int:
    """The number of spike terms after which the equivalence gap → 0 (MATH §4.2, §4.5): ℓ(α),
    plus one `on_boundary`, where term ℓ + 1 has exponent 0 and stays of order one (α = 0:
    the spike of Ba et al.'s constant step)."""
    return predicted_spike_count(alpha) + int(on_boundary(alpha))
