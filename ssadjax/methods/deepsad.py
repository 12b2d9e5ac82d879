"""Deep SAD (Ruff et al., ICLR 2020) and Deep SVDD (Ruff et al., ICML 2018).

As implemented by ADBench / AnoOnly (methods.md 2.3): bias-free MLP with affine-free
BatchNorm, Adam with L2 added to the gradient, centre c from an eval-mode pass with the
eps trick, score ||phi(x) - c||^2. Deep SVDD is Deep SAD trained without labels.

Reference-behaviour switches (see BUILD_NOTES.md):
* `lr_milestone_at_zero=True`: ADBench's MultiStepLR(milestones=[0]) multiplies the lr
  by 0.1 at construction, so the nominal 1e-3 trains at 1e-4 throughout.
* `pretrain_epochs>0` with `pretrain_transfer=False` trains the autoencoder and then
  discards it, as ADBench / Deep-SAD-PyTorch do through their state-dict key mismatch;
  `pretrain_transfer=True` really initialises the encoder (and c) from it.
"""

import jax
import jax.numpy as jnp
import optax

from ssadjax import data as data_lib
from ssadjax import losses
from ssadjax.methods import base
from ssadjax.models import MLPAutoencoder, MLPDecoder, MLPEncoder
from ssadjax.models import lenet
from ssadjax.norm import NormPolicy, for_recompute, stats_mask


def effective_learning_rate(learning_rate: float, lr_milestone_at_zero: bool) -> float:
  return learning_rate * (0.1 if lr_milestone_at_zero else 1.0)


def adam_l2(learning_rate: float, weight_decay: float) -> optax.GradientTransformation:
  """PyTorch Adam(weight_decay=wd): wd * theta is added to the gradient before the
  moment estimates (L2, not AdamW's decoupled decay)."""
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))


def center_eps_trick(center: jax.Array, eps: float) -> jax.Array:
  """Coordinates with |c_k| < eps move to +-eps (exact zeros stay 0, as the reference)."""
  center = jnp.where((jnp.abs(center) < eps) & (center < 0), -eps, center)
  return jnp.where((jnp.abs(center) < eps) & (center > 0), eps, center)


def _autoencoder_pretrain(ae, ae_variables, data, key, *, epochs, batch_size, optimizer):
  """Trains the autoencoder on all training rows with the MSE of methods.md 2.2."""
  sampler = base.shuffled_sampler(batch_size)
  steps_per_epoch = data.x.shape[0] // batch_size
  params, batch_stats = base.split_variables(ae_variables)
  opt_state = optimizer.init(params)

  def step(carry, i):
    params, batch_stats, opt_state, perm = carry
    batch = sampler.batch(perm, i, None, data)

    def loss_fn(p):
      x_hat, new_bs = base.apply_train(ae, p, batch_stats, batch["x"])
      return jnp.mean(losses.reconstruction_loss(batch["x"], x_hat)), new_bs

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), batch_stats, opt_state, perm), loss

  def epoch(carry, epoch_key):
    params, batch_stats, opt_state = carry
    perm = sampler.begin_epoch(epoch_key, data)
    (params, batch_stats, opt_state, _), loss = jax.lax.scan(
        step, (params, batch_stats, opt_state, perm), jnp.arange(steps_per_epoch))
    return (params, batch_stats, opt_state), loss.mean()

  (params, batch_stats, _), _ = jax.lax.scan(
      epoch, (params, batch_stats, opt_state), jax.random.split(key, epochs))
  return {"params": params, "batch_stats": batch_stats}


