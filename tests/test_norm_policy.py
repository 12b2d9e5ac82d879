"""The BatchNorm policy (ssadjax/norm.py) against numpy, threaded through every method:
which rows feed the statistics, the three evaluation statistics, placement and affine,
controls, the score-sum identity of DevNet with BN before the head, grid presets and the
ablation / robustness configs end to end."""

import csv

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ssadjax import methods, norm
from experiments import grid
from experiments import runner, workdir
from ssadjax.host import engine
from ssadjax.models.devnet import DevNetScorer
from ssadjax.norm import Norm, NormPolicy, stats_mask
from tests.helpers import blobs, tiny_config

# Tiny settings for every registered method (a few steps each).
TINY = {
    "deepsad.num_epochs": 2,
    "devnet.batch_size": 32, "devnet.steps_per_epoch": 3, "devnet.num_epochs": 2,
    "prenet.batch_size": 32, "prenet.steps_per_epoch": 3, "prenet.num_epochs": 2,
    "prenet.num_references": 4,
    "feawad.batch_size": 32, "feawad.steps_per_epoch": 3, "feawad.num_epochs": 2,
    "feawad.pretrain_batch_size": 32, "feawad.pretrain_epochs": 1,
    "feawad.pretrain_steps_per_epoch": 2,
    "bgad.num_blocks": 2, "bgad.batch_size": 32, "bgad.anomalies_per_batch": 4,
    "bgad.meta_epochs": 3,
    "funad.hidden_dims": (16, 8), "funad.batch_size": 32, "funad.num_epochs": 2,
    # CLAD needs images: blobs with 16 features as 4x4 images (see _blobs_for).
    "clad.image_shape": (4, 4, 1), "clad.ae_epochs": 1, "clad.ae_batch_size": 32,
    "clad.num_clusters": 2, "clad.kmeans_n_init": 1, "clad.kmeans_iters": 5,
    "clad.dec_epochs": 1, "clad.dec_batch_size": 32, "clad.cnn_channels": (4, 4),
    "clad.batch_size": 32, "clad.num_epochs": 1, "clad.ae_dense": 16,
}


def _config(method="deepsad", **overrides):
  config = tiny_config(method=method)
  tiny = {k: v for k, v in TINY.items() if k.split(".")[0] in config}
  return tiny_config(method=method, **{**tiny, **overrides})


def _blobs_for(method_name):
  """Tiny training data; CLAD's image networks get 16 features (4x4x1 images)."""
  return blobs(n=256, d=16 if method_name == "clad" else 6, n_anomalies=32, n_labelled=8)


def _fit(config, x, semi, seeds=(0,)):
  method = methods.build(config, x.shape[1], x.shape[0])
  data = engine.stack_data([methods.make_train_data(x, semi)] * len(seeds))
  state, _ = engine.fit(method, data, list(seeds), chunk_epochs=50)
  return method, data, state


def _bn_stats(tree):
  """{path: (mean, var)} of every BatchNorm in a batch_stats tree."""
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    keys = tuple(getattr(p, "key", str(p)) for p in path)
    out.setdefault(keys[:-1], {})[keys[-1]] = np.asarray(leaf)
  return {k: (v["mean"], v["var"]) for k, v in out.items()}


# ------------------------------------------------------------------ mask vs numpy

SEMI = np.array([0, 1, 0, 0, 1, 0, 0, 1], np.int32)  # each half has both kinds


def _numpy_norm(x, rows, groups, eps):
  """Per group: statistics of the selected rows, applied to every row of the group."""
  y, means, vars_ = np.empty_like(x), [], []
  size = x.shape[0] // groups
  for g in range(groups):
    block = slice(g * size, (g + 1) * size)
    sel = x[block][rows[block]]
    mean, var = sel.mean(0), sel.var(0)
    y[block] = (x[block] - mean) / np.sqrt(var + eps)
    means.append(mean)
    vars_.append(var)
  return y, np.mean(means, 0), np.mean(vars_, 0)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("stats_rows", ["all", "unlabelled", "labelled_anomalies"])
