"""FUN-AD: nearest neighbours, IRMB pseudo-labels, losses by hand, engine fit, a run."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import adbench as adbench_config
from ssadjax import data as data_lib
from ssadjax import losses, methods, ops
from experiments import runner
from ssadjax.methods import train_data
from ssadjax.methods import funad


def _config(**overrides):
  cfg = adbench_config.get_config()
  cfg.method = "funad"
  cfg.la = 0.0
  cfg.funad.hidden_dims = (16, 8)
  for k, v in overrides.items():
    cfg.funad[k] = v
  return cfg


# ------------------------------------------------------------------ nearest neighbours

@pytest.mark.parametrize("block", [3, 64])
def test_knn_matches_brute_force(block):
  rng = np.random.default_rng(0)
  q, k = rng.normal(size=(10, 4)).astype(np.float32), rng.normal(size=(7, 4)).astype(np.float32)
  valid = np.array([1, 0, 1, 1, 0, 1, 1], bool)
  d, idx = ops.knn(jnp.asarray(q), jnp.asarray(k), 2, key_valid=jnp.asarray(valid),
                     block=block)
  full = ((q[:, None, :] - k[None, :, :]) ** 2).sum(-1)
  full[:, ~valid] = np.inf
  want = np.argsort(full, axis=1, kind="stable")[:, :2]
  np.testing.assert_array_equal(np.asarray(idx), want)
  np.testing.assert_allclose(np.asarray(d), np.take_along_axis(full, want, 1), rtol=1e-4,
                             atol=1e-5)


def test_mutual_nearest_neighbours_hand_made():
  # 1-D points: 0 -> 1, 1 <-> 2, 3 <-> 4, 5 -> 4. Mutual pairs: (1, 2), (3, 4).
  x = jnp.asarray([[0.0], [1.0], [1.5], [5.0], [5.2], [10.0]])
  for block in (2, 16):
    partner, is_pair = ops.mutual_nearest_neighbours(x, block=block)
    np.testing.assert_array_equal(np.asarray(partner), [1, 2, 1, 4, 3, 4])
    np.testing.assert_array_equal(np.asarray(is_pair), [0, 1, 0, 1, 0, 0])


def test_mutual_nearest_neighbours_duplicates_pair_up():
  # Two exact copies are each other's nearest neighbour (self excluded by index, not 0).
  x = jnp.asarray([[2.0, 2.0], [0.0, 0.0], [2.0, 2.0], [9.0, 9.0]])
  partner, is_pair = ops.mutual_nearest_neighbours(x)
  assert int(partner[0]) == 2 and int(partner[2]) == 0
  np.testing.assert_array_equal(np.asarray(is_pair), [1, 0, 0, 0])


# ------------------------------------------------------------------ IRMB pseudo-labels

def test_select_bank_candidates_and_size():
  scores = jnp.asarray([0.0, 0.1, 0.2, 0.3, 0.45, 0.55, 0.9, 1.0, 0.05, 0.15])
  eligible = jnp.ones(10, bool).at[1].set(False)
  # Normalised over eligible rows (min 0, max 1): candidates = score < 0.5, minus row 1.
  candidates = {0, 2, 3, 4, 8, 9}
  full = funad.select_bank(scores, eligible, jax.random.key(0), bank_ratio=1.0)
  assert set(np.flatnonzero(np.asarray(full))) == candidates
  sizes, members = set(), set()
  draw = jax.jit(lambda key: funad.select_bank(scores, eligible, key, bank_ratio=0.5))
  for seed in range(20):
    m = np.asarray(draw(jax.random.key(seed)))
    sizes.add(int(m.sum()))
    assert set(np.flatnonzero(m)) <= candidates
    members |= set(np.flatnonzero(m))
  assert sizes == {3}          # floor(0.5 * 6), drawn without replacement
  assert members == candidates  # every candidate is drawn by some key


def test_select_bank_keeps_two_entries():
  scores = jnp.asarray([0.0, 1.0, 1.0, 1.0])   # one candidate only
  m = funad.select_bank(scores, jnp.ones(4, bool), jax.random.key(0), bank_ratio=0.5)
  np.testing.assert_array_equal(np.asarray(m), [1, 0, 0, 0])


def test_bank_distances_threshold_rule_and_index_rule():
  bank = jnp.asarray([[0.0], [1.0], [3.0], [7.0]])
  member = jnp.asarray([1.0, 1.0, 1.0, 0.0])
  # Row in the bank (0.0): its own entry is at 0, so the second (1.0) is used. A
  # near-duplicate (3.05 is 0.0025 < 0.01 from 3.0) is treated as itself: second
  # neighbour 1.0 at 2.05^2. A non-member (7.0; entry 3 is not in the bank) -> 3.0 at 16.
  q = jnp.asarray([[0.0], [3.05], [7.0]])
  d = funad.bank_distances(q, bank, member)
  np.testing.assert_allclose(np.asarray(d), [1.0, 2.05 ** 2, 16.0], rtol=1e-5)
  d_idx = funad.bank_distances(q, bank, member, batch_index=jnp.asarray([0, 2, 3]),
                               self_match="index")
  # index rule: row 0 skips itself -> 1.0; row 2 (3.05) skips entry 2 -> 1.0 at 2.05^2.
  np.testing.assert_allclose(np.asarray(d_idx), [1.0, 2.05 ** 2, 16.0], rtol=1e-5)


def test_pseudo_labels_known_answer():
  dn, y = funad.pseudo_labels(jnp.asarray([0.0, 1.0, 2.0, 10.0, 6.0]), tau=0.5)
  np.testing.assert_allclose(np.asarray(dn), [0.0, 0.1, 0.2, 1.0, 0.6])
  np.testing.assert_array_equal(np.asarray(y), [0, 0, 0, 1, 1])
  dn, y = funad.pseudo_labels(jnp.zeros(4))   # all zero: no positive, no NaN
  assert np.all(np.asarray(dn) == 0) and np.all(np.asarray(y) == 0)


def test_irmb_pipeline_on_toy_set_finds_the_anomalies():
  """Normals near 0, anomalies near 5; scores rank anomalies highest. The bank must hold
  normals only and the batch's pseudo-labels must be exactly the anomalies."""
  rng = np.random.default_rng(0)
  normals = rng.normal(0, 0.3, size=(60, 2))
  anomalies = rng.normal(5, 0.3, size=(6, 2))
  x = jnp.asarray(np.concatenate([normals, anomalies]), jnp.float32)
  truth = np.r_[np.zeros(60), np.ones(6)]
  scores = jnp.linalg.norm(x, axis=1)
  member = funad.select_bank(scores, jnp.ones(66, bool), jax.random.key(1))
  assert np.all(truth[np.asarray(member) > 0] == 0)
  assert int(member.sum()) == 30  # floor(0.5 * 60 candidates)
  batch = np.r_[np.arange(0, 66, 3), 61, 62]  # members and non-members, 3 anomalies
  d = funad.bank_distances(x[batch], x, member, self_match="index",
                           batch_index=jnp.asarray(batch))
  _, y = funad.pseudo_labels(d)
  np.testing.assert_array_equal(np.asarray(y), truth[batch])


