"""`jaxfeat._scan.liveness.peak_bytes`: the scan engine's pre-compile memory estimate, against
byte counts worked out by hand from each program's equations."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxfeat._scan.liveness import peak_bytes

N = 1000  # float32: 4,000 bytes an array


def test_a_chain_holds_its_input_and_two_temporaries():
    # x (kept: an argument) → e = exp x → m = 2e (e still live while m is made) → sum
    jaxpr = jax.make_jaxpr(lambda x: jnp.sum(jnp.exp(x) * 2.0))(jnp.ones(N, jnp.float32))
    assert peak_bytes(jaxpr) == 3 * 4 * N


def test_values_die_at_their_last_use():
    # four elementwise steps in a row never hold more than input + two temporaries; a value
    # read again at the end (e) stays live throughout
    def chain(x):
        e = jnp.exp(x)
        y = jnp.sin(e)
        y = jnp.cos(y)
        y = jnp.tanh(y)
        return jnp.sum(y * e)

    jaxpr = jax.make_jaxpr(chain)(jnp.ones(N, jnp.float32))
    assert peak_bytes(jaxpr) == 4 * 4 * N  # x, e, and two of the y's


def test_a_loop_body_adds_its_working_set_and_stacked_outputs_count():
    # scan over 10 steps: carry c (N), the body makes t = sin(c) + 1 and returns (t, sum t);
    # the stacked ys are (10,) floats
    def loop(x):
        def body(c, _):
            t = jnp.sin(c) + 1.0  # sin(c) is a temporary of the body: N floats
            return t, jnp.sum(t)

        return jax.lax.scan(body, x, None, length=10)

    jaxpr = jax.make_jaxpr(loop)(jnp.ones(N, jnp.float32))
    # x, the final carry and the (10,) ys, plus the body's working set: its peak (c, sin c, t)
    # less what it takes in and gives back (c, t and one y: 4 bytes already in the stack)
    assert peak_bytes(jaxpr) == 4 * N + (4 * N + 10 * 4) + (3 * 4 * N - (2 * 4 * N + 4))


def test_batching_scales_the_estimate():
    f = lambda x: jnp.sum(jnp.exp(x) @ jnp.exp(x).T)  # noqa: E731
    one = peak_bytes(jax.make_jaxpr(f)(jnp.ones((N // 10, 10), jnp.float32)))
    eight = peak_bytes(jax.make_jaxpr(jax.vmap(f))(jnp.ones((8, N // 10, 10), jnp.float32)))
    np.testing.assert_allclose(eight / one, 8.0, rtol=0.01)
