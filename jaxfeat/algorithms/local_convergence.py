"""Zhou & Ge (arXiv 2406.01766): three stages that end with student neurons on the teacher's
directions (MATH §5; the [R] choices are parameters).

Teacher f*(x) = Σ_j a*_j σ≥2(w*_j·x), |w*_j| = 1; student f(x) = Σ_i a_i |w_i| σ≥2(ŵ_i·x) (the
homogeneous neuron), x ~ N(0, I_d), loss E(f − f*)² (no ½):

1. one step on W from a small init with the weight decay 1/η that cancels it: W₁ = −η ∇_W L;
2. rows of W normalised, then the convex readout a = (K_ss + λ₂I)⁻¹ K_st a* (population) or the
   ridge solution on n samples;
3. gradient descent on (a, W) for L + (λ(t)/2)(|a|² + |W|²) with λ(t) = λ₀ 2^{−p} in phase p
   (`decay=False`: the control, no decay), optionally after rebalancing |a_i| = |w_i|.

`local_convergence(key, ...)` runs one seed and returns a flat dict of small arrays (the scan
engine's unit) by chaining `stage_one`, `stage_two` and `stage_three`; `teacher_directions`
and `neuron_statistics` are the other pieces.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .. import _checks, _sized, kernels
from .._checks import InputError
from ..nets import TwoLayer
from ..objectives import Dataset, Population
from ..training import train

__all__ = [
    "local_convergence",
    "teacher_directions",
    "neuron_statistics",
    "neuron_points",
    "stage_one",
    "stage_two",
    "stage_three",
]

_ACT = "sigma_ge2"


def teacher_directions(
    key: PRNGKeyArray, n_teachers: int, dim: int, min_angle: float | None = None
) -> Float[Array, "teachers dim"]:
    """Unit teacher directions: orthonormal (`min_angle=None`, the first rows of a random
    rotation) or i.i.d. uniform on the sphere conditioned on every pairwise angle between
    ±w*_j being ≥ `min_angle` radians (σ≥2 is even, so w and −w are the same neuron).

    The conditioning is rejection sampling with a fixed number of batched draws, chosen in
    Python (`sampler_tries`) so that a seed fails with probability below 10⁻⁹; an angle that no
    set of directions can meet (the Welch bound) or that random draws meet too rarely raises
    `InputError` naming `min_angle` before anything is traced. A failed draw would be reported
    by `local_convergence`'s `teacher_ok`."""
    if min_angle is None:
        Q, _ = jnp.linalg.qr(jax.random.normal(key, (dim, dim)))
        return Q[:n_teachers]
    tries = sampler_tries(n_teachers, dim, min_angle)

    def draw(k):
        Z = jax.random.normal(k, (n_teachers, dim))
        return Z / jnp.linalg.norm(Z, axis=1, keepdims=True)

    def ok(W):
        cos = jnp.abs(W @ W.T) - 2.0 * jnp.eye(n_teachers)
        return jnp.max(cos) <= math.cos(min_angle)

    batch = jax.vmap(draw)(jax.random.split(key, tries))
    return batch[jnp.argmax(jax.vmap(ok)(batch))]  # the first draw that meets min_angle


@functools.lru_cache(maxsize=64)
def draw_success(n_teachers: int, dim: int, min_angle: float, draws: int = 4096) -> float:
    """Monte Carlo estimate (NumPy, fixed seed, in Python before anything is traced) of q, the
    chance that `n_teachers` uniform directions in R^dim are pairwise ≥ `min_angle` apart.
    (Pairwise approximations such as (1 − p)^{C(N,2)} fail near a packing bound: three lines in
    the plane at 60° have q = 0, not 0.04.)"""
    Z = np.random.default_rng(0).standard_normal((draws, n_teachers, dim))
    Z /= np.linalg.norm(Z, axis=2, keepdims=True)
    cos = np.abs(np.einsum("sid,sjd->sij", Z, Z)) - 2.0 * np.eye(n_teachers)
    return float(np.mean(np.max(cos, axis=(1, 2)) <= math.cos(min_angle)))


_MAX_TRIES = 1024  # batched draws per seed: memory tries·teachers·dim per seed of a scan


