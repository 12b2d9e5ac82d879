"""The method interface: a small record of pure functions that the engine composes.

A method connects a model to a loss. The engine never looks inside: it calls
`init` once per seed, asks the `sampler` for batches inside the compiled program,
differentiates `per_example_loss` reduced by `reduce_loss`, and ranks with `score`.
"""

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

PyTree = Any


class TrainData(NamedTuple):
  """Device-resident training arrays of one seed (shapes are static per dataset).

  `anomaly_index` / `unlabelled_index` are the row pools that balanced samplers draw
  from; computing them on the host keeps every in-graph draw a static-shape gather.
  """
  x: jax.Array              # [n, d] float32
  semi_labels: jax.Array    # [n] int32, 1 = labelled anomaly
  anomaly_index: jax.Array  # [m] int32 rows with semi_label 1
  unlabelled_index: jax.Array  # [n - m] int32 rows with semi_label 0


@dataclasses.dataclass(frozen=True)
class Sampler:
  """In-graph batch construction.

  `begin_epoch(key, data)` returns per-epoch state (e.g. a permutation) and
  `batch(epoch_state, step_in_epoch, key, data)` returns a dict with at least
  `x` and `semi_labels`.
  """
  begin_epoch: Callable[[jax.Array, TrainData], PyTree]
  batch: Callable[[PyTree, jax.Array, jax.Array, TrainData], dict]


def mean_loss(per_example: jax.Array, anomaly_mask: jax.Array):
  """The baselines' reduction: plain mean over the batch; the update is always applied."""
  del anomaly_mask
  return jnp.mean(per_example), jnp.bool_(True)


@dataclasses.dataclass(frozen=True)
class Method:
  """Everything the engine needs to train and score one method.

  Attributes:
    name: e.g. 'deepsad' or 'deepsad+anoonly'.
    init: `(init_key, extras_key, data) -> (variables, extras)`; may pretrain.
      `variables` = {'params': ..., 'batch_stats': ...}; `extras` are method constants
      checkpointed with the state (Deep SAD's centre c).
    sampler: the in-graph batch sampler.
    per_example_loss: `(params, batch_stats, extras, batch, key) ->
      (losses [B], anomaly_mask [B], new_batch_stats)`; `anomaly_mask` marks the terms
      that involve a labelled anomaly (what AnoOnly keeps).
    reduce_loss: `(losses, anomaly_mask) -> (scalar loss, apply_update bool)`.
    score: `(variables, extras, x) -> [N]` anomaly scores, higher = more anomalous.
    optimizer: optax transformation over params.
    steps_per_epoch, num_epochs: the training length.
    regularizer: optional `params -> scalar` added to the reduced loss (Keras-style L2
      on chosen kernels, which the reference also counts in its monitored loss).
    select_best_epoch: score with the parameters and BatchNorm statistics of the epoch
      with the lowest mean training loss (Keras ModelCheckpoint(monitor='loss',
      save_best_only=True)); otherwise the last epoch's.
    batch_statistics: optional `(params, batch_stats, extras, x) -> batch_stats`: the
      exact BatchNorm statistics of the rows `x` (one full-batch train-mode pass of the
      normalised path with momentum 0), used by `norm.eval_stats='recomputed'`
      (`engine.recompute_batch_stats`); None for a method that cannot recompute them.
  """
  name: str
  init: Callable
  sampler: Sampler
  per_example_loss: Callable
  score: Callable
  optimizer: optax.GradientTransformation
  steps_per_epoch: int
  num_epochs: int
  reduce_loss: Callable = mean_loss
  regularizer: Callable | None = None
  select_best_epoch: bool = False
  batch_statistics: Callable | None = None


def make_train_data(x, semi_labels) -> TrainData:
  """Host arrays -> TrainData with the index pools (numpy in, numpy out)."""
  import numpy as np
  semi_labels = np.asarray(semi_labels, np.int32)
  return TrainData(
      x=np.asarray(x, np.float32),
      semi_labels=semi_labels,
      anomaly_index=np.flatnonzero(semi_labels == 1).astype(np.int32),
      unlabelled_index=np.flatnonzero(semi_labels == 0).astype(np.int32),
  )


def shuffled_sampler(batch_size: int) -> Sampler:
  """Uniform shuffled mini-batches, one permutation per epoch, last partial batch dropped
  (PyTorch DataLoader(shuffle=True, drop_last=True))."""

  def begin_epoch(key, data):
    return jax.random.permutation(key, data.x.shape[0])

  def batch(perm, i, key, data):
    del key
    rows = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size)
    return {"x": data.x[rows], "semi_labels": data.semi_labels[rows]}

  return Sampler(begin_epoch=begin_epoch, batch=batch)


def make_variables(params, batch_stats) -> dict:
  """Linen variables; models without BatchNorm (LayerNorm / no-norm controls, flows) have
  no 'batch_stats' collection."""
  return {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}


def apply_train(model, params, batch_stats, x, **kwargs):
  """Train-mode forward that returns (output, new_batch_stats); works with or without
  BatchNorm in the model (LayerNorm / no-norm controls have no batch_stats)."""
  out, updates = model.apply(make_variables(params, batch_stats), x, train=True, mutable=["batch_stats"], **kwargs)
  return out, updates.get("batch_stats", batch_stats)


def apply_eval(model, variables, x, *, eval_stats: str = "running", **kwargs):
  """Evaluation forward: running statistics (eval mode) or the scored batch's own
  statistics ('batch'); the statistics are never updated here."""
  if eval_stats == "batch" and variables.get("batch_stats"):
    out, _ = model.apply(variables, x, train=True, mutable=["batch_stats"], **kwargs)
    return out
  return model.apply(variables, x, train=False, **kwargs)


def exact_batch_stats(stats_model, params, batch_stats, x, **kwargs):
  """The BatchNorm statistics of all rows of `x`: a train-mode forward of `stats_model`,
  the method's model built with `norm.for_recompute(policy)` (momentum 0, so every
  running statistic becomes the statistic of this pass; earlier layers are normalised
  with this pass's statistics, which are the recomputed ones). No BatchNorm: unchanged."""
  if not batch_stats:
    return batch_stats
  _, new_batch_stats = apply_train(stats_model, params, batch_stats, x, **kwargs)
  return new_batch_stats


def split_variables(variables):
  """Linen variables -> (params, batch_stats) with an empty dict when there is no BN."""
  return variables["params"], variables.get("batch_stats", {})


def resolve_hparams(section, presets: dict, preset: str) -> dict:
  """A method's hyper-parameters: the preset's values, overridden by every field of the
  config section that is set (not None).

  Sections declare preset-dependent fields as `placeholder(type)` (None) so that
  `--config.preset=anoonly_paper` changes their defaults while an explicit
  `--config.devnet.batch_size=256` still wins.
  """
  if preset not in presets:
    raise ValueError(f"preset={preset!r}; available: {sorted(presets)}")
  values = dict(presets[preset])
  for key, value in section.items():
    if value is not None:
      values[key] = value
  missing = [k for k, v in values.items() if v is None]
  if missing:
    raise ValueError(f"preset {preset!r} leaves {missing} unset")
  return values
