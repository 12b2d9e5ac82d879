"""The method interface: a small record of pure functions that the engine composes.

A method connects a model to a loss. The engine never looks inside: it calls
`init` once per seed, asks the `sampler` for batches inside the compiled program,
differentiates `per_example_loss` reduced by `reduce_loss`, and ranks with `score`.
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from ssadjax.methods.train_data import TrainData

PyTree = Any


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
    regularizer: optional `(params, extras) -> scalar` added to the reduced loss (Keras-style L2
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