def sampler_tries(n_teachers: int, dim: int, min_angle: float) -> int:
    """Draws the rejection sampler of `teacher_directions` needs, or `InputError` (naming
    `min_angle`) when Δ = `min_angle` is infeasible or too rare.

    - Infeasible: N unit vectors in R^d have max_{i≠j} |cos| ≥ √((N−d)/(d(N−1))) (Welch bound,
      N > d), so a larger Δ than its arccos cannot be met by any directions.
    - Too rare: a draw succeeds with probability q (`draw_success`, 4,096 NumPy draws); the
      sampler takes ⌈log 10⁻⁹ / log(1 − q/2)⌉ draws (half of q̂: its sampling error) and
      refuses more than 1,024 (q ≲ 0.04).
    """
    if n_teachers < 2:
        return 1
    mu = math.cos(min_angle)
    if n_teachers > dim:
        welch = math.sqrt((n_teachers - dim) / (dim * (n_teachers - 1)))
        if mu < welch * (1 - 1e-12):
            raise InputError(
                f"min_angle={min_angle}: {n_teachers} teacher directions in dim={dim} cannot be "
                f"pairwise ≥ {min_angle} rad apart (Welch bound: some |cos| ≥ {welch:.4g}, "
                f"so min_angle ≤ {math.acos(welch):.4g}); lower min_angle or raise dim"
            )
    q = draw_success(n_teachers, dim, float(min_angle))
    tries = math.ceil(math.log(1e-9) / math.log1p(-q / 2)) if q > 0 else math.inf
    if tries > _MAX_TRIES:
        raise InputError(
            f"min_angle={min_angle}: {n_teachers} uniform random directions in dim={dim} are "
            f"pairwise ≥ {min_angle} rad apart with probability ≈ {q:.2g} per draw, too rare "
            f"for the rejection sampler ({_MAX_TRIES} draws); lower min_angle, raise dim, or "
            "use orthonormal teachers (min_angle=None)"
        )
    return max(1, int(tries))  # finite here: tries ≤ _MAX_TRIES


def neuron_statistics(
    W: Float[ArrayLike, "width dim"],
    a: Float[ArrayLike, " width"],
    mask,
    W_star: Float[ArrayLike, "teachers dim"],
    a_star: Float[ArrayLike, " teachers"],
    near: float,
) -> dict[str, Array]:
    """Per teacher j: `near_weight` Σ ã_i over active neurons within angle `near` of ±w*_j
    (ã_i = a_i|w_i|), `n_near`, `best_angle` min_i ∠(ŵ_i, ±w*_j); `far_mass` Σ|ã_i| over
    neurons far from every teacher; `recovered`: every |near_weight_j − a*_j| ≤ 1 % |a*_j| and
    far mass < 1e-2 (MATH §5.3)."""
    W, a, W_star, a_star = map(jnp.asarray, (W, a, W_star, a_star))
    norms = jnp.sqrt(jnp.sum(W**2, axis=1))
    eff = jnp.where(mask, a * norms, 0.0)
    angle = jnp.where(mask[:, None], _angles(W, W_star), jnp.pi / 2)
    is_near = angle < near
    near_weight = jnp.sum(jnp.where(is_near, eff[:, None], 0.0), axis=0)
    far = mask & ~jnp.any(is_near, axis=1)
    far_mass = jnp.sum(jnp.where(far, jnp.abs(eff), 0.0))
    ok = jnp.all(jnp.abs(near_weight - a_star) <= 0.01 * jnp.abs(a_star))
    return {
        "near_weight": near_weight,
        "n_near": jnp.sum(is_near, axis=0),
        "best_angle": jnp.min(angle, axis=0),
        "far_mass": far_mass,
        "recovered": ok & (far_mass < 1e-2),
    }


def _angles(W, W_star):
    """∠(ŵ_i, ±w*_j) ∈ [0, π/2] for unit w*_j, as atan2(|w_i − (w_i·w*_j)w*_j|, |w_i·w*_j|):
    arccos of the cosine would resolve nothing below √ε (3e-4 rad in float32)."""
    proj = W @ W_star.T  # (width, teachers)
    resid = W[:, None, :] - proj[:, :, None] * W_star[None, :, :]
    return jnp.arctan2(jnp.sqrt(jnp.sum(resid**2, axis=-1)), jnp.abs(proj))


