"""One experiment (or a grid of them) from a config to result files in a workdir.

Files written (design.md): config.json, metrics.jsonl, checkpoints/, results.json,
scores.npz, and for every run (single or grid) results.csv (one row per seed and cell) and
report.md (the table `format_table` prints); a grid has one sub-folder per cell.
Every file is written to a temporary name and renamed, so an interrupted run never
leaves a half-written result.
"""

import csv
import hashlib
import importlib.metadata
import io
import json
import os
import pathlib

import jax
import ml_collections
import numpy as np
import logging

from ssadjax import data as data_lib
from ssadjax import engine, methods, metrics, parallel, runconfig
# Numpy-only parts (also run by the command line before JAX loads), re-exported here.
from ssadjax.runconfig import (expand_dataset_patterns, parse_grid, prepare_splits,
                               preset_overrides)

log = logging.getLogger(__name__)

RESULT_FIELDS = ("method", "anomaly_only", "dataset", "la", "seed", "auroc", "auprc",
                 "train_seconds", "compile_seconds", "steps", "devices")


def atomic_write_bytes(path, payload: bytes) -> None:
  """Temporary file + rename; only the main process writes in a multi-process run."""
  if not parallel.is_main_process():
    return
  path = pathlib.Path(path)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_bytes(payload)
  os.replace(tmp, path)


def atomic_write_text(path, text: str) -> None:
  atomic_write_bytes(path, text.encode())


def atomic_write_npz(path, **arrays) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  atomic_write_bytes(path, buffer.getvalue())


def versions() -> dict:
  out = {}
  for pkg in ("ssadjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"):
    try:
      out[pkg] = importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
      out[pkg] = None
  return out


def _config_json(config) -> str:
  return runconfig.config_json(config)


def _check_workdir(config, workdir: pathlib.Path) -> bool:
  """Refuses a workdir that holds a different experiment or cannot be written; returns
  whether it already holds this experiment's config.json. Writes nothing."""
  return runconfig.check_workdir(config, workdir)


def _claim_workdir(config, workdir: pathlib.Path) -> None:
  """Checks the workdir, creates it, then writes config.json (once)."""
  if _check_workdir(config, workdir) or not parallel.is_main_process():
    return
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise ValueError(f"workdir {workdir} cannot be created ({e}); choose another "
                     "--workdir") from e
  atomic_write_text(workdir / "config.json", _config_json(config))


class MetricsLog:
  """metrics.jsonl: one line per (seed, epoch) of the main stage, and per (seed, stage,
  epoch) of an earlier stage (e.g. {"stage": "pretrain", "pretrain/loss": ...}). Rewriting
  the lines of the epochs being reported makes a resumed run's log identical to an
  uninterrupted one."""

  def __init__(self, path):
    self.path = pathlib.Path(path)

  def write(self, seeds, last_epoch: int, steps_per_epoch: int, chunk_metrics: dict):
    num_epochs = chunk_metrics["loss"].shape[1]
    epochs = range(last_epoch - num_epochs + 1, last_epoch + 1)
    stage = chunk_metrics.get("stage")
    steps_per_epoch = chunk_metrics.get("steps_per_epoch", steps_per_epoch)
    new = []
    for si, seed in enumerate(seeds):
      for ei, epoch in enumerate(epochs):
        loss = float(chunk_metrics["loss"][si, ei])
        if stage:
          new.append({"seed": seed, "stage": stage, "epoch": epoch,
                      "step": epoch * steps_per_epoch, f"{stage}/loss": loss})
          continue
        new.append({"seed": seed, "epoch": epoch, "step": epoch * steps_per_epoch,
                    "train/loss": loss,
                    "train/updated_fraction": float(chunk_metrics["updated"][si, ei])})
    new[-1]["steps_per_second"] = chunk_metrics["steps_per_second"]
    new[-1]["eta_seconds"] = chunk_metrics["eta_seconds"]
    key = lambda r: (r["seed"], r.get("stage"), r["epoch"])
    replaced = {key(r) for r in new}
    old = []
    if self.path.exists():
      old = [json.loads(line) for line in self.path.read_text().splitlines() if line]
      old = [r for r in old if key(r) not in replaced]
    atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in old + new))


def _resolve_for_layout(config, layout):
  """The config the method is built from: per-device BatchNorm groups default to the
  size of the 'data' axis. config.json keeps what the user asked for."""
  if config.norm.sync or config.norm.stat_groups:
    return config
  resolved = ml_collections.ConfigDict(config.to_dict())
  resolved.norm.stat_groups = layout.data_size
  return resolved


