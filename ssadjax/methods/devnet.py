"""DevNet (Pang, Shen, van den Hengel, KDD 2019) as ADBench and the AnoOnly copy run it.

A small MLP scorer phi, the deviation loss against a N(0, 1) reference
(5000 draws made once per model, kept in `extras`), balanced batches that alternate
unlabelled rows (even positions) and labelled anomalies (odd positions), both drawn
uniformly with replacement, Keras L2 0.01 on the hidden kernels (added to the loss, so
also to the monitored loss), RMSprop (Keras: rho 0.9, eps 1e-7 outside the square
root) with per-tensor `clipnorm`, and the weights of the epoch with the lowest mean
training loss (Keras ModelCheckpoint(monitor='loss', save_best_only=True)).
Score: phi(x) (same ranking as the deviation).

Presets (`cfg.preset`, every field overridable through `cfg.devnet`; values, defaults
and the AnoOnly changes in ssadjax/hparams/devnet.py):
* 'adbench': ADBench's DevNet: batch 512, lr 1e-3, clipnorm 1, standardised deviation,
  hinge max(0, a - dev) for anomalies; under AnoOnly the reference's linear a - dev
  (the hinge lets AnoOnly collapse: 43.5 AUROC on 30_satellite against 87.6, see
  docs/methods/devnet.md).
* 'anoonly_paper': the AnoOnly copy: batch 64, lr 2e-4, no clipping, raw score
  (dev := phi), two-sided |a - phi| for anomalies in the baseline and the linear,
  unbounded a - phi under AnoOnly.

AnoOnly (`insert_norm=True`): a BatchNorm after the hidden ReLU (Keras momentum 0.99,
eps 1e-3, affine). anoonly.py averages the loss over the labelled anomalies only, while
the reference averages y * t(dev) over the whole balanced batch, i.e. half of ours. With
`anoonly_l2_batch_mean` (default) the L2 weight is divided by the anomaly fraction of a
batch (0.5) under AnoOnly, so that our loss + L2 is exactly 2x the reference's: RMSprop
takes the same steps (up to eps) and the same epoch is selected. Both changes are
declared in `ssadjax.hparams.devnet.anoonly_changes`, which the AnoOnly transformation
applies.
"""

import jax
import jax.numpy as jnp
import optax

from ssadjax import losses, optim
from ssadjax.methods import base, samplers
from ssadjax.methods import train_data
from ssadjax.models.variables import apply_eval, apply_train, exact_batch_stats, replace_param
from ssadjax.models.layers import true_fan_kernel
from ssadjax.models.devnet import DevNetScorer
from ssadjax.norm import NormPolicy, for_recompute, stats_mask

def keras_rmsprop(learning_rate: float, *, rho: float, eps: float,
                  clipnorm: float) -> optax.GradientTransformation:
  """Keras RMSprop(rho, epsilon outside the square root, clipnorm; 0 = no clipping). The
  clipping norm is injected (run data: `Method.run_hparams`)."""
  rmsprop = optax.rmsprop(learning_rate, decay=rho, eps=eps, eps_in_sqrt=False)
  if clipnorm and clipnorm > 0:
    return optax.chain(optim.injected_clip(clipnorm, "per_tensor"), rmsprop)
  return rmsprop


def hidden_kernel_l2(params, weight: float) -> jax.Array:
  """Keras kernel_regularizer=l2(weight) on every `hidden_<i>` kernel (not the score
  layer, not biases, not BatchNorm)."""
  return weight * sum(jnp.sum(jnp.square(layer["kernel"]))
                      for name, layer in params.items() if name.startswith("hidden_"))


def make_method(hp: dict, policy: NormPolicy, input_dim: int, num_train: int, *,
                image_shape: tuple = (), insert_norm: bool = False) -> base.Method:
  """DevNet from its hyper-parameters (`ssadjax.hparams.devnet.resolve`); `insert_norm`
  is AnoOnly's BatchNorm."""
  del input_dim, num_train, image_shape
  model = DevNetScorer(hidden_dims=tuple(hp["hidden_dims"]), insert_norm=insert_norm,
                       norm=policy, norm_epsilon=hp["norm_epsilon"],
                       norm_momentum=hp["norm_momentum"])
  stats_model = model.clone(norm=for_recompute(policy))  # norm.eval_stats='recomputed'
  anomaly_term = hp["anomaly_term"]
  if anomaly_term not in losses.DEVIATION_ANOMALY_TERMS:
    raise ValueError(f"devnet anomaly term {anomaly_term!r}; expected one of "
                     f"{losses.DEVIATION_ANOMALY_TERMS}")
  batch_size = hp["batch_size"]
  if batch_size < 2:
    raise ValueError(f"devnet.batch_size={batch_size} needs room for both row kinds")
  l2 = hp["l2"]

  def init(init_key, extras_key, data):
    variables = model.init(init_key, data.x[:2], train=False)
    if train_data.is_padded(data):  # shape buckets: see true_fan_kernel
      variables = replace_param(
          variables, ("hidden_0" if hp["hidden_dims"] else "score", "kernel"),
          lambda k: true_fan_kernel(k, mode="fan_avg",
                                         in_mask=train_data.feature_mask(data))[0])
    reference = jax.random.normal(extras_key, (hp["num_reference"],), jnp.float32)
    return variables, {"reference_mean": jnp.mean(reference),
                       "reference_std": jnp.std(reference)}  # population std (K.std)

  def per_example_loss(params, batch_stats, extras, batch, key):
    del key
    scores, new_batch_stats = apply_train(
        model, params, batch_stats, batch["x"],
        norm_mask=stats_mask(policy, batch["semi_labels"]))
    if hp["use_reference_normalisation"]:
      mean, std = extras["reference_mean"], extras["reference_std"]
    else:
      mean, std = 0.0, 1.0
    per_example = losses.deviation_loss(
        scores, batch["semi_labels"], margin=extras["hparams"]["margin"], reference_mean=mean,
        reference_std=std, anomaly_term=anomaly_term)
    return per_example, batch["semi_labels"] == 1, new_batch_stats

  def score(variables, extras, x):
    del extras
    return apply_eval(model, variables, x, eval_stats=policy.eval_stats)

  return base.Method(
      name="devnet",
      init=init,
      sampler=samplers.balanced_sampler(batch_size),
      per_example_loss=per_example_loss,
      score=score,
      optimizer=keras_rmsprop(hp["learning_rate"], rho=hp["rho"], eps=hp["rmsprop_eps"],
                              clipnorm=hp["clipnorm"]),
      steps_per_epoch=hp["steps_per_epoch"],
      num_epochs=hp["num_epochs"],
      regularizer=((lambda params, extras: hidden_kernel_l2(params, extras["hparams"]["l2"]))
                   if l2 > 0 else None),
      select_best_epoch=bool(hp["select_best_epoch"]),
      batch_statistics=lambda params, batch_stats, extras, x: exact_batch_stats(
          stats_model, params, batch_stats, x),
      pad_rows=True, pad_features=True,
      learning_rate=hp["learning_rate"],  # RMSprop after clipping: linear in the rate
      # The margin, and the L2 weight and clipping norm where they are on (0 = off is
      # program), are run data: a sweep over them is one program.
      run_hparams={"margin": hp["margin"], **({"l2": l2} if l2 > 0 else {}),
                   **({"clipnorm": hp["clipnorm"]} if hp["clipnorm"] > 0 else {})},
  )
