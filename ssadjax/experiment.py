"""One experiment (or a grid of them) from a config to result files in a workdir.

Files written (design.md): config.json, metrics.jsonl, checkpoints/, results.json,
scores.npz; for a grid, one sub-folder per cell plus results.csv and report.md.
Every file is written to a temporary name and renamed, so an interrupted run never
leaves a half-written result.
"""

import ast
import csv
import fnmatch
import importlib.metadata
import io
import json
import os
import pathlib
import re

import jax
import ml_collections
import numpy as np
import logging

from ssadjax import data as data_lib
from ssadjax import engine, methods, metrics, parallel

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
  return config.to_json_best_effort(indent=2, sort_keys=True)


def _check_workdir(config, workdir: pathlib.Path) -> bool:
  """Refuses a workdir that holds a different experiment or cannot be written; returns
  whether it already holds this experiment's config.json. Writes nothing that stays."""
  if workdir.exists() and not workdir.is_dir():
    raise ValueError(f"workdir {workdir} exists and is not a directory")
  if not parallel.is_main_process():
    return (workdir / "config.json").exists()
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / f".write-probe-{os.getpid()}"
    probe.write_text("")
    probe.unlink()
  except OSError as e:
    raise ValueError(f"workdir {workdir} is not writable: {e}") from e
  path = workdir / "config.json"
  if not path.exists():
    return False
  # The device layout is not part of an experiment's identity: a run may resume on
  # another number of devices (checkpoints restore onto any layout).
  old, new = (_without_layout(json.loads(t)) for t in (path.read_text(), _config_json(config)))
  if old != new:
    changed = sorted(_diff_keys(old, new))
    raise ValueError(
        f"workdir {workdir} already holds a run with a different config "
        f"(differs in: {', '.join(changed[:8])}); use a new --workdir or delete it")
  return True


def _claim_workdir(config, workdir: pathlib.Path) -> None:
  """Checks the workdir, then writes config.json (once)."""
  if not _check_workdir(config, workdir):
    atomic_write_text(workdir / "config.json", _config_json(config))


def _without_layout(config_dict: dict) -> dict:
  return {k: v for k, v in config_dict.items() if k != "parallel"}


def _diff_keys(a, b, prefix=""):
  keys = set(a) | set(b) if isinstance(a, dict) and isinstance(b, dict) else set()
  if not keys:
    return [prefix.rstrip(".")] if a != b else []
  out = []
  for k in keys:
    out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
  return out


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


def prepare_splits(config, seeds):
  """Loads the dataset once and applies the ADBench protocol with one numpy Generator per
  seed (each seed has its own split, as ADBench's repetitions).

  Image datasets ([n, h, w, c]) go through the protocol as images and are flattened to
  [n, h*w*c] at the end: the engine works on 2-D arrays and the LeNet encoders reshape."""
  import dataclasses
  d = config.data
  x, y = data_lib.load_dataset(
      config.dataset, config.data_dir or None, tfds_dir=d.tfds_dir or None,
      image_split=d.image_split, image_anomaly_ratio=d.image_anomaly_ratio,
      tfds_download=d.tfds_download)
  splits = []
  for seed in seeds:
    split = data_lib.adbench_splits(
        x, y, rng=np.random.default_rng(seed), la=_la(config.la),
        at_least_one_labeled=d.at_least_one_labeled, test_size=d.test_size,
        resample=d.resample, upsample_threshold=d.upsample_threshold,
        downsample_threshold=d.downsample_threshold, minmax=d.minmax,
        normal_clean=d.normal_clean, label_contamination=d.label_contamination,
        realistic_synthetic_mode=d.realistic_synthetic_mode or None, alpha=d.alpha,
        percentage=d.percentage, global_bounds=d.global_bounds,
        noise_type=d.noise_type or None, duplicate_times=d.duplicate_times,
        noise_ratio=d.noise_ratio, minmax_scope=d.minmax_scope)
    if split.x_train.ndim > 2:
      split = dataclasses.replace(
          split, x_train=split.x_train.reshape(split.x_train.shape[0], -1),
          x_test=split.x_test.reshape(split.x_test.shape[0], -1))
    splits.append(split)
  return splits


def _la(value):
  """`la` >= 1 written as a whole number is a count of labelled anomalies (ADBench)."""
  if isinstance(value, float) and value >= 1 and value.is_integer():
    return int(value)
  return value


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


