"""Property-based checks of every loss: finite per-example values of the right shape, and
finite gradients, for any finite inputs of moderate magnitude."""

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssadjax import losses

FINITE = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def batches(draw, dim=True):
  batch = draw(st.integers(1, 16))
  features = draw(st.integers(1, 8))
  shape = (batch, features) if dim else (batch,)
  values = draw(hnp.arrays(np.float32, shape, elements=FINITE))
  labels = draw(hnp.arrays(np.int32, (batch,), elements=st.integers(0, 1)))
  return values, labels


def _check(fn, *args, batch):
  out = jax.jit(fn)(*args)
  assert out.shape == (batch,)
  assert np.all(np.isfinite(np.asarray(out)))
  grad = jax.grad(lambda a: jnp.sum(fn(a, *args[1:])))(args[0])
  assert np.all(np.isfinite(np.asarray(grad)))


# Each entry: (loss applied to a [B, F] float array and [B] labels, uses features?)
LOSSES = {
    "squared_distance": lambda z, y: losses.squared_distance(z, jnp.ones(z.shape[-1])),
    "deep_sad_loss": lambda z, y: losses.deep_sad_loss(z, jnp.full(z.shape[-1], 0.1), y),
    "reconstruction_loss": lambda x, y: losses.reconstruction_loss(x, jnp.tanh(x)),
    "deviation_loss[hinge]": lambda s, y: losses.deviation_loss(s[:, 0], y),
    "deviation_loss[abs]": lambda s, y: losses.deviation_loss(s[:, 0], y, anomaly_term="abs"),
    "deviation_loss[linear]": lambda s, y: losses.deviation_loss(s[:, 0], y,
                                                                anomaly_term="linear"),
    "feawad_loss[reference]": lambda r, y: losses.feawad_loss(r[:, 0], r, y),
    "feawad_loss[residual]": lambda r, y: losses.feawad_loss(r[:, 0], r, y,
                                                            reconstruction_term="residual"),
    "pairwise_relation_loss": lambda s, y: losses.pairwise_relation_loss(s[:, 0], y, y[::-1]),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(data=batches())
def test_finite_per_example_values_and_gradients(name, data):
  values, labels = data
  _check(LOSSES[name], values, labels, batch=values.shape[0])


def test_every_public_loss_is_covered():
  """A new loss in losses.py must be added to LOSSES (or to the exemptions)."""
  helpers = {"deviation", "safe_l2_norm", "pair_relation_targets"}  # not objectives
  public = {name for name in dir(losses) if name.endswith(("_loss", "_distance"))
            and callable(getattr(losses, name))}
  covered = {name.split("[")[0] for name in LOSSES}
  missing = public - covered - helpers - set(EXTRA_COVERED)
  assert not missing, f"add property tests for {sorted(missing)}"


# Losses whose property tests live with their method (they need richer inputs).
EXTRA_COVERED = ()
