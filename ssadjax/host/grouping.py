"""Which runs share a compiled program: the program key of a resolved config, shape
buckets (rows and features padded to powers of two where the method is exact on padded
data), and the grouping of a grid's cells into programs. BUILD_NOTES.md says what a
program is keyed by and what triggers a recompile.
"""

import json

from ssadjax import data as data_lib
from ssadjax.host import program_cache

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
  (ssadjax.host.program_cache). `run_data`: the config fields that are run data, not
  program (`run_data_fields`): a plain name is a field of the method's section, a dotted
  one a path from the root (norm.momentum); they are replaced by a marker so that cells
  differing in them share a key (and not the key of a cell where the field is program)."""
  c = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_PROGRAM}
  for name in run_data:
    *parents, field = name.split(".") if "." in name else (config.method, name)
    node = c
    for parent in parents:
      node[parent] = node = dict(node[parent])
    node[field] = "<run data>"
  c["dataset"] = str(data_lib.feature_shape(c.pop("dataset", "") or ""))
  return json.dumps([c, input_dim, num_train], sort_keys=True, default=repr)


def run_data_fields(method) -> tuple[str, ...]:
  """The method's config fields that runs of one program may differ in: the learning rate
  where updates are proportional to it (`Method.learning_rate`), and `Method.run_hparams`."""
  return (("learning_rate",) if method.learning_rate else ()) + tuple(method.run_hparams)


def program_counts() -> dict:
  """Counters of the programs this process has obtained so far; `program_delta` of two
  calls describes what happened between them."""
  return {**program_cache.program_stats, "jax_cache_hits": program_cache.jax_cache_hits()}


def program_delta(before: dict, after: dict) -> dict:
  """Programs obtained between two `program_counts`, by origin: compiled by XLA, taken
  from JAX's persistent compilation cache, reused from memory or loaded from disk
  (ssadjax.host.program_cache). JAX's cache also serves small host-side jits, hence the
  clamp to the engine's own count."""
  built = after["compiles"] - before["compiles"]
  from_cache = min(built, after["jax_cache_hits"] - before["jax_cache_hits"])
  return {"compiled": built - from_cache, "from_jax_cache": from_cache,
          "reused": after["hits"] - before["hits"], "loaded": after["loads"] - before["loads"]}


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


def bucket(cell):
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


def _group_key(cell):
  """Cells with equal keys train as one program: same method config (without the
  fields of _NOT_IN_PROGRAM and the run data of `run_data_fields`), same
  layout and the same bucket, or for unpadded cells the same array shapes."""
  padded = bucket(cell)
  shapes = padded if padded is not None else _shapes(cell)
  return (program_key(cell.method_config, 0, 0,
                      run_data=run_data_fields(cell.method)),
          program_cache.layout_key(cell.layout),
          padded is None, shapes)


def _shapes(cell):
  """The array shapes of an unpadded cell's runs (all seeds)."""
  shapes = {tuple(tuple(a.shape) for a in d[:4]) for d in cell.datas}
  if len(shapes) > 1 or len({s.x_test.shape for s in cell.splits}) > 1:
    raise ValueError(f"{cell.config.method} on {cell.config.dataset}: the seeds' splits "
                     "differ in size and this method cannot pad them to one shape; run "
                     "the seeds separately (--config.num_seeds=1)")
  return shapes.pop(), cell.splits[0].x_test.shape


def plan_programs(cells: list) -> list[list[int]]:
  """Indices of `cells` (the experiment runner's prepared cells) grouped into programs (first-seen order). Unpadded cells still
  share a program when their shapes agree (the seeds of one cell always do when the
  splits have equal sizes)."""
  groups: dict = {}
  for i, cell in enumerate(cells):
    groups.setdefault(_group_key(cell), []).append(i)
  return list(groups.values())
