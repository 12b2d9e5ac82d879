"""Losses against hand-computed values, and their gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssadjax import losses
from ssadjax.methods import anoonly, base, deepsad

Z = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]], np.float32)
C = np.array([1.0, 0.0], np.float32)
# ||z - c||^2 by hand: (0^2 + 2^2), (1 + 0), (4 + 1)
D = np.array([4.0, 1.0, 5.0], np.float32)


def test_squared_distance_by_hand():
  np.testing.assert_allclose(jax.jit(losses.squared_distance)(Z, C), D)


@pytest.mark.parametrize("eta", [0.5, 1.0, 3.0])
def test_deep_sad_loss_by_hand(eta):
  semi = np.array([0, 1, 1], np.int32)
  got = jax.jit(lambda z, c, y: losses.deep_sad_loss(z, c, y, eta=eta, eps=1e-6))(Z, C, semi)
  np.testing.assert_allclose(got, [4.0, eta / (1.0 + 1e-6), eta / (5.0 + 1e-6)], rtol=1e-6)


def test_deep_sad_without_labels_is_deep_svdd():
  got = losses.deep_sad_loss(Z, C, np.zeros(3, np.int32))
  np.testing.assert_allclose(got, D)


def test_deep_sad_gradient_by_hand_and_finite_at_center():
  semi = np.array([0, 1, 1], np.int32)
  grad = jax.grad(lambda z: jnp.sum(losses.deep_sad_loss(z, C, semi, eps=1e-6)))(Z)
  # unlabelled: d/dz ||z-c||^2 = 2(z-c); labelled: d/dz 1/(d+eps) = -2(z-c)/(d+eps)^2
  expected = np.stack([2 * (Z[0] - C), -2 * (Z[1] - C) / (1 + 1e-6) ** 2,
                       -2 * (Z[2] - C) / (5 + 1e-6) ** 2])
  np.testing.assert_allclose(grad, expected, rtol=1e-5)
  at_center = jax.grad(lambda z: jnp.sum(losses.deep_sad_loss(z, C, np.array([1, 0]))))(
      np.stack([C, C]))
  assert np.all(np.isfinite(at_center))
  np.testing.assert_allclose(at_center, 0.0)


def test_reconstruction_loss_is_mean_over_features():
  x = np.array([[0.0, 1.0, 2.0]], np.float32)
  np.testing.assert_allclose(losses.reconstruction_loss(x, np.zeros_like(x)), [5.0 / 3.0])


def test_anomaly_mean_reduces_over_labelled_anomalies_only():
  per_example = jnp.array([10.0, 2.0, 4.0, 100.0])
  mask = jnp.array([False, True, True, False])
  loss, apply = anoonly.anomaly_mean(per_example, mask)
  assert float(loss) == pytest.approx(3.0) and bool(apply)
  baseline, _ = base.mean_loss(per_example, mask)
  assert float(baseline) == pytest.approx(29.0)


@pytest.mark.parametrize("empty_batch", anoonly.EMPTY_BATCH_CHOICES)
def test_anomaly_mean_of_anomaly_free_batch_is_zero_with_zero_gradient(empty_batch):
  mask = jnp.zeros(3, bool)
  fn = lambda v: anoonly.anomaly_mean(v * 2.0, mask, empty_batch=empty_batch)[0]
  loss, grad = jax.value_and_grad(fn)(jnp.array([1.0, jnp.inf, 3.0]))
  assert float(loss) == 0.0
  assert np.all(np.asarray(grad) == 0.0)
  apply = anoonly.anomaly_mean(jnp.ones(3), mask, empty_batch=empty_batch)[1]
  assert bool(apply) == (empty_batch != "skip")


def test_center_eps_trick():
  c = jnp.array([0.05, -0.05, 0.0, 0.5, -0.2])
  np.testing.assert_allclose(deepsad.center_eps_trick(c, 0.1), [0.1, -0.1, 0.0, 0.5, -0.2])
