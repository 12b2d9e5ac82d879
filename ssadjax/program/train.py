"""The pure training program of one run: its `TrainState`, one update (`train_step`), an
epoch of in-graph batches (`run_epochs`), the epochs of a training stage
(`run_stage_epochs`). Everything here is traceable and free of side effects; the engine
(ssadjax/host/engine.py) vmaps it over runs, jits it, and runs the host loop around it.
"""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from ssadjax import norm
from ssadjax.program import parallel
from ssadjax.methods.base import Method
from ssadjax.methods.train_data import TrainData
from ssadjax.models.variables import make_variables


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  extras: Any
  # {'loss', 'params', 'batch_stats'} of the best epoch so far, for methods that select
  # their final model by training loss; {} otherwise.
  best: Any = flax.struct.field(default_factory=dict)
  # One {'epoch', 'state'} per `Method.stages` entry: the stage's epochs done and its own
  # state (see `base.Stage`); () for a method without stages.
  stages: Any = flax.struct.field(default_factory=tuple)
  # `Method.step_state`'s state (FUN-AD's memory-bank selection); {} without one.
  method_state: Any = flax.struct.field(default_factory=dict)

  def final_variables(self) -> tuple[Any, Any]:
    """(params, batch_stats) used for scoring."""
    if self.best:
      return self.best["params"], self.best["batch_stats"]
    return self.params, self.batch_stats


def seed_keys(seed: int):
  """Keys named by purpose; derived from the seed, never stored, so a resumed run replays
  the same stream."""
  init_key, extras_key, train_key = jax.random.split(jax.random.key(seed), 3)
  return init_key, extras_key, train_key


def create_train_state(method: Method, init_key, extras_key, data: TrainData,
                       hparams=None) -> TrainState:
  """A run's initial state. `hparams`: this run's values of `method.run_hparams` (the
  method's own where absent)."""
  variables, extras = method.init(init_key, extras_key, data)
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  best = ({"loss": jnp.array(jnp.inf, jnp.float32), "params": params,
           "batch_stats": batch_stats} if method.select_best_epoch else {})
  opt_state = method.optimizer.init(params)
  if hparams:  # this run's values of method.run_hparams (init set the configured ones)
    values = {name: jnp.asarray(value, jnp.float32) for name, value in hparams.items()}
    extras = {**extras, "hparams": {**extras["hparams"], **values}}
    # The optimizer's own copies (an optax.inject_hyperparams state holding the name).
    in_optimizer = {k: v for k, v in values.items()
                    if optax.tree_utils.tree_get(opt_state, k) is not None}
    if in_optimizer:
      opt_state = optax.tree_utils.tree_set(opt_state, **in_optimizer)
  # Stages start from the run's own hyper-parameters (e.g. a stage optimizer's rate).
  stages = tuple({"epoch": jnp.zeros((), jnp.int32),
                  "state": stage.init(variables, extras, extras_key, data)}
                 for stage in method.stages)
  method_state = method.step_state.init(data) if method.step_state is not None else {}
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=opt_state, extras=extras, best=best, stages=stages,
                    method_state=method_state)


def run_stage_epochs(method: Method, index: int, num_epochs: int, state: TrainState,
                     data: TrainData, active_epochs) -> tuple[TrainState, dict]:
  """`num_epochs` slots of `method.stages[index]`, the first `active_epochs` of which
  train (as `run_epochs`); per-epoch metrics with `run_epochs`' keys."""
  stage = method.stages[index]

  def epoch_body(state):
    done = state.stages[index]
    with norm.run_momentum(_run_momentum(state.extras)):
      stage_state, loss = stage.epoch(done["state"], done["epoch"], state.extras, data)
    variables, extras = stage.result(make_variables(state.params, state.batch_stats),
                                     state.extras, stage_state)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    stages = list(state.stages)
    stages[index] = {"epoch": done["epoch"] + 1, "state": stage_state}
    best = state.best
    if best:  # the main stage's best epoch starts from the stage's result
      best = {**best, "params": params, "batch_stats": batch_stats}
    finite = jnp.isfinite(loss)
    return state.replace(params=params, batch_stats=batch_stats, extras=extras,
                         stages=tuple(stages), best=best), {
        "loss": loss.astype(jnp.float32), "updated": jnp.ones((), jnp.float32),
        "finite": finite.astype(jnp.float32),
        "first_bad_step": jnp.where(finite, -1, done["epoch"] * stage.steps_per_epoch
                                    ).astype(jnp.int32)}

  def slot(state, e):
    return jax.lax.cond(e < active_epochs, epoch_body, _skipped_epoch, state)

  return jax.lax.scan(slot, state, jnp.arange(num_epochs, dtype=jnp.int32))