def _check_method(config, split, layout) -> None:
  """Builds the method once and traces its sampler, so that bad hyper-parameters and
  batch sizes that do not divide over the devices fail before anything is written."""
  method = methods.build(config, split.x_train.shape[1], split.x_train.shape[0])
  data = methods.make_train_data(split.x_train, split.semi_labels)
  key = jax.random.key(0)
  batch = jax.eval_shape(
      lambda d: method.sampler.batch(method.sampler.begin_epoch(key, d), 0, key, d), data)
  layout.check_batch(batch)


def run_single(config, workdir, *, on_chunk_end=None) -> dict:
  """Trains and scores `config.num_seeds` seeds; `on_chunk_end(epoch, metrics)` is called
  after every chunk (progress bars, tests that simulate an interruption)."""
  workdir = pathlib.Path(workdir)
  _check_workdir(config, workdir)
  if (workdir / "results.json").exists():
    # A finished run (same config, checked above): never recompute it.
    log.info("%s already finished; reusing its results.json", workdir)
    return json.loads((workdir / "results.json").read_text())
  if config.num_seeds < 1:
    raise ValueError(f"num_seeds={config.num_seeds} must be >= 1")
  if config.train.on_divergence not in ("stop", "continue"):
    raise ValueError(f"train.on_divergence={config.train.on_divergence!r}; expected "
                     "stop | continue")
  seeds = [config.seed + i for i in range(config.num_seeds)]
  layout = parallel.make_layout(config.parallel.data, config.parallel.replica)
  layout.check_seeds(len(seeds))
  method_config = _resolve_for_layout(config, layout)
  # Bad data and bad hyper-parameters fail here, before anything is written.
  splits = prepare_splits(config, seeds)
  if config.anomaly_only and min(s.num_labelled for s in splits) == 0:
    raise ValueError(f"anomaly_only=True needs labelled anomalies, but la={config.la} labels "
                     "none in at least one seed's training split")
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
      "num_labelled": int(splits[0].num_labelled), "versions": versions(),
  }
  atomic_write_npz(workdir / "scores.npz", seeds=np.asarray(seeds),
                   labels=np.stack([s.y_test for s in splits]), scores=np.stack(scores))
  atomic_write_text(workdir / "results.json", json.dumps(results, indent=2) + "\n")
  log.info("%s on %s: AUROC %.4f +- %.4f  AUPRC %.4f +- %.4f", method_name,
               config.dataset, results["auroc_mean"], results["auroc_std"],
               results["auprc_mean"], results["auprc_std"])
  return results


def parse_grid(spec: str) -> list[dict]:
  """'dataset=6_cardio|38_thyroid;anomaly_only=False|True' -> list of override dicts
  (the cartesian product, the first key varying slowest). Products joined by '+' are
  concatenated: 'method=deepsad|devnet;la=0.01|0.1 + method=funad' runs the unsupervised
  method once instead of once per `la` ('+' splits only before a `key=`)."""
  cells = []
  for product in re.split(r"\+(?=\s*@?[\w.]+\s*=)", spec):
    cells += _parse_product(product)
  return cells


def _parse_product(spec: str) -> list[dict]:
  cells = [{}]
  for part in filter(None, (p.strip() for p in spec.split(";"))):
    if "=" not in part:
      raise ValueError(f"grid entry {part!r} is not of the form key=v1|v2")
    key, values = part.split("=", 1)
    parsed = []
    for v in values.split("|"):
      try:
        parsed.append(ast.literal_eval(v.strip()))
      except (ValueError, SyntaxError):
        parsed.append(v.strip())
    cells = [{**c, key.strip(): v} for c in cells for v in parsed]
  return cells


def expand_dataset_patterns(cells: list[dict], data_dir) -> list[dict]:
  """A grid dataset value with a wildcard ('CV_by_ResNet18/*', 'Classical/*') becomes one
  cell per matching ADBench file under `data_dir` (sorted), so table configs run over
  whatever subset of ADBench a user has. A pattern matching nothing is an error."""
  out = []
  for cell in cells:
    pattern = cell.get("dataset")
    if not isinstance(pattern, str) or not any(ch in pattern for ch in "*?["):
      out.append(cell)
      continue
    root = data_lib.resolve_data_dir(data_dir or None)
    names = [n for n in data_lib.list_datasets(root) if fnmatch.fnmatchcase(n, pattern)]
    if not names:
      raise ValueError(f"grid dataset pattern {pattern!r} matches no .npz file under "
                       f"{str(root)!r} (names look like Classical/6_cardio)")
    out += [{**cell, "dataset": n} for n in names]
  return out


