"""One experiment (or a grid of them) from a config to result files in a workdir.

Files written (design.md): config.json, metrics.jsonl, checkpoints/, results.json,
scores.npz, and for every run (single or grid) results.csv (one row per seed and cell) and
report.md (the table `format_table` prints); a grid has one sub-folder per cell.
Every file is written to a temporary name and renamed, so an interrupted run never
leaves a half-written result.
"""

import csv
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
  """metrics.jsonl: one line per (seed, epoch). Rewriting the lines of the epochs being
  reported makes a resumed run's log identical to an uninterrupted one."""

  def __init__(self, path):
    self.path = pathlib.Path(path)

  def write(self, seeds, last_epoch: int, steps_per_epoch: int, chunk_metrics: dict):
    num_epochs = chunk_metrics["loss"].shape[1]
    epochs = range(last_epoch - num_epochs + 1, last_epoch + 1)
    new = []
    for si, seed in enumerate(seeds):
      for ei, epoch in enumerate(epochs):
        new.append({"seed": seed, "epoch": epoch, "step": epoch * steps_per_epoch,
                    "train/loss": float(chunk_metrics["loss"][si, ei]),
                    "train/updated_fraction": float(chunk_metrics["updated"][si, ei])})
    new[-1]["steps_per_second"] = chunk_metrics["steps_per_second"]
    new[-1]["eta_seconds"] = chunk_metrics["eta_seconds"]
    replaced = {(r["seed"], r["epoch"]) for r in new}
    old = []
    if self.path.exists():
      old = [json.loads(line) for line in self.path.read_text().splitlines() if line]
      old = [r for r in old if (r["seed"], r["epoch"]) not in replaced]
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
# host loop); everything else is part of a compiled program's identity.
_NOT_IN_PROGRAM = ("data_dir", "seed", "num_seeds", "grid", "checkpoint", "train", "plot")


def program_key(config, input_dim: int, num_train: int) -> str:
  """What determines a method's compiled programs besides the array shapes: its resolved
  config without the fields of `_NOT_IN_PROGRAM`, the dataset only through the image
  shape its name implies (the one thing methods read from it), and the build arguments.
  Cells, seed groups and reruns with equal keys and shapes reuse one compiled program
  (engine._PROGRAMS)."""
  c = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_PROGRAM}
  c["dataset"] = str(data_lib.feature_shape(c.pop("dataset", "") or ""))
  return json.dumps([c, input_dim, num_train], sort_keys=True, default=repr)


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