def initialise(method: Method, init_key, extras_key, data: TrainData) -> TrainState:
  """One run's state with every stage before the main one trained to its end, in one
  traced function (no chunks, checkpoints or progress): for callers outside the fused
  program (host-fed training, inspection)."""
  state = create_train_state(method, init_key, extras_key, data)
  for i, stage in enumerate(method.stages):
    state, _ = run_stage_epochs(method, i, stage.num_epochs, state, data, stage.num_epochs)
  return state


def _run_momentum(extras):
  """The run's BatchNorm momentum (`methods.build` makes `norm.momentum` run data), or
  None for a method built without it."""
  return extras.get("hparams", {}).get(norm.RUN_HPARAM)


def _skipped_epoch(state):
  zero = jnp.zeros((), jnp.float32)
  return state, {"loss": zero, "updated": zero, "finite": zero,
                 "first_bad_step": jnp.array(-1, jnp.int32)}


def data_kwargs(method: Method, data) -> dict:
  """The keyword `method.per_example_loss` and `method.score` take the run's training
  data by (`Method.needs_train_data`)."""
  if not method.needs_train_data:
    return {}
  if data is None:
    raise ValueError(f"{method.name} needs its training data to train and score "
                     "(Method.needs_train_data): pass data=")
  return {"data": data}


