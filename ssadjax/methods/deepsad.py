"""Deep SAD (Ruff et al., ICLR 2020) and Deep SVDD (Ruff et al., ICML 2018).

As implemented by ADBench / AnoOnly: bias-free MLP with affine-free
BatchNorm, Adam with L2 added to the gradient, centre c from an eval-mode pass with the
eps trick, score ||phi(x) - c||^2. Deep SVDD is Deep SAD trained without labels.

Reference-behaviour switches (see BUILD_NOTES.md):
* `lr_milestone_at_zero=True`: ADBench's MultiStepLR(milestones=[0]) multiplies the lr
  by 0.1 at construction, so the nominal 1e-3 trains at 1e-4 throughout.
* `pretrain_epochs>0` with `pretrain_transfer=False` trains the autoencoder and then
  discards it, as ADBench / Deep-SAD-PyTorch do through their state-dict key mismatch;
  `pretrain_transfer=True` really initialises the encoder (and c) from it.

Deep SVDD recipes (`cfg.preset`, values in ssadjax/hparams/deepsvdd.py, every field overridable
through `cfg.deepsvdd`); under any other preset Deep SVDD is Deep SAD's recipe without
labels (`cfg.deepsad`), as in the Deep SAD paper's Deep SVDD baseline:
* `deepsvdd_official`: Ruff et al.'s Deep-SVDD-PyTorch (README's MNIST command): Adam
  1e-4 x0.1 after epoch 50, 150 epochs, batch 200, weight decay 5e-7; autoencoder
  pretraining 150 epochs, lr 1e-4 x0.1 after epoch 50, batch 200, weight decay 5e-4,
  whose encoder weights initialise the network (their state-dict keys match).
* `deepsvdd_adbench`: what ADBench's DeepSVDD row runs, PyOD 1.0's Keras `DeepSVDD`
  with its defaults: standardised inputs, d-64-32 bias-free ReLU net (ReLU on the output
  too), Keras glorot init, Adam 1e-3 (eps 1e-7), batch 32, 100 epochs, L2 activity
  regularisation 0.1 per layer, no weight decay in the gradient (PyOD's is a constant),
  no pretraining, and c from the forward pass of a *different* random network than the
  one trained (PyOD builds the model twice). See BUILD_NOTES.md for what is not copied.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssadjax import losses, optim
from ssadjax.methods import base, samplers
from ssadjax.methods import train_data
from ssadjax.models.variables import (apply_eval, apply_train, exact_batch_stats, make_variables,
                                      replace_param, split_variables)
from ssadjax.models.layers import true_fan_kernel
from ssadjax.models import MLPAutoencoder, MLPDecoder, MLPEncoder
from ssadjax.models import lenet
from ssadjax.norm import NormPolicy, for_recompute, stats_mask


def adam_l2(learning_rate, weight_decay: float, *, eps: float = 1e-8
            ) -> optax.GradientTransformation:
  """PyTorch Adam(weight_decay=wd): wd * theta is added to the gradient before the
  moment estimates (L2, not AdamW's decoupled decay). `learning_rate` may be a schedule.
  The decay is injected (`optax.inject_hyperparams`: it lives in the optimizer state),
  so runs of one program may decay at their own rates (`Method.run_hparams`)."""
  return optax.chain(optax.inject_hyperparams(optax.add_decayed_weights)(weight_decay),
                     optax.adam(learning_rate, eps=eps))


def milestone_schedule(learning_rate: float, milestones, steps_per_epoch: int):
  """PyTorch MultiStepLR(milestones, gamma=0.1) stepped once per epoch, as a function of
  the optimiser step: the lr is multiplied by 0.1 from epoch m on, for each m."""
  if not milestones:
    return learning_rate
  return optax.piecewise_constant_schedule(
      learning_rate, {int(m) * steps_per_epoch: 0.1 for m in sorted(milestones)})


class PyODEncoder(nn.Module):
  """PyOD 1.0's Keras DeepSVDD network: bias-free Dense layers with ReLU on every layer,
  the output included, Keras' glorot-uniform init, no normalisation.
  `return_activations=True` returns every layer's output (for the activity regulariser)."""
  hidden_dims: tuple = (64,)
  rep_dim: int = 32

  @nn.compact
  def __call__(self, x, *, train: bool = False, norm_mask=None, return_activations=False):
    del train, norm_mask
    outs = []
    for width in (*self.hidden_dims, self.rep_dim):
      x = nn.relu(nn.Dense(width, use_bias=False,
                           kernel_init=nn.initializers.glorot_uniform())(x))
      outs.append(x)
    return outs if return_activations else x


def loader_pass_mean(z: jax.Array, data, key: jax.Array, batch_size: int) -> jax.Array:
  """Mean of `z` `[n, k]` over the rows one pass of a shuffled `drop_last` loader yields:
  floor(real rows / batch_size) * batch_size real rows drawn with `key`, never a padded
  row (train_data.TrainData)."""
  kept = (train_data.rows(data) // batch_size) * batch_size
  draw = jax.random.uniform(key, (z.shape[0],))
  draw = jnp.where(train_data.row_mask(data), draw, 2.0)  # padded rows sort last
  in_pass = jnp.argsort(jnp.argsort(draw)) < kept
  return jnp.sum(jnp.where(in_pass[:, None], z, 0), axis=0) / kept


def center_eps_trick(center: jax.Array, eps: float) -> jax.Array:
  """Coordinates with |c_k| < eps move to +-eps (exact zeros stay 0, as the reference)."""
  center = jnp.where((jnp.abs(center) < eps) & (center < 0), -eps, center)
  return jnp.where((jnp.abs(center) < eps) & (center > 0), eps, center)


def autoencoder_epoch(ae, carry, epoch_key, data, *, batch_size, optimizer):
  """One pretraining epoch over shuffled batches of all training rows (reconstruction
  MSE). `carry` = (params, batch_stats, opt_state); returns it and the epoch's mean loss."""
  sampler = samplers.shuffled_sampler(batch_size)
  steps_per_epoch = data.x.shape[0] // batch_size

  def step(carry, i):
    params, batch_stats, opt_state, perm = carry
    batch = sampler.batch(perm, i, None, data)

    def loss_fn(p):
      x_hat, new_bs = apply_train(ae, p, batch_stats, batch["x"])
      return jnp.mean(losses.reconstruction_loss(batch["x"], x_hat)), new_bs

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), batch_stats, opt_state, perm), loss

  params, batch_stats, opt_state = carry
  perm = sampler.begin_epoch(epoch_key, data)
  (params, batch_stats, opt_state, _), loss = jax.lax.scan(
      step, (params, batch_stats, opt_state, perm), jnp.arange(steps_per_epoch))
  return (params, batch_stats, opt_state), loss.mean()


