"""DevNet: deviation loss, balanced sampler, Keras optimiser pieces, model, method, end to end."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.metrics import roc_auc_score

from experiments.configs import adbench as adbench_config
from ssadjax import hparams, losses, methods, optim
from experiments import runner
from ssadjax.host import engine
from ssadjax.methods import anoonly, devnet, samplers
from ssadjax.norm import NormPolicy
from ssadjax.models.devnet import DevNetScorer
from tests.helpers import blobs, tiny_config

# --------------------------------------------------------------------------- loss

SCORES = jnp.array([0.5, -2.0, 3.0, 13.0])
SEMI = jnp.array([0, 0, 1, 1])


@pytest.mark.parametrize("term, expected", [
    # dev = (s - 0.5) / 2 = [0, -1.25, 1.25, 6.25]
    ("hinge", [0.0, 1.25, 3.75, 0.0]),
    ("abs", [0.0, 1.25, 3.75, 1.25]),
    ("linear", [0.0, 1.25, 3.75, -1.25]),
])
def test_deviation_loss_hand_computed(term, expected):
  out = losses.deviation_loss(SCORES, SEMI, margin=5.0, reference_mean=0.5,
                              reference_std=2.0, anomaly_term=term)
  np.testing.assert_allclose(out, expected, atol=1e-6)


def test_deviation_loss_raw_score_and_finite_gradients():
  # (0, 1) is AnoOnly's dev := phi.
  out = losses.deviation_loss(SCORES, SEMI, anomaly_term="abs")
  np.testing.assert_allclose(out, [0.5, 2.0, 2.0, 8.0])
  for term in losses.DEVIATION_ANOMALY_TERMS:
    grads = jax.grad(lambda s: jnp.sum(losses.deviation_loss(
        s, SEMI, reference_mean=0.1, reference_std=0.9, anomaly_term=term)))(SCORES)
    assert np.all(np.isfinite(grads))
  # d/ds of a linear anomaly term is -1/std everywhere, also above the margin.
  g = jax.grad(lambda s: jnp.sum(losses.deviation_loss(
      s, SEMI, reference_std=2.0, anomaly_term="linear")))(SCORES)
  np.testing.assert_allclose(g[2:], [-0.5, -0.5])


def test_deviation_loss_rejects_unknown_term():
  with pytest.raises(ValueError, match="anomaly_term"):
    losses.deviation_loss(SCORES, SEMI, anomaly_term="square")


# --------------------------------------------------------------------------- sampler


def _pool_data(n_unlabelled=50, n_anomalies=7, dim=3):
  x, _, semi = blobs(n=n_unlabelled + n_anomalies, d=dim, n_anomalies=n_anomalies,
                     n_labelled=n_anomalies)
  x[:, 0] = np.arange(x.shape[0])  # row id in feature 0
  return methods.make_train_data(x, semi)


@pytest.mark.parametrize("batch_size", [64, 9])
def test_balanced_sampler_composition(batch_size):
  data = _pool_data()
  sampler = samplers.balanced_sampler(batch_size)
  draw = jax.jit(lambda k: sampler.batch(sampler.begin_epoch(k, data), 0, k, data))
  seen_anomalies = set()
  for seed in range(30):
    batch = jax.device_get(draw(jax.random.key(seed)))
    rows, semi = batch["rows"], batch["semi_labels"]
    assert batch["x"].shape == (batch_size, 3)
    np.testing.assert_array_equal(batch["x"][:, 0], rows)
    # Orientation: even positions unlabelled, odd positions labelled anomalies.
    np.testing.assert_array_equal(semi, np.arange(batch_size) % 2)
    assert np.sum(semi == 0) == (batch_size + 1) // 2 and np.sum(semi == 1) == batch_size // 2
    assert set(rows[0::2]) <= set(np.asarray(data.unlabelled_index))
    assert set(rows[1::2]) <= set(np.asarray(data.anomaly_index))
    np.testing.assert_array_equal(data.semi_labels[rows], semi)
    seen_anomalies |= set(rows[1::2].tolist())
  # Uniform with replacement over the pool: every labelled anomaly shows up.
  assert seen_anomalies == set(np.asarray(data.anomaly_index).tolist())


def test_balanced_sampler_draws_fresh_batches():
  data = _pool_data()
  sampler = samplers.balanced_sampler(32)
  a = sampler.batch((), 0, jax.random.key(0), data)["rows"]
  b = sampler.batch((), 1, jax.random.key(1), data)["rows"]
  assert not np.array_equal(a, b)


# --------------------------------------------------------------------------- optimiser


def test_clip_by_norm_is_per_tensor():
  grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.3, 0.4])}
  tx = optim.clip_by_norm_per_tensor(1.0)
  out, _ = tx.update(grads, tx.init(grads))
  np.testing.assert_allclose(out["a"], [0.6, 0.8], rtol=1e-6)
  np.testing.assert_allclose(out["b"], [0.3, 0.4], rtol=1e-6)  # below 1: untouched


def test_keras_rmsprop_step():
  params = {"w": jnp.array([1.0])}
  grads = {"w": jnp.array([2.0])}
  tx = devnet.keras_rmsprop(0.1, rho=0.9, eps=1e-7, clipnorm=0.0)
  upd, _ = tx.update(grads, tx.init(params), params)
  # ms = 0.1 * 4; step = lr * g / (sqrt(ms) + eps), eps outside the root
  np.testing.assert_allclose(upd["w"], [-0.1 * 2.0 / (np.sqrt(0.4) + 1e-7)], rtol=1e-6)
  tx = devnet.keras_rmsprop(0.1, rho=0.9, eps=1e-7, clipnorm=1.0)
  upd, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(upd["w"], [-0.1 * 1.0 / (np.sqrt(0.1) + 1e-7)], rtol=1e-6)


# --------------------------------------------------------------------------- model


def test_model_init_and_norm_placement():
  x = jnp.ones((4, 7))
  variables = DevNetScorer().init(jax.random.key(0), x, train=False)
  params = variables["params"]
  assert set(params) == {"hidden_0", "score"} and "batch_stats" not in variables
  limit = np.sqrt(6.0 / (7 + 20))  # Glorot uniform
  assert np.all(np.abs(params["hidden_0"]["kernel"]) <= limit)
  assert np.abs(params["hidden_0"]["kernel"]).max() > 0.5 * limit
  assert np.all(params["hidden_0"]["bias"] == 0) and np.all(params["score"]["bias"] == 0)
  deep = DevNetScorer(hidden_dims=(1000, 250, 20), insert_norm=True).init(
      jax.random.key(0), x, train=False)
  assert set(deep["params"]) == {"hidden_0", "hidden_1", "hidden_2", "norm", "score"}
  assert deep["batch_stats"]["norm"]["BatchNorm_0"]["mean"].shape == (20,)
  out = DevNetScorer().apply(variables, jnp.ones((5, 7)), train=False)
  assert out.shape == (5,)


def test_l2_on_hidden_kernels_only_and_anoonly_scaling():
  cfg = tiny_config()
  hp, policy = hparams.devnet.resolve(cfg), NormPolicy.from_config(cfg.norm)
  method = devnet.make_method(hp, policy, 7, 100)
  variables = DevNetScorer().init(jax.random.key(0), jnp.ones((2, 7)), train=False)
  params = variables["params"]
  expected = 0.01 * float(jnp.sum(params["hidden_0"]["kernel"] ** 2))
  np.testing.assert_allclose(method.regularizer(params, {"hparams": method.run_hparams}),
                             expected, rtol=1e-6)
  # The factory never learns that it runs under AnoOnly: the transformation applies
  # DevNet's declared changes to its hyper-parameters.
  make_anoonly = anoonly.anomaly_only(devnet.make_method, hparams.devnet.anoonly_changes)
  method = make_anoonly(hp, policy, 7, 100)
  # anoonly.py averages over the 256 anomaly rows of 512: 2x the Keras whole-batch mean.
  np.testing.assert_allclose(method.regularizer(params, {"hparams": method.run_hparams}),
                             2 * expected, rtol=1e-6)
  method = make_anoonly({**hp, "anoonly_l2_batch_mean": False}, policy, 7, 100)
  np.testing.assert_allclose(method.regularizer(params, {"hparams": method.run_hparams}),
                             expected, rtol=1e-6)


def test_anoonly_uses_the_declared_anomaly_term():
  cfg = tiny_config()
  hp, policy = hparams.devnet.resolve(cfg), NormPolicy.from_config(cfg.norm)
  assert (hp["anomaly_term"], hp["anoonly_anomaly_term"]) == ("hinge", "linear")
  assert hparams.devnet.anoonly_changes(hp)["anomaly_term"] == "linear"
  data = jax.tree.map(jnp.asarray, _pool_data(dim=7))
  # A batch of anomalies far above the margin: the hinge is 0, the linear term negative.
  batch = {"x": jnp.asarray(data.x[:4]), "semi_labels": jnp.ones(4, jnp.int32)}
  for make, positive in ((devnet.make_method, False),
                         (anoonly.anomaly_only(devnet.make_method, hparams.devnet.anoonly_changes),
                          True)):
    method = make(hp, policy, 7, 100)
    variables, extras = method.init(jax.random.key(0), jax.random.key(1), data)
    params = jax.tree.map(lambda a: a, variables["params"])
    params["score"]["bias"] = params["score"]["bias"] + 100.0
    losses_, _, _ = method.per_example_loss(params, variables.get("batch_stats", {}), extras,
                                            batch, None)
    assert bool(jnp.all(losses_ == 0.0)) != positive
    assert bool(jnp.all(losses_ < 0.0)) == positive


def test_presets_resolve_and_overrides_win():
  cfg = tiny_config()
  hp = hparams.resolve_section(cfg.devnet, hparams.devnet.PRESETS, "adbench")
  assert (hp["batch_size"], hp["learning_rate"], hp["clipnorm"]) == (512, 1e-3, 1.0)
  assert hp["anomaly_term"] == "hinge" and hp["use_reference_normalisation"]
  hp = hparams.resolve_section(cfg.devnet, hparams.devnet.PRESETS, "anoonly_paper")
  assert (hp["batch_size"], hp["learning_rate"], hp["clipnorm"]) == (64, 2e-4, 0.0)
  assert hp["anomaly_term"] == "abs" and hp["anoonly_anomaly_term"] == "linear"
  assert not hp["use_reference_normalisation"]
  cfg.devnet.batch_size = 128
  assert hparams.resolve_section(cfg.devnet, hparams.devnet.PRESETS, "anoonly_paper")["batch_size"] == 128


def test_reference_statistics_in_extras():
  cfg = tiny_config()
  cfg.method = "devnet"
  method = methods.build(cfg, 6, 100)
  data = _pool_data(dim=6)
  _, extras = method.init(jax.random.key(0), jax.random.key(1), data)
  draws = jax.random.normal(jax.random.key(1), (5000,))
  np.testing.assert_allclose(extras["reference_mean"], jnp.mean(draws), rtol=1e-6)
  np.testing.assert_allclose(extras["reference_std"], np.std(np.asarray(draws)), rtol=1e-5)
  assert abs(float(extras["reference_mean"])) < 0.05
  assert abs(float(extras["reference_std"]) - 1) < 0.05


# --------------------------------------------------------------------------- method


def _train_and_score(cfg, seed=0):
  x, labels, semi = blobs(seed=seed, n=400, d=6, n_anomalies=40, n_labelled=8)
  data = methods.make_train_data(x, semi)
  method = methods.build(cfg, 6, x.shape[0])
  state, _ = engine.fit(method, engine.stack_data([data]), [seed], chunk_epochs=10)
  scores = engine.score(method, state, x[None])[0]
  return method, state, scores, labels


@pytest.mark.parametrize("anomaly_only, preset", [(False, "adbench"), (True, "anoonly_paper")])
def test_method_scores_and_ranks_toy_data(anomaly_only, preset):
  cfg = tiny_config(anomaly_only=anomaly_only, preset=preset, method="devnet")
  cfg.devnet.num_epochs = 10  # 200 steps: enough for blobs at the presets' learning rates
  cfg.devnet.batch_size = 64
  method, state, scores, labels = _train_and_score(cfg)
  assert method.name == "devnet" + ("+anoonly" if anomaly_only else "")
  assert ("norm" in state.params) == anomaly_only
  assert scores.shape == labels.shape and np.all(np.isfinite(scores))
  assert roc_auc_score(labels, scores) > 0.9
  assert state.best and np.isfinite(np.asarray(state.best["loss"])).all()


# --------------------------------------------------------------------------- end to end


def _cardio_config(adbench_dir, anomaly_only):
  config = adbench_config.get_config()
  config.method = "devnet"
  config.anomaly_only = anomaly_only
  config.data_dir = str(adbench_dir)
  config.num_seeds = 2
  return config


@pytest.mark.slow
@pytest.mark.parametrize("anomaly_only, floor", [(False, 0.90), (True, 0.90)])
def test_cardio_auroc_floor(adbench_dir, tmp_path, anomaly_only, floor):
  # Observed (3 seeds): baseline 0.979, +AnoOnly 0.980; ADBench D10: 98.35.
  results = runner.run_single(_cardio_config(adbench_dir, anomaly_only), tmp_path)
  assert results["steps"] == 1000
  assert results["auroc_mean"] > floor, results["auroc"]
