"""BGAD: flow (invertibility, log-determinant vs a numerical Jacobian), likelihood,
boundary and semi-push-pull loss by hand, schedule, sampler, patch pipeline, method
wiring, AnoOnly, end to end on MVTec-AD bottle (ResNet-18 embeddings)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import adbench as adbench_config
from ssadjax import losses, methods
from experiments import runner
from ssadjax.host import engine
from ssadjax.methods import bgad
from ssadjax.models import bgad as bgad_models
from ssadjax.norm import NormPolicy
from tests.helpers import blobs, tiny_config

# --------------------------------------------------------------------------- flow


def _perturbed(variables, key, scale=0.5):
  """Random parameters far from the identity-like initialisation."""
  leaves, treedef = jax.tree.flatten(variables)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(treedef, [l + scale * jax.random.normal(k, l.shape)
                                      for l, k in zip(leaves, keys)])


@pytest.mark.parametrize("dim, cond_dim", [(5, 0), (4, 3), (2, 2)])
def test_flow_inverse_and_log_det_match_numerical_jacobian(dim, cond_dim):
  rotations = bgad_models.random_rotations(jax.random.key(0), 3, dim)
  flow = bgad_models.Flow(dim=dim, num_blocks=3, cond_dim=cond_dim)
  x = jax.random.normal(jax.random.key(1), (6, dim))
  cond = jax.random.normal(jax.random.key(2), (6, cond_dim)) if cond_dim else None
  variables = _perturbed(flow.init(jax.random.key(3), x, rotations, cond), jax.random.key(4))
  z, log_det = flow.apply(variables, x, rotations, cond)
  np.testing.assert_allclose(
      flow.apply(variables, z, rotations, cond, method=bgad_models.Flow.inverse), x,
      atol=1e-5)
  one = lambda v, c: flow.apply(variables, v[None], rotations,
                                None if c is None else c[None])[0][0]
  jacs = jax.jit(jax.vmap(jax.jacfwd(one)))(x, cond)
  np.testing.assert_allclose(log_det, jnp.linalg.slogdet(jacs)[1], atol=1e-4)
  # The perturbation makes the coupling non-trivial: log-dets differ between rows.
  assert np.std(np.asarray(log_det)) > 1e-3


def test_flow_needs_two_dimensions():
  flow = bgad_models.Flow(dim=1, num_blocks=1)
  with pytest.raises(ValueError, match="at least 2"):
    flow.init(jax.random.key(0), jnp.ones((2, 1)),
              bgad_models.random_rotations(jax.random.key(1), 1, 1))


def test_rotations_are_special_orthogonal_and_fixed():
  rot = np.asarray(bgad_models.random_rotations(jax.random.key(7), 4, 6))
  for r in rot:
    np.testing.assert_allclose(r @ r.T, np.eye(6), atol=1e-5)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-4)
  assert not np.allclose(rot[0], rot[1])
  # Same key, same matrices (drawn once per seed, kept in extras).
  np.testing.assert_array_equal(rot, bgad_models.random_rotations(jax.random.key(7), 4, 6))


def test_global_affine_starts_at_identity_scale():
  gamma0 = bgad_models.global_scale_init_value()
  assert gamma0 == pytest.approx(2 * math.log(math.exp(5) - 1))
  assert float(bgad_models.soft_global_scale(jnp.float32(gamma0))) == pytest.approx(1.0, 1e-6)
  flow = bgad_models.Flow(dim=3, num_blocks=2)
  variables = flow.init(jax.random.key(0), jnp.zeros((1, 3)),
                        bgad_models.random_rotations(jax.random.key(1), 2, 3))
  block = variables["params"]["block_0"]
  assert set(block) == {"subnet_0", "subnet_1", "global_scale", "global_offset"}
  # Subnet widths of the reference: Linear(ceil(C/2) -> 2 ceil(C/2)) -> Linear(-> 2 floor(C/2)).
  assert block["subnet_0"]["kernel"].shape == (2, 4)
  assert block["subnet_1"]["kernel"].shape == (4, 2)


def test_inserted_batchnorm_flow_layer_log_det():
  policy = NormPolicy()
  flow = bgad_models.Flow(dim=4, num_blocks=2, insert_norm=True, norm=policy)
  rot = bgad_models.random_rotations(jax.random.key(0), 2, 4)
  x = 3.0 * jax.random.normal(jax.random.key(1), (16, 4)) + 1.0
  variables = flow.init(jax.random.key(2), x, rot)
  variables = {"params": _perturbed(variables["params"], jax.random.key(3)),
               "batch_stats": variables["batch_stats"]}
  plain = bgad_models.Flow(dim=4, num_blocks=2)
  # Train mode: log-det of the norm layer is -1/2 sum log(batch var + eps).
  (z, log_det), updates = flow.apply(variables, x, rot, train=True, mutable=["batch_stats"])
  z_plain, ld_plain = plain.apply({"params": {k: v for k, v in variables["params"].items()
                                              if k.startswith("block")}},
                                  (x - x.mean(0)) / jnp.sqrt(x.var(0) + 1e-5), rot)
  np.testing.assert_allclose(z, z_plain, atol=1e-4)
  np.testing.assert_allclose(log_det - ld_plain,
                             -0.5 * jnp.sum(jnp.log(x.var(0) + 1e-5)), rtol=1e-4)
  # Eval mode (running statistics) is a per-row bijection: numerical Jacobian.
  variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
  _, log_det = flow.apply(variables, x, rot, train=False)
  jacs = jax.jit(jax.vmap(jax.jacfwd(
      lambda v: flow.apply(variables, v[None], rot, train=False)[0][0])))(x[:4])
  np.testing.assert_allclose(log_det[:4], jnp.linalg.slogdet(jacs)[1], atol=1e-3)


def test_inserted_norm_must_be_an_invertible_batchnorm():
  flow = bgad_models.Flow(dim=3, num_blocks=1, insert_norm=True, norm=NormPolicy(kind="layer"))
  with pytest.raises(ValueError, match="synced BatchNorm"):
    flow.init(jax.random.key(0), jnp.ones((4, 3)),
              bgad_models.random_rotations(jax.random.key(1), 1, 3))


# --------------------------------------------------------------------------- losses


def test_flow_log_likelihood_hand_computed():
  z = jnp.array([[0.0, 0.0], [1.0, 2.0]])
  log_det = jnp.array([0.0, 1.0])
  expected = np.array([-math.log(2 * math.pi), -math.log(2 * math.pi) - 2.5 + 1.0])
  np.testing.assert_allclose(losses.flow_log_likelihood(z, log_det, per_dimension=False),
                             expected, rtol=1e-6)
  np.testing.assert_allclose(losses.flow_log_likelihood(z, log_det), expected / 2, rtol=1e-6)


# Four unlabelled rows and two labelled anomalies; kappa = 10.
LL = jnp.array([-30.0, -10.0, -20.0, 0.0, -5.0, -25.0])
SEMI = jnp.array([0, 0, 0, 0, 1, 1])


def test_boundaries_hand_computed_and_detached():
  # Normals sorted: [-30, -20, -10, 0]; beta 0.5 -> index floor(0.5 * 4) = 2 -> -10.
  b_n, b_a = losses.bgad_boundaries(LL, SEMI == 0, beta=0.5, tau=0.1, normalizer=10.0)
  assert float(b_n) == pytest.approx(-1.0) and float(b_a) == pytest.approx(-1.1)
  # beta 0.05 -> index 0 -> the minimum; anomalies never enter the quantile.
  b_n, _ = losses.bgad_boundaries(LL, SEMI == 0, beta=0.05)
  assert float(b_n) == pytest.approx(-3.0)
  grad = jax.grad(lambda l: losses.bgad_boundaries(l, SEMI == 0, beta=0.5)[0])(LL)
  np.testing.assert_array_equal(grad, 0.0)


def test_push_pull_terms_hand_computed():
  # b_n = -1, b_a = -1.1; scaled loglik = [-3, -1, -2, 0 | -0.5, -2.5].
  terms, active = losses.bgad_push_pull(LL, SEMI, -1.0, -1.1)
  # Normals at or below b_n are pulled (-1 is active with a zero term), the one above
  # contributes nothing; the anomaly above b_a is pushed, the one beyond it is not.
  np.testing.assert_allclose(terms, [2.0, 0.0, 1.0, 0.0, 0.6, 0.0], atol=1e-6)
  np.testing.assert_array_equal(active, [True, True, True, False, True, False])


def test_loss_contributions_hand_computed():
  c = losses.bgad_loss_contributions(LL, SEMI, beta=0.5, tau=0.1, normalizer=10.0,
                                     push_pull_weight=2.0)
  sp = lambda v: math.log1p(math.exp(-v))
  ml = np.array([sp(-30.0), sp(-10.0), sp(-20.0), sp(0.0), 0, 0]) / 4
  # L_n over the 3 active normals, L_a over the 1 active anomaly, lambda = 2.
  spp = 2.0 * np.array([2.0 / 3, 0.0, 1.0 / 3, 0.0, 0.6, 0.0])
  np.testing.assert_allclose(c, ml + spp, rtol=1e-5)


def test_loss_is_ml_only_when_everything_is_on_its_side():
  # Normals all at b_n or above it and the anomaly beyond the margin: zero push-pull,
  # finite zero gradient (the reference's empty means are NaN, pitfall 28).
  ll = jnp.array([-10.0, -10.0, -5.0, -40.0])
  semi = jnp.array([0, 0, 0, 1])
  c = losses.bgad_loss_contributions(ll, semi, beta=0.0, tau=0.1)
  sp = lambda v: math.log1p(math.exp(-v))
  np.testing.assert_allclose(c, [sp(-10.0) / 3, sp(-10.0) / 3, sp(-5.0) / 3, 0.0], rtol=1e-6)
  grad = jax.grad(lambda l: jnp.sum(losses.bgad_loss_contributions(l, semi, beta=0.0)))(ll)
  assert np.all(np.isfinite(grad)) and grad[3] == 0.0
  # No anomaly in the batch: the maximum-likelihood term on all rows only.
  c = losses.bgad_loss_contributions(LL[:4], SEMI[:4], beta=0.5)
  np.testing.assert_allclose(c, jax.nn.softplus(-LL[:4]) / 4, rtol=1e-6)


def test_loss_gradients_by_hand():
  grad = jax.grad(lambda l: jnp.sum(losses.bgad_loss_contributions(
      l, SEMI, beta=0.5, tau=0.1, normalizer=10.0)))(LL)
  sig = lambda v: 1 / (1 + math.exp(-v))
  # d/dl of softplus(-l)/4 = -sigmoid(-l)/4; pull term -(1/10)/3 on the active normals
  # (also on the one exactly at the boundary); push term +(1/10)/1 on the active anomaly.
  expected = [-sig(30) / 4 - 1 / 30, -sig(10) / 4 - 1 / 30, -sig(20) / 4 - 1 / 30,
              -sig(0) / 4, 0.1, 0.0]
  np.testing.assert_allclose(grad, expected, rtol=1e-5)


def test_focal_weights_hand_computed():
  ll = jnp.array([-1.0, -5.0, -15.0, -5.0])
  semi = jnp.array([0, 0, 1, 1])
  w = losses.bgad_focal_weights(ll, semi)
  u = -0.5
  np.testing.assert_allclose(w, [1.0, 11.7 * math.sqrt(1 - math.exp(u)) * 0.5, 1.0,
                                 0.53 * (1 + math.exp(u)) ** 2 / 0.5], rtol=1e-6)
  np.testing.assert_array_equal(jax.grad(lambda l: jnp.sum(
      losses.bgad_focal_weights(l, semi)))(ll), 0.0)


# --------------------------------------------------------------------------- pieces


def test_learning_rate_schedule():
  sched = bgad.learning_rate_schedule(1.0, steps_per_meta_epoch=10, meta_epochs=4,
                                      decay_rate=0.1, warm_epochs=2)
  eta_min = 1e-3
  cos = lambda e: eta_min + (1 - eta_min) * (1 + math.cos(math.pi * e / 4)) / 2
  assert float(sched(0)) == pytest.approx(0.1)
  assert float(sched(10)) == pytest.approx(0.1 + 0.5 * (cos(2) - 0.1), rel=1e-5)
  assert float(sched(20)) == pytest.approx(cos(2), rel=1e-5)
  assert float(sched(39)) == pytest.approx(cos(3), rel=1e-5)
  no_warm = bgad.learning_rate_schedule(1.0, steps_per_meta_epoch=10, meta_epochs=4,
                                        warm=False)
  assert float(no_warm(5)) == pytest.approx(1.0)


def test_mixed_sampler_composition():
  x, _, semi = blobs(n=60, d=3, n_anomalies=10, n_labelled=5)
  x[:, 0] = np.arange(60)
  data = methods.make_train_data(x, semi)
  sampler = bgad.mixed_sampler(16, 4)
  perm = sampler.begin_epoch(jax.random.key(0), data)
  seen = []
  for i in range(4):
    batch = sampler.batch(perm, i, jax.random.key(i), data)
    np.testing.assert_array_equal(batch["semi_labels"], [0] * 12 + [1] * 4)
    np.testing.assert_array_equal(data.semi_labels[np.asarray(batch["rows"])],
                                  batch["semi_labels"])
    np.testing.assert_array_equal(batch["x"][:, 0], batch["rows"])
    seen += list(np.asarray(batch["rows"][:12]))
  # 48 of the 55 unlabelled rows, each once, within one epoch.
  assert len(set(seen)) == 48


def test_positional_encoding():
  pe = np.asarray(bgad_models.positional_encoding_2d(8, 3, 5))
  assert pe.shape == (3, 5, 8)
  np.testing.assert_allclose(pe[0, 0], [0, 1, 0, 1, 0, 1, 0, 1], atol=1e-7)
  # First half varies with the column only, second half with the row only.
  np.testing.assert_allclose(pe[0, :, :4], pe[2, :, :4])
  np.testing.assert_allclose(pe[:, 0, 4:], pe[:, 4, 4:])
  np.testing.assert_allclose(pe[0, 1, :2], [math.sin(1), math.cos(1)], rtol=1e-6)
  np.testing.assert_allclose(pe[0, 1, 2:4], [math.sin(1e-2), math.cos(1e-2)], rtol=1e-5)


def test_patch_pipeline_on_mock_images():
  images = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
  extractor = bgad_models.RandomConvExtractor(channels=(6, 10))
  ext_vars = extractor.init(jax.random.key(1), images)
  features = jax.jit(extractor.apply)(ext_vars, images)
  assert [f.shape for f in features] == [(2, 8, 8, 6), (2, 4, 4, 10)]
  rotations = bgad_models.patch_rotations(jax.random.key(2), [6, 10], num_blocks=1)
  flows = bgad_models.PatchFlows(num_blocks=1, pos_dim=8)
  variables = jax.jit(flows.init)(jax.random.key(3), features, rotations)
  logliks = jax.jit(flows.apply)(variables, features, rotations)
  assert [l.shape for l in logliks] == [(2, 8, 8), (2, 4, 4)]
  assert all(np.all(np.isfinite(l)) for l in logliks)
  # Each level's flow is conditional on the positional encoding and invertible.
  flow = bgad_models.Flow(dim=6, num_blocks=1, cond_dim=8)
  level_vars = {"params": variables["params"]["flow_0"]}
  feat = features[0].reshape(-1, 6)
  cond = jnp.broadcast_to(bgad_models.positional_encoding_2d(8, 8, 8)[None],
                          (2, 8, 8, 8)).reshape(-1, 8)

  @jax.jit
  def check(level_vars, feat, cond):
    z, log_det = flow.apply(level_vars, feat, rotations[0], cond)
    back = flow.apply(level_vars, z, rotations[0], cond, method=bgad_models.Flow.inverse)
    # The same feature at two positions: the condition changes the likelihood.
    same = jnp.broadcast_to(feat[:1], (2, 6))
    z2, ld2 = flow.apply(level_vars, same, rotations[0], cond[:2])
    return losses.flow_log_likelihood(z, log_det), back, losses.flow_log_likelihood(z2, ld2)

  ll, back, ll_same = check(level_vars, feat, cond)
  np.testing.assert_allclose(ll.reshape(2, 8, 8), logliks[0], rtol=1e-5)
  np.testing.assert_allclose(back, feat, atol=1e-4)
  assert abs(float(ll_same[0] - ll_same[1])) > 0
  amap = bgad_models.anomaly_map(logliks, (16, 16))
  assert amap.shape == (2, 16, 16) and np.all(np.isfinite(amap))


# --------------------------------------------------------------------------- method


def _bgad_config(**overrides):
  base_overrides = {"method": "bgad", "bgad.num_blocks": 2, "bgad.batch_size": 32,
                    "bgad.anomalies_per_batch": 4, "bgad.meta_epochs": 3}
  base_overrides.update(overrides)
  return tiny_config(**base_overrides)


def _data():
  x, _, semi = blobs(n=200, d=6, n_anomalies=20, n_labelled=6)
  return methods.make_train_data(x, semi)


def test_method_loss_sum_is_the_bgad_loss_and_rotations_are_extras():
  cfg = _bgad_config()
  data = _data()
  method = methods.build(cfg, 6, 200)
  assert method.name == "bgad" and method.num_epochs == 2 and method.steps_per_epoch == 6
  variables, extras = method.init(jax.random.key(0), jax.random.key(1), data)
  assert extras["rotations"].shape == (2, 6, 6)
  assert "rotations" not in str(jax.tree_util.tree_structure(variables))
  batch = method.sampler.batch(method.sampler.begin_epoch(jax.random.key(2), data), 0,
                               jax.random.key(3), data)
  per_example, mask, _ = method.per_example_loss(variables["params"], {}, extras, batch, None)
  model = bgad_models.Flow(dim=6, num_blocks=2)
  z, ld = model.apply(variables, batch["x"], extras["rotations"])
  ll = losses.flow_log_likelihood(z, ld)
  expected = jnp.sum(losses.bgad_loss_contributions(
      ll, batch["semi_labels"], beta=0.01, tau=0.1, focal_weighting=False))
  assert float(method.reduce_loss(per_example, mask)[0]) == pytest.approx(float(expected), 1e-5)
  np.testing.assert_array_equal(mask, batch["semi_labels"] == 1)
  np.testing.assert_allclose(method.score(variables, extras, batch["x"]), -ll, rtol=1e-5)


def test_reference_preset_runs_eight_sub_epochs_with_focal_weighting():
  data = _data()
  default = methods.build(_bgad_config(), 6, 200)
  ref = methods.build(_bgad_config(preset="bgad_reference"), 6, 200)
  # meta-epoch 0 (ML warm-up) is an engine stage; the other 2 meta-epochs x 8 sub-epochs
  # are the main stage.
  assert (default.num_epochs, ref.num_epochs) == (2, 16)
  assert [(s.name, s.num_epochs) for s in (*default.stages, *ref.stages)] == [
      ("warmup", 1), ("warmup", 8)]
  variables, extras = ref.init(jax.random.key(0), jax.random.key(1), data)
  batch = ref.sampler.batch(ref.sampler.begin_epoch(jax.random.key(2), data), 0,
                            jax.random.key(3), data)
  per_example, _, _ = ref.per_example_loss(variables["params"], {}, extras, batch, None)
  z, log_det = bgad_models.Flow(dim=6, num_blocks=2).apply(variables, batch["x"], extras["rotations"])
  ll = losses.flow_log_likelihood(z, log_det)
  for focal in (True, False):
    want = losses.bgad_loss_contributions(ll, batch["semi_labels"], beta=0.01, tau=0.1,
                                               focal_weighting=focal)
    assert np.allclose(per_example, want, rtol=1e-4) == focal
  # An explicit field still wins over the preset.
  assert methods.build(_bgad_config(preset="bgad_reference", **{"bgad.sub_epochs": 2}),
                       6, 200).num_epochs == 4


def test_anoonly_reduces_to_the_anomaly_push_term():
  cfg = _bgad_config(anomaly_only=True)
  data = _data()
  method = methods.build(cfg, 6, 200)
  assert method.name == "bgad+anoonly"
  assert method.num_epochs == 3 and method.stages == ()  # no ML warm-up under AnoOnly
  variables, extras = method.init(jax.random.key(0), jax.random.key(1), data)
  assert "flow_norm" in variables["batch_stats"] and "flow_norm" not in variables["params"]
  batch = method.sampler.batch(method.sampler.begin_epoch(jax.random.key(2), data), 0,
                               jax.random.key(3), data)
  params, stats = variables["params"], variables["batch_stats"]
  per_example, mask, new_stats = method.per_example_loss(params, stats, extras, batch, None)
  loss, _ = method.reduce_loss(per_example, mask)
  model = bgad_models.Flow(dim=6, num_blocks=2, insert_norm=True)
  (z, ld), _ = model.apply(variables, batch["x"], extras["rotations"], train=True,
                           mutable=["batch_stats"])
  ll = losses.flow_log_likelihood(z, ld)
  semi = batch["semi_labels"]
  b_n, b_a = losses.bgad_boundaries(ll, semi == 0, beta=0.01)
  terms, active = losses.bgad_push_pull(ll, semi, b_n, b_a)
  l_a = losses.safe_masked_mean(terms, active & (semi == 1))
  assert float(loss) == pytest.approx(float(l_a), rel=1e-5)
  # The inserted BatchNorm's statistics moved.
  assert not np.allclose(new_stats["flow_norm"]["norm"]["BatchNorm_0"]["mean"], 0.0)


def test_anoonly_with_layernorm_is_refused():
  cfg = _bgad_config(anomaly_only=True, **{"norm.kind": "layer"})
  method = methods.build(cfg, 6, 200)
  with pytest.raises(ValueError, match="synced BatchNorm"):
    method.init(jax.random.key(0), jax.random.key(1), _data())


def test_anoonly_is_not_the_unsupervised_rejection():
  assert "bgad" not in methods.UNSUPERVISED
  assert methods.FACTORIES["bgad"] is bgad.make_method


# --------------------------------------------------------------------------- end to end


def _bottle_config(adbench_dir, anomaly_only):
  config = adbench_config.get_config()
  config.method = "bgad"
  config.anomaly_only = anomaly_only
  config.dataset = "CV_by_ResNet18/MVTec-AD_bottle"
  config.data_dir = str(adbench_dir)
  config.num_seeds = 1
  config.bgad.num_blocks = 4         # half the reference depth keeps the test fast
  config.bgad.meta_epochs = 13
  config.train.chunk_epochs = 13     # one compiled chunk
  config.checkpoint.enabled = False
  return config


@pytest.mark.slow
@pytest.mark.parametrize("anomaly_only, name, steps, floor", [
    (False, "bgad", 12 * 5, 0.85), (True, "bgad+anoonly", 13 * 5, 0.75)])
def test_bottle_auroc_floor(adbench_dir, tmp_path, anomaly_only, name, steps, floor):
  # Observed (seed 1, this reduced config): 0.967 and 0.893 (+AnoOnly); the
  # barely trained flow ranks these embeddings backwards (0.11 after 20 steps).
  results = runner.run_single(_bottle_config(adbench_dir, anomaly_only), tmp_path)
  assert results["name"] == name and results["steps"] == steps
  assert results["auroc_mean"] > floor, results["auroc"]


def test_warmup_stage_fits_the_unlabelled_rows_only():
  """Meta-epoch 0 as an engine stage: maximum likelihood on unlabelled rows (labelled rows
  are NaN here, so touching one would make the loss NaN), whose NLL it lowers."""
  x, _, semi = blobs(n=200, d=6, n_anomalies=20, n_labelled=6)
  x = x.copy()
  x[semi == 1] = np.nan
  data = jax.device_put(methods.make_train_data(x, semi))
  method = methods.build(_bgad_config(**{"bgad.sub_epochs": 3, "bgad.learning_rate": 1e-2}),
                         6, 200)
  (stage,) = method.stages
  assert (stage.num_epochs, stage.steps_per_epoch) == (3, 6)
  init_key, extras_key, _ = engine.seed_keys(0)
  state = jax.jit(lambda d: engine.create_train_state(method, init_key, extras_key, d))(data)
  warmed, metrics = jax.jit(lambda st: engine.run_stage_epochs(method, 0, 3, st, data, 3))(state)
  assert np.all(np.isfinite(metrics["loss"])) and metrics["loss"][-1] < metrics["loss"][0]
  assert int(warmed.stages[0]["epoch"]) == 3
  unlabelled = x[semi == 0]
  nll = lambda st: float(np.mean(method.score(
      {"params": st.params, **({"batch_stats": st.batch_stats} if st.batch_stats else {})},
      st.extras, unlabelled)))
  assert nll(warmed) < nll(state)


def test_warmup_stage_trains_at_the_runs_own_rate():
  """The rate is run data: a run given another rate than its method's warms up as a
  method configured with that rate (to float rounding), and the rate matters."""
  x, _, semi = blobs(n=200, d=6, n_anomalies=20, n_labelled=6)
  data = jax.device_put(methods.make_train_data(x, semi))

  def warmed(rate, run_rate):
    method = methods.build(_bgad_config(**{"bgad.sub_epochs": 3, "bgad.learning_rate": rate}),
                           6, 200)
    assert method.run_hparams["learning_rate"] == rate and method.learning_rate == rate
    init_key, extras_key, _ = engine.seed_keys(0)
    hparams = None if run_rate is None else {"learning_rate": run_rate}

    def run(d):
      state = engine.create_train_state(method, init_key, extras_key, d, hparams)
      return engine.run_stage_epochs(method, 0, 3, state, d, 3)[0].params
    return jax.tree.leaves(jax.jit(run)(data))

  as_run_data, as_config, program_rate = warmed(2e-4, 6e-4), warmed(6e-4, None), warmed(2e-4, None)
  for a, b in zip(as_run_data, as_config):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
  assert max(float(np.abs(a - b).max()) for a, b in zip(program_rate, as_config)) > 1e-5
