"""The fused training program: TrainState, in-graph sampling, lax.scan over steps,
vmap over seeds, chunked dispatch with checkpoints and progress between chunks.

This is the only module that knows about jit, scan, vmap and checkpoints together.
A whole chunk of epochs for every seed of a group is one compiled call; the host loop
only dispatches chunks, logs, saves and reports.
"""

import time
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import logging

from ssadjax import checkpoint as ckpt
from ssadjax import parallel
from ssadjax.methods.base import Method, TrainData

log = logging.getLogger(__name__)


class DivergenceError(FloatingPointError):
  """A seed's training loss became NaN or inf."""


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  extras: Any
  # {'loss', 'params', 'batch_stats'} of the best epoch so far, for methods that select
  # their final model by training loss; {} otherwise.
  best: Any = flax.struct.field(default_factory=dict)

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


def create_train_state(method: Method, init_key, extras_key, data: TrainData) -> TrainState:
  variables, extras = method.init(init_key, extras_key, data)
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  best = ({"loss": jnp.array(jnp.inf, jnp.float32), "params": params,
           "batch_stats": batch_stats} if method.select_best_epoch else {})
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                    opt_state=method.optimizer.init(params), extras=extras, best=best)


def train_step(method: Method, state: TrainState, batch: dict, key) -> tuple[TrainState, dict]:
  def loss_fn(params):
    per_example, anomaly_mask, new_batch_stats = method.per_example_loss(
        params, state.batch_stats, state.extras, batch, key)
    loss, apply_update = method.reduce_loss(per_example, anomaly_mask)
    if method.regularizer is not None:
      loss = loss + method.regularizer(params)
    return loss, (new_batch_stats, apply_update)

  (loss, (new_batch_stats, apply_update)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  updates, opt_state = method.optimizer.update(grads, state.opt_state, state.params)
  updated = state.replace(params=optax.apply_updates(state.params, updates),
                          batch_stats=new_batch_stats, opt_state=opt_state)
  # A skipped update keeps every piece of state, BatchNorm statistics included.
  new_state = jax.tree.map(lambda new, old: jnp.where(apply_update, new, old), updated, state)
  metrics = {"loss": loss, "updated": apply_update.astype(jnp.float32),
             "finite": jnp.isfinite(loss).astype(jnp.float32), "step": state.step}
  return new_state.replace(step=state.step + 1), metrics


def run_epochs(method: Method, num_epochs: int, state: TrainState, seed,
               data: TrainData, layout: parallel.Layout | None = None
               ) -> tuple[TrainState, dict]:
  """`num_epochs` epochs of one seed, starting at the epoch that `state.step` is in.

  Per-epoch state (e.g. a permutation) is computed once per epoch by the sampler. With a
  `layout`, every batch is constrained to be sharded over the 'data' mesh axis, so the
  step is data-parallel and BatchNorm statistics are global (synced).
  Returns per-epoch means of the step metrics, each `[num_epochs]`.
  """
  steps_per_epoch = method.steps_per_epoch
  train_key = seed_keys(seed)[2]

  def epoch_body(state, _):
    epoch_key = jax.random.fold_in(train_key, state.step // steps_per_epoch)
    sampler_key, steps_key = jax.random.split(epoch_key)
    epoch_state = method.sampler.begin_epoch(sampler_key, data)

    def step_body(state, i):
      batch_key, loss_key = jax.random.split(jax.random.fold_in(steps_key, i))
      batch = method.sampler.batch(epoch_state, i, batch_key, data)
      if layout is not None:
        layout.check_batch(batch)
        batch = jax.lax.with_sharding_constraint(batch, layout.batch)
      return train_step(method, state, batch, loss_key)

    state, steps = jax.lax.scan(step_body, state, jnp.arange(steps_per_epoch))
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

  return jax.lax.scan(epoch_body, state, None, length=num_epochs)


def stack_data(datas: list[TrainData]) -> TrainData:
  """Per-seed host arrays -> one TrainData with a leading seed axis (shapes must match)."""
  return jax.tree.map(lambda *xs: np.stack(xs), *datas)


class ProgressReporter:
  """Logs steps/s and ETA after each chunk."""

  def __init__(self, total_steps: int, num_seeds: int, start_step: int = 0):
    self.total, self.num_seeds, self.start = total_steps, num_seeds, start_step

  def __call__(self, step: int, loss: float, elapsed: float) -> dict:
    """`elapsed`: seconds spent running chunks (compilation excluded)."""
    rate = (step - self.start) / max(elapsed, 1e-9)
    eta = (self.total - step) / rate if rate > 0 else float("nan")
    log.info("step %d/%d (%d seeds)  loss %.5g  %.1f steps/s per seed  ETA %.1fs",
                 step, self.total, self.num_seeds, loss, rate, eta)
    return {"steps_per_second": rate, "eta_seconds": eta}


def _vmap(fn, layout):
  """vmap over seeds; with a layout the seed axis is laid out over 'replica'."""
  return jax.vmap(fn, spmd_axis_name="replica" if layout is not None else None)


def _to_host(tree):
  """Device values -> numpy, gathering from every process when there are several."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


def fit(method: Method, data: TrainData, seeds: list[int], *, chunk_epochs: int = 10,
        checkpoint_dir=None, max_to_keep: int = 2, layout: parallel.Layout | None = None,
        on_divergence: str = "stop",
        on_chunk_end: Callable[[int, dict], None] | None = None) -> tuple[TrainState, dict]:
  """Trains `len(seeds)` models side by side; `data` carries a leading seed axis.

  Every `chunk_epochs` epochs the host logs, calls `on_chunk_end(epoch, metrics)` with
  per-seed per-epoch metrics, and saves a checkpoint. With `checkpoint_dir` pointing at
  an existing run, training resumes from its latest checkpoint and ends with the state
  an uninterrupted run reaches (keys derive from seed and step, not from the host loop).
  With a `layout`, batches are sharded over its 'data' axis and seeds over 'replica'; a
  checkpoint restores onto any layout.

  A non-finite loss raises `DivergenceError` naming the seed and the step, without saving
  the chunk (the last checkpoint stays the last good state) when `on_divergence='stop'`;
  with 'continue' the seed is recorded in `timing['diverged']` ({seed: step}) and the
  other seeds go on (vmapped seeds are independent).

  Returns the stacked final states and timing information.
  """
  if chunk_epochs < 1:
    raise ValueError(f"chunk_epochs={chunk_epochs} must be >= 1")
  seeds_array = np.asarray(seeds, np.int32)
  if layout is not None:
    layout.check_seeds(len(seeds))
    place = lambda tree: jax.tree.map(
        lambda a: parallel.global_array(layout, layout.per_seed, np.asarray(a)), tree)
    jit_kwargs = {"out_shardings": layout.per_seed}
  else:
    place = jax.device_put
    jit_kwargs = {}
  seeds_array, data = place(seeds_array), place(data)

  def init_one(seed, d):
    init_key, extras_key, _ = seed_keys(seed)
    return create_train_state(method, init_key, extras_key, d)

  t0 = time.perf_counter()
  init_fn = jax.jit(_vmap(init_one, layout), **jit_kwargs)
  init_compiled = init_fn.lower(seeds_array, data).compile()
  compile_seconds = time.perf_counter() - t0

  manager = ckpt.make_manager(checkpoint_dir, max_to_keep=max_to_keep) if checkpoint_dir else None
  abstract_state = jax.eval_shape(init_fn, seeds_array, data)
  if layout is not None:
    abstract_state = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=layout.per_seed),
        abstract_state)
  restored_epoch, state = (ckpt.restore_latest(manager, abstract_state) if manager
                           else (None, None))
  t1 = time.perf_counter()
  if state is None:
    state = init_compiled(seeds_array, data)
    jax.block_until_ready(state)
    start_epoch = 0
  else:
    start_epoch = int(restored_epoch)
    log.info("resumed from %s at epoch %d", checkpoint_dir, start_epoch)
  init_seconds = time.perf_counter() - t1

  total_epochs = method.num_epochs
  compiled_chunks = {}

  def chunk_fn(n):
    if n not in compiled_chunks:
      t = time.perf_counter()
      fn = jax.jit(_vmap(lambda st, sd, d: run_epochs(method, n, st, sd, d, layout), layout),
                   donate_argnums=0, **jit_kwargs)
      compiled_chunks[n] = fn.lower(state, seeds_array, data).compile()
      nonlocal compile_seconds
      compile_seconds += time.perf_counter() - t
    return compiled_chunks[n]

  progress = ProgressReporter(total_epochs * method.steps_per_epoch, len(seeds),
                              start_epoch * method.steps_per_epoch)
  train_seconds = 0.0
  epoch = start_epoch
  diverged = {}
  last_saved = start_epoch if start_epoch else None
  while epoch < total_epochs:
    n = min(chunk_epochs, total_epochs - epoch)
    fn = chunk_fn(n)
    t = time.perf_counter()
    state, metrics = fn(state, seeds_array, data)
    metrics = _to_host(metrics)  # blocks: bounds the work in flight
    train_seconds += time.perf_counter() - t
    epoch += n
    for i, seed in enumerate(seeds):
      bad_steps = metrics["first_bad_step"][i][metrics["first_bad_step"][i] >= 0]
      if bad_steps.size and seed not in diverged:
        step = int(bad_steps.min())
        if on_divergence == "stop":
          if manager:
            manager.wait_until_finished()
          raise DivergenceError(
              f"seed {seed}: non-finite training loss at step {step} (epoch "
              f"{step // method.steps_per_epoch + 1}); the last good checkpoint is "
              + (f"epoch {last_saved} in {checkpoint_dir}" if last_saved and manager
                 else "none (no chunk finished before it)"))
        log.warning("seed %d diverged at step %d; continuing the other seeds", seed, step)
        diverged[seed] = step
    report = progress(epoch * method.steps_per_epoch, float(np.mean(metrics["loss"][:, -1])),
                      train_seconds)
    if manager:
      ckpt.save(manager, epoch, state)
      last_saved = epoch
    if on_chunk_end:
      on_chunk_end(epoch, {**metrics, **report})
  if manager:
    manager.wait_until_finished()
    manager.close()
  timing = {"compile_seconds": compile_seconds, "train_seconds": train_seconds + init_seconds,
            "steps": int(total_epochs * method.steps_per_epoch),
            "resumed_from_epoch": start_epoch, "diverged": diverged}
  return state, timing


def score(method: Method, state: TrainState, x, *,
          layout: parallel.Layout | None = None) -> np.ndarray:
  """`[seeds, n]` anomaly scores of per-seed inputs `x` `[seeds, n, d]` (eval mode)."""
  def one(state, x):
    params, batch_stats = state.final_variables()
    variables = {"params": params}
    if batch_stats:
      variables["batch_stats"] = batch_stats
    return method.score(variables, state.extras, x)

  if layout is not None:
    x = parallel.global_array(layout, layout.per_seed, np.asarray(x))
  return np.asarray(_to_host(jax.jit(_vmap(one, layout))(state, x)))
