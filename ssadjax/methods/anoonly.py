"""AnoOnly (Zhou et al., arXiv 2305.18798) as ONE transformation over any method.

The whole mixed batch is still sampled and forwarded (so unlabelled rows shape the
BatchNorm statistics), but the loss is reduced over the terms that involve a labelled
anomaly only (their mean, or their sum for a method whose `loss_terms` are summands).
The base method is asked to put a BatchNorm where the AnoOnly code puts one
(`insert_norm=True`); methods that already have one ignore the request.

A method may declare further AnoOnly changes to its own hyper-parameters next to its
presets (ssadjax/hparams/<method>.py): `anoonly_changes(hp) -> {name: value}` (DevNet's
anomaly term and L2 scale, BGAD's skipped warm-up). This transformation applies them; no
factory knows whether it runs under AnoOnly. A method without an AnoOnly variant declares
`anoonly_changes = None` and, where it may use labels, `NO_ANOONLY`: the reason the
command line gives before JAX is imported.

A batch without any labelled anomaly (about half of Deep SAD's batches at la = 0.1)
has an empty mean. `empty_batch` decides what happens:
* 'zero_grad' (default, the reference): the loss is 0 with zero gradients, yet the
  optimizer still steps (Adam momentum and L2 keep moving the weights) and the
  BatchNorm running statistics are still updated, exactly as PyTorch does with the
  NaN loss of the reference code, minus the NaN.
* 'skip': the whole update is skipped; params, optimizer state and BatchNorm
  statistics stay as they were (the step counter still advances).
* 'ensure_anomaly': the sampler replaces the last row of such a batch with a labelled
  anomaly drawn uniformly, so every batch carries a loss.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from ssadjax.methods import base, samplers
from ssadjax.methods import train_data

EMPTY_BATCH_CHOICES = ("zero_grad", "skip", "ensure_anomaly")


def anomaly_mean(per_example, anomaly_mask, *, empty_batch: str = "zero_grad",
                 loss_terms: str = "mean"):
  """Mean (`loss_terms='mean'`) or sum (`'sum'`) of the labelled-anomaly terms;
  `(loss, apply_update)`.

  The mean's denominator is clamped at 1 so that an anomaly-free batch gives loss 0 and
  gradients 0 instead of NaN.
  """
  mask = anomaly_mask.astype(per_example.dtype)
  count = jnp.sum(mask)
  loss = jnp.sum(jnp.where(anomaly_mask, per_example, 0.0))
  if loss_terms == "mean":
    loss = loss / jnp.maximum(count, 1.0)
  apply_update = jnp.bool_(True) if empty_batch != "skip" else count > 0
  return loss, apply_update


def _ensure_anomaly(sampler: base.Sampler) -> base.Sampler:
  def batch(epoch_state, i, key, data):
    key, swap_key = jax.random.split(key)
    out = sampler.batch(epoch_state, i, key, data)
    has_anomaly = jnp.any(out["semi_labels"] == 1)
    row = samplers.draw_from_pool(swap_key, data.anomaly_index, train_data.anomaly_count(data), ())
    last = out["x"].shape[0] - 1
    x = jnp.where(has_anomaly, out["x"], out["x"].at[last].set(data.x[row]))
    semi = jnp.where(has_anomaly, out["semi_labels"], out["semi_labels"].at[last].set(1))
    return {**out, "x": x, "semi_labels": semi}

  # Batches are no longer plain shuffled ones (host-fed training must refuse them).
  return dataclasses.replace(sampler, batch=batch, shuffled_batch_size=None)


def anomaly_only(make_method, anoonly_changes=None, *, empty_batch: str = "zero_grad"):
  """Transforms a method factory `make_method(hp, policy, input_dim, num_train, *,
  insert_norm=False, ...)` into its AnoOnly variant with the same signature.

  `anoonly_changes`: the method's declared `hp -> {name: value}` changes to its own
  hyper-parameters under AnoOnly (None: none).
  """
  if empty_batch not in EMPTY_BATCH_CHOICES:
    raise ValueError(f"anoonly.empty_batch={empty_batch!r}; expected one of "
                     f"{EMPTY_BATCH_CHOICES}")

  def make(hp, *args, **kwargs):
    if anoonly_changes is not None:
      hp = {**hp, **anoonly_changes(hp)}
    kwargs["insert_norm"] = True
    method = make_method(hp, *args, **kwargs)
    sampler = method.sampler
    if empty_batch == "ensure_anomaly":
      sampler = _ensure_anomaly(sampler)
    return dataclasses.replace(
        method,
        name=method.name + "+anoonly",
        sampler=sampler,
        reduce_loss=functools.partial(anomaly_mean, empty_batch=empty_batch,
                                      loss_terms=method.loss_terms),
    )

  return make
