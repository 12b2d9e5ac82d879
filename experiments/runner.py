"""One experiment (or a grid of them) from a config to result files in a workdir: cells
checked and split before anything is written, grouped into programs (ssadjax/host/grouping.py),
trained group by group by the engine, each cell's files written (experiments/workdir.py).
"""

import hashlib
import json
import pathlib

import jax
import ml_collections
import numpy as np
import logging

from ssadjax import methods, metrics, runconfig
from ssadjax.host import engine
from ssadjax.program import parallel
from ssadjax.host.grouping import (bucket, bucket_size, plan_programs, program_counts,
                                   program_delta, program_key)
from experiments import grid
from experiments.workdir import MetricsLog, claim, finished, versions, write_results
from ssadjax.host.files import atomic_write_npz, atomic_write_text

log = logging.getLogger(__name__)




def _resolve_for_layout(config, layout):
  """The config the method is built from: per-device BatchNorm groups default to the
  size of the 'data' axis. config.json keeps what the user asked for."""
  if config.norm.sync or config.norm.stat_groups:
    return config
  resolved = ml_collections.ConfigDict(config.to_dict())
  resolved.norm.stat_groups = layout.data_size
  return resolved


def _check_method(config, split, layout) -> None:
  """Builds the method once and traces its sampler, so that bad hyper-parameters and
  batch sizes that do not divide over the devices fail before anything is written."""
  method = methods.build(config, split.x_train.shape[1], split.x_train.shape[0])
  data = methods.make_train_data(split.x_train, split.semi_labels)
  key = jax.random.key(0)
  batch = jax.eval_shape(
      lambda d: method.sampler.batch(method.sampler.begin_epoch(key, d), 0, key, d), data)
  layout.check_batch(batch)


class _Cell:
  """One cell of a grid (or a single run) prepared for grouping: checked config, seeds,
  splits and unpadded per-seed TrainData."""

  def __init__(self, config, workdir, splits):
    self.config, self.workdir = config, pathlib.Path(workdir)
    runconfig.check_config(config)
    self.seeds = runconfig.seeds(config)
    self.layout = parallel.make_layout(config.parallel.data, config.parallel.replica)
    self.method_config = _resolve_for_layout(config, self.layout)
    # Bad data and bad hyper-parameters fail here, before anything is written.
    self.splits = splits if splits is not None else runconfig.prepare_splits(config, self.seeds)
    _check_method(self.method_config, self.splits[0], self.layout)
    self.datas = []
    for split in self.splits:
      semi = split.semi_labels
      if config.method in methods.UNSUPERVISED:
        semi = np.zeros_like(semi)  # Deep SVDD never sees a label
      self.datas.append(methods.make_train_data(split.x_train, semi))
    self.num_train, self.dim = self.splits[0].x_train.shape
    self.method = methods.build(self.method_config, self.dim, self.num_train)
    log.info("%s%s on %s: %s", config.method, "+anoonly" if config.anomaly_only else "",
             config.dataset, self.splits[0].summary())


def seeds_dir_name(seeds) -> str:
  """A checkpoint folder name for a run's seeds. Short lists keep the name earlier
  versions wrote (their checkpoints still resume); long ones, which would pass the
  file system's 255-byte name limit (num_seeds=100), are named by their range."""
  seeds = [int(s) for s in seeds]
  name = "seeds_" + "_".join(map(str, seeds))
  if len(name) <= 128:
    return name
  if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
    return f"seeds_{seeds[0]}-{seeds[-1]}"
  digest = hashlib.sha1(name.encode()).hexdigest()[:12]
  return f"seeds_{seeds[0]}-{seeds[-1]}_{len(seeds)}_{digest}"


def _group_checkpoint_dir(cells: list[_Cell], root: pathlib.Path):
  if len(cells) == 1:
    return cells[0].workdir / "checkpoints" / seeds_dir_name(cells[0].seeds)
  name = json.dumps([[str(c.workdir.relative_to(root)), c.seeds] for c in cells])
  return root / "checkpoints" / ("group_" + hashlib.sha1(name.encode()).hexdigest()[:12])


