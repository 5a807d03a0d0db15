"""Activations: values, hashability, autodiff conventions (MATH §0, §1.1)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfeat import activations as A

ALL = [A.get(n) for n in A.names() if n != "he<k>"] + [A.hermite(3), A.polynomial([1, 2, 3])]


@pytest.mark.parametrize("act", ALL, ids=lambda a: a.name)
def test_jax_and_numpy_forms_agree(act):
    z = np.linspace(-5, 5, 41)
    np.testing.assert_allclose(
        np.asarray(act(jnp.asarray(z))), act.numpy(z), rtol=1e-12, atol=1e-12
    )


def test_sigma_ge2_is_relu_minus_its_first_two_hermite_parts():
    z = jnp.linspace(-3, 3, 13)
    np.testing.assert_allclose(
        A.sigma_ge2(z), jax.nn.relu(z) - 1 / math.sqrt(2 * math.pi) - z / 2, atol=1e-15
    )
    # homogeneous neuron at |w| = s: relu(u) − s/√(2π) − u/2
    np.testing.assert_allclose(
        A.sigma_ge2.neuron(z, 2.0), jax.nn.relu(z) - 2 / math.sqrt(2 * math.pi) - z / 2, atol=1e-15
    )
    # ... while tanh, not homogeneous, ignores the norm
    np.testing.assert_allclose(A.tanh.neuron(z, 5.0), jnp.tanh(z))


def test_relu_derivative_at_zero_is_zero():
    assert jax.grad(A.relu)(0.0) == 0.0
    assert jax.grad(A.relu)(1e-3) == 1.0


def test_hashable_and_static_in_jit_and_modules():
    assert hash(A.relu) == hash(A.get("relu")) and A.relu == A.get("relu")
    assert A.relu != A.sigma_ge2 and len({A.relu, A.tanh, A.relu}) == 2
    assert A.get("he3") == A.hermite(3)

    class M(eqx.Module):
        act: A.Activation = eqx.field(static=True)

    f = jax.jit(lambda m, z: m.act(z))
    np.testing.assert_allclose(f(M(A.tanh), jnp.ones(3)), np.tanh(np.ones(3)))
    g = jax.jit(lambda z, act: act(z), static_argnums=1)
    np.testing.assert_allclose(g(jnp.ones(2), A.gelu), jax.nn.gelu(jnp.ones(2), approximate=False))


def test_centring_removes_exactly_the_requested_orders():
    t = A.tanh.centred((1,))
    c, c_t = t.hermite_coefficients(8), A.tanh.hermite_coefficients(8)
    assert abs(c[1]) < 1e-15
    np.testing.assert_allclose(np.delete(c, 1), np.delete(c_t, 1), atol=1e-15)
    s = A.shifted_relu.hermite_coefficients(4)
    assert s[0] == 0 and s[1] == 0.5


def test_unknown_names_and_types():
    with pytest.raises(ValueError, match="activation: unknown name 'swish'"):
        A.get("swish")
    with pytest.raises(TypeError, match="activation"):
        A.get(3)
    with pytest.raises(ValueError, match="removed"):
        A.Activation("x", "relu", removed=(2,))
    with pytest.raises(ValueError, match="coefficients"):
        A.polynomial([])
