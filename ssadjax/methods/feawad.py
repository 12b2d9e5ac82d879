"""FEAWAD (Zhou et al., TNNLS 2021) as the official code, ADBench and AnoOnly run it.

Two stages, both run by the engine (chunks, checkpoints, progress, divergence check).
1. `pretrain_stage` pretrains the autoencoder on unlabelled rows only (MSE, Adam 1e-4,
   100 epochs x 20 steps x 512 rows drawn with replacement) and keeps the epoch with
   the lowest mean loss (Keras ModelCheckpoint on the AE).
2. End to end (AE layers stay trainable): balanced batches (alternating unlabelled /
   labelled anomaly, 256 + 256), Adam 1e-4, 30 epochs x 20 steps, FEAWAD's composite
   loss, best-training-loss epoch. Score: phi(x).
Keras' Adam has epsilon 1e-7 (`adam_eps`).

Reference-behaviour switches (docs/methods/feawad.md):
* `reconstruction_term='normalised_residual'` (default): the loss's
  reconstruction error is ||r / ||r|| || = 1, a constant, as in every reference;
  'residual' uses the real ||x - x_hat||.
* `fixed_batch=True` (default): ADBench re-seeds its generator inside every
  batch call, so every AE step sees one identical batch and every end-to-end step
  another; False draws fresh batches as the official FEAWAD. The fixed batches are
  drawn once per seed from the extras key; the end-to-end one is kept in `extras`
  (the sampler has no per-seed constant key) and replaces the sampler's batch.
* `replay_pretrain_rows=True` (default, with `fixed_batch` and pretraining): the
  end-to-end batch's unlabelled rows are rows of the autoencoder's replayed batch (its
  even positions). ADBench's two generators re-seed the same `RandomState(seed)`, so the
  unlabelled draws of the end-to-end batch repeat the autoencoder batch's stream: every
  unlabelled row the score generator trains on is one the autoencoder was fitted to
  (small reconstruction error), against 10-55 % of them for independent draws. False
  draws them independently of the autoencoder batch.
* `norm_before_head` (preset: adbench False, anoonly_paper True): the AnoOnly
  copy's BatchNorm before the score layer, in its baseline too; AnoOnly
  (`insert_norm=True`) always has it.
"""

import functools

import jax
import jax.numpy as jnp
import optax

from ssadjax import losses, optim
from ssadjax.methods import base, samplers
from ssadjax.methods import train_data
from ssadjax.models.variables import apply_eval, apply_train, exact_batch_stats, replace_param
from ssadjax.models.layers import true_fan_kernel
from ssadjax.models.feawad import FEAWADAutoencoder, FEAWADNet
from ssadjax.norm import NormPolicy, for_recompute, stats_mask

def autoencoder_rows(key, data, batch_size):
  """`batch_size` unlabelled row indices, uniform with replacement: an AE batch."""
  return samplers.draw_from_pool(key, data.unlabelled_index, train_data.unlabelled_count(data),
                             (batch_size,))


def autoencoder_epoch(ae, carry, epoch_key, data, *, steps_per_epoch, batch_size, optimizer,
                      fixed_x, select_best):
  """One pretraining epoch. `carry` = (params, opt_state, best_params, best_loss); rows are
  drawn uniformly with replacement from `data.unlabelled_index`, or `fixed_x` (one batch)
  is replayed at every step. Returns the new carry and the epoch's mean loss."""
  num_features = data.num_features  # None unless padded to a shape bucket

  def loss_fn(params, x):
    x_hat, _ = ae.apply({"params": params}, x)
    return jnp.mean(losses.reconstruction_loss(x, x_hat, num_features))

  def step(carry, k):
    params, opt_state = carry
    x = fixed_x if fixed_x is not None else data.x[autoencoder_rows(k, data, batch_size)]
    loss, grads = jax.value_and_grad(loss_fn)(params, x)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  params, opt_state, best_params, best_loss = carry
  (params, opt_state), step_losses = jax.lax.scan(
      step, (params, opt_state), jax.random.split(epoch_key, steps_per_epoch))
  loss = jnp.mean(step_losses)
  improved = (loss < best_loss) if select_best else jnp.bool_(True)
  best_params = jax.tree.map(lambda n, o: jnp.where(improved, n, o), params, best_params)
  return (params, opt_state, best_params, jnp.where(improved, loss, best_loss)), loss


