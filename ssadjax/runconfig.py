"""An experiment config checked and expanded with numpy only (no JAX import).

The command line (experiments/main.py) runs `preflight` before it imports JAX, so a
user mistake (an unknown method, a bad `la`, a missing or broken data file, a workdir
that holds another experiment, a malformed grid) fails in about a second with one
message and leaves nothing on disk. The rules live here once: `methods.build` and
`experiment.run_single` call the same functions.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import json
import os
import pathlib
import re

import numpy as np

from ssadjax import data as data_lib
from ssadjax import hparams
from ssadjax.data import protocol

# Method names (the keys of methods.REGISTRY, which asserts they agree).
METHODS = ("bgad", "clad", "deepsad", "deepsvdd", "devnet", "feawad", "funad", "prenet")

# Methods that cannot use labelled anomalies, hence have no AnoOnly variant.
UNSUPERVISED = ("deepsvdd",)

# Methods that may use labels but have no AnoOnly variant, with the reason (declared in
# ssadjax/hparams/<method>.py).
NO_ANOONLY = hparams.NO_ANOONLY

# norm.placement choices of methods that do not honour all of them (ssadjax/norm.py):
# FUN-AD has no norm at all; BGAD's only norm is AnoOnly's flow layer at the input.
PLACEMENTS = {"funad": ("reference", "none"), "bgad": ("reference",)}

ON_DIVERGENCE = ("stop", "continue")
BUCKETS = ("pow2", "exact")
COMPILE = ("optimized", "fast")


def check_hparams(cfg, section_name: str) -> None:
  """Clear errors for hyper-parameters that cannot work, before anything is compiled."""
  if section_name not in cfg:
    return
  for key, value in cfg[section_name].items():
    if value is None or isinstance(value, (bool, str, tuple, list)):
      continue
    if "learning_rate" in key and value <= 0:
      raise ValueError(f"{section_name}.{key}={value} must be > 0")
    if (key in ("batch_size", "steps_per_epoch", "pretrain_batch_size")
        or key.endswith("num_epochs")) and value < 1:
      raise ValueError(f"{section_name}.{key}={value} must be >= 1")


def check_method(cfg) -> None:
  """The method-level rules of `methods.build`: a known name, sane hyper-parameters, a
  norm placement the method honours, and AnoOnly only where it has a meaning."""
  if cfg.method not in METHODS:
    raise ValueError(f"method={cfg.method!r} is not available; use one of {', '.join(METHODS)}")
  check_hparams(cfg, "deepsad" if cfg.method == "deepsvdd" else cfg.method)
  placement = cfg.norm.get("placement", "reference") or "reference"
  if placement not in PLACEMENTS.get(cfg.method, (placement,)):
    raise ValueError(f"norm.placement={placement!r} is not available for {cfg.method}; "
                     f"expected one of {PLACEMENTS[cfg.method]}")
  if cfg.anomaly_only:
    if cfg.method in UNSUPERVISED:
      raise ValueError(f"{cfg.method} trains without labels, so anomaly_only=True has no "
                       "meaning; set anomaly_only=False or use a method that uses labelled "
                       "anomalies (e.g. deepsad)")
    if cfg.method in NO_ANOONLY:
      raise ValueError(NO_ANOONLY[cfg.method])


def check_config(config) -> None:
  """Every rule that needs neither data nor JAX."""
  check_method(config)
  protocol.check_la(config.la)
  if config.num_seeds < 1:
    raise ValueError(f"num_seeds={config.num_seeds} must be >= 1")
  if config.train.on_divergence not in ON_DIVERGENCE:
    raise ValueError(f"train.on_divergence={config.train.on_divergence!r}; expected "
                     "stop | continue")
  if config.train.buckets not in BUCKETS:
    raise ValueError(f"train.buckets={config.train.buckets!r}; expected pow2 | exact")
  if config.train.compile not in COMPILE:
    raise ValueError(f"train.compile={config.train.compile!r}; expected optimized | fast")


def seeds(config) -> list[int]:
  return [config.seed + i for i in range(config.num_seeds)]


def load_data(config):
  """X, y of `config.dataset`, validated (ssadjax.data.load_dataset)."""
  d = config.data
  return data_lib.load_dataset(
      config.dataset, config.data_dir or None, tfds_dir=d.tfds_dir or None,
      image_split=d.image_split, image_anomaly_ratio=d.image_anomaly_ratio,
      tfds_download=d.tfds_download)


def prepare_splits(config, seeds, data=None):
  """Loads the dataset once (or takes `data` = (x, y)) and applies the ADBench protocol
  with one numpy Generator per seed (each seed has its own split, as ADBench's
  repetitions).

  `config.la` goes to the protocol unchanged: a float is a ratio of the train anomalies
  (1.0 = all of them), an int a count (ADBench's convention).
  Image datasets ([n, h, w, c]) go through the protocol as images and are flattened to
  [n, h*w*c] at the end: the engine works on 2-D arrays and the LeNet encoders reshape."""
  import dataclasses
  d = config.data
  x, y = load_data(config) if data is None else data
  splits = []
  for seed in seeds:
    split = data_lib.adbench_splits(
        x, y, rng=np.random.default_rng(seed), la=config.la,
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
  if config.anomaly_only and min(s.num_labelled for s in splits) == 0:
    raise ValueError(f"anomaly_only=True needs labelled anomalies, but la={config.la} labels "
                     "none in at least one seed's training split; raise la (e.g. la=0.1)")
  return splits


# ---------------------------------------------------------------- workdir


def config_json(config) -> str:
  return config.to_json_best_effort(indent=2, sort_keys=True)


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


def check_workdir(config, workdir) -> bool:
  """Refuses a workdir that holds a different experiment or cannot be created or written;
  returns whether it already holds this experiment's config.json. Writes nothing."""
  workdir = pathlib.Path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise ValueError(f"workdir {workdir} exists and is not a directory; choose another "
                     "--workdir")
  existing = workdir
  while not existing.exists() and existing != existing.parent:
    existing = existing.parent
  if not existing.is_dir():
    raise ValueError(f"workdir {workdir} cannot be created: {existing} is not a directory; "
                     "choose another --workdir")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f"workdir {workdir} cannot be written ({existing} is not writable); "
                     "choose another --workdir")
  path = workdir / "config.json"
  if not path.exists():
    return False
  # The device layout is not part of an experiment's identity: a run may resume on
  # another number of devices (checkpoints restore onto any layout).
  old, new = (_without_layout(json.loads(t)) for t in (path.read_text(), config_json(config)))
  if old != new:
    changed = sorted(_diff_keys(old, new))
    raise ValueError(
        f"workdir {workdir} already holds a run with a different config "
        f"(differs in: {', '.join(changed[:8])}); use a new --workdir or delete it")
  return True