# Config fields that never reach `methods.build` (they choose data, seeds, files and the
# host loop; `data` holds the data protocol: contamination, noise, scaling); everything
# else is part of a compiled program's identity.
_NOT_IN_PROGRAM = ("data_dir", "seed", "num_seeds", "grid", "grid_presets", "checkpoint",
                   "train", "plot", "la", "data")


def program_key(config, input_dim: int, num_train: int, *, run_data=()) -> str:
  """What determines a method's compiled programs besides the array shapes: its resolved
  config without the fields of `_NOT_IN_PROGRAM`, the dataset only through the image
  shape its name implies (the one thing methods read from it), and the build arguments.
  Cells, seed groups and reruns with equal keys and shapes reuse one compiled program
  (engine._PROGRAMS). `run_data`: fields of the method's section that are run data, not
  program (`run_data_fields`), left out so that cells differing in them share a key."""
  c = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_PROGRAM}
  if run_data:
    c[config.method] = {**c[config.method], **{name: None for name in run_data}}
  c["dataset"] = str(data_lib.feature_shape(c.pop("dataset", "") or ""))
  return json.dumps([c, input_dim, num_train], sort_keys=True, default=repr)


def run_data_fields(method) -> tuple[str, ...]:
  """The method's config fields that runs of one program may differ in: the learning rate
  where updates are proportional to it (`Method.learning_rate`), and `Method.run_hparams`."""
  return (("learning_rate",) if method.learning_rate else ()) + tuple(method.run_hparams)


def program_counts() -> dict:
  """Counters of the programs this process has obtained so far; `program_delta` of two
  calls describes what happened between them."""
  from ssadjax import program_cache
  return {**engine.program_stats, "jax_cache_hits": program_cache.jax_cache_hits()}


def program_delta(before: dict, after: dict) -> dict:
  """Programs obtained between two `program_counts`, by origin: compiled by XLA, taken
  from JAX's persistent compilation cache, reused from memory (engine._PROGRAMS), loaded
  from ssadjax.program_cache. JAX's cache also serves small host-side jits, hence the
  clamp to the engine's own count."""
  built = after["compiles"] - before["compiles"]
  from_cache = min(built, after["jax_cache_hits"] - before["jax_cache_hits"])
  return {"compiled": built - from_cache, "from_jax_cache": from_cache,
          "reused": after["hits"] - before["hits"], "loaded": after["loads"] - before["loads"]}


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
    self.splits = splits if splits is not None else prepare_splits(config, self.seeds)
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


def bucket_size(n: int, least: int) -> int:
  """The power of two >= n (and >= least) that a padded dimension is rounded up to."""
  return max(least, 1 << (int(n) - 1).bit_length())


def can_pad(method, config, *, padded_pools: bool = True) -> bool:
  """Whether runs of `method` may be padded to a shape bucket: the method is exact on
  padded rows and features, and no statistic is taken over a set that padding would
  change: the scored batch ('batch' statistics: padded test rows would enter it), or the
  unlabelled pool ('recomputed', unless `padded_pools` is False: the grid pads each pool
  to the group's largest, a lone detector does not)."""
  stats = config.norm.eval_stats
  return (method.pad_rows and method.pad_features
          and (stats == "running" or (stats == "recomputed" and not padded_pools)))


def _bucket(cell: _Cell):
  """(row class, features) of the cell's bucket, or None: not padded (`can_pad`).

  Features are padded to the next power of two (>= 8). Rows are padded to the largest
  cell of the program; they only cost memory, except for a method whose epoch length
  follows the rows (Deep SAD): every run of a program steps as long as its longest, so
  those cells are split into row classes within a factor of 4 (<= 1024, 4096, 16384..).
  `train.buckets='exact'` keys by the exact shapes (runs still share a program across
  `la` and seeds, whose pools are padded)."""
  method, config = cell.method, cell.method_config
  if not can_pad(method, config):
    return None
  if config.train.buckets == "exact":
    return cell.num_train, cell.dim
  row_class = None
  if method.run_steps_per_epoch is not None:
    row_class = 1024
    while row_class < cell.num_train:
      row_class *= 4
  return row_class, bucket_size(cell.dim, 8)


