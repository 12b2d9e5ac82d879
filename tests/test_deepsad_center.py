"""Deep SAD's initial centre: every training row, or ADBench's one drop_last loader pass."""

import jax
import numpy as np
import pytest

from ssadjax import methods
from ssadjax.host import engine
from ssadjax.methods import deepsad, train_data
from tests.helpers import blobs, tiny_config


def _one_hot_rows(n):
  # With z = I the mean over a row set is its indicator / its size: the set can be read off.
  return np.eye(n, dtype=np.float32)


def test_loader_pass_mean_averages_floor_n_over_b_batches_of_distinct_real_rows():
  x, _, semi = blobs(n=100)
  data = methods.make_train_data(x, semi)
  mean = np.asarray(deepsad.loader_pass_mean(_one_hot_rows(100), data, jax.random.key(0), 32))
  in_pass = mean > 0
  assert in_pass.sum() == 96  # 3 full batches of 32; the 4 left over are dropped
  np.testing.assert_allclose(mean[in_pass], 1 / 96, rtol=1e-6)
  other = np.asarray(deepsad.loader_pass_mean(_one_hot_rows(100), data, jax.random.key(1), 32))
  assert not np.array_equal(in_pass, other > 0)  # the dropped rows follow the shuffle
  # A batch size that divides the rows keeps all of them: the plain mean.
  np.testing.assert_allclose(
      deepsad.loader_pass_mean(_one_hot_rows(100), data, jax.random.key(0), 25), 1 / 100,
      rtol=1e-6)


def test_loader_pass_mean_never_draws_a_padded_row():
  x, _, semi = blobs(n=100)
  data = train_data.pad_train_data(methods.make_train_data(x, semi), num_rows=160,
                                   num_features=6, num_anomalies=8, num_unlabelled=160)
  for seed in range(5):
    mean = np.asarray(deepsad.loader_pass_mean(_one_hot_rows(160), data,
                                               jax.random.key(seed), 32))
    assert (mean > 0).sum() == 96 and not mean[100:].any()


def test_center_rows_option_reaches_the_initial_centre():
  x, _, semi = blobs(n=100)
  data = jax.device_put(methods.make_train_data(x, semi))
  init_key, extras_key, _ = engine.seed_keys(0)
  centers = {}
  for rows in ("all", "loader"):
    method = methods.build(tiny_config(**{"deepsad.center_rows": rows, "deepsad.center_eps": 0.0}),
                           x.shape[1], x.shape[0])
    variables, extras = method.init(init_key, extras_key, data)
    centers[rows] = np.asarray(extras["center"])
  # Same network either way: the centres differ only by which rows they average.
  assert not np.allclose(centers["all"], centers["loader"])
  with pytest.raises(ValueError, match="center_rows='every'"):
    methods.build(tiny_config(**{"deepsad.center_rows": "every"}), x.shape[1], x.shape[0])