# ---------------------------------------------------------------- grids


def parse_grid(spec: str) -> list[dict]:
  """'dataset=6_cardio|38_thyroid;anomaly_only=False|True' -> list of override dicts
  (the cartesian product, the first key varying slowest). Products joined by '+' are
  concatenated: 'method=deepsad|devnet;la=0.01|0.1 + method=funad' runs the unsupervised
  method once instead of once per `la` ('+' splits only before a `key=`). Values are
  Python literals where they parse as one (`la=1.0` a float ratio, `la=5` an int count),
  else strings."""
  cells = []
  for product in re.split(r"\+(?=\s*@?[\w.]+\s*=)", spec):
    cells += _parse_product(product)
  return cells


def _parse_product(spec: str) -> list[dict]:
  cells = [{}]
  for part in filter(None, (p.strip() for p in spec.split(";"))):
    if "=" not in part:
      raise ValueError(f"grid entry {part!r} is not of the form key=v1|v2 (entries are "
                       "separated by ';', e.g. grid='anomaly_only=False|True;la=0.1|1.0')")
    key, values = part.split("=", 1)
    if not key.strip():
      raise ValueError(f"grid entry {part!r} has no key; write key=v1|v2")
    parsed = []
    for v in values.split("|"):
      if not v.strip():
        raise ValueError(f"grid entry {part!r} has an empty value; write key=v1|v2")
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