def test_mask_restricts_the_statistics_to_the_selected_rows(stats_rows, groups):
  rng = np.random.default_rng(0)
  x = (rng.normal(size=(8, 3)) * [1.0, 4.0, 0.2] + [0.0, 3.0, -1.0]).astype(np.float32)
  x[SEMI == 1] += 5.0  # anomalies far away: the choice of rows changes every statistic
  policy = NormPolicy(stats_rows=stats_rows, sync=groups == 1, groups=groups)
  module = Norm(policy, epsilon=1e-5, affine=False, momentum=0.9)
  variables = module.init(jax.random.key(0), x, train=False)
  y, updates = module.apply(variables, x, train=True, mutable=["batch_stats"],
                            mask=stats_mask(policy, jnp.asarray(SEMI)))
  rows = {"all": np.ones(8, bool), "unlabelled": SEMI == 0,
          "labelled_anomalies": SEMI == 1}[stats_rows]
  expected_y, mean, var = _numpy_norm(x, rows, groups, 1e-5)
  np.testing.assert_allclose(y, expected_y, rtol=1e-4, atol=1e-4)
  stats = updates["batch_stats"]["BatchNorm_0"]
  np.testing.assert_allclose(stats["mean"], 0.1 * mean, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * var, rtol=1e-4, atol=1e-5)
  if stats_rows != "all":  # and it really differs from the unmasked statistics
    assert not np.allclose(y, _numpy_norm(x, np.ones(8, bool), groups, 1e-5)[0], atol=1e-2)


def test_mask_without_selected_rows_falls_back_to_all_rows():
  x = np.random.default_rng(1).normal(size=(6, 2)).astype(np.float32)
  policy = NormPolicy(stats_rows="labelled_anomalies")
  mask = stats_mask(policy, jnp.zeros(6, jnp.int32))
  module = Norm(policy, epsilon=1e-5, affine=False)
  y, _ = module.apply(module.init(jax.random.key(0), x, train=False), x, train=True,
                      mutable=["batch_stats"], mask=mask)
  np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), atol=1e-4)


@pytest.mark.parametrize("method_name", ["devnet", "deepsad"])
def test_method_threads_the_mask_into_its_batch_statistics(method_name):
  """The first BatchNorm's new running mean after one loss evaluation is the momentum
  update with the mean over the unlabelled rows only (numpy on the layer's input)."""
  x, _, semi = blobs()
  config = _config(method_name, anomaly_only=True, **{"norm.stats_rows": "unlabelled"})
  method = methods.build(config, x.shape[1], x.shape[0])
  data = jax.device_put(methods.make_train_data(x, semi))
  variables, extras = method.init(*engine.seed_keys(0)[:2], data)
  rows = np.r_[0:4, 100:128]  # the 4 labelled anomalies + 28 unlabelled rows
  batch = {"x": jnp.asarray(x[rows]), "semi_labels": jnp.asarray(semi[rows])}
  _, _, new_stats = method.per_example_loss(variables["params"], variables["batch_stats"],
                                            extras, batch, jax.random.key(0))
  p = variables["params"]
  if method_name == "devnet":
    h = np.maximum(x[rows] @ p["hidden_0"]["kernel"] + p["hidden_0"]["bias"], 0)
    momentum, first = 0.99, new_stats["norm"]["BatchNorm_0"]
  else:
    h = x[rows] @ p["Dense_0"]["kernel"]
    momentum, first = 0.9, new_stats["Norm_0"]["BatchNorm_0"]
  unlabelled = semi[rows] == 0
  np.testing.assert_allclose(first["mean"], (1 - momentum) * h[unlabelled].mean(0),
                             rtol=1e-4, atol=1e-6)
  assert not np.allclose(first["mean"], (1 - momentum) * h.mean(0), rtol=1e-3)


# ------------------------------------------------------------- evaluation options


def _devnet_numpy_scores(params, mean, var, x, eps=1e-3):
  h = np.maximum(x @ params["hidden_0"]["kernel"] + params["hidden_0"]["bias"], 0)
  bn = params["norm"]["BatchNorm_0"]
  z = (h - mean) / np.sqrt(var + eps) * bn["scale"] + bn["bias"]
  return (z @ params["score"]["kernel"] + params["score"]["bias"])[:, 0], h