def _group_key(cell: _Cell):
  """Cells with equal keys train as one program: same method config (without the
  fields of _NOT_IN_PROGRAM and the run data of `run_data_fields`), same
  layout and the same bucket, or for unpadded cells the same array shapes."""
  bucket = _bucket(cell)
  shapes = bucket if bucket is not None else _shapes(cell)
  return (program_key(cell.method_config, 0, 0,
                      run_data=run_data_fields(cell.method)),
          engine._layout_key(cell.layout),
          bucket is None, shapes)


def _shapes(cell: _Cell):
  """The array shapes of an unpadded cell's runs (all seeds)."""
  shapes = {tuple(tuple(a.shape) for a in d[:4]) for d in cell.datas}
  if len(shapes) > 1 or len({s.x_test.shape for s in cell.splits}) > 1:
    raise ValueError(f"{cell.config.method} on {cell.config.dataset}: the seeds' splits "
                     "differ in size and this method cannot pad them to one shape; run "
                     "the seeds separately (--config.num_seeds=1)")
  return shapes.pop(), cell.splits[0].x_test.shape


def plan_programs(cells: list[_Cell]) -> list[list[int]]:
  """Indices of `cells` grouped into programs (first-seen order). Unpadded cells still
  share a program when their shapes agree (the seeds of one cell always do when the
  splits have equal sizes)."""
  groups: dict = {}
  for i, cell in enumerate(cells):
    groups.setdefault(_group_key(cell), []).append(i)
  return list(groups.values())


def _group_checkpoint_dir(cells: list[_Cell], root: pathlib.Path):
  if len(cells) == 1:
    return cells[0].workdir / "checkpoints" / ("seeds_" + "_".join(map(str, cells[0].seeds)))
  name = json.dumps([[str(c.workdir.relative_to(root)), c.seeds] for c in cells])
  return root / "checkpoints" / ("group_" + hashlib.sha1(name.encode()).hexdigest()[:12])


def _run_group(cells: list[_Cell], root: pathlib.Path, on_chunk_end=None) -> list[dict]:
  """Trains every run (cell x seed) of `cells` in one vmapped program and writes each
  cell's files; returns the cells' result dicts."""
  first = cells[0]
  config, layout = first.config, first.layout
  bucket = _bucket(first)
  runs = [(c, j) for c in cells for j in range(len(c.seeds))]
  if bucket is not None:
    rows, dim = max(c.num_train for c in cells), bucket[1]
    # Pools are padded to the group's largest (not to the rows): a cell alone in its
    # program keeps its own pools, so its pair-scoring batches keep their shapes.
    anomalies = max(len(c.datas[j].anomaly_index) for c, j in runs)
    unlabelled = max(len(c.datas[j].unlabelled_index) for c, j in runs)
    datas = [methods.base.pad_train_data(c.datas[j], num_rows=rows, num_features=dim,
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
    _claim_workdir(c.config, c.workdir)
  logs = [MetricsLog(c.workdir / "metrics.jsonl") for c in cells]
  offsets = np.cumsum([0] + [len(c.seeds) for c in cells])

  def chunk_end(epoch, m):
    for k, (c, log_) in enumerate(zip(cells, logs)):
      part = {name: (v[offsets[k]:offsets[k + 1]] if np.ndim(v) else v)
              for name, v in m.items()}
      log_.write(c.seeds, epoch, method.steps_per_epoch, part)
    if on_chunk_end:
      on_chunk_end(epoch, m)

  if len(cells) > 1 or bucket is not None:
    log.info("program of %d cell(s), %d runs: %s%s on %s", len(cells), len(runs),
             config.method, "+anoonly" if config.anomaly_only else "",
             f"{rows} x {dim} bucket" if bucket is not None else f"{rows} x {dim}")
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
               "padded": bucket is not None}))
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


def _finished(config, workdir):
  """The results of a finished run in `workdir` (same config, checked), else None."""
  workdir = pathlib.Path(workdir)
  _check_workdir(config, workdir)
  if (workdir / "results.json").exists():
    log.info("%s already finished; reusing its results.json", workdir)
    # "reused" (never written) tells callers that nothing ran in this process.
    return {**json.loads((workdir / "results.json").read_text()), "reused": True}
  return None


def run_cells(cells: list[tuple], root, *, on_chunk_end=None) -> list[dict]:
  """Runs `cells` [(config, workdir, splits or None)]: finished cells are reused, the
  others are checked (all before anything is written), grouped into programs
  (`plan_programs`) and trained group by group. Returns one result dict per cell."""
  results: list = [None] * len(cells)
  pending = []
  for i, (config, workdir, splits) in enumerate(cells):
    results[i] = _finished(config, workdir)
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