def pretrain_autoencoder(ae, ae_params, data, key, *, epochs, steps_per_epoch, batch_size,
                         optimizer, fixed_batch, select_best, fixed_rows=None):
  """Stage 1 in one call (the engine runs it as `pretrain_stage`, epoch by epoch, with the
  same keys and steps). Returns `(params, loss)` of the kept epoch (best mean loss, or the
  last). With `fixed_batch` one batch (`fixed_rows` if given, else drawn here) is
  replayed at every step."""
  fixed_key, steps_key = jax.random.split(key)
  fixed_x = None
  if fixed_batch:
    fixed_x = data.x[autoencoder_rows(fixed_key, data, batch_size) if fixed_rows is None
                     else fixed_rows]
  epoch = functools.partial(
      autoencoder_epoch, ae, data=data, steps_per_epoch=steps_per_epoch,
      batch_size=batch_size, optimizer=optimizer, fixed_x=fixed_x, select_best=select_best)
  init = (ae_params, optimizer.init(ae_params), ae_params, jnp.array(jnp.inf, jnp.float32))
  (_, _, best_params, best_loss), _ = jax.lax.scan(
      epoch, init, jax.random.split(steps_key, epochs))
  return best_params, best_loss


def _pretrain_keys(extras_key):
  """(rows key, pretraining key, end-to-end batch key) of a run: one derivation for init
  and the pretraining stage."""
  pretrain_key, batch_key = jax.random.split(extras_key)
  rows_key, pretrain_key = jax.random.split(pretrain_key)
  return rows_key, pretrain_key, batch_key


def pretrain_stage(ae, hp, fixed_batch: bool) -> base.Stage:
  """Stage 1 as an engine stage: the autoencoder `params['autoencoder']` trains on
  unlabelled rows; after every epoch the kept epoch's weights are the run's autoencoder
  and its loss `extras['pretrain_loss']`. Keys, draws and steps are
  `pretrain_autoencoder`'s; the state holds row indices, not rows. Its rate is run data
  (`pretrain_learning_rate`: updates scale by the run's rate over this one)."""
  epochs, steps, batch_size = (hp["pretrain_epochs"], hp["pretrain_steps_per_epoch"],
                               hp["pretrain_batch_size"])
  rate = hp["pretrain_learning_rate"]
  optimizer = optim.rate_scaled(optax.adam(rate, eps=hp["adam_eps"]))
  select_best = bool(hp["pretrain_select_best"])

  def init(variables, extras, extras_key, data):
    rows_key, pretrain_key, _ = _pretrain_keys(extras_key)
    fixed_key, steps_key = jax.random.split(pretrain_key)
    # The replayed batch: drawn from the rows key (shared with init's end-to-end replay)
    # when the batch is fixed.
    rows = autoencoder_rows(rows_key if fixed_batch else fixed_key, data, batch_size)
    ae_params = variables["params"]["autoencoder"]
    opt_state = optim.with_run_values(
        optimizer.init(ae_params), optim.run_rate(extras, "pretrain_learning_rate", rate))
    return {"params": ae_params, "opt_state": opt_state,
            "best_params": ae_params, "best_loss": jnp.array(jnp.inf, jnp.float32),
            "rows": rows, "steps_key": jax.random.key_data(steps_key)}

  def epoch(state, index, extras, data):
    epoch_key = jax.random.split(jax.random.wrap_key_data(state["steps_key"]), epochs)[index]
    carry = (state["params"], state["opt_state"], state["best_params"], state["best_loss"])
    carry, loss = autoencoder_epoch(
        ae, carry, epoch_key, data, steps_per_epoch=steps, batch_size=batch_size,
        optimizer=optimizer, fixed_x=data.x[state["rows"]] if fixed_batch else None,
        select_best=select_best)
    params, opt_state, best_params, best_loss = carry
    return {**state, "params": params, "opt_state": opt_state, "best_params": best_params,
            "best_loss": best_loss}, loss

  def result(variables, extras, state):
    params = {**variables["params"], "autoencoder": state["best_params"]}
    return {**variables, "params": params}, {**extras, "pretrain_loss": state["best_loss"]}

  return base.Stage(name="pretrain", num_epochs=epochs, steps_per_epoch=steps, init=init,
                    epoch=epoch, result=result)


def pad_feature_layers(variables, real_features):
  """Shape buckets (true_fan_kernel): every layer whose fan counts the features
  starts as the real-width network would, with zero weights on padded columns. The
  autoencoder's first layer is d x d (padded hidden units stay at ReLU(0) = 0), its
  last layer reconstructs padded columns as exactly 0, and the score generator's first
  layer reads [r / ||r||; h; e] whose padded residual entries are 0."""
  glorot = lambda mask_in=None, mask_out=None: lambda layer: dict(
      zip(("kernel", "bias"), true_fan_kernel(
          layer["kernel"], mode="fan_avg", in_mask=mask_in, out_mask=mask_out,
          bias=layer["bias"])))
  code = variables["params"]["hl2"]["kernel"].shape[0] - real_features.shape[0]
  layers = {
      ("autoencoder", "ain"): glorot(real_features, real_features),
      ("autoencoder", "ae1"): glorot(real_features),
      ("autoencoder", "ad2"): glorot(None, real_features),
      ("hl2",): glorot(jnp.concatenate([real_features, jnp.ones(code, bool)])),
  }
  for path, fn in layers.items():
    variables = replace_param(variables, path, fn)
  return variables