def neuron_points(
    W: Float[ArrayLike, "width dim"],
    a: Float[ArrayLike, " width"],
    mask,
    W_star: Float[ArrayLike, "teachers dim"],
) -> dict[str, Array]:
    """Each neuron as a point (Zhou & Ge, arXiv 2406.01766, Fig. "neurons concentrate"):
    `angle` min_j ∠(ŵ_i, ±w*_j) (σ≥2 is even, so w and −w are one neuron) and `weight` its
    effective output weight |ã_i| = |a_i||w_i|; padded neurons are NaN in both."""
    W, a, W_star = map(jnp.asarray, (W, a, W_star))
    angle = jnp.min(_angles(W, W_star), axis=1)
    weight = jnp.abs(a) * jnp.sqrt(jnp.sum(W**2, axis=1))
    return {"angle": jnp.where(mask, angle, jnp.nan), "weight": jnp.where(mask, weight, jnp.nan)}


def _subspace_fraction(W, W_star, mask):
    """|P w_i| / |w_i| for the projection P onto span{w*_j}: mean and min over active neurons."""
    Q, _ = jnp.linalg.qr(W_star.T)  # (dim, teachers) orthonormal basis
    frac: Array = jnp.linalg.norm(W @ Q, axis=1) / jnp.maximum(jnp.linalg.norm(W, axis=1), 1e-300)
    mean = jnp.sum(jnp.where(mask, frac, 0.0)) / jnp.sum(mask)
    return mean, jnp.min(jnp.where(mask, frac, 1.0))


def stage_one(key: PRNGKeyArray, net: TwoLayer, objective, eta: float) -> TwoLayer:
    """One step on W with weight decay 1/η, which cancels the init: W₁ = −η ∇_W L(a₀, W₀)."""
    out, _ = train(
        key, net, objective, optax.sgd(eta), steps=1, trainable=("W",), weight_decay=1.0 / eta
    )
    return out


def stage_two(net: TwoLayer, teacher: TwoLayer, ridge, samples=None, n=None) -> TwoLayer:
    """Rows of W normalised, then a = argmin L(a) + λ₂|a|² in closed form: (K_ss + λ₂I)⁻¹K_st a*
    (population), or (FᵀF/n + λ₂I)⁻¹Fᵀy/n on `samples = (X, y)` (or on their first `n` rows,
    the rest padding below a capacity). Padded neurons get a_i = 0."""
    unit = net.W / jnp.sqrt(jnp.sum(net.W**2, axis=1) + 1e-300)[:, None]
    net = TwoLayer(unit, net.b, net.a, net.activation, net.scale, net.mask)
    act = net.activation
    if samples is None:  # population: (K_ss + λ₂ I) a = K_st a*
        K_ss = kernels.dual_kernel(act, net.W, net.W, method="closed_form")
        K_st = kernels.dual_kernel(act, net.W, teacher.W, method="closed_form")
        rhs = K_st @ teacher.a
    else:  # n samples: (FᵀF/n + λ₂ I) a = Fᵀy/n
        X, y = samples
        F = _sized.mask_rows(net.features(X), n)
        count = X.shape[0] if n is None else n
        K_ss, rhs = F.T @ F / count, F.T @ y / count
    m = jnp.asarray(net.mask, K_ss.dtype)
    K_ss = K_ss * m[:, None] * m[None, :] + jnp.diag(ridge + (1.0 - m))  # padding: a_i = 0
    a = jnp.linalg.solve(K_ss, rhs * m)
    return TwoLayer(net.W, net.b, a, act, net.scale, net.mask)


def _rebalance(net: TwoLayer) -> TwoLayer:
    """(a_i, w_i) → (s_i a_i, w_i/s_i) with |s_i a_i| = |w_i|/s_i: the function is unchanged
    (homogeneous neurons) and the regulariser becomes λΣ|a_i||w_i| (MATH §5.1)."""
    norms = jnp.sqrt(jnp.sum(net.W**2, axis=1))
    s = jnp.sqrt(norms / jnp.maximum(jnp.abs(net.a), 1e-300))
    s = jnp.where(net.mask & (jnp.abs(net.a) > 0), s, 1.0)
    return TwoLayer(net.W / s[:, None], net.b, net.a * s, net.activation, net.scale, net.mask)