_cell_name = runconfig.cell_name
_set = runconfig.set_field


def plan_grid(config) -> list[list[str]]:
  """The cells of each program group `run_grid(config, ...)` would train, by cell name
  (data is loaded and checked; nothing is written, traced or compiled). Each group
  compiles one program (initialise, train a chunk, score)."""
  cells = runconfig.cells(config)
  prepared = [_Cell(c, pathlib.Path(_cell_name(o)), None) for o, c in cells]
  return [[_cell_name(cells[i][0]) for i in group] for group in plan_programs(prepared)]


def run_grid(config, workdir, *, on_chunk_end=None) -> list[dict]:
  """Every cell of the grid, cells grouped into as few programs as their methods and
  shapes allow (`plan_programs`); each cell keeps its own folder and files."""
  workdir = pathlib.Path(workdir)
  cells = runconfig.cells(config)
  _claim_workdir(config, workdir)
  results = run_cells([(cell_config, workdir / "cells" / _cell_name(overrides), None)
                       for overrides, cell_config in cells], workdir,
                      on_chunk_end=on_chunk_end)
  summaries = [{**r, "grid": dict(overrides)} for r, (overrides, _) in zip(results, cells)]
  write_results(workdir, summaries, [overrides for overrides, _ in cells])
  return summaries


def write_results(workdir, summaries: list[dict], overrides: list[dict] | None = None) -> None:
  """results.csv (one row per scored seed; a grid's values as extra columns) and
  report.md (`format_table`) for a single run (one summary) or a grid."""
  overrides = overrides or [{} for _ in summaries]
  rows = []
  for result, cell in zip(summaries, overrides):
    for seed, roc, pr in zip(result["seeds"], result["auroc"], result["auprc"]):
      if roc is None:
        continue  # a diverged seed
      rows.append({**{k: result[k] for k in RESULT_FIELDS if k in result},
                   "seed": seed, "auroc": roc, "auprc": pr,
                   # the cell's grid values as extra columns ('@policy' -> 'policy')
                   **{k.lstrip("@"): v for k, v in cell.items()
                      if k.lstrip("@") not in RESULT_FIELDS}})
  extra = list(dict.fromkeys(k.lstrip("@") for cell in overrides for k in cell
                             if k.lstrip("@") not in RESULT_FIELDS))
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=list(RESULT_FIELDS) + extra, restval="")
  writer.writeheader()
  writer.writerows(rows)
  atomic_write_text(pathlib.Path(workdir) / "results.csv", out.getvalue())
  atomic_write_text(pathlib.Path(workdir) / "report.md", format_table(summaries))


def format_table(results: list[dict]) -> str:
  # A grid's other knobs (e.g. preset, @policy) get a column where they vary, so that no
  # two rows look alike; method, AnoOnly, dataset and la are shown already.
  shown = {"method", "anomaly_only", "dataset", "la"}
  knobs = [k for k in dict.fromkeys(k for r in results for k in r.get("grid", {}))
           if k not in shown and len({repr(r.get("grid", {}).get(k)) for r in results}) > 1]
  head = ["method", "dataset", "la", *(k.lstrip("@") for k in knobs), "AUROC", "AUPRC",
          "seeds", "train s", "compile s"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in results:
    values = "".join(f"{r.get('grid', {}).get(k, '')} | " for k in knobs)
    lines.append(
        f"| {r['name']} | {r['dataset']} | {r['la']} | {values}"
        f"{100 * r['auroc_mean']:.2f} ± {100 * r['auroc_std']:.2f} | "
        f"{100 * r['auprc_mean']:.2f} ± {100 * r['auprc_std']:.2f} | {len(r['seeds'])} | "
        f"{r['train_seconds']:.1f} | {r['compile_seconds']:.1f} |")
  return "\n".join(lines) + "\n"


def train_and_evaluate(config, workdir, *, on_chunk_end=None, splits=None):
  """Runs `config` (a grid if `config.grid` is set) and returns its result dict(s); both
  write results.csv and report.md into `workdir`. `splits`: see `run_single`."""
  if runconfig.is_grid(config):
    return run_grid(config, workdir, on_chunk_end=on_chunk_end)
  result = run_single(config, workdir, on_chunk_end=on_chunk_end, splits=splits)
  write_results(workdir, [result])
  return result