def make_method(hp: dict, policy: NormPolicy, input_dim: int, num_train: int, *,
                image_shape: tuple = (), insert_norm: bool = False) -> base.Method:
  """FEAWAD from its hyper-parameters (`ssadjax.hparams.feawad.resolve`); `insert_norm`
  is AnoOnly's BatchNorm before the head."""
  del num_train, image_shape
  net = FEAWADNet(input_dim=input_dim,
                  norm_before_head=bool(hp["norm_before_head"] or insert_norm),
                  norm=policy, norm_epsilon=hp["norm_epsilon"],
                  norm_momentum=hp["norm_momentum"], residual_eps=hp["residual_eps"])
  stats_net = net.clone(norm=for_recompute(policy))  # norm.eval_stats='recomputed'
  ae = FEAWADAutoencoder(input_dim)
  batch_size = hp["batch_size"]
  num_even, num_odd = (batch_size + 1) // 2, batch_size // 2
  pattern = (jnp.arange(batch_size) % 2).astype(jnp.int32)
  fixed_batch = bool(hp["fixed_batch"])
  replay_rows = fixed_batch and bool(hp["replay_pretrain_rows"])

  def init(init_key, extras_key, data):
    variables = net.init(init_key, data.x[:2], train=False)
    if train_data.is_padded(data):
      variables = pad_feature_layers(variables, train_data.feature_mask(data))
    rows_key, _, batch_key = _pretrain_keys(extras_key)
    # NaN until the pretraining stage (engine-run, after init) writes its kept loss.
    extras = {"pretrain_loss": jnp.array(jnp.nan, jnp.float32)}
    ae_rows = None
    if hp["pretrain_epochs"] > 0 and fixed_batch:
      ae_rows = autoencoder_rows(rows_key, data, hp["pretrain_batch_size"])
    if fixed_batch:
      fixed = samplers.draw_balanced(batch_key, data, num_even, num_odd, pattern)
      if replay_rows and ae_rows is not None:
        # The unlabelled half repeats the AE batch's stream (ADBench re-seeds one
        # RandomState for both generators): its even positions, cycled if it is shorter.
        unlabelled = ae_rows[(2 * jnp.arange(num_even)) % ae_rows.shape[0]]
        rows = fixed["rows"].at[0::2].set(unlabelled)
        fixed = {**fixed, "x": jnp.asarray(data.x)[rows], "rows": rows}
        extras["pretrain_rows"] = ae_rows
      extras["fixed_x"] = fixed["x"]
      extras["fixed_semi_labels"] = fixed["semi_labels"]
    return variables, extras

  def per_example_loss(params, batch_stats, extras, batch, key):
    del key
    if fixed_batch:  # ADBench replays one batch; the sampler's draw is dead code
      batch = {"x": extras["fixed_x"], "semi_labels": extras["fixed_semi_labels"]}
    (scores, residuals), new_batch_stats = apply_train(
        net, params, batch_stats, batch["x"],
        norm_mask=stats_mask(policy, batch["semi_labels"]))
    per_example = losses.feawad_loss(
        scores, residuals, batch["semi_labels"], margin=extras["hparams"]["margin"],
        reconstruction_term=hp["reconstruction_term"], eps=hp["residual_eps"])
    return per_example, batch["semi_labels"] == 1, new_batch_stats

  def score(variables, extras, x):
    del extras
    scores, _ = apply_eval(net, variables, x, eval_stats=policy.eval_stats)
    return scores

  return base.Method(
      name="feawad",
      init=init,
      sampler=samplers.balanced_sampler(batch_size),
      per_example_loss=per_example_loss,
      score=score,
      optimizer=optax.adam(hp["learning_rate"], eps=hp["adam_eps"]),
      steps_per_epoch=hp["steps_per_epoch"],
      num_epochs=hp["num_epochs"],
      select_best_epoch=bool(hp["select_best_epoch"]),
      batch_statistics=lambda params, batch_stats, extras, x: exact_batch_stats(
          stats_net, params, batch_stats, x),
      pad_rows=True, pad_features=True,
      learning_rate=hp["learning_rate"],  # Adam; the pretraining rate is another field
      stages=(pretrain_stage(ae, hp, fixed_batch),) if hp["pretrain_epochs"] > 0 else (),
      run_hparams={"margin": hp["margin"],
                   **({"pretrain_learning_rate": hp["pretrain_learning_rate"]}
                      if hp["pretrain_epochs"] > 0 and hp["pretrain_learning_rate"] > 0
                      else {})},
  )