def stage_three(
    key: PRNGKeyArray,
    net: TwoLayer,
    objective,
    lr,
    decay,
    lambda0,
    phases: int,
    steps_per_phase: int,
    log_every: int | None = None,
) -> tuple[TwoLayer, dict[str, Array]]:
    """Gradient descent (SGD(`lr`)) on (a, W) for L + (λ(t)/2)(|a|² + |W|²) with λ(t) =
    λ₀ 2^{−p} in phase p = 0, …, phases − 1 (`decay` true) or λ = 0 (the control), through
    `jaxfeat.train`; the history is logged every `log_every` steps (default: each phase).

    **Returns:** `train`'s `(net, history)`."""
    lam = jnp.where(jnp.asarray(decay, bool), jnp.asarray(lambda0, net.W.dtype), 0.0)
    schedule = optax.piecewise_constant_schedule(
        lam, {p * steps_per_phase: 0.5 for p in range(1, phases)}
    )
    return train(
        key,
        net,
        objective,
        optax.sgd(lr),
        steps=phases * steps_per_phase,
        log_every=log_every or steps_per_phase,
        trainable=("W", "a"),
        weight_decay=schedule,
    )


def _outputs(key, teacher, a_star, nets, hist, near, min_angle, per_neuron) -> dict[str, Array]:
    """The flat dict `local_convergence` returns (its docstring lists the keys)."""
    net1, net2, net3 = nets
    W_star, pop = teacher.W, Population(teacher)
    frac, frac_min = _subspace_fraction(net1.W, W_star, net1.mask)
    before = neuron_statistics(net2.W, net2.a, net2.mask, W_star, a_star, near)
    after = neuron_statistics(net3.W, net3.a, net3.mask, W_star, a_star, near)
    return {
        "stage1_subspace_fraction": frac,
        "stage1_subspace_fraction_min": frac_min,
        "loss_stage1": pop.step_loss(net1, key),
        "loss_stage2": pop.step_loss(net2, key),
        "final_loss": pop.step_loss(net3, key),
        "loss": hist["loss"],
        "far_mass_stage2": before["far_mass"],
        **after,
        "teacher_ok": _teacher_ok(W_star, min_angle),
        "diverged": hist["diverged"][-1],
        **(_points(net2, net3, W_star) if per_neuron else {}),
    }


def _points(net2: TwoLayer, net3: TwoLayer, W_star) -> dict[str, Array]:
    """`neuron_points` before stage 3 (suffix `_stage2`) and at the end."""
    points = {}
    for suffix, net in (("_stage2", net2), ("", net3)):
        pts = neuron_points(net.W, net.a, net.mask, W_star)
        points |= {f"neuron_{k}{suffix}": v for k, v in pts.items()}
    return points


def check_config(
    teacher,
    *,
    dim,
    min_angle,
    width,
    max_width,
    init_scale,
    eta1,
    ridge,
    lr,
    decay,
    lambda0,
    phases,
    steps_per_phase,
    log_every,
    near,
    n,
    n_capacity=None,
) -> np.ndarray:
    """Every [R] parameter, in Python, before anything is traced (errors name the argument);
    the dynamic ones (`width`, `eta1`, `ridge`, `lr`, `decay`, `lambda0`) only when concrete.
    Returns a* as a float array."""
    a_star = _check_teacher(teacher)
    _check_directions(a_star.size, dim, min_angle)
    _check_widths(a_star.size, width, max_width)
    _check_near(near)
    _check_rates(init_scale, eta1, lr, ridge, lambda0, decay)
    _check_schedule(n, n_capacity, phases, steps_per_phase, log_every)
    return a_star


def _check_directions(m: int, dim, min_angle) -> None:
    """`dim` and the teacher directions: orthonormal ones need dim ≥ m; `min_angle` in (0, π/2]
    and feasible for the rejection sampler."""
    _checks.check_positive_int("dim", dim)
    if min_angle is None and m > dim:
        raise InputError(
            f"teacher: {m} orthonormal teacher directions need dim >= {m}, got dim={dim}"
        )
    if min_angle is not None:
        v = _checks.check_nonneg_float("min_angle", min_angle)
        if not 0 < v <= math.pi / 2:
            raise InputError(f"min_angle must be in (0, π/2] radians, got {min_angle}")
        if m > 1 and dim == 1:
            raise InputError("min_angle: two directions in dim 1 are always parallel")
        sampler_tries(m, dim, v)


