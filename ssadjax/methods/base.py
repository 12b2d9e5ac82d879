"""The method interface: a small record of pure functions that the engine composes.

A method connects a model to a loss. The engine never looks inside: it calls
`init` once per seed, asks the `sampler` for batches inside the compiled program,
differentiates `per_example_loss` reduced by `reduce_loss`, and ranks with `score`.
"""

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

PyTree = Any


class TrainData(NamedTuple):
  """Device-resident training arrays of one run.

  `anomaly_index` / `unlabelled_index` are the row pools that balanced samplers draw
  from; computing them on the host keeps every in-graph draw a static-shape gather.

  Shape buckets (`pad_train_data`): runs of different sizes share one compiled program
  when their arrays are padded to common shapes. The four counts then say how much of
  each array is real: rows `>= num_rows` and feature columns `>= num_features` of `x`
  are zero and never sampled, and only the first `num_anomalies` / `num_unlabelled`
  entries of the pools are rows. None (unpadded data) means "the whole array"; read
  them through `rows(data)`, `features(data)`, `anomaly_count(data)` and
  `unlabelled_count(data)`, which return the static size then, so an unpadded run
  traces exactly the program it always did.
  """
  x: jax.Array              # [n, d] float32
  semi_labels: jax.Array    # [n] int32, 1 = labelled anomaly
  anomaly_index: jax.Array  # [m] int32 rows with semi_label 1
  unlabelled_index: jax.Array  # [n - m] int32 rows with semi_label 0
  num_rows: Any = None      # int32 scalar: real rows of x
  num_features: Any = None  # int32 scalar: real columns of x
  num_anomalies: Any = None   # int32 scalar: real entries of anomaly_index
  num_unlabelled: Any = None  # int32 scalar: real entries of unlabelled_index


def rows(data: TrainData):
  """Real rows of `data.x` (static int when unpadded, else a traced int32)."""
  return data.x.shape[0] if data.num_rows is None else data.num_rows


def features(data: TrainData):
  return data.x.shape[-1] if data.num_features is None else data.num_features


def anomaly_count(data: TrainData):
  return data.anomaly_index.shape[0] if data.num_anomalies is None else data.num_anomalies


def unlabelled_count(data: TrainData):
  return (data.unlabelled_index.shape[0] if data.num_unlabelled is None
          else data.num_unlabelled)


def is_padded(data: TrainData) -> bool:
  return data.num_rows is not None


def row_mask(data: TrainData) -> jax.Array:
  """[n] bool: the real rows of `data.x`."""
  return jnp.arange(data.x.shape[0]) < rows(data)


def feature_mask(data: TrainData) -> jax.Array:
  """[d] bool: the real feature columns of `data.x`."""
  return jnp.arange(data.x.shape[-1]) < features(data)


def masked_mean_rows(x, data: TrainData) -> jax.Array:
  """Mean over the real rows of `x` `[n, ...]` (rows aligned with `data.x`)."""
  if not is_padded(data):
    return jnp.mean(x, axis=0)
  mask = row_mask(data).reshape((-1,) + (1,) * (x.ndim - 1))
  return jnp.sum(jnp.where(mask, x, 0), axis=0) / rows(data).astype(x.dtype)


@dataclasses.dataclass(frozen=True)
class Sampler:
  """In-graph batch construction.

  `begin_epoch(key, data)` returns per-epoch state (e.g. a permutation) and
  `batch(epoch_state, step_in_epoch, key, data)` returns a dict with at least
  `x` and `semi_labels`. `shuffled_batch_size` is set only by `shuffled_sampler` (uniform
  shuffled batches of that size, one permutation per epoch): the one sampler that
  `ssadjax.host.hostfed` can reproduce from host memory.
  """
  begin_epoch: Callable[[jax.Array, TrainData], PyTree]
  batch: Callable[[PyTree, jax.Array, jax.Array, TrainData], dict]
  shuffled_batch_size: int | None = None


def mean_loss(per_example: jax.Array, anomaly_mask: jax.Array):
  """The reduction of `loss_terms='mean'`: the plain mean over the batch; the update is
  always applied."""
  del anomaly_mask
  return jnp.mean(per_example), jnp.bool_(True)


def sum_loss(per_example: jax.Array, anomaly_mask: jax.Array):
  """The reduction of `loss_terms='sum'`: the per-example values are summands of the
  loss (FUN-AD's balanced BCE, BGAD's loss contributions)."""
  del anomaly_mask
  return jnp.sum(per_example), jnp.bool_(True)


LOSS_REDUCTIONS = {"mean": mean_loss, "sum": sum_loss}


