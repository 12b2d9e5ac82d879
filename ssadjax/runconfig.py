"""The rules of one run's config, and its data split, with numpy only (no JAX import).

The command line's preflight (experiments/grid.py) applies them before it imports JAX, so
a user mistake (an unknown method, a bad `la`, a missing or broken data file) fails in
about a second with one message and leaves nothing on disk. The rules live here once:
`methods.build`, the estimators and the grid runner call the same functions.
"""

from __future__ import annotations

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
  settings = protocol.Protocol(**{f.name: config.data[f.name]
                                  for f in dataclasses.fields(protocol.Protocol)})
  x, y = load_data(config) if data is None else data
  splits = []
  for seed in seeds:
    split = data_lib.adbench_splits(x, y, rng=np.random.default_rng(seed), la=config.la,
                                    protocol=settings)
    if split.x_train.ndim > 2:
      split = dataclasses.replace(
          split, x_train=split.x_train.reshape(split.x_train.shape[0], -1),
          x_test=split.x_test.reshape(split.x_test.shape[0], -1))
    splits.append(split)
  if config.anomaly_only and min(s.num_labelled for s in splits) == 0:
    raise ValueError(f"anomaly_only=True needs labelled anomalies, but la={config.la} labels "
                     "none in at least one seed's training split; raise la (e.g. la=0.1)")
  return splits