def _check_widths(m: int, width, max_width) -> None:
    """At least one student neuron per teacher (`width` when concrete, and `max_width`)."""
    if _concrete(width):
        w = _checks.check_positive_int("width", width)
        if w < m:
            raise InputError(f"width must be >= the number of teachers ({m}), got {w}")
    if max_width is not None and _checks.check_positive_int("max_width", max_width) < m:
        raise InputError(f"max_width must be >= the number of teachers ({m})")


def _check_near(near) -> None:
    if not (isinstance(near, (int, float)) and 0 < near < math.pi / 2):
        raise InputError(f"near must be an angle θ_near in (0, π/2) radians, got {near!r}")


def _check_rates(init_scale, eta1, lr, ridge, lambda0, decay) -> None:
    """Init scale and step sizes > 0, ridge and λ₀ ≥ 0, decay a switch (each when concrete)."""
    for name, v in (("init_scale", init_scale), ("eta1", eta1), ("lr", lr)):
        if _concrete(v) and _checks.check_nonneg_float(name, v) == 0:
            raise InputError(f"{name} must be > 0, got {v!r}")
    for name, v in (("ridge", ridge), ("lambda0", lambda0)):
        if _concrete(v):
            _checks.check_nonneg_float(name, v)  # λ₂ = 0 is plain least squares
    if _concrete(decay) and decay not in (0, 1):
        raise InputError(f"decay must be 1/True (λ₀2^(−p)) or 0/False (the control), got {decay!r}")


def _check_schedule(n, n_capacity, phases, steps_per_phase, log_every) -> None:
    """Positive counts: samples `n` (None: the population loss; ≤ `n_capacity` when given),
    phases, steps, log interval."""
    if n is not None:
        _sized.check_size("n", n, n_capacity)
    elif n_capacity is not None:
        raise InputError("n_capacity needs n (a sample size): n=None is the population loss")
    _checks.check_positive_int("phases", phases)
    _checks.check_positive_int("steps_per_phase", steps_per_phase)
    if log_every is not None:
        _checks.check_positive_int("log_every", log_every)


def _concrete(x) -> bool:
    """A Python number (a traced or array value of a dynamic grid axis is checked by the grid)."""
    return _checks.is_concrete(x) and not isinstance(x, (jax.Array, np.ndarray))


def _check_teacher(teacher) -> np.ndarray:
    try:
        a_star = np.asarray(teacher, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"teacher must be a sequence of numbers a*_j, got {teacher!r}") from None
    if a_star.ndim != 1 or a_star.size == 0:
        raise InputError(f"teacher must be a non-empty 1-D sequence a*_j, got {teacher!r}")
    if not np.all(np.isfinite(a_star)) or np.any(a_star == 0):
        # a*_j = 0 is no teacher: `recovered` (within 1 % of |a*_j|) could never hold
        raise InputError(f"teacher: every a*_j must be finite and non-zero, got {teacher!r}")
    return a_star


