"""The host loop around the training program: runs vmapped over a run axis, one compiled
program per group (from ssadjax.host.program_cache), chunked dispatch with checkpoints,
progress and divergence checks between chunks, scoring.

The pure program of one run (TrainState, train_step, run_epochs, run_stage_epochs) is
ssadjax/program/train.py, re-exported here. A whole chunk of epochs for every run of a group
is one compiled call; the host loop only dispatches chunks, logs, saves and reports.
"""

import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import logging

from ssadjax.host import checkpoint as ckpt
from ssadjax.program import parallel
from ssadjax.host import program_cache
from ssadjax.methods.base import Method
from ssadjax.methods.train_data import TrainData
from ssadjax.models.variables import make_variables
from ssadjax.program.train import (TrainState, create_train_state, data_kwargs, initialise,
                             recomputed_stats, run_epochs, run_stage_epochs, seed_keys,
                             train_step)
from ssadjax.host.program_cache import COMPILE_OPTIONS, program_stats
from ssadjax.host.program_cache import clear as clear_program_cache

log = logging.getLogger(__name__)


class DivergenceError(FloatingPointError):
  """A seed's training loss became NaN or inf."""


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


def _vmap(fn, layout, in_axes=0):
  """vmap over seeds; with a layout the seed axis is laid out over 'replica'."""
  return jax.vmap(fn, in_axes=in_axes,
                  spmd_axis_name="replica" if layout is not None else None)