def test_gaussian_perturbation_only_in_band():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(6, 3)), jnp.float32)
  dn = jnp.asarray([0.0, 0.3, 0.5, 0.6, 0.89, 1.0])
  out = funad.gaussian_perturbation(x, dn, jax.random.key(0), tau=0.5, tau_noise=0.9)
  changed = np.any(np.asarray(out) != np.asarray(x), axis=1)
  np.testing.assert_array_equal(changed, [0, 0, 0, 1, 1, 0])


# ------------------------------------------------------------------ losses by hand

def test_balanced_bce_by_hand():
  logits = jnp.asarray([0.0, 0.0, np.log(3.0)])
  t = jnp.asarray([1, 0, 0])
  l2 = np.log(2.0)
  # positives: log 2; negatives: mean(log 2, log 4) = 1.5 log 2.
  np.testing.assert_allclose(float(jnp.sum(losses.balanced_bce_terms(logits, t))), 2.5 * l2,
                             rtol=1e-6)
  np.testing.assert_allclose(
      float(jnp.sum(losses.balanced_bce_terms(logits, t, balanced=False))), 4 * l2 / 3,
      rtol=1e-6)
  # No positive: the positive term is 0, not NaN.
  no_pos = losses.balanced_bce_terms(logits, jnp.zeros(3, jnp.int32))
  np.testing.assert_allclose(float(jnp.sum(no_pos)), (2 * l2 + np.log(4.0)) / 3, rtol=1e-6)
  g = jax.grad(lambda z: jnp.sum(losses.balanced_bce_terms(z, t)))(logits)
  # d bce / dz = sigmoid(z) - t, weighted 1/|P| = 1 and 1/|N| = 1/2.
  np.testing.assert_allclose(np.asarray(g), [-0.5, 0.25, 0.75 / 2], rtol=1e-6)