# long: one signature line per procedure knob, each documented below
def local_convergence(
    key: PRNGKeyArray,
    *,
    dim: int = 20,
    teacher=(1.0, 0.8, 1.2, -0.9),
    min_angle: float | None = None,
    width=50,
    max_width: int | None = None,
    init_scale: float = 0.01,
    eta1: float = 1.0,
    ridge: float = 1e-3,
    lr: float = 0.05,
    decay: ArrayLike = True,
    lambda0: float = 1e-2,
    phases: int = 6,
    steps_per_phase: int = 4000,
    log_every: int | None = None,
    rebalance: bool = False,
    near: float = 0.15,
    n=None,
    n_capacity: int | None = None,
    per_neuron: bool = True,
) -> dict[str, Array]:
    """One seed of the three stages (defaults: MATH §5.3's run).

    **Arguments:** `dim` (d); `teacher`: the a*_j (their number m* teachers), with orthonormal
    directions, or random ones at pairwise angle ≥ `min_angle`; `width` (may be traced, then
    padded to `max_width`); `init_scale`: rows w_i ~ init_scale·N(0, I/d), a_i = ±1/√width;
    `eta1`: stage-1 step; `ridge`: λ₂ of stage 2; `lr`, `lambda0`, `phases`, `steps_per_phase`:
    stage 3 (SGD, λ = λ₀ 2^{−p}); `decay`: False (or 0) runs the no-decay control; `rebalance`:
    |a_i| = |w_i| before stage 3; `near`: θ_near in radians; `n`: None for the exact population
    loss, else n fixed training samples (stage 2's ridge and stage 3's full-batch GD use them);
    `n_capacity`: a static capacity that makes `n` a dynamic size (traced under a scan: the
    seed runs on `n_capacity` rows of which the first n are live, with the numbers of the
    exact-size run, `jaxfeat._sized`);
    `per_neuron`: also return every neuron as a point (`neuron_points`).

    **Returns:** `stage1_subspace_fraction` (mean over neurons of |P w_i|/|w_i|) and its `_min`,
    `loss_stage1`, `loss_stage2`, `final_loss` (population losses), `loss` (stage-3 trajectory at
    the logged steps), `near_weight`, `n_near`, `best_angle` (per teacher), `far_mass`,
    `recovered`, the same statistics before stage 3 (`far_mass_stage2`), `teacher_ok` (the
    directions met `min_angle`) and `diverged`; with `per_neuron`, (max_width,) arrays
    `neuron_angle`, `neuron_weight` (angle to the nearest ±w*_j and |ã_i|, NaN for padding) at
    the end and `neuron_angle_stage2`, `neuron_weight_stage2` before stage 3.
    """
    a_star = check_config(
        teacher, dim=dim, min_angle=min_angle, width=width, max_width=max_width,
        init_scale=init_scale, eta1=eta1, ridge=ridge, lr=lr, decay=decay, lambda0=lambda0,
        phases=phases, steps_per_phase=steps_per_phase, log_every=log_every, near=near, n=n,
        n_capacity=n_capacity,
    )  # fmt: skip
    k_teacher, k_init, k_data, k_train = jax.random.split(key, 4)
    teacher_net = _teacher_network(k_teacher, a_star, dim, min_angle)
    net0 = TwoLayer.init(
        k_init, width, dim, _ACT, "small", max_width=max_width or width, w_std=init_scale
    )
    objective, samples, live = _objective(k_data, teacher_net, n, n_capacity)
    net1 = stage_one(k_train, net0, objective, eta1)
    net2 = stage_two(net1, teacher_net, ridge, samples, live)
    start = _rebalance(net2) if rebalance else net2
    net3, hist = stage_three(
        k_train, start, objective, lr, decay, lambda0, phases, steps_per_phase, log_every
    )
    nets = (net1, net2, net3)
    return _outputs(key, teacher_net, a_star, nets, hist, near, min_angle, per_neuron)


def _teacher_network(key, a_star: np.ndarray, dim: int, min_angle) -> TwoLayer:
    """f* = Σ_j a*_j σ≥2(w*_j·x) on directions from `teacher_directions`, no biases."""
    W_star = teacher_directions(key, len(a_star), dim, min_angle)
    return TwoLayer(W_star, jnp.zeros(len(a_star)), jnp.asarray(a_star, W_star.dtype), _ACT)


def _objective(key, teacher: TwoLayer, n, n_capacity):
    """(objective, samples, live count): the exact population loss (`n=None`: no samples), or
    n teacher-labelled samples, the first n of `n_capacity` rows when given (live count n,
    else None: every row)."""
    if n is None:
        return Population(teacher), None, None
    live = None if n_capacity is None else n
    X, y = _teacher_samples(key, teacher, n_capacity or n, live)
    return Dataset(X, y, n=live), (X, y), live


def _teacher_samples(key, teacher: TwoLayer, rows: int, live=None):
    """x ~ N(0, I_d) on `rows` rows and y = f*(x); rows from `live` on zeroed (the first
    `live` rows are those of a draw of `live` rows: the draw's leading axis is the sample's,
    `jaxfeat._sized`)."""
    X = jax.random.normal(key, (rows, teacher.dim), teacher.W.dtype)
    return _sized.mask_rows(X, live), _sized.mask_rows(teacher(X), live)


def _teacher_ok(W_star, min_angle):
    if min_angle is None:
        return jnp.ones((), bool)
    cos = jnp.abs(W_star @ W_star.T) - 2.0 * jnp.eye(W_star.shape[0])
    return jnp.max(cos) <= math.cos(min_angle)