def _run_group(cells: list[_Cell], root: pathlib.Path, on_chunk_end=None) -> list[dict]:
  """Trains every run (cell x seed) of `cells` in one vmapped program and writes each
  cell's files; returns the cells' result dicts."""
  first = cells[0]
  config, layout = first.config, first.layout
  shape_bucket = bucket(first)
  runs = [(c, j) for c in cells for j in range(len(c.seeds))]
  if shape_bucket is not None:
    rows, dim = max(c.num_train for c in cells), shape_bucket[1]
    # Pools are padded to the group's largest (not to the rows): a cell alone in its
    # program keeps its own pools, so its pair-scoring batches keep their shapes.
    anomalies = max(len(c.datas[j].anomaly_index) for c, j in runs)
    unlabelled = max(len(c.datas[j].unlabelled_index) for c, j in runs)
    datas = [methods.train_data.pad_train_data(c.datas[j], num_rows=rows, num_features=dim,
                                          num_anomalies=anomalies, num_unlabelled=unlabelled)
             for c, j in runs]
    test_rows = bucket_size(max(c.splits[0].x_test.shape[0] for c in cells), 256)
  else:
    rows, dim = first.num_train, first.dim
    datas = [c.datas[j] for c, j in runs]
    test_rows = first.splits[0].x_test.shape[0]
  x_test = np.zeros((len(runs), test_rows, dim), np.float32)
  for r, (c, j) in enumerate(runs):
    xt = c.splits[j].x_test
    x_test[r, :xt.shape[0], :xt.shape[1]] = xt
  seeds = [c.seeds[j] for c, j in runs]
  names = [f"{c.workdir.name} seed {c.seeds[j]}" if len(cells) > 1
           else f"seed {c.seeds[j]}" for c, j in runs]
  # The 'replica' axis splits the runs: repeat the last run until they divide it.
  extra = (-len(runs)) % layout.replica_size
  datas, seeds, names = datas + datas[-1:] * extra, seeds + seeds[-1:] * extra, names + names[-1:] * extra
  x_test = np.concatenate([x_test] + [x_test[-1:]] * extra)
  method = methods.build(first.method_config, dim, rows)
  key = program_key(first.method_config, dim, rows, run_data=tuple(method.run_hparams))
  stacked = engine.stack_data(datas)
  stats_before = program_counts()
  for c in cells:
    claim(c.config, c.workdir)
  logs = [MetricsLog(c.workdir / "metrics.jsonl") for c in cells]
  offsets = np.cumsum([0] + [len(c.seeds) for c in cells])

  def chunk_end(epoch, m):
    for k, (c, log_) in enumerate(zip(cells, logs)):
      part = {name: (v[offsets[k]:offsets[k + 1]] if np.ndim(v) else v)
              for name, v in m.items()}
      log_.write(c.seeds, epoch, method.steps_per_epoch, part)
    if on_chunk_end:
      on_chunk_end(epoch, m)

  if len(cells) > 1 or shape_bucket is not None:
    log.info("program of %d cell(s), %d runs: %s%s on %s", len(cells), len(runs),
             config.method, "+anoonly" if config.anomaly_only else "",
             f"{rows} x {dim} shape_bucket" if shape_bucket is not None else f"{rows} x {dim}")
  ckpt_dir = (_group_checkpoint_dir(cells, root) if config.checkpoint.enabled else None)
  # Learning rates are run data when they differ within the group (Method.learning_rate);
  # a group at one rate builds the program without the per-run scale.
  rates = [c.method.learning_rate for c, _ in runs]
  rates = rates + rates[-1:] * extra if len(set(rates)) > 1 else None
  hparams = [c.method.run_hparams for c, _ in runs]  # always run data (Method.run_hparams)
  hparams += hparams[-1:] * extra
  # One program per group: it initialises, trains every chunk and scores the test rows.
  state, scores, timing = engine.fit_and_score(
      method, stacked, seeds, x_test, learning_rates=rates,
      run_hparams=hparams,
      compile_effort=config.train.compile,
      recompute_stats=first.method_config.norm.eval_stats == "recomputed",
      chunk_epochs=config.train.chunk_epochs,
      checkpoint_dir=ckpt_dir, max_to_keep=config.checkpoint.max_to_keep, layout=layout,
      on_divergence=config.train.on_divergence, program_key=key, on_chunk_end=chunk_end,
      run_names=names)
  steps = np.asarray(jax.device_get(state.step))
  programs = program_delta(stats_before, program_counts())
  results = []
  for k, c in enumerate(cells):
    share = len(c.seeds) / len(runs)
    cell_scores = [scores[offsets[k] + j][:split.x_test.shape[0]]
                   for j, split in enumerate(c.splits)]
    diverged = {c.seeds[r - offsets[k]]: step for r, step in timing["diverged_runs"].items()
                if offsets[k] <= r < offsets[k + 1]}
    results.append(_write_cell(
        c, cell_scores, diverged, method.name,
        train_seconds=timing["train_seconds"] * share,
        compile_seconds=timing["compile_seconds"] * share,
        steps=int(steps[offsets[k]]), programs=programs,
        group={"cells": len(cells), "runs": len(runs), "rows": rows, "features": dim,
               "padded": shape_bucket is not None}))
  return results


