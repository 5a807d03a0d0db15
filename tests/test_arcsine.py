"""The polynomial arcsin/arccos of the closed-form kernels against a 30-digit mpmath reference."""

import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

from jaxfeat._arcsine import acos, asin

mp.mp.dps = 30
_X = np.concatenate(
    [
        np.linspace(-1.0, 1.0, 4001),
        1.0 - np.logspace(-16, -1, 60),
        -1.0 + np.logspace(-16, -1, 60),
        np.logspace(-30, -1, 60),
        -np.logspace(-30, -1, 60),
        np.nextafter(0.5, [0.0, 1.0]),
        np.nextafter(-0.5, [0.0, -1.0]),
    ]
)


@pytest.mark.parametrize("dtype, max_ulp", [(np.float64, 2.0), (np.float32, 3.0)])
@pytest.mark.parametrize("fn, ref", [(asin, mp.asin), (acos, mp.acos)], ids=["asin", "acos"])
def test_within_ulps_of_mpmath(fn, ref, dtype, max_ulp):
    x = _X.astype(dtype)
    got = np.asarray(fn(jnp.asarray(x)), np.float64)
    want = np.array([float(ref(mp.mpf(float(v)))) for v in x])
    ulps = np.abs(got - want) / np.spacing(np.abs(want).astype(dtype)).astype(np.float64)
    assert ulps.max() <= max_ulp, (x[np.argmax(ulps)], ulps.max())


def test_exact_points_and_domain():
    np.testing.assert_array_equal(asin(jnp.array([0.0, 1.0, -1.0])), [0.0, np.pi / 2, -np.pi / 2])
    np.testing.assert_array_equal(acos(jnp.array([1.0, -1.0])), [0.0, np.pi])
    assert np.isnan(asin(jnp.array(1.0 + 1e-15))) and np.isnan(acos(jnp.array(-1.5)))