def train_step(method: Method, state: TrainState, batch: dict, key,
               active=None, lr_scale=None, data=None) -> tuple[TrainState, dict]:
  """One update. `active` (traced bool, or None = always): a run whose epoch is shorter
  than the program's (shape buckets) leaves every piece of its state, the step counter
  included, untouched on the slots past its own length. `lr_scale` (traced scalar, or
  None): this run's learning rate over `method.learning_rate`; the updates scale by it
  (exact, as they are proportional to the rate). `data`: the run's TrainData, for a
  method that `needs_train_data`."""
  data_args = data_kwargs(method, data)
  method_state = state.method_state
  if method.step_state is not None:
    method_state, batch = method.step_state.refresh(
        jax.lax.stop_gradient(state.params), method_state, batch, key, **data_args)

  def loss_fn(params):
    with norm.run_momentum(_run_momentum(state.extras)):
      per_example, anomaly_mask, new_batch_stats = method.per_example_loss(
          params, state.batch_stats, state.extras, batch, key, **data_args)
    loss, apply_update = method.reduce_loss(per_example, anomaly_mask)
    if method.regularizer is not None:
      loss = loss + method.regularizer(params, state.extras)
    return loss, (new_batch_stats, apply_update)

  (loss, (new_batch_stats, apply_update)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  updates, opt_state = method.optimizer.update(grads, state.opt_state, state.params)
  if lr_scale is not None:
    updates = jax.tree.map(lambda u: u * lr_scale, updates)
  updated = state.replace(params=optax.apply_updates(state.params, updates),
                          batch_stats=new_batch_stats, opt_state=opt_state,
                          method_state=method_state)
  # A skipped update keeps every piece of state, BatchNorm statistics included.
  keep_new = apply_update if active is None else apply_update & active
  new_state = jax.tree.map(lambda new, old: jnp.where(keep_new, new, old), updated, state)
  metrics = {"loss": loss, "updated": apply_update.astype(jnp.float32),
             "finite": jnp.isfinite(loss).astype(jnp.float32), "step": state.step}
  if active is None:
    return new_state.replace(step=state.step + 1), metrics
  metrics["active"] = active.astype(jnp.float32)
  return new_state.replace(step=state.step + active.astype(state.step.dtype)), metrics


def run_epochs(method: Method, num_epochs: int, state: TrainState, seed,
               data: TrainData, layout: parallel.Layout | None = None,
               active_epochs=None, lr_scale=None) -> tuple[TrainState, dict]:
  """`num_epochs` epochs of one seed, starting at the epoch that `state.step` is in.

  Per-epoch state (e.g. a permutation) is computed once per epoch by the sampler. With a
  `layout`, every batch is constrained to be sharded over the 'data' mesh axis, so the
  step is data-parallel and BatchNorm statistics are global (synced).
  With `active_epochs` (an int32 scalar, unbatched under vmap) only the first
  `active_epochs` of the `num_epochs` slots train; the others leave the state untouched
  (`lax.cond` on an unbatched predicate stays a real branch, nothing is computed), so
  one compiled program of fixed length serves every chunk, the last partial one too.
  `lr_scale`: see `train_step`.
  Returns per-epoch means of the step metrics, each `[num_epochs]` (skipped slots: 0,
  `first_bad_step` -1).
  """
  steps_per_epoch = method.steps_per_epoch  # the program's (the longest run's) epoch
  # This run's own epoch length: shorter than the program's for a run padded into a
  # shape bucket by a method whose epochs follow the row count (Deep SAD).
  run_steps = (method.run_steps_per_epoch(data) if method.run_steps_per_epoch is not None
               else steps_per_epoch)
  # Masked whenever the method has per-run lengths, padded or not: the same program
  # structure either way, so a run at its bucket's shape is bit-identical to it unpadded.
  masked = method.run_steps_per_epoch is not None
  train_key = seed_keys(seed)[2]

  def epoch_body(state, _):
    epoch_key = jax.random.fold_in(train_key, state.step // run_steps)
    sampler_key, steps_key = jax.random.split(epoch_key)
    epoch_state = method.sampler.begin_epoch(sampler_key, data)

    def step_body(state, i):
      batch_key, loss_key = jax.random.split(jax.random.fold_in(steps_key, i))
      batch = method.sampler.batch(epoch_state, i, batch_key, data)
      if layout is not None:
        layout.check_batch(batch)
        batch = jax.lax.with_sharding_constraint(batch, layout.batch)
      return train_step(method, state, batch, loss_key,
                        active=(i < run_steps) if masked else None, lr_scale=lr_scale,
                        data=data)

    state, steps = jax.lax.scan(step_body, state, jnp.arange(steps_per_epoch))
    if masked:  # means over the run's own steps
      count = jnp.sum(steps["active"])
      metrics = {k: jnp.sum(jnp.where(steps["active"] > 0, steps[k], 0.0)) / count
                 for k in ("loss", "updated", "finite")}
      steps["finite"] = jnp.where(steps["active"] > 0, steps["finite"], 1.0)
    else:
      metrics = {k: jnp.mean(steps[k]) for k in ("loss", "updated", "finite")}
    # The first global step whose loss was not finite, or -1.
    bad = jnp.where(steps["finite"] > 0, jnp.iinfo(jnp.int32).max, steps["step"])
    metrics["first_bad_step"] = jnp.where(jnp.min(bad) == jnp.iinfo(jnp.int32).max, -1,
                                          jnp.min(bad))
    if state.best:
      # Keras keeps the weights of the epoch with the lowest mean training loss; strict
      # '<' keeps the earliest of equal epochs, as save_best_only does.
      improved = metrics["loss"] < state.best["loss"]
      candidate = {"loss": metrics["loss"], "params": state.params,
                   "batch_stats": state.batch_stats}
      state = state.replace(best=jax.tree.map(
          lambda new, old: jnp.where(improved, new, old), candidate, state.best))
    return state, metrics

  if active_epochs is None:
    return jax.lax.scan(epoch_body, state, None, length=num_epochs)

  def slot(state, e):
    return jax.lax.cond(e < active_epochs, lambda st: epoch_body(st, None), _skipped_epoch,
                        state)

  return jax.lax.scan(slot, state, jnp.arange(num_epochs, dtype=jnp.int32))


def recomputed_stats(method: Method, state: TrainState, d: TrainData) -> TrainState:
  """One run's state whose scoring BatchNorm statistics are the exact statistics of its
  unlabelled training rows (one full-batch pass)."""
  x_unlabelled = jnp.asarray(d.x)[jnp.asarray(d.unlabelled_index)]
  params, batch_stats = state.final_variables()
  new = method.batch_statistics(params, batch_stats, state.extras, x_unlabelled)
  if state.best:
    return state.replace(best={**state.best, "batch_stats": new})
  return state.replace(batch_stats=new)
