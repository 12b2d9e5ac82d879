"""The fused training program: steps, seeds side by side, AnoOnly's empty batches,
the BatchNorm policy hook, best-epoch selection and Deep SAD's pretraining."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssadjax import methods, metrics
from ssadjax.host import engine
from ssadjax.methods import samplers
from tests.helpers import blobs, tiny_config


def _build(config, x, semi):
  method = methods.build(config, x.shape[1], x.shape[0])
  return method, methods.make_train_data(x, semi)


def _init(method, data, seed=0):
  init_key, extras_key, _ = engine.seed_keys(seed)
  # with every stage before the main one (Deep SAD's pretraining) run to its end
  return engine.initialise(method, init_key, extras_key, jax.device_put(data))


def _leaves_equal(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_train_step_changes_params_and_batch_stats():
  x, _, semi = blobs()
  method, data = _build(tiny_config(), x, semi)
  state = _init(method, data)
  batch = {"x": jnp.asarray(x[:32]), "semi_labels": jnp.asarray(semi[:32])}
  new, metrics_ = jax.jit(lambda s, b: engine.train_step(method, s, b, jax.random.key(0)))(
      state, batch)
  assert int(new.step) == 1
  assert not _leaves_equal(new.params, state.params)
  assert not _leaves_equal(new.batch_stats, state.batch_stats)
  assert np.isfinite(float(metrics_["loss"]))


def test_vmapped_seeds_equal_separate_single_seed_runs():
  x, labels, semi = blobs()
  method, data = _build(tiny_config(), x, semi)
  together, _ = engine.fit(method, engine.stack_data([data] * 3), [1, 2, 3], chunk_epochs=2)
  scores_together = engine.score(method, together, np.stack([x] * 3))
  for i, seed in enumerate([1, 2, 3]):
    alone, _ = engine.fit(method, engine.stack_data([data]), [seed], chunk_epochs=2)
    np.testing.assert_allclose(engine.score(method, alone, x[None])[0], scores_together[i],
                               rtol=2e-4, atol=1e-6)
    for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(together.params)):
      np.testing.assert_allclose(a[0], b[i], rtol=2e-4, atol=1e-6)
  # different seeds really are different models
  assert not np.allclose(scores_together[0], scores_together[1])


def test_deep_sad_learns_blobs():
  x, labels, semi = blobs(n=600, n_anomalies=60, n_labelled=6)
  config = tiny_config(**{"deepsad.num_epochs": 20})
  method, data = _build(config, x, semi)
  state, timing = engine.fit(method, engine.stack_data([data]), [0], chunk_epochs=10)
  assert timing["steps"] == 20 * (600 // 32)
  assert metrics.auroc(labels, engine.score(method, state, x[None])[0]) > 0.9  # observed 0.947


def _anomaly_free_batch(x, semi):
  rows = np.flatnonzero(semi == 0)[:32]
  return {"x": jnp.asarray(x[rows]), "semi_labels": jnp.asarray(semi[rows])}


@pytest.mark.parametrize("empty_batch", ["zero_grad", "skip"])
def test_anoonly_anomaly_free_batch(empty_batch):
  x, _, semi = blobs()
  config = tiny_config(anomaly_only=True, **{"anoonly.empty_batch": empty_batch})
  method, data = _build(config, x, semi)
  state = _init(method, data)
  new, m = engine.train_step(method, state, _anomaly_free_batch(x, semi), jax.random.key(0))
  leaves = jax.tree.leaves((new.params, new.batch_stats, new.opt_state))
  assert all(np.all(np.isfinite(leaf)) for leaf in leaves)
  assert float(m["loss"]) == 0.0
  assert int(new.step) == 1
  if empty_batch == "skip":
    assert _leaves_equal((new.params, new.batch_stats, new.opt_state),
                         (state.params, state.batch_stats, state.opt_state))
  else:
    # the reference: zero gradient, but L2 still moves the weights and BN still updates
    assert not _leaves_equal(new.params, state.params)
    assert not _leaves_equal(new.batch_stats, state.batch_stats)


def test_anoonly_ensure_anomaly_sampler_puts_one_in_every_batch():
  x, _, semi = blobs(n_labelled=1)
  config = tiny_config(anomaly_only=True, **{"anoonly.empty_batch": "ensure_anomaly"})
  method, data = _build(config, x, semi)
  data = jax.device_put(data)
  perm = method.sampler.begin_epoch(jax.random.key(0), data)
  counts = [int(jnp.sum(method.sampler.batch(perm, i, jax.random.key(i), data)["semi_labels"]))
            for i in range(method.steps_per_epoch)]
  assert min(counts) == 1
  plain = samplers.shuffled_sampler(32)
  plain_counts = [int(jnp.sum(plain.batch(perm, i, None, data)["semi_labels"]))
                  for i in range(method.steps_per_epoch)]
  assert min(plain_counts) == 0  # the guarantee is the transformation's doing


def test_anoonly_trains_without_nan_and_learns():
  x, labels, semi = blobs(n=600, n_anomalies=60, n_labelled=6)
  config = tiny_config(anomaly_only=True, **{"deepsad.num_epochs": 20})
  method, data = _build(config, x, semi)
  assert method.name == "deepsad+anoonly"
  state, _ = engine.fit(method, engine.stack_data([data]), [0], chunk_epochs=10)
  scores = engine.score(method, state, x[None])[0]
  assert np.all(np.isfinite(scores))
  assert metrics.auroc(labels, scores) > 0.9


@pytest.mark.parametrize("stats_rows", ["unlabelled", "labelled_anomalies"])
def test_norm_stats_rows_changes_batch_statistics(stats_rows):
  x, _, semi = blobs()
  batch = {"x": jnp.asarray(x[:32]), "semi_labels": jnp.asarray(semi[:32])}
  stats = {}
  for rows in ("all", stats_rows):
    method, data = _build(tiny_config(**{"norm.stats_rows": rows}), x, semi)
    state = _init(method, data)
    new, _ = engine.train_step(method, state, batch, jax.random.key(0))
    stats[rows] = new.batch_stats
  assert not _leaves_equal(stats["all"], stats[stats_rows])


@pytest.mark.parametrize("kind", ["layer", "none"])
def test_norm_controls_have_no_batch_stats(kind):
  x, labels, semi = blobs()
  method, data = _build(tiny_config(**{"norm.kind": kind}), x, semi)
  state, _ = engine.fit(method, engine.stack_data([data]), [0], chunk_epochs=2)
  assert state.batch_stats == {}
  assert np.all(np.isfinite(engine.score(method, state, x[None])))


def test_eval_batch_statistics_differ_from_running():
  x, _, semi = blobs()
  scores = {}
  for eval_stats in ("running", "batch"):
    method, data = _build(tiny_config(**{"norm.eval_stats": eval_stats}), x, semi)
    state, _ = engine.fit(method, engine.stack_data([data]), [0], chunk_epochs=2)
    scores[eval_stats] = engine.score(method, state, x[None])
  assert not np.allclose(scores["running"], scores["batch"])


def test_best_epoch_selection_keeps_lowest_loss_epoch():
  x, _, semi = blobs()
  method, data = _build(tiny_config(**{"deepsad.num_epochs": 6}), x, semi)
  method = dataclasses.replace(method, select_best_epoch=True)
  history = []
  state, _ = engine.fit(method, engine.stack_data([data]), [0], chunk_epochs=1,
                        on_chunk_end=lambda e, m: history.append(float(m["loss"][0, 0])))
  assert float(state.best["loss"][0]) == pytest.approx(min(history))
  assert int(np.argmin(history)) < len(history)


def test_pretraining_transfer_initialises_the_encoder():
  x, _, semi = blobs()
  centers = {}
  for name, kw in {"off": {}, "transfer": {"deepsad.pretrain_epochs": 3},
                   "discard": {"deepsad.pretrain_epochs": 3,
                               "deepsad.pretrain_transfer": False}}.items():
    method, data = _build(tiny_config(**kw), x, semi)
    centers[name] = np.asarray(_init(method, data).extras["center"])
  np.testing.assert_array_equal(centers["off"], centers["discard"])
  assert not np.allclose(centers["off"], centers["transfer"])


def test_deepsvdd_ignores_labels_and_rejects_anomaly_only():
  x, _, semi = blobs()
  method, data = _build(tiny_config(method="deepsvdd"), x, semi)
  batch = {"x": jnp.asarray(x[:32]), "semi_labels": jnp.asarray(semi[:32])}
  state = _init(method, data)
  losses_, _, _ = method.per_example_loss(state.params, state.batch_stats, state.extras,
                                          batch, None)
  z = method.score({"params": state.params, "batch_stats": state.batch_stats},
                   state.extras, batch["x"])
  assert losses_.shape == (32,) and np.all(np.asarray(losses_) >= 0)
  with pytest.raises(ValueError, match="anomaly_only"):
    methods.build(tiny_config(method="deepsvdd", anomaly_only=True), 6, 300)
  del z


def test_unknown_method_and_too_small_data_are_clear_errors():
  with pytest.raises(ValueError, match="available"):
    methods.build(tiny_config(method="nope"), 6, 300)
  with pytest.raises(ValueError, match="batch_size"):
    methods.build(tiny_config(), 6, 10)