@dataclasses.dataclass(frozen=True)
class Stage:
  """A training stage the engine runs before the main one (e.g. autoencoder pretraining),
  in chunks of epochs with the main stage's progress, checkpoints and divergence check,
  batched over runs.

  Attributes:
    name: e.g. 'pretrain'; names the stage in logs, metrics.jsonl and errors.
    num_epochs, steps_per_epoch: its length.
    init: `(variables, extras, extras_key, data) -> stage_state`: what the stage trains
      and carries (its parameters, optimizer state, best epoch, keys), built when the run
      is initialised. No training data: checkpoints hold it.
    epoch: `(stage_state, epoch_index, extras, data) -> (stage_state, mean loss)`: one
      epoch.
    result: `(variables, extras, stage_state) -> (variables, extras)`: the run's
      variables ({'params', 'batch_stats'}) and extras with the stage's current result
      written in; applied after every epoch, so that a checkpoint between chunks and the
      next stage see it.
  """
  name: str
  num_epochs: int
  steps_per_epoch: int
  init: Callable
  epoch: Callable
  result: Callable


@dataclasses.dataclass(frozen=True)
class StepState:
  """State a method carries from step to step that is neither trained nor BatchNorm's
  (FUN-AD's memory-bank selection), refreshed before each step's loss, without gradient.

  Attributes:
    init: `data -> state`: its value before the first step.
    refresh: `(params, state, batch, key, **data) -> (state, batch)`: the state after this
      step and the batch with what the loss reads from it (the keyword `data` when the
      method `needs_train_data`). `key` is the step's loss key.
  """
  init: Callable
  refresh: Callable


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
    loss_terms: how `per_example_loss`'s values make the loss: 'mean' (their mean) or
      'sum' (they are summands). AnoOnly keeps the same reduction over the labelled
      anomalies' terms.
    reduce_loss: `(losses, anomaly_mask) -> (scalar loss, apply_update bool)`; None:
      the plain reduction of `loss_terms` (AnoOnly sets its own).
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
    run_steps_per_epoch: optional `data -> int32`: a run's own epoch length when it
      depends on the data (Deep SAD: real rows // batch); `steps_per_epoch` is then the
      longest (the bucket's) and shorter runs skip the extra slots. None: every run
      has `steps_per_epoch`.
    pad_rows, pad_features: the method is exact on TrainData padded to a shape bucket
      (`pad_train_data`) in rows / feature columns: padded rows never reach a batch,
      a statistic or a score, and padded columns stay zero with weights that start at
      zero (`true_fan_kernel`), so runs of different sizes can share its programs.
    learning_rate: the configured learning rate of `optimizer` when every update it
      makes is exactly proportional to it (Adam, RMSprop, SGD, decoupled or L2 decay,
      piecewise-constant schedules; not an affine one such as cosine to a floor): runs
      of one program may then train at other rates, the engine scaling each run's
      updates by its rate over this one (a learning-rate sweep shares one program).
      None: the rate is part of the program.
    needs_train_data: `per_example_loss` and `score` take the run's TrainData as a
      keyword `data` (FUN-AD's memory bank is rebuilt from every training row, PReNet
      scores against reference rows of the training pools). The engine passes it; it is
      never part of the state, so checkpoints hold no training data. A saved detector
      of such a method keeps its training rows (the model is defined by them).
    step_state: optional `StepState`, kept in `TrainState.method_state` (checkpointed).
    stages: `Stage`s the engine runs, in order, before the main stage (whose sampler,
      loss, optimizer and length are the fields above).
    run_hparams: {name: value} of scalar hyper-parameters that are run data, not part of
      the program: `init`'s extras carry them as float32 scalars in `extras["hparams"]`,
      where the loss reads them, and the engine replaces them with each run's values
      there and in the optimizer's state (where an `optax.inject_hyperparams` state holds
      the name), so runs of one program may differ in them (an η or margin sweep shares
      one program). Each name is a field of the method's config section, with the
      configured value, or a dotted config path from the root ('norm.momentum', which
      `methods.build` adds and the engine applies through `norm.run_momentum`).
  """
  name: str
  init: Callable
  sampler: Sampler
  per_example_loss: Callable
  score: Callable
  optimizer: optax.GradientTransformation
  steps_per_epoch: int
  num_epochs: int
  loss_terms: str = "mean"
  reduce_loss: Callable | None = None
  regularizer: Callable | None = None
  select_best_epoch: bool = False
  batch_statistics: Callable | None = None
  run_steps_per_epoch: Callable | None = None
  pad_rows: bool = False
  pad_features: bool = False
  learning_rate: float | None = None
  stages: tuple = ()
  run_hparams: dict = dataclasses.field(default_factory=dict)
  needs_train_data: bool = False
  step_state: StepState | None = None

  def __post_init__(self):
    if self.loss_terms not in LOSS_REDUCTIONS:
      raise ValueError(f"loss_terms={self.loss_terms!r}; expected one of "
                       f"{sorted(LOSS_REDUCTIONS)}")
    if self.reduce_loss is None:
      object.__setattr__(self, "reduce_loss", LOSS_REDUCTIONS[self.loss_terms])
    # `init`'s extras always carry the run hyper-parameters at their configured values,
    # whoever calls it; the engine then sets each run's own (engine.create_train_state).
    if self.run_hparams:
      object.__setattr__(self, "init", _with_run_hparams(self.init, self.run_hparams))


def _with_run_hparams(init: Callable, run_hparams: dict) -> Callable:
  def init_with_hparams(init_key, extras_key, data):
    variables, extras = init(init_key, extras_key, data)
    values = {name: jnp.asarray(value, jnp.float32) for name, value in run_hparams.items()}
    return variables, {**extras, "hparams": values}

  return init_with_hparams


def make_train_data(x, semi_labels) -> TrainData:
  """Host arrays -> TrainData with the index pools (numpy in, numpy out)."""
  semi_labels = np.asarray(semi_labels, np.int32)
  return TrainData(
      x=np.asarray(x, np.float32),
      semi_labels=semi_labels,
      anomaly_index=np.flatnonzero(semi_labels == 1).astype(np.int32),
      unlabelled_index=np.flatnonzero(semi_labels == 0).astype(np.int32),
  )


def pad_train_data(data: TrainData, *, num_rows: int, num_features: int,
                   num_anomalies: int, num_unlabelled: int) -> TrainData:
  """Host TrainData -> the same run padded to a shape bucket (numpy in, numpy out).

  Padded rows and feature columns of `x` are zero, padded rows carry semi_label 0 but
  are in no pool, and padded pool entries repeat row 0 (never drawn: every draw is
  bounded by the counts). The counts are always set, even when nothing is padded, so
  that runs of one program have the same tree structure.
  """
  x = np.asarray(data.x, np.float32)
  n, d = x.shape
  m, u = len(data.anomaly_index), len(data.unlabelled_index)
  if n > num_rows or d > num_features or m > num_anomalies or u > num_unlabelled:
    raise ValueError(f"a run of {n} rows x {d} features ({m} labelled anomalies, {u} "
                     f"unlabelled) does not fit the bucket {num_rows} x {num_features} "
                     f"({num_anomalies}, {num_unlabelled})")
  padded_x = np.zeros((num_rows, num_features), np.float32)
  padded_x[:n, :d] = x
  semi = np.zeros(num_rows, np.int32)
  semi[:n] = data.semi_labels
  pool = lambda index, size: np.concatenate(
      [np.asarray(index, np.int32), np.zeros(size - len(index), np.int32)])
  return TrainData(x=padded_x, semi_labels=semi,
                   anomaly_index=pool(data.anomaly_index, num_anomalies),
                   unlabelled_index=pool(data.unlabelled_index, num_unlabelled),
                   num_rows=np.int32(n), num_features=np.int32(d),
                   num_anomalies=np.int32(m), num_unlabelled=np.int32(u))


def true_fan_kernel(kernel, *, mode: str, in_mask=None, out_mask=None,
                    bias=None) -> tuple:
  """A Dense kernel `[fan_in, fan_out]` drawn at padded shape -> the kernel a model of the
  real shape would start from: entries of padded inputs (`in_mask` False) or outputs
  (`out_mask` False) are zero, so they stay zero (their gradients are zero), and the
  real entries are rescaled from the padded fan to the real one.

  Every variance-scaling initializer (PyTorch's default, Glorot, He, LeCun) draws a
  unit-scale sample and multiplies it by sqrt(scale / fan), so multiplying by
  sqrt(fan_padded / fan_real) gives exactly the real shape's distribution; `mode` is the
  initializer's fan (fan_in | fan_out | fan_avg). A `bias` whose init also scales with
  the fan (PyTorch: U(+-1/sqrt(fan_in))) gets the same factor and its padded outputs
  zeroed. Nothing padded: the factor is exactly 1.
  Returns `(kernel, bias)`.
  """
  fan_in, fan_out = kernel.shape[-2], kernel.shape[-1]
  in_mask = jnp.ones(fan_in, bool) if in_mask is None else in_mask
  out_mask = jnp.ones(fan_out, bool) if out_mask is None else out_mask
  real_in = jnp.sum(in_mask).astype(kernel.dtype)
  real_out = jnp.sum(out_mask).astype(kernel.dtype)
  fans = {"fan_in": (fan_in, real_in), "fan_out": (fan_out, real_out),
          "fan_avg": ((fan_in + fan_out) / 2, (real_in + real_out) / 2)}
  if mode not in fans:
    raise ValueError(f"mode={mode!r}; expected one of {sorted(fans)}")
  padded_fan, real_fan = fans[mode]
  factor = jnp.sqrt(padded_fan / real_fan)
  keep = in_mask[:, None] & out_mask[None, :]
  kernel = jnp.where(keep, kernel * factor, 0.0)
  if bias is not None:
    bias = jnp.where(out_mask, bias * factor, 0.0)
  return kernel, bias


def replace_param(variables, path: tuple, fn) -> dict:
  """Linen variables with `params[path] = fn(params[path])` (nested dicts copied)."""
  def go(tree, path):
    tree = dict(tree)
    tree[path[0]] = fn(tree[path[0]]) if len(path) == 1 else go(tree[path[0]], path[1:])
    return tree
  return {**variables, "params": go(variables["params"], path)}


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
