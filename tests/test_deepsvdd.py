"""Deep SVDD's own recipes: the `deepsvdd_official` and `deepsvdd_adbench` presets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssadjax import hparams, methods
from ssadjax.host import engine
from ssadjax.methods import deepsad
from ssadjax.models import MLPAutoencoder, MLPDecoder, MLPEncoder
from ssadjax.norm import NormPolicy
from tests.helpers import blobs, tiny_config


def _leaves(tree):
  return [np.asarray(a) for a in jax.tree.leaves(tree)]


def _svdd(preset, **overrides):
  # Small budgets: the recipes' structure, not their length, is under test.
  base = {"method": "deepsvdd", "preset": preset, "deepsvdd.batch_size": 32,
          "deepsvdd.num_epochs": 2, "deepsvdd.pretrain_epochs": 3,
          "deepsvdd.pretrain_batch_size": 32}
  if preset == "deepsvdd_adbench":
    base.pop("deepsvdd.pretrain_epochs"), base.pop("deepsvdd.pretrain_batch_size")
  return tiny_config(**{**base, **overrides})


def test_preset_values_resolve_and_explicit_fields_win():
  cfg = tiny_config(method="deepsvdd", preset="deepsvdd_official")
  hp = hparams.deepsvdd.resolve(cfg)
  assert (hp["num_epochs"], hp["batch_size"], hp["learning_rate"], hp["weight_decay"]) == (
      150, 200, 1e-4, 5e-7)
  assert hp["lr_milestones"] == (50,) and not hp["lr_milestone_at_zero"]
  assert hp["pretrain_epochs"] == 150 and hp["pretrain_transfer"]
  cfg.deepsvdd.num_epochs = 7
  assert hparams.deepsvdd.resolve(cfg)["num_epochs"] == 7
  # Under the default preset Deep SVDD is Deep SAD's recipe without labels.
  plain = hparams.deepsvdd.resolve(tiny_config(method="deepsvdd"))
  assert plain["num_epochs"] == 4 and plain["batch_size"] == 32 and plain["pretrain_epochs"] == 0
  with pytest.raises(ValueError, match="method=deepsvdd"):
    methods.build(tiny_config(preset="deepsvdd_official"), 6, 300)


def test_milestone_schedule_drops_after_the_epoch():
  schedule = deepsad.milestone_schedule(1e-4, (50,), steps_per_epoch=3)
  assert float(schedule(0)) == pytest.approx(1e-4)
  assert float(schedule(50 * 3 - 1)) == pytest.approx(1e-4)
  assert float(schedule(50 * 3)) == pytest.approx(1e-5)
  assert deepsad.milestone_schedule(1e-3, (), 3) == 1e-3


def test_official_recipe_initialises_the_encoder_from_the_pretrained_autoencoder():
  x, _, semi = blobs()
  cfg = _svdd("deepsvdd_official")
  method = methods.build(cfg, x.shape[1], x.shape[0])
  data = jax.device_put(methods.make_train_data(x, semi))
  init_key, extras_key, _ = engine.seed_keys(0)
  (stage,) = method.stages
  assert (stage.name, stage.num_epochs) == ("pretrain", 3)
  state = jax.jit(lambda d: engine.initialise(method, init_key, extras_key, d))(data)
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  extras = state.extras

  hp = hparams.deepsvdd.resolve(cfg)
  policy = NormPolicy.from_config(cfg.norm)
  encoder = MLPEncoder(hidden_dims=hp["hidden_dims"], rep_dim=hp["rep_dim"], norm=policy)
  fresh = encoder.init(init_key, data.x[:2], train=False)
  assert not all(np.array_equal(a, b) for a, b in zip(_leaves(fresh), _leaves(variables)))

  # The same autoencoder trained by hand: its encoder is what the method starts from.
  ae = MLPAutoencoder(encoder=encoder, decoder=MLPDecoder(
      hidden_dims=tuple(reversed(hp["hidden_dims"])), out_dim=x.shape[1], norm=policy))
  ae_key, train_key = jax.random.split(extras_key)
  ae_vars = ae.init(ae_key, data.x[:2], train=False)
  ae_vars["params"]["encoder"] = fresh["params"]
  ae_vars["batch_stats"]["encoder"] = fresh["batch_stats"]
  optimizer = deepsad.adam_l2(deepsad.milestone_schedule(1e-4, (50,), x.shape[0] // 32), 5e-4)
  trained = deepsad.pretrain_autoencoder(ae, ae_vars, data, train_key, epochs=3,
                                         batch_size=32, optimizer=optimizer)
  for a, b in zip(_leaves({k: v["encoder"] for k, v in trained.items()}), _leaves(variables)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # c is the pretrained encoder's mean embedding.
  z = encoder.apply(variables, data.x, train=False)
  np.testing.assert_allclose(
      extras["center"], deepsad.center_eps_trick(jnp.mean(z, 0), 0.1), rtol=1e-5)


def test_adbench_recipe_is_pyods_network_and_objective():
  x, _, semi = blobs()
  cfg = _svdd("deepsvdd_adbench")
  method = methods.build(cfg, x.shape[1], x.shape[0])
  data = jax.device_put(methods.make_train_data(x, semi))
  init_key, extras_key, _ = engine.seed_keys(0)
  variables, extras = method.init(init_key, extras_key, data)
  kernels = [v["kernel"] for v in variables["params"].values()]
  assert [k.shape for k in kernels] == [(x.shape[1], 64), (64, 32)]
  assert "batch_stats" not in variables
  np.testing.assert_allclose(extras["shift"], x.mean(0), rtol=1e-4, atol=1e-5)
  # c comes from another random network than the one trained (PyOD builds twice).
  xs = (x - x.mean(0)) / x.std(0)
  z = deepsad.PyODEncoder().apply(variables, xs)
  assert not np.allclose(extras["center"], deepsad.center_eps_trick(z.mean(0), 0.1))
  # Loss = distance + 0.1 * squared activations of both layers; labels are ignored.
  batch = {"x": jnp.asarray(x[:8]), "semi_labels": jnp.ones(8, jnp.int32)}
  run_extras = engine.create_train_state(method, init_key, extras_key, data).extras
  per_example, _, _ = method.per_example_loss(variables["params"], {}, run_extras, batch, None)
  h, out = deepsad.PyODEncoder().apply(variables, xs[:8], return_activations=True)
  expected = (np.sum((out - extras["center"]) ** 2, -1)
              + 0.1 * (np.sum(h ** 2, -1) + np.sum(out ** 2, -1)))
  np.testing.assert_allclose(per_example, expected, rtol=1e-4)
  # Adam at 1e-3 without weight decay: the first update of a unit gradient is -1e-3.
  grads = jax.tree.map(jnp.ones_like, variables["params"])
  updates, _ = method.optimizer.update(grads, method.optimizer.init(variables["params"]),
                                       variables["params"])
  for u in jax.tree.leaves(updates):
    np.testing.assert_allclose(u, -1e-3, rtol=1e-5)