def test_mutual_smoothness_by_hand():
  p = jnp.asarray([0.2, 0.6, 0.9, 0.1])
  partner = jnp.asarray([1, 0, 3, 2])
  is_pair = jnp.asarray([True, False, True, False])
  mae = losses.mutual_smoothness_terms(p, partner, is_pair)
  np.testing.assert_allclose(float(jnp.sum(mae)), 0.5 * (0.4 + 0.8) / 2, rtol=1e-6)
  mse = losses.mutual_smoothness_terms(p, partner, is_pair, kind="mse")
  np.testing.assert_allclose(float(jnp.sum(mse)), 0.25 * (0.16 + 0.64) / 2, rtol=1e-5)
  g = jax.grad(lambda q: jnp.sum(losses.mutual_smoothness_terms(q, partner, is_pair)))(p)
  np.testing.assert_allclose(np.asarray(g), [-0.25, 0.25, 0.25, -0.25], rtol=1e-6)
  none = losses.mutual_smoothness_terms(p, partner, jnp.zeros(4, bool))
  assert float(jnp.sum(none)) == 0.0


# ------------------------------------------------------------------ method and engine fit

def _toy_data(n=96, d=5, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)).astype(np.float32)
  x[:8] += 4.0
  return jax.tree.map(jnp.asarray, train_data.make_train_data(x, np.zeros(n, np.int32)))


def test_loss_is_finite_with_finite_gradients_and_sums_its_terms():
  cfg = _config(batch_size=16)
  method = methods.build(cfg, 5, 96)
  data = _toy_data()
  variables, extras = method.init(jax.random.key(0), jax.random.key(1), data)
  perm = method.sampler.begin_epoch(jax.random.key(2), data)
  batch = method.sampler.batch(perm, 0, jax.random.key(3), data)
  # The bank is built before the loss, without gradient (the engine's train_step).
  _, batch = method.step_state.refresh(variables["params"], method.step_state.init(data),
                                       batch, jax.random.key(4), data=data)

  def loss(params):
    terms, _, _ = method.per_example_loss(params, {}, extras, batch, jax.random.key(4),
                                          data=data)
    return method.reduce_loss(terms, None)[0]

  value, grads = jax.jit(jax.value_and_grad(loss))(variables["params"])
  assert np.isfinite(float(value)) and float(value) > 0
  assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
  assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads))


def test_bank_period_keeps_the_bank_between_rebuilds_and_cond_survives_vmap():
  cfg = _config(batch_size=16, bank_period=3)
  method = methods.build(cfg, 5, 96)
  data = _toy_data()
  variables, _ = method.init(jax.random.key(0), jax.random.key(1), data)
  # The bank mask is the method's step state, not BatchNorm state.
  assert "batch_stats" not in variables
  assert method.step_state.init(data)["bank_member"].shape == (96,)
  perm = method.sampler.begin_epoch(jax.random.key(2), data)
  old = {"bank_member": jnp.zeros(96).at[:10].set(1.0)}
  for i, rebuild in ((0, True), (1, False), (2, False), (3, True)):
    batch = method.sampler.batch(perm, i, jax.random.key(3), data)
    assert bool(batch["rebuild"][0]) == rebuild
    new, batch = method.step_state.refresh(variables["params"], old, batch,
                                           jax.random.key(4), data=data)
    same = np.array_equal(np.asarray(new["bank_member"]), np.asarray(old["bank_member"]))
    assert same != rebuild
    np.testing.assert_array_equal(batch["bank_member"], new["bank_member"])

  # Under the engine's vmap over seeds the step flag is unbatched: a real cond remains.
  def one(params, state, i):
    batch = method.sampler.batch(perm, i, jax.random.key(3), data)
    return method.step_state.refresh(params, state, batch, jax.random.key(4), data=data)[0]

  stacked = jax.tree.map(lambda a: jnp.stack([a, a]), (variables["params"], old))
  jaxpr = str(jax.make_jaxpr(jax.vmap(one, in_axes=(0, 0, None)))(*stacked, 1))
  assert "cond[" in jaxpr