def cell_name(overrides: dict) -> str:
  return ",".join(f"{k}={v}" for k, v in overrides.items()).replace("/", "_")


def set_field(config, dotted: str, value):
  """Sets an existing field; the field's declared type decides the conversion (ConfigDict
  turns an int into a float for float fields; `la` is declared `object`, so 5 stays a
  count and 1.0 a ratio)."""
  node = config
  *path, last = dotted.split(".")
  for p in path:
    if p not in node or not hasattr(node[p], "keys"):
      raise ValueError(f"grid key {dotted!r} is not a config field; grid keys are "
                       "config fields such as la, anomaly_only or deepsad.num_epochs")
    node = node[p]
  if last not in node:
    raise ValueError(f"grid key {dotted!r} is not a config field; grid keys are "
                       "config fields such as la, anomaly_only or deepsad.num_epochs")
  try:
    node[last] = value
  except TypeError as e:
    raise ValueError(f"grid value {dotted}={value!r} has the wrong type: {e}") from None


def cells(config) -> list[tuple[dict, object]]:
  """(overrides, locked cell config) for every cell of `config.grid`."""
  out = []
  for overrides in expand_dataset_patterns(parse_grid(config.grid), config.data_dir):
    # deepcopy, not ConfigDict(to_dict()): keeps field types (la's `object`).
    cell_config = copy.deepcopy(config)
    cell_config.unlock()
    cell_config.grid = ""
    for k, v in overrides.items():
      for dotted, value in preset_overrides(config, k, v):
        set_field(cell_config, dotted, value)
    cell_config.lock()
    out.append((overrides, cell_config))
  return out


def is_grid(config) -> bool:
  return bool(re.sub(r"\s", "", config.grid))


def _cheap_to_load(config) -> bool:
  """Tabular data read from disk or generated in numpy: files, embedded sets, synthetic.
  TFDS and image tasks (slow imports, maybe downloads) and realistic synthetic anomalies
  (a mixture-model fit per seed) are checked when their cell runs."""
  return ((":" not in config.dataset or data_lib.embedded.is_embedded_name(config.dataset))
          and not config.data.realistic_synthetic_mode)


def check_grid_data(cell_configs) -> None:
  """Loads each cheap dataset of a grid once and splits it for every distinct data
  setting, so that a bad file or an impossible `la` fails before the first cell trains.
  Nothing is kept: each cell splits its data again when it runs."""
  loaded, checked = {}, set()
  for config in cell_configs:
    if not _cheap_to_load(config):
      continue
    source = (config.dataset, config.data_dir)
    if source not in loaded:
      loaded[source] = load_data(config)
    setting = json.dumps([source, config.la, config.seed, config.num_seeds,
                          bool(config.anomaly_only), config.data.to_dict()],
                         sort_keys=True, default=repr)
    if setting not in checked:
      prepare_splits(config, seeds(config), data=loaded[source])
      checked.add(setting)


def preflight(config, workdir):
  """Every check that needs no JAX, before anything is written. Returns the splits of a
  single run (so they are computed once), None for a grid (its cells split their data
  again when they run; here each cell's config, data and workdir are checked)."""
  if is_grid(config):
    check_workdir(config, workdir)
    grid = cells(config)
    for overrides, cell_config in grid:
      check_config(cell_config)
      check_workdir(cell_config, pathlib.Path(workdir) / "cells" / cell_name(overrides))
    check_grid_data([c for o, c in grid
                     if not (pathlib.Path(workdir) / "cells" / cell_name(o)
                             / "results.json").exists()])
    return None
  check_config(config)
  check_workdir(config, workdir)
  if (pathlib.Path(workdir) / "results.json").exists():
    return None  # finished: run_single reuses it without loading data
  return prepare_splits(config, seeds(config))