def run_single(config, workdir, *, on_chunk_end=None, splits=None) -> dict:
  """Trains and scores `config.num_seeds` seeds; `on_chunk_end(epoch, metrics)` is called
  after every chunk (progress bars, tests that simulate an interruption). `splits` are
  the ones `runconfig.prepare_splits` gives for this config (the command line computes
  them before JAX loads); None computes them here."""
  workdir = pathlib.Path(workdir)
  _check_workdir(config, workdir)
  if (workdir / "results.json").exists():
    # A finished run (same config, checked above): never recompute it.
    log.info("%s already finished; reusing its results.json", workdir)
    # "reused" (never written) tells callers that nothing ran in this process.
    return {**json.loads((workdir / "results.json").read_text()), "reused": True}
  runconfig.check_config(config)
  seeds = runconfig.seeds(config)
  layout = parallel.make_layout(config.parallel.data, config.parallel.replica)
  layout.check_seeds(len(seeds))
  method_config = _resolve_for_layout(config, layout)
  # Bad data and bad hyper-parameters fail here, before anything is written.
  if splits is None:
    splits = prepare_splits(config, seeds)
  stats_before = program_counts()
  _check_method(method_config, splits[0], layout)
  _claim_workdir(config, workdir)
  datas = []
  for split in splits:
    semi = split.semi_labels
    if config.method in methods.UNSUPERVISED:
      semi = np.zeros_like(semi)  # Deep SVDD never sees a label
    datas.append(methods.make_train_data(split.x_train, semi))
  log.info("%s%s on %s: %s", config.method, "+anoonly" if config.anomaly_only else "",
           config.dataset, splits[0].summary())

  # Seeds whose arrays have the same shapes train as one vmapped program.
  groups = {}
  for i, d in enumerate(datas):
    groups.setdefault(tuple(a.shape for a in d), []).append(i)
  metrics_log = MetricsLog(workdir / "metrics.jsonl")
  scores = [None] * len(seeds)
  timing = {"train_seconds": 0.0, "compile_seconds": 0.0, "steps": 0}
  method_name = None
  diverged = {}
  for members in groups.values():
    group_seeds = [seeds[i] for i in members]
    n_train, dim = datas[members[0]].x.shape
    method = methods.build(method_config, dim, n_train)
    key = program_key(method_config, dim, n_train)
    method_name = method.name
    stacked = engine.stack_data([datas[i] for i in members])
    ckpt_dir = (workdir / "checkpoints" / ("seeds_" + "_".join(map(str, group_seeds)))
                if config.checkpoint.enabled else None)
    state, group_timing = engine.fit(
        method, stacked, group_seeds, chunk_epochs=config.train.chunk_epochs,
        checkpoint_dir=ckpt_dir, max_to_keep=config.checkpoint.max_to_keep, layout=layout,
        on_divergence=config.train.on_divergence, program_key=key,
        on_chunk_end=lambda epoch, m, s=group_seeds, spe=method.steps_per_epoch: (
            metrics_log.write(s, epoch, spe, m), on_chunk_end and on_chunk_end(epoch, m)))
    if method_config.norm.eval_stats == "recomputed":  # one pass over the unlabelled rows
      state = engine.recompute_batch_stats(method, state, stacked, layout=layout)
    group_scores = engine.score(method, state, np.stack([splits[i].x_test for i in members]),
                                layout=layout, program_key=key)
    for j, i in enumerate(members):
      scores[i] = group_scores[j]
    for k in ("train_seconds", "compile_seconds"):
      timing[k] += group_timing[k]
    timing["steps"] = group_timing["steps"]
    diverged.update(group_timing["diverged"])

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
      "train_seconds": timing["train_seconds"], "compile_seconds": timing["compile_seconds"],
      "steps": timing["steps"], "devices": layout.data_size * layout.replica_size,
      "processes": jax.process_count(),
      "num_train": int(splits[0].x_train.shape[0]), "num_test": int(splits[0].x_test.shape[0]),
      "num_labelled": int(splits[0].num_labelled),
      "programs": program_delta(stats_before, program_counts()),
      "versions": versions(),
  }
  atomic_write_npz(workdir / "scores.npz", seeds=np.asarray(seeds),
                   labels=np.stack([s.y_test for s in splits]), scores=np.stack(scores))
  atomic_write_text(workdir / "results.json", json.dumps(results, indent=2) + "\n")
  log.info("%s on %s: AUROC %.4f +- %.4f  AUPRC %.4f +- %.4f", method_name,
               config.dataset, results["auroc_mean"], results["auroc_std"],
               results["auprc_mean"], results["auprc_std"])
  return results


_cell_name = runconfig.cell_name
_set = runconfig.set_field


def run_grid(config, workdir, *, on_chunk_end=None) -> list[dict]:
  workdir = pathlib.Path(workdir)
  cells = runconfig.cells(config)
  _claim_workdir(config, workdir)
  summaries = []
  for i, (overrides, cell_config) in enumerate(cells):
    log.info("grid cell %d/%d: %s", i + 1, len(cells), overrides)
    result = run_single(cell_config, workdir / "cells" / _cell_name(overrides),
                        on_chunk_end=on_chunk_end)
    summaries.append({**result, "grid": dict(overrides)})
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