def test_labelled_anomalies_are_positives_and_never_in_the_bank():
  cfg = _config(batch_size=16)
  x = _toy_data().x
  semi = np.zeros(96, np.int32)
  semi[:8] = 1
  data = train_data.make_train_data(x, semi)
  method = methods.build(cfg, 5, 96)
  variables, extras = method.init(jax.random.key(0), jax.random.key(1), data)
  batch = {"x": jnp.asarray(x[:16]), "semi_labels": jnp.asarray(semi[:16]),
           "index": jnp.arange(16), "rebuild": jnp.ones(16, bool)}
  _, batch = method.step_state.refresh(variables["params"], {}, batch, jax.random.key(4),
                                       data=data)
  assert float(jnp.sum(batch["bank_member"][:8])) == 0.0
  assert float(jnp.sum(batch["bank_member"][8:])) > 0
  _, mask, _ = method.per_example_loss(variables["params"], {}, extras, batch,
                                       jax.random.key(4), data=data)
  np.testing.assert_array_equal(np.asarray(mask), semi[:16] == 1)


def test_anomaly_only_is_refused():
  cfg = _config()
  cfg.anomaly_only = True
  with pytest.raises(ValueError, match="funad is fully unsupervised"):
    methods.build(cfg, 5, 96)


def test_la_zero_labels_nothing_even_with_at_least_one_labeled():
  assert data_lib.num_labelled_anomalies(0.0, 123, at_least_one_labeled=True) == 0
  assert data_lib.num_labelled_anomalies(0, 123, at_least_one_labeled=True) == 0


def test_subsample_contamination():
  rng = np.random.default_rng(0)
  n = 200
  truth = np.zeros(n, np.int32)
  truth[:40] = 1
  semi = np.zeros(n, np.int32)
  semi[:2] = 1
  split = data_lib.Splits(x_train=np.arange(n, dtype=np.float32)[:, None], semi_labels=semi,
                          train_labels=truth, x_test=np.zeros((4, 1), np.float32),
                          y_test=np.array([0, 1, 0, 0], np.int32))
  out, info = funad.subsample_contamination(split, 0.1, rng)
  assert info == {"normals": 160, "anomalies": 16, "ratio": 0.1}
  assert out.semi_labels.sum() == 2 and out.x_train.shape[0] == 2 + 160 + 16
  assert (out.train_labels[out.semi_labels == 0] == 1).sum() == 16
  out, info = funad.subsample_contamination(split, 0.0, rng)
  assert info["anomalies"] == 0 and out.x_train.shape[0] == 162
  # Too few anomalies for 50%: all 38 kept, round(38 / 0.5) = 76 normals drawn.
  out, info = funad.subsample_contamination(split, 0.5, rng)
  assert info == {"normals": 76, "anomalies": 38, "ratio": 0.5}
  assert out.x_test is split.x_test


@pytest.mark.slow
def test_end_to_end_cardio_unsupervised(adbench_dir, tmp_path):
  cfg = adbench_config.get_config()
  cfg.method = "funad"
  cfg.la = 0.0
  cfg.dataset = "6_cardio"
  cfg.data_dir = str(adbench_dir)
  cfg.num_seeds = 2
  cfg.funad.num_epochs = 10
  cfg.funad.bank_period = 8
  cfg.checkpoint.enabled = False
  result = runner.run_single(cfg, tmp_path)
  assert result["num_labelled"] == 0
  # Observed ~0.8; a random scorer gives 0.5 and the untrained network about 0.5-0.6.
  assert result["auroc_mean"] > 0.7, result["auroc"]