def preset_overrides(config, key: str, value) -> list[tuple[str, object]]:
  """A grid key `@group` names a bundle of overrides: `@policy=layer` applies
  `config.grid_presets.policy.layer`, a string such as "norm.kind=layer,norm.affine=False"
  (values parsed as in the grid; commas split only before a `key=`). Plain keys pass
  through as one override."""
  if not key.startswith("@"):
    return [(key, value)]
  group = key[1:]
  presets = config.get("grid_presets", None)
  if presets is None or group not in presets or str(value) not in presets[group]:
    known = sorted(presets[group]) if presets is not None and group in presets else []
    raise ValueError(f"grid preset {key}={value!r} is not defined in grid_presets.{group} "
                     f"(defined: {known})")
  out = []
  for item in filter(None, (p.strip() for p in re.split(r",(?=\s*[\w.]+\s*=)",
                                                           presets[group][str(value)]))):
    dotted, raw = item.split("=", 1)
    out.append((dotted.strip(), parse_grid(f"k={raw}")[0]["k"]))
  return out


def _cell_name(overrides: dict) -> str:
  return ",".join(f"{k}={v}" for k, v in overrides.items()).replace("/", "_")


def _set(config, dotted: str, value):
  node = config
  *path, last = dotted.split(".")
  for p in path:
    node = node[p]
  if last not in node:
    raise ValueError(f"grid key {dotted!r} is not a config field")
  node[last] = type(node[last])(value) if isinstance(node[last], float) else value


def run_grid(config, workdir, *, on_chunk_end=None) -> list[dict]:
  workdir = pathlib.Path(workdir)
  cells = expand_dataset_patterns(parse_grid(config.grid), config.data_dir)
  _claim_workdir(config, workdir)
  rows, summaries = [], []
  for i, overrides in enumerate(cells):
    cell_config = ml_collections.ConfigDict(config.to_dict())
    cell_config.grid = ""
    for k, v in overrides.items():
      for dotted, value in preset_overrides(config, k, v):
        _set(cell_config, dotted, value)
    cell_config.lock()
    log.info("grid cell %d/%d: %s", i + 1, len(cells), overrides)
    result = run_single(cell_config, workdir / "cells" / _cell_name(overrides),
                        on_chunk_end=on_chunk_end)
    summaries.append(result)
    for seed, roc, pr in zip(result["seeds"], result["auroc"], result["auprc"]):
      if roc is None:
        continue  # a diverged seed
      rows.append({**{k: result[k] for k in RESULT_FIELDS if k in result},
                   "seed": seed, "auroc": roc, "auprc": pr,
                   # the cell's grid values as extra columns ('@policy' -> 'policy')
                   **{k.lstrip("@"): v for k, v in overrides.items()
                      if k.lstrip("@") not in RESULT_FIELDS}})
  extra = list(dict.fromkeys(k.lstrip("@") for cell in cells for k in cell
                             if k.lstrip("@") not in RESULT_FIELDS))
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=list(RESULT_FIELDS) + extra, restval="")
  writer.writeheader()
  writer.writerows(rows)
  atomic_write_text(workdir / "results.csv", out.getvalue())
  report = format_table(summaries)
  atomic_write_text(workdir / "report.md", report)
  print(report)
  return summaries


def format_table(results: list[dict]) -> str:
  lines = ["| method | dataset | la | AUROC | AUPRC | seeds | train s | compile s |",
           "|---|---|---|---|---|---|---|---|"]
  for r in results:
    lines.append(
        f"| {r['name']} | {r['dataset']} | {r['la']} | "
        f"{100 * r['auroc_mean']:.2f} ± {100 * r['auroc_std']:.2f} | "
        f"{100 * r['auprc_mean']:.2f} ± {100 * r['auprc_std']:.2f} | {len(r['seeds'])} | "
        f"{r['train_seconds']:.1f} | {r['compile_seconds']:.1f} |")
  return "\n".join(lines) + "\n"


def train_and_evaluate(config, workdir, *, on_chunk_end=None):
  """Runs `config` (a grid if `config.grid` is set) and returns its result dict(s)."""
  if re.sub(r"\s", "", config.grid):
    return run_grid(config, workdir, on_chunk_end=on_chunk_end)
  return run_single(config, workdir, on_chunk_end=on_chunk_end)