def pretrain_autoencoder(ae, ae_variables, data, key, *, epochs, batch_size, optimizer):
  """Trains the autoencoder on all training rows with Deep SAD's reconstruction MSE and
  returns its variables (the encoder's under 'encoder'): the engine's pretraining stage
  in one call, with the same keys and steps."""
  params, batch_stats = split_variables(ae_variables)
  epoch = functools.partial(autoencoder_epoch, ae, data=data, batch_size=batch_size,
                            optimizer=optimizer)
  (params, batch_stats, _), _ = jax.lax.scan(
      epoch, (params, batch_stats, optimizer.init(params)), jax.random.split(key, epochs))
  return make_variables(params, batch_stats)


def make_method(hp: dict, policy: NormPolicy, input_dim: int, num_train: int, *,
                image_shape: tuple = (), use_labels: bool = True,
                insert_norm: bool = False) -> base.Method:
  """Deep SAD from its hyper-parameters (`ssadjax.hparams.deepsad.resolve`), or Deep SVDD
  (`use_labels=False`, `ssadjax.hparams.deepsvdd.resolve`); `image_shape` (of an image dataset) lets `encoder='auto'` pick a
  LeNet.

  `insert_norm` is AnoOnly's request for a BatchNorm in the feature path; Deep SAD's
  MLP already has one after each hidden layer, so nothing changes.
  """
  del insert_norm
  section = "deepsad" if use_labels else "deepsvdd"  # named in the errors below
  pyod = hp["architecture"] == "pyod"
  if hp["architecture"] not in ("mlp", "pyod"):
    raise ValueError(f"deepsvdd.architecture={hp['architecture']!r}; expected mlp or pyod")
  if pyod:
    encoder = stats_encoder = PyODEncoder(hidden_dims=tuple(hp["hidden_dims"]),
                                          rep_dim=hp["rep_dim"])
  else:
    # deepsad.encoder: mlp | lenet_mnist | lenet_cifar | auto (LeNet for image datasets).
    encoder = lenet.make_encoder(
        hp.get("encoder", "mlp"), input_dim=input_dim, image_shape=image_shape,
        norm=policy, mlp_hidden_dims=hp["hidden_dims"], mlp_rep_dim=hp["rep_dim"])
    # The same encoder with momentum-0 statistics: norm.eval_stats='recomputed'.
    stats_encoder = lenet.make_encoder(
        hp.get("encoder", "mlp"), input_dim=input_dim, image_shape=image_shape,
        norm=for_recompute(policy), mlp_hidden_dims=hp["hidden_dims"],
        mlp_rep_dim=hp["rep_dim"])
  if hp["pretrain_epochs"] > 0 and not isinstance(encoder, MLPEncoder):
    raise ValueError(f"{section}.pretrain_epochs > 0 needs the MLP encoder (no LeNet or "
                     "PyOD decoder)")
  batch_size = hp["batch_size"]
  center_rows = hp.get("center_rows", "all")
  if center_rows not in ("all", "loader"):
    raise ValueError(f"{section}.center_rows={center_rows!r}: use 'all' (every training "
                     "row) or 'loader' (ADBench's drop_last subset)")
  if num_train < batch_size:
    raise ValueError(f"{section}.batch_size={batch_size} exceeds the {num_train} training rows")
  steps_per_epoch = num_train // batch_size  # drop_last=True, as the reference loader
  pretrain_batch_size = hp.get("pretrain_batch_size") or batch_size
  if hp["pretrain_epochs"] > 0 and num_train < pretrain_batch_size:
    raise ValueError(f"{section}.pretrain_batch_size={pretrain_batch_size} exceeds the "
                     f"{num_train} training rows")
  pretrain_weight_decay = hp.get("pretrain_weight_decay")
  if pretrain_weight_decay is None:
    pretrain_weight_decay = hp["weight_decay"]
  lr_scale = 0.1 if hp["lr_milestone_at_zero"] else 1.0
  optimizer = adam_l2(
      milestone_schedule(hp["learning_rate"] * lr_scale, hp.get("lr_milestones", ()),
                         steps_per_epoch),
      hp["weight_decay"], eps=hp["adam_eps"])
  # The pretraining rate is a milestone schedule: the stage scales its updates by the
  # run's rate over this one (optim.rate_scaled); its decay is injected (adam_l2).
  pretrain_optimizer = optim.rate_scaled(adam_l2(
      milestone_schedule(hp["pretrain_learning_rate"] * lr_scale,
                         hp.get("pretrain_lr_milestones", ()),
                         num_train // pretrain_batch_size),
      pretrain_weight_decay))

  # Run data: η, both stages' decays and the pretraining rate (when > 0). A pretraining
  # stage without its own decay takes the run's `weight_decay`, as the reference.
  run_hparams = {"eta": hp["eta"], "weight_decay": hp["weight_decay"]}
  if hp["pretrain_epochs"] > 0:
    if hp.get("pretrain_weight_decay") is not None:
      run_hparams["pretrain_weight_decay"] = hp["pretrain_weight_decay"]
    if hp["pretrain_learning_rate"] > 0:
      run_hparams["pretrain_learning_rate"] = hp["pretrain_learning_rate"]

  def pretrain_run_values(extras):
    """The pretraining optimizer's injected values for this run."""
    run = extras["hparams"]
    return {"weight_decay": run.get("pretrain_weight_decay", run["weight_decay"]),
            **optim.run_rate(extras, "pretrain_learning_rate", hp["pretrain_learning_rate"])}

  def standardise(extras, x):
    # PyOD's StandardScaler, fitted on the training rows in init.
    return (x - extras["shift"]) / extras["scale"] if "shift" in extras else x

  # Shape buckets (train_data.pad_train_data): the plain MLP recipe without pretraining is
  # exact on padded rows and features; the PyOD net (standardisation over all rows) and
  # autoencoder pretraining keep exact shapes.
  can_pad = (isinstance(encoder, MLPEncoder) and not pyod and not hp["standardize"]
             and hp["pretrain_epochs"] == 0 and not hp["center_from_other_init"])

  def init(init_key, extras_key, data):
    if train_data.is_padded(data):
      if not can_pad:
        raise ValueError(f"{section}: this recipe cannot train on padded data")
      variables = encoder.init(init_key, data.x[:2], train=False)
      # The first layer's weights of padded feature columns start at zero, the others
      # at the scale of the real fan-in (torch_linear_init: fan_in).
      variables = replace_param(
          variables, ("Dense_0", "kernel"), lambda k: true_fan_kernel(
              k, mode="fan_in", in_mask=train_data.feature_mask(data))[0])
      z = encoder.apply(variables, jnp.asarray(data.x), train=False)
      center = initial_center(z, data, extras_key)  # padded rows are not in c
      return variables, {"center": center_eps_trick(center, hp["center_eps"])}
    extras = {}
    if hp["standardize"]:
      x = jnp.asarray(data.x)
      std = jnp.std(x, axis=0)
      extras = {"shift": jnp.mean(x, axis=0), "scale": jnp.where(std > 0, std, 1.0)}
    x = standardise(extras, jnp.asarray(data.x))
    variables = encoder.init(init_key, x[:2], train=False)
    # The reference computes c in eval mode (running statistics) over the training set;
    # PyOD computes it with a network it then discards. With pretraining, the stage
    # replaces it by the pretrained encoder's (pretrain_transfer).
    z = encoder.apply(
        encoder.init(jax.random.fold_in(extras_key, 1), x[:2], train=False)
        if hp["center_from_other_init"] else variables, x, train=False)
    extras["center"] = center_eps_trick(initial_center(z, data, extras_key), hp["center_eps"])
    return variables, extras

  def initial_center(z, data, extras_key):
    # center_rows='loader': ADBench's init_center_c averages one pass of its loader.
    if center_rows == "all":
      return train_data.masked_mean_rows(z, data)
    return loader_pass_mean(z, data, jax.random.fold_in(extras_key, 2), batch_size)

  def center_of(variables, x):
    z = encoder.apply(variables, x, train=False)
    return center_eps_trick(jnp.mean(z, axis=0), hp["center_eps"])

  def pretrain_stage() -> base.Stage:
    """The autoencoder (this encoder + a mirrored decoder) trains on all rows; with
    `pretrain_transfer` its encoder and the centre it gives become the run's after every
    epoch, otherwise the stage's work is discarded (as ADBench's Deep SAD does)."""
    ae = MLPAutoencoder(
        encoder=encoder,
        decoder=MLPDecoder(hidden_dims=tuple(reversed(hp["hidden_dims"])),
                           out_dim=input_dim, norm=policy))
    epochs = hp["pretrain_epochs"]
    transfer = hp["pretrain_transfer"]
    own_center = transfer and not hp["center_from_other_init"]

    def init(variables, extras, extras_key, data):
      ae_key, train_key = jax.random.split(extras_key)
      ae_params, ae_stats = split_variables(ae.init(ae_key, data.x[:2], train=False))
      # Start the AE from the same encoder weights the classifier would otherwise use
      # (BatchNorm statistics start equal in both: mean 0, variance 1).
      ae_params = {**ae_params, "encoder": variables["params"]}
      scaler = {k: extras[k] for k in ("shift", "scale") if k in extras}
      return {"params": ae_params, "batch_stats": ae_stats,
              "opt_state": optim.with_run_values(pretrain_optimizer.init(ae_params),
                                                 pretrain_run_values(extras)),
              "train_key": jax.random.key_data(train_key), "center": extras["center"],
              **scaler}

    def epoch(state, index, extras, data):
      x = standardise(state, jnp.asarray(data.x))
      epoch_key = jax.random.split(jax.random.wrap_key_data(state["train_key"]),
                                   epochs)[index]
      (params, batch_stats, opt_state), loss = autoencoder_epoch(
          ae, (state["params"], state["batch_stats"], state["opt_state"]), epoch_key,
          data._replace(x=x), batch_size=pretrain_batch_size, optimizer=pretrain_optimizer)
      state = {**state, "params": params, "batch_stats": batch_stats, "opt_state": opt_state}
      if own_center:
        state["center"] = center_of(encoder_variables(state), x)
      return state, loss

    def result(variables, extras, state):
      if not transfer:
        return variables, extras
      return encoder_variables(state), {**extras, "center": state["center"]}

    return base.Stage(name="pretrain", num_epochs=epochs,
                      steps_per_epoch=num_train // pretrain_batch_size, init=init,
                      epoch=epoch, result=result)

  def encoder_variables(stage_state):
    """The encoder's variables inside a pretraining stage's autoencoder."""
    return make_variables(stage_state["params"]["encoder"],
                               stage_state["batch_stats"].get("encoder", {}))

  def per_example_loss(params, batch_stats, extras, batch, key):
    del key
    semi_labels = batch["semi_labels"] if use_labels else jnp.zeros_like(batch["semi_labels"])
    x = standardise(extras, batch["x"])
    if pyod:
      outs = encoder.apply({"params": params}, x, return_activations=True)
      z, new_batch_stats = outs[-1], batch_stats
      # Keras' activity_regularizer=l2(a): a * sum(out^2) per layer, / batch size.
      activity = hp["activity_l2"] * sum(jnp.sum(jnp.square(o), axis=-1) for o in outs)
    else:
      z, new_batch_stats = apply_train(
          encoder, params, batch_stats, x,
          norm_mask=stats_mask(policy, batch["semi_labels"]))
      activity = 0.0
    per_example = losses.deep_sad_loss(z, extras["center"], semi_labels,
                                       eta=extras["hparams"]["eta"], eps=hp["eps"]) + activity
    return per_example, batch["semi_labels"] == 1, new_batch_stats

  def score(variables, extras, x):
    z = apply_eval(encoder, variables, standardise(extras, x),
                        eval_stats=policy.eval_stats)
    return losses.squared_distance(z, extras["center"])

  return base.Method(
      name="deepsad" if use_labels else "deepsvdd",
      init=init,
      sampler=samplers.shuffled_sampler(batch_size),
      per_example_loss=per_example_loss,
      score=score,
      optimizer=optimizer,
      steps_per_epoch=steps_per_epoch,
      num_epochs=hp["num_epochs"],
      batch_statistics=lambda params, batch_stats, extras, x: exact_batch_stats(
          stats_encoder, params, batch_stats, standardise(extras, x)),
      run_steps_per_epoch=samplers.shuffled_steps(batch_size) if can_pad else None,
      pad_rows=can_pad, pad_features=can_pad,
      learning_rate=hp["learning_rate"],  # Adam with L2 decay, piecewise-constant steps
      stages=(pretrain_stage(),) if hp["pretrain_epochs"] > 0 else (),
      run_hparams=run_hparams,
  )


# Deep SVDD is Deep SAD without labels (the engine also hides them from the data).
make_deepsvdd = functools.partial(make_method, use_labels=False)