def _to_host(tree):
  """Device values -> numpy, gathering from every process when there are several."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


def _as_float32(tree):
  """Host floating arrays -> float32 (a float64 numpy input would otherwise make JAX
  pick float64 under jax_enable_x64, or warn and truncate without it)."""
  def cast(a):
    if isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating) and a.dtype != np.float32:
      return a.astype(np.float32)
    return a
  return jax.tree.map(cast, tree)


def fit(method: Method, data: TrainData, seeds: list[int], **kwargs) -> tuple[TrainState, dict]:
  """Trains `len(seeds)` models side by side; `data` carries a leading seed axis.
  Returns the stacked final states and timing information (see `fit_and_score` for the
  keyword arguments). One compiled program initialises the runs in its first call and
  trains a chunk of epochs in every call."""
  state, _, timing = _train(method, data, seeds, None, **kwargs)
  return state, timing


def fit_and_score(method: Method, data: TrainData, seeds: list[int], x, *,
                  recompute_stats: bool = False, learning_rates=None, run_hparams=None,
                  **kwargs) -> tuple[TrainState, np.ndarray, dict]:
  """`fit`, and the `[runs, n]` eval-mode scores of per-run inputs `x` `[runs, n, d]`
  from the final (or best) variables, all in one compiled program: its first call
  initialises, every call trains a chunk, the last also scores. With `recompute_stats`
  the scores use BatchNorm statistics recomputed from each run's unlabelled training rows
  (`norm.eval_stats='recomputed'`, as `recompute_batch_stats`); the returned state keeps
  the trained ones. `learning_rates` (one per run, or None = the method's) needs
  `method.learning_rate`: each run trains at its own rate in the same program.
  `run_hparams` (one {name: value} per run, or None = the method's): each run's values
  of `method.run_hparams`, data of the same program.
  `compile_effort`: 'optimized' (XLA's default) or 'fast' (LLVM at -O0: about half the
  compile time, slower steps where FLOPs dominate).

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

  Compiled programs are reused (see `program_cache.compiled`): pass a hashable `program_key` that
  determines the method (e.g. its resolved config) to share them between Method objects
  built from the same config; without one they are shared by calls with this `method`.

  The leading axis is a run axis: runs may be seeds of one cell or cells of a grid
  (other data, same program), and `run_names` (default 'seed <s>') names them in
  errors; `timing['diverged_runs']` is {run index: step}.
  """
  return _train(method, data, seeds, x, recompute_stats=recompute_stats,
                learning_rates=learning_rates, run_hparams=run_hparams, **kwargs)


def _run_hparam_arrays(method: Method, run_hparams, num_runs: int) -> dict:
  """{name: float32 [runs]} of `method.run_hparams`, each run's value or the method's."""
  if run_hparams is None:
    run_hparams = [{}] * num_runs
  if len(run_hparams) != num_runs:
    raise ValueError(f"{len(run_hparams)} sets of run hyper-parameters for {num_runs} runs")
  unknown = {k for r in run_hparams for k in r} - set(method.run_hparams)
  if unknown:
    raise ValueError(f"{method.name}: {sorted(unknown)} are not run hyper-parameters of "
                     f"this method (it has {sorted(method.run_hparams) or 'none'}); set them "
                     "in the config, where they are part of the program")
  return {name: np.asarray([r.get(name, default) for r in run_hparams], np.float32)
          for name, default in method.run_hparams.items()}


def _placeholder(abstract_state, layout):
  """Zeros shaped like the state: the first call's input, never read (the program
  initialises instead) but donated, so it costs one allocation of the state."""
  zeros = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), abstract_state)
  return layout.put_per_seed(zeros) if layout is not None else jax.device_put(zeros)


def _check_recompute(method: Method, state) -> bool:
  """Whether recomputing BatchNorm statistics changes anything (False without BatchNorm
  state); raises when the method cannot recompute them."""
  if not jax.tree.leaves(state.batch_stats):
    return False  # no BatchNorm (controls, DevNet's baseline, FUN-AD)
  if method.batch_statistics is None:
    raise ValueError(f"{method.name} cannot recompute its BatchNorm statistics "
                     "(norm.eval_stats='recomputed'): it defines no batch_statistics")
  return True


def _train(method: Method, data: TrainData, seeds: list[int], x, *, chunk_epochs: int = 10,
           checkpoint_dir=None, max_to_keep: int = 2, layout: parallel.Layout | None = None,
           on_divergence: str = "stop",
           on_chunk_end: Callable[[int, dict], None] | None = None,
           program_key=None, run_names: list[str] | None = None,
           recompute_stats: bool = False, learning_rates=None, run_hparams=None,
           compile_effort: str = "optimized"):
  if chunk_epochs < 1:
    raise ValueError(f"chunk_epochs={chunk_epochs} must be >= 1")
  if compile_effort not in COMPILE_OPTIONS:
    raise ValueError(f"compile_effort={compile_effort!r}; expected one of "
                     f"{' | '.join(COMPILE_OPTIONS)}")
  lr_scales = None
  if learning_rates is not None:
    if not method.learning_rate:
      raise ValueError(f"{method.name}: per-run learning rates need an optimizer whose "
                       "updates are proportional to its rate (Method.learning_rate)")
    lr_scales = np.asarray(learning_rates, np.float64) / method.learning_rate
    if lr_scales.shape != (len(seeds),):
      raise ValueError(f"{len(learning_rates)} learning rates for {len(seeds)} runs")
    lr_scales = lr_scales.astype(np.float32)
  hparams = _run_hparam_arrays(method, run_hparams, len(seeds))
  main_steps = method.steps_per_epoch  # the program's epoch; runs may be shorter
  if method.run_steps_per_epoch is not None:  # progress counts the longest run's steps
    main_steps = int(np.max(jax.device_get(jax.vmap(method.run_steps_per_epoch)(data))))
  seeds_array = np.asarray(seeds, np.int32)
  if layout is not None:
    layout.check_seeds(len(seeds))
    place = layout.put_per_seed
    jit_kwargs = {"out_shardings": layout.per_seed}
  else:
    place = jax.device_put
    jit_kwargs = {}
  seeds_array, data = place(seeds_array), place(_as_float32(data))
  if lr_scales is not None:
    lr_scales = place(lr_scales)
  hparams = place(hparams)
  if x is not None:
    x = x if isinstance(x, jax.Array) else _as_float32(np.asarray(x))
    x = place(x)
  key = (program_cache.program_owner(method, program_key), program_cache.layout_key(layout))

  def init_one(seed, d, hp):
    init_key, extras_key, _ = seed_keys(seed)
    return create_train_state(method, init_key, extras_key, d, hp)

  init_all = jax.jit(_vmap(init_one, layout))
  # The phases, in order: every `Method.stages` entry, then the main stage. Epochs are
  # counted over all of them (checkpoints, resume); a chunk never crosses a phase.
  phases = [(s.name, s.num_epochs, s.steps_per_epoch) for s in method.stages]
  phases.append(("train", method.num_epochs, main_steps))
  total_epochs = sum(p[1] for p in phases)
  total_steps = sum(p[1] * p[2] for p in phases)
  # One program of `length` epoch slots serves every chunk; a shorter last chunk skips
  # its extra slots (`active`, an unbatched runtime scalar), so it does not recompile.
  length = max(1, min(chunk_epochs, max(p[1] for p in phases)))

  def phase_at(epoch: int) -> tuple[int, int]:
    """(phase index, epochs done in it) at a global epoch count."""
    for i, (_, num, _) in enumerate(phases):
      if epoch < num or i == len(phases) - 1:
        return i, epoch
      epoch -= num
    raise AssertionError

  def steps_done(epoch: int) -> int:
    p, e = phase_at(epoch)
    return sum(n * s for _, n, s in phases[:p]) + e * phases[p][2]

  def one(state, seed, d, hp, x_run, lr_scale, active, fresh, final, phase):
    # `fresh`, `final` and `phase` are unbatched runtime values: lax.cond / switch stay
    # real branches, so a later chunk does not initialise, only the last one scores, and
    # a chunk runs the epochs of its phase only.
    state = jax.lax.cond(fresh, lambda st: init_one(seed, d, hp), lambda st: st, state)
    main = lambda st: run_epochs(method, length, st, seed, d, layout, active_epochs=active,
                                 lr_scale=lr_scale)
    if phase is None:
      state, metrics = main(state)
    else:
      branches = [functools.partial(run_stage_epochs, method, i, length, data=d,
                                    active_epochs=active)
                  for i in range(len(method.stages))]
      state, metrics = jax.lax.switch(phase, branches + [main], state)
    if x_run is None:
      return state, metrics, None

    def scored(st):
      if recompute_stats:
        st = recomputed_stats(method, st, d)
      return method.score(make_variables(*st.final_variables()), st.extras, x_run,
                          **data_kwargs(method, d))

    scores = jax.lax.cond(final, scored,
                          lambda st: jnp.zeros(x_run.shape[:1], jnp.float32), state)
    return state, metrics, scores

  per_run = lambda a: None if a is None else 0
  program_fn = jax.jit(_vmap(one, layout, in_axes=(0, 0, 0, 0, per_run(x), per_run(lr_scales),
                                                    None, None, None, None)),
                       donate_argnums=0, **jit_kwargs)

  def abstract():
    state = jax.eval_shape(init_all, seeds_array, data, hparams)
    if recompute_stats:
      _check_recompute(method, state)
    if layout is not None:
      state = jax.tree.map(
          lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=layout.per_seed), state)
    return state

  phase_arg = (lambda p: np.int32(p)) if method.stages else (lambda p: None)
  flags = (np.int32(length), np.bool_(True), np.bool_(False), phase_arg(0))
  program, compile_seconds = program_cache.compiled(
      (key, "train", length, recompute_stats,
       program_cache.avals_key(seeds_array, data, hparams, x, lr_scales)),
      lambda: program_fn.lower(abstract(), seeds_array, data, hparams, x, lr_scales, *flags),
      compile_effort)
  abstract_state = program.out_info[0]  # the state's shapes, without tracing again
  if layout is not None:
    abstract_state = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=layout.per_seed),
        abstract_state)

  manager = ckpt.make_manager(checkpoint_dir, max_to_keep=max_to_keep) if checkpoint_dir else None
  restored_epoch, state = (ckpt.restore_latest(manager, abstract_state) if manager
                           else (None, None))
  fresh = state is None
  if fresh:
    state = _placeholder(abstract_state, layout)
    start_epoch = 0
  else:
    start_epoch = int(restored_epoch)
    log.info("resumed from %s at epoch %d", checkpoint_dir, start_epoch)

  progress = ProgressReporter(total_steps, len(seeds), steps_done(start_epoch))
  train_seconds = 0.0
  epoch = start_epoch
  diverged, diverged_runs = {}, {}
  last_saved = start_epoch if start_epoch else None
  scores = None
  try:
    # A run resumed at its last epoch still needs one call: it scores (0 epoch slots).
    while epoch < total_epochs or (x is not None and scores is None):
      phase, phase_epoch = phase_at(epoch)
      phase_name, phase_epochs, phase_steps = phases[phase]
      n = min(length, phase_epochs - phase_epoch)
      final = epoch + n >= total_epochs
      t = time.perf_counter()
      state, metrics, scores_out = program(state, seeds_array, data, hparams, x, lr_scales,
                                           np.int32(n), np.bool_(fresh), np.bool_(final),
                                           phase_arg(phase))
      fresh = False
      metrics = _to_host(metrics)  # blocks: bounds the work in flight
      metrics = {k: v[:, :n] for k, v in metrics.items()}  # the slots that trained
      if x is not None and final:
        scores = np.asarray(_to_host(scores_out))
      train_seconds += time.perf_counter() - t
      if n == 0:
        break
      epoch += n
      phase_epoch += n
      for i, seed in enumerate(seeds):
        bad_steps = metrics["first_bad_step"][i][metrics["first_bad_step"][i] >= 0]
        if bad_steps.size and i not in diverged_runs:
          step = int(bad_steps.min())
          name = run_names[i] if run_names else f"seed {seed}"
          what = "training" if phase_name == "train" else f"{phase_name} stage"
          if on_divergence == "stop":
            raise DivergenceError(
                f"{name}: non-finite {what} loss at step {step} (epoch "
                f"{step // phase_steps + 1}); the last good checkpoint is "
                + (f"epoch {last_saved} in {checkpoint_dir}" if last_saved and manager
                   else "none (no chunk finished before it)"))
          log.warning("%s diverged at step %d; continuing the other runs", name, step)
          diverged.setdefault(seed, step)
          diverged_runs[i] = step
      report = progress(steps_done(epoch), float(np.mean(metrics["loss"][:, -1])),
                        train_seconds)
      if manager:
        ckpt.save(manager, epoch, state)
        last_saved = epoch
      if on_chunk_end:
        # The main stage reports its own epochs; an earlier stage names itself.
        stage = {} if phase_name == "train" else {"stage": phase_name,
                                                   "steps_per_epoch": phase_steps}
        on_chunk_end(phase_epoch, {**metrics, **report, **stage})
  except BaseException:
    # An interrupt (Ctrl-C, or one raised by on_chunk_end) still lets the checkpoint
    # being written finish, so that a rerun resumes from it.
    if manager:
      manager.wait_until_finished()
    raise
  if manager:
    manager.wait_until_finished()
    manager.close()
  timing = {"compile_seconds": compile_seconds, "train_seconds": train_seconds,
            "steps": int(total_steps),
            "resumed_from_epoch": start_epoch, "diverged": diverged,
            "diverged_runs": diverged_runs}
  return state, scores, timing


def score(method: Method, state: TrainState, x, *,
          layout: parallel.Layout | None = None, program_key=None,
          data: TrainData | None = None) -> np.ndarray:
  """`[seeds, n]` anomaly scores of per-seed inputs `x` `[seeds, n, d]` (eval mode).
  The compiled program is reused as `fit`'s (same `program_key` semantics). `data`: the
  stacked per-seed TrainData given to `fit`, for a method that `needs_train_data`."""
  data_kwargs(method, data)  # a clear error before tracing when it is missing
  if not method.needs_train_data:
    data = None

  def one(state, x, d):
    return method.score(make_variables(*state.final_variables()), state.extras, x,
                        **data_kwargs(method, d))

  x = _as_float32(np.asarray(x)) if not isinstance(x, jax.Array) else x
  if layout is not None:
    x = layout.put_per_seed(x)
    if data is not None:
      data = layout.put_per_seed(data)
  in_axes = (0, 0, None if data is None else 0)
  owner = program_cache.program_owner(method, program_key)
  program, _ = program_cache.compiled(
      ((owner, program_cache.layout_key(layout)), "score",
       program_cache.avals_key(state, x, data)),
      lambda: jax.jit(_vmap(one, layout, in_axes=in_axes)).lower(state, x, data))
  return np.asarray(_to_host(program(state, x, data)))


def recompute_batch_stats(method: Method, state: TrainState, data: TrainData, *,
                          layout: parallel.Layout | None = None) -> TrainState:
  """`norm.eval_stats='recomputed'`: the BatchNorm statistics that scoring uses (the final
  or best epoch's) are replaced by the exact statistics of each seed's unlabelled
  training rows, from one full-batch pass (`method.batch_statistics`). `data` is the
  stacked per-seed TrainData given to `fit`. Without BatchNorm state nothing changes.
  """
  if not _check_recompute(method, state):
    return state

  def one(state, d):
    return recomputed_stats(method, state, d)

  if layout is not None:
    data = layout.put_per_seed(data)
    return jax.jit(_vmap(one, layout), out_shardings=layout.per_seed)(state, data)
  return jax.jit(_vmap(one, layout))(state, data)


__all__ = ["COMPILE_OPTIONS", "DivergenceError", "ProgressReporter", "TrainState",
           "clear_program_cache", "create_train_state", "fit", "fit_and_score",
           "initialise", "program_stats", "recompute_batch_stats", "run_epochs",
           "run_stage_epochs", "score", "seed_keys", "stack_data", "train_step"]