def test_run_momentum_moves_the_statistics_unless_the_policy_fixes_one():
  """Inside `run_momentum(m)` a train-mode BatchNorm blends with m (two calls: twice, in
  order); a policy with its own momentum (the recomputation model's 0) ignores it."""
  x1 = jax.random.normal(jax.random.key(1), (16, 3))
  x2 = 2.0 + jax.random.normal(jax.random.key(2), (16, 3))

  def stats(policy, run):
    module = Norm(policy)
    variables = module.init(jax.random.key(0), x1, train=True)
    old = variables["batch_stats"]["BatchNorm_0"]["mean"] + 0.5
    variables = {**variables, "batch_stats": {"BatchNorm_0": {
        "mean": old, "var": variables["batch_stats"]["BatchNorm_0"]["var"]}}}

    def twice(v):
      with norm.run_momentum(run):
        _, v1 = module.apply(v, x1, train=True, mutable=["batch_stats"])
        _, v2 = module.apply({**v, **v1}, x2, train=True, mutable=["batch_stats"])
      return v2["batch_stats"]["BatchNorm_0"]["mean"]
    return old, jax.jit(twice)(variables)

  old, mean = stats(NormPolicy(), jnp.float32(0.25))
  expected = 0.25 * (0.25 * old + 0.75 * jnp.mean(x1, 0)) + 0.75 * jnp.mean(x2, 0)
  np.testing.assert_allclose(mean, expected, rtol=1e-5, atol=1e-6)
  _, mean = stats(NormPolicy(momentum=0.0), jnp.float32(0.25))
  np.testing.assert_allclose(mean, jnp.mean(x2, 0), rtol=1e-5, atol=1e-6)