def make_method(cfg, input_dim: int, num_train: int, *, use_labels: bool = True,
                insert_norm: bool = False) -> base.Method:
  """Builds Deep SAD (or Deep SVDD with `use_labels=False`) from `cfg.deepsad`.

  `insert_norm` is AnoOnly's request for a BatchNorm in the feature path; Deep SAD's
  MLP already has one after each hidden layer, so nothing changes.
  """
  del insert_norm
  hp = cfg.deepsad
  policy = NormPolicy.from_config(cfg.norm)
  # deepsad.encoder: mlp | lenet_mnist | lenet_cifar | auto (LeNet for image datasets).
  encoder = lenet.make_encoder(
      hp.get("encoder", "mlp"), input_dim=input_dim,
      image_shape=data_lib.feature_shape(cfg.get("dataset", "") or ""), norm=policy,
      mlp_hidden_dims=hp.hidden_dims, mlp_rep_dim=hp.rep_dim)
  # The same encoder with momentum-0 statistics: norm.eval_stats='recomputed'.
  stats_encoder = lenet.make_encoder(
      hp.get("encoder", "mlp"), input_dim=input_dim,
      image_shape=data_lib.feature_shape(cfg.get("dataset", "") or ""),
      norm=for_recompute(policy), mlp_hidden_dims=hp.hidden_dims, mlp_rep_dim=hp.rep_dim)
  if hp.pretrain_epochs > 0 and not isinstance(encoder, MLPEncoder):
    raise ValueError("deepsad.pretrain_epochs > 0 needs the MLP encoder (no LeNet decoder)")
  batch_size = hp.batch_size
  if num_train < batch_size:
    raise ValueError(f"deepsad.batch_size={batch_size} exceeds the {num_train} training rows")
  steps_per_epoch = num_train // batch_size  # drop_last=True, as the reference loader

  def init(init_key, extras_key, data):
    variables = encoder.init(init_key, data.x[:2], train=False)
    if hp.pretrain_epochs > 0:
      ae = MLPAutoencoder(
          encoder=encoder,
          decoder=MLPDecoder(hidden_dims=tuple(reversed(hp.hidden_dims)),
                             out_dim=input_dim, norm=policy))
      ae_key, train_key = jax.random.split(extras_key)
      ae_variables = ae.init(ae_key, data.x[:2], train=False)
      # Start the AE from the same encoder weights the classifier would otherwise use.
      ae_variables = jax.tree.map(lambda a: a, ae_variables)
      ae_variables["params"]["encoder"] = variables["params"]
      if "batch_stats" in variables:
        ae_variables["batch_stats"]["encoder"] = variables["batch_stats"]
      trained = _autoencoder_pretrain(
          ae, ae_variables, data, train_key, epochs=hp.pretrain_epochs,
          batch_size=batch_size,
          optimizer=adam_l2(effective_learning_rate(hp.pretrain_learning_rate,
                                                    hp.lr_milestone_at_zero),
                            hp.weight_decay))
      if hp.pretrain_transfer:
        variables = {k: v["encoder"] for k, v in trained.items()}
    # The reference computes c in eval mode (running statistics) over the training set.
    z = encoder.apply(variables, data.x, train=False)
    center = center_eps_trick(jnp.mean(z, axis=0), hp.center_eps)
    return variables, {"center": center}

  def per_example_loss(params, batch_stats, extras, batch, key):
    del key
    semi_labels = batch["semi_labels"] if use_labels else jnp.zeros_like(batch["semi_labels"])
    z, new_batch_stats = base.apply_train(
        encoder, params, batch_stats, batch["x"],
        norm_mask=stats_mask(policy, batch["semi_labels"]))
    per_example = losses.deep_sad_loss(z, extras["center"], semi_labels,
                                       eta=hp.eta, eps=hp.eps)
    return per_example, batch["semi_labels"] == 1, new_batch_stats

  def score(variables, extras, x):
    z = base.apply_eval(encoder, variables, x, eval_stats=policy.eval_stats)
    return losses.squared_distance(z, extras["center"])

  return base.Method(
      name="deepsad" if use_labels else "deepsvdd",
      init=init,
      sampler=base.shuffled_sampler(batch_size),
      per_example_loss=per_example_loss,
      score=score,
      optimizer=adam_l2(effective_learning_rate(hp.learning_rate, hp.lr_milestone_at_zero),
                        hp.weight_decay),
      steps_per_epoch=steps_per_epoch,
      num_epochs=hp.num_epochs,
      batch_statistics=lambda params, batch_stats, extras, x: base.exact_batch_stats(
          stats_encoder, params, batch_stats, x),
  )
