"""The command line's grid language and workdir checks, with numpy only (no JAX import).

`--config.grid='dataset=6_cardio|38_thyroid;anomaly_only=False|True'` is a cartesian
product of config fields (`parse_grid`); products joined by '+' are concatenated; a
dataset value with a wildcard expands to the matching ADBench files; `@group=name` applies
a named bundle of overrides from `config.grid_presets`. `preflight` runs every check that
needs no JAX before anything is written (experiments/main.py calls it before importing
JAX); the per-run rules it applies are the library's (ssadjax/runconfig.py).
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import json
import os
import pathlib
import re

from ssadjax import data as data_lib
from ssadjax.runconfig import check_config, load_data, prepare_splits, seeds


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