def test_each_evaluation_option_computes_what_it_says():
  """DevNet+AnoOnly (BN before the head, best-epoch selection): 'running' scores with the
  kept epoch's running statistics, 'batch' with the scored rows' own statistics,
  'recomputed' with the exact statistics of the unlabelled training rows."""
  x, _, semi = blobs()
  base = dict(anomaly_only=True, preset="anoonly_paper")
  method, data, state = _fit(_config("devnet", **base), x, semi, seeds=(0, 1))
  x_test = np.random.default_rng(5).normal(size=(40, x.shape[1])).astype(np.float32) + 1.0
  x_test2 = np.stack([x_test, x_test])
  params, batch_stats = jax.tree.map(lambda a: np.asarray(a[1]), state.final_variables())
  assert state.best  # DevNet keeps the best epoch: its statistics are the ones used
  running = _bn_stats(batch_stats)[("norm", "BatchNorm_0")]

  s_running = engine.score(method, state, x_test2)[1]
  expected, h_test = _devnet_numpy_scores(params, *running, x_test)
  np.testing.assert_allclose(s_running, expected, rtol=1e-4, atol=1e-4)

  m_batch = methods.build(_config("devnet", **base, **{"norm.eval_stats": "batch"}),
                          x.shape[1], x.shape[0])
  s_batch = engine.score(m_batch, state, x_test2)[1]
  expected_batch, _ = _devnet_numpy_scores(params, h_test.mean(0), h_test.var(0), x_test)
  np.testing.assert_allclose(s_batch, expected_batch, rtol=1e-4, atol=1e-4)

  m_rec = methods.build(_config("devnet", **base, **{"norm.eval_stats": "recomputed"}),
                        x.shape[1], x.shape[0])
  rec_state = engine.recompute_batch_stats(m_rec, state, data)
  _, h_train = _devnet_numpy_scores(params, 0.0, 1.0, x[semi == 0])
  rec = _bn_stats(jax.tree.map(lambda a: a[1], rec_state.final_variables()[1]))
  np.testing.assert_allclose(rec[("norm", "BatchNorm_0")][0], h_train.mean(0), rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(rec[("norm", "BatchNorm_0")][1], h_train.var(0), rtol=1e-4,
                             atol=1e-5)
  # only the scored (best-epoch) statistics change; parameters do not
  assert _bn_stats(rec_state.batch_stats).keys() == _bn_stats(state.batch_stats).keys()
  np.testing.assert_array_equal(rec_state.batch_stats["norm"]["BatchNorm_0"]["mean"],
                                state.batch_stats["norm"]["BatchNorm_0"]["mean"])
  for a, b in zip(jax.tree.leaves(rec_state.final_variables()[0]),
                  jax.tree.leaves(state.final_variables()[0])):
    np.testing.assert_array_equal(a, b)
  s_rec = engine.score(m_rec, rec_state, x_test2)[1]
  expected_rec, _ = _devnet_numpy_scores(params, h_train.mean(0), h_train.var(0), x_test)
  np.testing.assert_allclose(s_rec, expected_rec, rtol=1e-4, atol=1e-4)
  # three different statistics, three different score vectors
  assert not np.allclose(s_running, s_batch, atol=1e-3)
  assert not np.allclose(s_running, s_rec, atol=1e-3)


@pytest.mark.parametrize("sync", [True, False])
def test_recomputed_statistics_are_exact_through_stacked_batch_norms(sync):
  """Deep SAD has two BN layers: after recomputation, an eval-mode pass over the unlabelled
  rows equals a full-batch train-mode pass over them (every layer's statistics are those
  of its input under the earlier recomputed layers), and the first layer's statistics
  are numpy's. Per-device training statistics (sync=False) still recompute globally."""
  x, _, semi = blobs()
  overrides = {"norm.eval_stats": "recomputed", "norm.sync": sync, "norm.stat_groups": 2}
  method, data, state = _fit(_config("deepsad", **overrides), x, semi)
  rec = engine.recompute_batch_stats(method, state, data)
  params = jax.tree.map(lambda a: a[0], rec.params)
  stats = jax.tree.map(lambda a: a[0], rec.batch_stats)
  x_u = x[semi == 0]
  first = x_u @ np.asarray(params["Dense_0"]["kernel"])
  np.testing.assert_allclose(stats["Norm_0"]["BatchNorm_0"]["mean"], first.mean(0),
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(stats["Norm_0"]["BatchNorm_0"]["var"], first.var(0),
                             rtol=1e-4, atol=1e-5)
  from ssadjax.models import MLPEncoder
  from ssadjax.norm import NormPolicy as P
  encoder = MLPEncoder(hidden_dims=(16, 8), rep_dim=4, norm=P())
  variables = {"params": params, "batch_stats": stats}
  eval_out = encoder.apply(variables, x_u, train=False)
  train_out, _ = encoder.apply(variables, x_u, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(eval_out, train_out, rtol=1e-3, atol=1e-4)
  before = {"params": params, "batch_stats": jax.tree.map(lambda a: a[0], state.batch_stats)}
  assert not np.allclose(encoder.apply(before, x_u, train=False), train_out, atol=1e-3)


def test_recomputed_statistics_of_bgad_anoonly_flow_norm_are_numpys():
  """BGAD+AnoOnly's inserted flow norm sits on the input: recomputed, its running mean and
  (biased) variance are numpy's over the unlabelled training rows, and the recomputed
  statistics change the scores (the norm's log-determinant and the normalised inputs)."""
  x, _, semi = _blobs_for("bgad")
  config = _config("bgad", anomaly_only=True, **{"norm.eval_stats": "recomputed"})
  method, data, state = _fit(config, x, semi)
  rec_state = engine.recompute_batch_stats(method, state, data)
  (mean, var), = _bn_stats(jax.tree.map(lambda a: a[0], rec_state.batch_stats)).values()
  np.testing.assert_allclose(mean, x[semi == 0].mean(0), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(var, x[semi == 0].var(0), rtol=1e-4, atol=1e-5)
  (trained_mean, _), = _bn_stats(jax.tree.map(lambda a: a[0], state.batch_stats)).values()
  assert not np.allclose(trained_mean, mean, atol=1e-4)  # running averages of batches
  scores, rec_scores = (engine.score(method, s, x[None])[0] for s in (state, rec_state))
  assert np.all(np.isfinite(rec_scores)) and not np.allclose(scores, rec_scores, atol=1e-4)


def test_recomputed_is_a_no_op_without_batch_norm():
  x, _, semi = blobs()
  method, data, state = _fit(_config("devnet", **{"norm.eval_stats": "recomputed"}), x, semi)
  assert state.batch_stats == {}  # the DevNet baseline has no BN
  assert engine.recompute_batch_stats(method, state, data) is state


# --------------------------------------------------- placement, affine, defaults

# Number of BatchNorm layers per (method, anomaly_only, placement); DevNet hidden_dims
# (20,), PReNet (20,), FEAWAD's score generator has two hidden layers, Deep SAD (16, 8).
PLACEMENT_TABLE = {
    ("deepsad", False): {"reference": 2, "last_hidden": 1, "all_hidden": 2, "none": 0},
    ("deepsad", True): {"reference": 2, "last_hidden": 1, "all_hidden": 2, "none": 0},
    ("devnet", False): {"reference": 0, "last_hidden": 1, "all_hidden": 1, "none": 0},
    ("devnet", True): {"reference": 1, "last_hidden": 1, "all_hidden": 1, "none": 0},
    ("prenet", False): {"reference": 0, "last_hidden": 1, "all_hidden": 1, "none": 0},
    ("prenet", True): {"reference": 1, "last_hidden": 1, "all_hidden": 1, "none": 0},
    ("feawad", False): {"reference": 0, "last_hidden": 1, "all_hidden": 2, "none": 0},
    ("feawad", True): {"reference": 1, "last_hidden": 1, "all_hidden": 2, "none": 0},
}


def _init_variables(config, x, semi):
  method = methods.build(config, x.shape[1], x.shape[0])
  data = jax.device_put(methods.make_train_data(x, semi))
  return jax.eval_shape(lambda d: method.init(*engine.seed_keys(0)[:2], d)[0], data)


@pytest.mark.parametrize("key", sorted(PLACEMENT_TABLE))
def test_placement_puts_batch_norms_where_it_says(key):
  method_name, anomaly_only = key
  x, _, semi = blobs()
  for placement, count in PLACEMENT_TABLE[key].items():
    config = _config(method_name, anomaly_only=anomaly_only,
                     **{"norm.placement": placement, "feawad.pretrain_epochs": 0})
    variables = _init_variables(config, x, semi)
    assert len(_bn_stats(variables.get("batch_stats", {}))) == count, placement


@pytest.mark.parametrize("placement, names", [
    ("reference", ["Norm_0", "Norm_1"]), ("all_hidden", ["Norm_0", "Norm_1"]),
    ("last_hidden", ["Norm_0"]), ("none", [])])
def test_lenet_encoder_honours_the_placement(placement, names):
  """Deep SAD's image encoder: a norm after every conv block by reference; last_hidden
  keeps only the last block's (its statistics have that block's 4 channels)."""
  from ssadjax.models.lenet import LeNetEncoder
  encoder = LeNetEncoder(image_shape=(8, 8, 1), channels=(8, 4), rep_dim=6,
                         norm=NormPolicy(placement=placement, affine=True))
  variables = jax.eval_shape(lambda: encoder.init(jax.random.key(0), jnp.zeros((5, 64)),
                                                  train=True))
  stats = variables.get("batch_stats", {})
  assert sorted(stats) == names
  channels = {"Norm_0": (8,), "Norm_1": (4,)} if len(names) == 2 else {"Norm_0": (4,)}
  for name in names:  # last_hidden: the one norm sits on the last (4-channel) block
    assert stats[name]["BatchNorm_0"]["mean"].shape == channels[name]
    assert "scale" in variables["params"][name]["BatchNorm_0"]  # affine forced on


def test_reference_placement_keeps_the_reference_variable_names():
  """Defaults did not move: checkpoints of earlier runs still restore."""
  x, _, semi = blobs()
  names = lambda cfg: sorted(_bn_stats(_init_variables(cfg, x, semi).get("batch_stats", {})))
  assert names(_config("deepsad")) == [("Norm_0", "BatchNorm_0"), ("Norm_1", "BatchNorm_0")]
  assert names(_config("devnet", anomaly_only=True)) == [("norm", "BatchNorm_0")]
  assert names(_config("prenet", anomaly_only=True)) == [("features", "norm", "BatchNorm_0")]
  assert names(_config("feawad", preset="anoonly_paper",
                       **{"feawad.pretrain_epochs": 0})) == [("norm", "BatchNorm_0")]


@pytest.mark.parametrize("method_name, reference_affine", [("deepsad", False),
                                                          ("devnet", True)])
def test_affine_follows_the_reference_unless_forced(method_name, reference_affine):
  x, _, semi = blobs()
  for affine in (None, True, False):
    config = _config(method_name, anomaly_only=True, **{"norm.affine": affine})
    params = _init_variables(config, x, semi)["params"]
    leaves = [tuple(getattr(p, "key", "") for p in path)
              for path, _ in jax.tree_util.tree_leaves_with_path(params)]
    has_scale = any("BatchNorm_0" in k and k[-1] == "scale" for k in leaves)
    assert has_scale == (reference_affine if affine is None else affine)


def test_policy_rejects_unknown_choices_and_unsupported_placements():
  with pytest.raises(ValueError, match="placement"):
    NormPolicy(placement="everywhere")
  with pytest.raises(ValueError, match="eval_stats"):
    NormPolicy(eval_stats="test")
  x, _, semi = blobs()
  with pytest.raises(ValueError, match="not available for bgad"):
    methods.build(_config("bgad", **{"norm.placement": "all_hidden"}), x.shape[1], x.shape[0])


# ------------------------------------------- every method x policies x AnoOnly

COMPOSITE = {"norm.stats_rows": "unlabelled", "norm.eval_stats": "recomputed",
             "norm.placement": "all_hidden", "norm.affine": True, "norm.momentum": 0.5,
             "norm.sync": False, "norm.stat_groups": 2}
POLICIES = {"composite": COMPOSITE, "layer": {"norm.kind": "layer"},
            "none": {"norm.kind": "none"}}
# Combinations a method refuses by design, with the error it gives.
REFUSED = {
    ("deepsvdd", True): "trains without labels",
    ("funad", True): "no AnoOnly variant",
    ("clad", True): "no AnoOnly variant",
    ("clad", "composite"): "keep their reference norms",  # placement: its CNN's own
    ("clad", "composite", True): "no AnoOnly variant",
    ("funad", "composite"): "not available for funad",  # no norm to place
    ("bgad", "composite"): "not available for bgad",  # the flow's norm is the input BN only
    ("bgad", "layer", True): "synced BatchNorm",  # LayerNorm is not an invertible flow layer
}


def _refusal(method_name, policy, anomaly_only):
  for key in ((method_name, policy, anomaly_only), (method_name, policy),
              (method_name, anomaly_only)):  # the most specific entry wins
    if key in REFUSED:
      return REFUSED[key]
  return None


@pytest.mark.parametrize("anomaly_only", [False, True])
@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("method_name", [
    pytest.param(m, marks=pytest.mark.slow) if m == "clad" else m  # CLAD: ~20 s a fit
    for m in sorted(methods.FACTORIES)])
def test_policies_compose_with_every_method_and_anoonly(method_name, policy, anomaly_only):
  x, _, semi = _blobs_for(method_name)
  config = _config(method_name, anomaly_only=anomaly_only, **POLICIES[policy])
  refusal = _refusal(method_name, policy, anomaly_only)
  if refusal is not None:
    with pytest.raises(ValueError, match=refusal):
      _fit(config, x, semi)
    return
  method, data, state = _fit(config, x, semi)
  if config.norm.eval_stats == "recomputed":
    state = engine.recompute_batch_stats(method, state, data)
  scores = engine.score(method, state, x[None], data=data)
  assert scores.shape == (1, x.shape[0]) and np.all(np.isfinite(scores))
  has_bn = any(getattr(path[-1], "key", None) == "mean"
               for path, _ in jax.tree_util.tree_leaves_with_path(state.batch_stats))
  if policy != "composite":
    assert not has_bn  # controls: no cross-row statistics anywhere
  else:
    # all_hidden gives every BN-capable network a BN in both variants; BGAD's flow only
    # has AnoOnly's, FUN-AD none.
    assert has_bn == (method_name not in ("funad", "bgad") or
                      (method_name == "bgad" and anomaly_only))


# ----------------------------------------------------- the score-sum identity


def _scorer_sums(kind, stats_rows, seed):
  """Train-mode DevNet scorer with BN (or LayerNorm) before the head, random parameters
  and random batches: per batch, the sum of the scores of the rows that feed the
  statistics, and w . beta + b."""
  policy = NormPolicy(kind=kind, stats_rows=stats_rows)
  model = DevNetScorer(hidden_dims=(20,), insert_norm=True, norm=policy)
  rng = np.random.default_rng(seed)
  x0 = jnp.ones((4, 5))
  variables = model.init(jax.random.key(seed), x0, train=False)
  variables = jax.tree.map(lambda a: a + 0.5 * rng.normal(size=a.shape).astype(np.float32),
                           variables)  # non-trivial scale and shift
  params = variables["params"]
  sums, counts = [], []
  for _ in range(5):
    x = rng.normal(size=(32, 5)).astype(np.float32) * rng.uniform(0.5, 3.0)
    semi = (rng.uniform(size=32) < 0.3).astype(np.int32)
    scores, _ = model.apply(variables, x, train=True, mutable=["batch_stats"],
                            norm_mask=stats_mask(policy, jnp.asarray(semi)))
    rows = semi == 0 if stats_rows == "unlabelled" else np.ones(32, bool)
    sums.append(float(np.sum(np.asarray(scores)[rows])))
    counts.append(int(rows.sum()))
  beta = params["norm"]["LayerNorm_0" if kind == "layer" else "BatchNorm_0"]["bias"]
  constant = float(np.dot(params["score"]["kernel"][:, 0], beta) + params["score"]["bias"][0])
  return np.asarray(sums), np.asarray(counts), constant


@pytest.mark.parametrize("stats_rows", ["all", "unlabelled"])
def test_score_sum_identity_with_batch_norm_before_the_head(stats_rows):
  """methods.md 3.3: sum_i phi(x_i) = B (w . beta + b) over the rows that feed the batch
  statistics, whatever the inputs."""
  sums, counts, constant = _scorer_sums("batch", stats_rows, seed=0)
  np.testing.assert_allclose(sums, counts * constant, rtol=1e-3, atol=1e-3)


def test_score_sum_identity_fails_with_layer_norm():
  sums, counts, constant = _scorer_sums("layer", "all", seed=0)
  assert np.max(np.abs(sums - counts * constant)) > 1.0


# --------------------------------------------------------------- grid presets


def test_grid_presets_expand_to_several_fields():
  config = _config()
  config.grid_presets.policy = {"ref": "", "ln": "norm.kind=layer,norm.affine=False",
                                "deep": "deepsad.hidden_dims=(8, 4),norm.placement=none"}
  assert grid.preset_overrides(config, "@policy", "ref") == []
  assert grid.preset_overrides(config, "@policy", "ln") == [("norm.kind", "layer"),
                                                                   ("norm.affine", False)]
  assert grid.preset_overrides(config, "@policy", "deep") == [
      ("deepsad.hidden_dims", (8, 4)), ("norm.placement", "none")]
  assert grid.preset_overrides(config, "la", 0.5) == [("la", 0.5)]
  with pytest.raises(ValueError, match="not defined in grid_presets.policy"):
    grid.preset_overrides(config, "@policy", "bn")


def test_grid_with_a_preset_runs_and_writes_policy_columns(tmp_path):
  config = _config("devnet", anomaly_only=True, num_seeds=2)
  config.grid_presets.policy = {"ref": "", "ln": "norm.kind=layer"}
  config.grid = "@policy=ref|ln"
  config.checkpoint.enabled = False
  runner.run_grid(config, tmp_path)
  with open(tmp_path / "results.csv") as f:
    rows = list(csv.DictReader(f))
  assert [r["policy"] for r in rows] == ["ref", "ref", "ln", "ln"]
  cells = sorted(p.name for p in (tmp_path / "cells").iterdir())
  assert cells == ["@policy=ln", "@policy=ref"]
  import json
  cfg = json.loads((tmp_path / "cells" / "@policy=ln" / "config.json").read_text())
  assert cfg["norm"]["kind"] == "layer"


# ------------------------------------------------------------------------ plots


def _fake_results(path, column, values):
  rng = np.random.default_rng(0)
  fields = list(workdir.RESULT_FIELDS) + ([column] if column not in
                                             workdir.RESULT_FIELDS else [])
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    for dataset in ("6_cardio", "CV_by_ResNet18/SVHN_0"):
      for method in ("deepsad", "devnet"):
        for ao in (False, True):
          for v in values:
            for seed in (1, 2):
              writer.writerow({"method": method, "anomaly_only": ao, "dataset": dataset,
                               "la": 0.1, "seed": seed, "auroc": rng.uniform(0.6, 0.9),
                               "auprc": 0.5, "train_seconds": 0, "compile_seconds": 0,
                               "steps": 1, "devices": 1, column: v})


def test_plots_draw_bars_and_knob_curves_and_extend_the_report(tmp_path):
  pytest.importorskip("matplotlib")  # the 'report' extra (also in 'test')
  from experiments import plots
  assert plots.family("6_cardio") == "Classical"
  assert plots.family("Classical/38_thyroid") == "Classical"
  assert plots.family("CV_by_ResNet18/MVTec-AD_bottle") == "CV"
  assert plots.family("20news_3") == "NLP"
  assert plots.family("synthetic") == "synthetic"
  _fake_results(tmp_path / "results.csv", "policy", ["ref", "layer"])
  (tmp_path / "report.md").write_text("runner table\n")
  png = plots.make(tmp_path, "policy_bars")
  assert png.stat().st_size > 1000
  report = (tmp_path / "report.md").read_text()
  assert report.startswith("runner table") and "| ref |" in report and "Classical" in report
  plots.make(tmp_path, "policy_bars")  # re-running replaces its section
  assert (tmp_path / "report.md").read_text().count("<!-- plot policy_bars -->") == 1
  knob_dir = tmp_path / "knob"
  knob_dir.mkdir()
  _fake_results(knob_dir / "results.csv", "data.label_contamination", [0.0, 0.1])
  assert plots.make(knob_dir, "knob:data.label_contamination").exists()
  with pytest.raises(ValueError, match="no column"):
    plots.make(knob_dir, "knob:data.noise_ratio")


# -------------------------------------------------------- configs end to end


def test_robustness_and_ablation_configs_build_valid_grids():
  from experiments.configs import bn_ablation, robustness
  for arg in ("smoke", "quick", "classical", "full"):
    config = bn_ablation.get_config(arg)
    for cell in grid.parse_grid(config.grid):
      for key, value in cell.items():
        for dotted, v in grid.preset_overrides(config, key, value):
          grid.set_field(ml_collections.ConfigDict(config.to_dict()), dotted, v)
  for knob in robustness.KNOBS:
    for variant in ("smoke", "quick", "full"):
      config = robustness.get_config(f"{knob},{variant}")
      assert config.plot.startswith("knob:")
      cells = grid.parse_grid(config.grid)
      assert len({str(c[config.plot[5:]]) for c in cells}) >= 2
      for cell in cells:
        cc = ml_collections.ConfigDict(config.to_dict())
        for key, value in cell.items():
          grid.set_field(cc, key, value)


@pytest.mark.slow
def test_bn_ablation_smoke_grid_runs_end_to_end(tmp_path):
  pytest.importorskip("matplotlib")
  from experiments import plots
  from experiments.configs import bn_ablation
  config = bn_ablation.get_config("smoke")
  runner.train_and_evaluate(config, tmp_path)
  png = plots.make(tmp_path, config.plot)
  with open(tmp_path / "results.csv") as f:
    rows = list(csv.DictReader(f))
  cells = grid.parse_grid(config.grid)
  assert len(rows) == len(cells) * config.num_seeds
  assert {r["policy"] for r in rows} == {"ref", "eval_recomp", "layer", "none"}
  assert all(0.0 <= float(r["auroc"]) <= 1.0 for r in rows)
  assert png.exists() and "| eval_recomp |" in (tmp_path / "report.md").read_text()