def _write_cell(cell: _Cell, scores, diverged, method_name, *, train_seconds,
                compile_seconds, steps, programs, group) -> dict:
  config, seeds, splits = cell.config, cell.seeds, cell.splits
  # Seeds that diverged (train.on_divergence=continue) are reported, not scored.
  ok = [i for i, seed in enumerate(seeds) if seed not in diverged]
  if not ok:
    raise FloatingPointError(f"every seed diverged: {diverged}")
  aurocs = [metrics.auroc(splits[i].y_test, scores[i]) if i in ok else None
            for i in range(len(seeds))]
  auprcs = [metrics.auprc(splits[i].y_test, scores[i]) if i in ok else None
            for i in range(len(seeds))]
  good_aurocs = [aurocs[i] for i in ok]
  good_auprcs = [auprcs[i] for i in ok]
  results = {
      "method": config.method, "name": method_name,
      "anomaly_only": bool(config.anomaly_only), "dataset": config.dataset,
      "la": config.la, "seeds": seeds, "auroc": aurocs, "auprc": auprcs,
      "auroc_mean": float(np.mean(good_aurocs)), "auroc_std": float(np.std(good_aurocs)),
      "auprc_mean": float(np.mean(good_auprcs)), "auprc_std": float(np.std(good_auprcs)),
      "diverged": {str(k): v for k, v in diverged.items()},
      # A program trains several cells: its seconds are shared out by runs.
      "train_seconds": train_seconds, "compile_seconds": compile_seconds,
      "steps": steps, "devices": cell.layout.data_size * cell.layout.replica_size,
      "processes": jax.process_count(),
      "num_train": int(splits[0].x_train.shape[0]), "num_test": int(splits[0].x_test.shape[0]),
      "num_labelled": int(splits[0].num_labelled),
      "program_group": group,
      "programs": programs,
      "versions": versions(),
  }
  workdir = cell.workdir
  atomic_write_npz(workdir / "scores.npz", seeds=np.asarray(seeds),
                   labels=np.stack([s.y_test for s in splits]), scores=np.stack(scores))
  atomic_write_text(workdir / "results.json", json.dumps(results, indent=2) + "\n")
  log.info("%s on %s (la %s): AUROC %.4f +- %.4f  AUPRC %.4f +- %.4f", method_name,
           config.dataset, config.la, results["auroc_mean"], results["auroc_std"],
           results["auprc_mean"], results["auprc_std"])
  return results


def run_cells(cells: list[tuple], root, *, on_chunk_end=None) -> list[dict]:
  """Runs `cells` [(config, workdir, splits or None)]: finished cells are reused, the
  others are checked (all before anything is written), grouped into programs
  (`plan_programs`) and trained group by group. Returns one result dict per cell."""
  results: list = [None] * len(cells)
  pending = []
  for i, (config, workdir, splits) in enumerate(cells):
    results[i] = finished(config, workdir)
    if results[i] is None:
      pending.append(i)
  prepared = {i: _Cell(*cells[i]) for i in pending}
  groups = plan_programs([prepared[i] for i in pending])
  if len(cells) > 1:
    log.info("%d cells to run (%d finished) in %d programs", len(pending),
             len(cells) - len(pending), len(groups))
  for g, members in enumerate(groups):
    indices = [pending[m] for m in members]
    if len(groups) > 1:
      log.info("program group %d/%d: %d cell(s)", g + 1, len(groups), len(indices))
    group_results = _run_group([prepared[i] for i in indices], pathlib.Path(root),
                               on_chunk_end=on_chunk_end)
    for i, r in zip(indices, group_results):
      results[i] = r
  return results


def run_single(config, workdir, *, on_chunk_end=None, splits=None) -> dict:
  """Trains and scores `config.num_seeds` seeds; `on_chunk_end(epoch, metrics)` is called
  after every chunk (progress bars, tests that simulate an interruption). `splits` are
  the ones `runconfig.prepare_splits` gives for this config (the command line computes
  them before JAX loads); None computes them here."""
  return run_cells([(config, workdir, splits)], workdir, on_chunk_end=on_chunk_end)[0]




def plan_grid(config) -> list[list[str]]:
  """The cells of each program group `run_grid(config, ...)` would train, by cell name
  (data is loaded and checked; nothing is written, traced or compiled). Each group
  compiles one program (initialise, train a chunk, score)."""
  cells = grid.cells(config)
  prepared = [_Cell(c, pathlib.Path(grid.cell_name(o)), None) for o, c in cells]
  return [[grid.cell_name(cells[i][0]) for i in group] for group in plan_programs(prepared)]


def run_grid(config, workdir, *, on_chunk_end=None) -> list[dict]:
  """Every cell of the grid, cells grouped into as few programs as their methods and
  shapes allow (`plan_programs`); each cell keeps its own folder and files."""
  workdir = pathlib.Path(workdir)
  cells = grid.cells(config)
  claim(config, workdir)
  results = run_cells([(cell_config, workdir / "cells" / grid.cell_name(overrides), None)
                       for overrides, cell_config in cells], workdir,
                      on_chunk_end=on_chunk_end)
  summaries = [{**r, "grid": dict(overrides)} for r, (overrides, _) in zip(results, cells)]
  write_results(workdir, summaries, [overrides for overrides, _ in cells])
  return summaries


def train_and_evaluate(config, workdir, *, on_chunk_end=None, splits=None):
  """Runs `config` (a grid if `config.grid` is set) and returns its result dict(s); both
  write results.csv and report.md into `workdir`. `splits`: see `run_single`."""
  if grid.is_grid(config):
    return run_grid(config, workdir, on_chunk_end=on_chunk_end)
  result = run_single(config, workdir, on_chunk_end=on_chunk_end, splits=splits)
  write_results(workdir, [result])
  return result
