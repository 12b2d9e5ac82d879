"""Data layer (numpy only): ADBench files, the ADBench split protocol, the embedded default,
ADBench through TFDS, realistic synthetic anomalies and noise, raw-image tasks.

Dataset names understood by `load_dataset`:
  embedded:optdigits                 a small real set shipped in the package (embedded.py)
  synthetic                          generated Gaussian data (no files)
  6_cardio, Classical/6_cardio       an ADBench .npz under data_dir
  tfds:adbench/6_cardio              the same file through the TFDS builder (tfds_adbench.py)
  tfds:mnist/0, tfds:cifar10/3, ...  a TFDS image set, class k normal (images.py)
  tfds:mnist_corrupted/shot_noise/0
  sklearn:digits/0                   scikit-learn's bundled 8x8 digits (offline images)
  latent:sklearn:digits/0+3+8        several normal classes, the others anomalies (latent_classes.py)
"""

from __future__ import annotations

import os

import numpy as np

from ssadjax.data.adbench import ENV_DATA_DIR
from ssadjax.data.adbench import DatasetError
from ssadjax.data.adbench import validate_xy
from ssadjax.data.adbench import find_dataset_file
from ssadjax.data.adbench import list_datasets
from ssadjax.data.adbench import load_npz
from ssadjax.data.adbench import resolve_data_dir
from ssadjax.data import embedded
from ssadjax.data import images
from ssadjax.data import latent_classes  # CLAD's latent multi-class tasks (docs/methods/clad.md)
from ssadjax.data import noise
from ssadjax.data import realistic
from ssadjax.data import tfds_adbench
from ssadjax.data.protocol import Protocol, Splits
from ssadjax.data.protocol import adbench_splits
from ssadjax.data.protocol import num_labelled_anomalies
from ssadjax.data.synthetic import SYNTHETIC_NAME
from ssadjax.data.synthetic import make_synthetic
from ssadjax.data.synthetic import synthetic_mixture

__all__ = [
    "DatasetError", "SYNTHETIC_NAME", "embedded", "Protocol", "Splits", "adbench_splits", "find_dataset_file",
    "list_datasets", "load_dataset", "load_npz", "make_synthetic", "num_labelled_anomalies",
    "resolve_data_dir", "synthetic_mixture", "feature_shape", "images", "noise", "realistic",
    "tfds_adbench",
]

TFDS_ADBENCH_PREFIX = "tfds:adbench/"


def load_dataset(name: str, data_dir: str | None = None, *, tfds_dir: str | None = None,
                 image_split: str = "train", image_anomaly_ratio: float = images.ANOMALY_RATIO,
                 tfds_download: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """X [n, d] float32 (images: [n, h, w, c] as stored) and y int32 [n] for `name`.

  `data_dir` is the ADBench folder (for tfds:adbench/... the TFDS manual dir, only needed
  until the config is prepared); `tfds_dir` the TFDS data dir (default
  ~/.cache/ssadjax/tfds); `image_split`, `image_anomaly_ratio` and `tfds_download` apply to
  image tasks. See the module docstring for the names.
  """
  if name == SYNTHETIC_NAME:
    x, y, _ = make_synthetic(seed=0)
    return x, y
  if embedded.is_embedded_name(name):
    return embedded.load(name)
  if name.startswith(TFDS_ADBENCH_PREFIX):
    manual = data_dir or os.environ.get(ENV_DATA_DIR) or None
    x, y = tfds_adbench.load_adbench_tfds(name[len(TFDS_ADBENCH_PREFIX):], manual_dir=manual,
                                          data_dir=tfds_dir)
    return validate_xy(x, y, where=name)
  if latent_classes.is_latent_name(name):  # latent:sklearn:digits/0+3+8 (CLAD scenarios)
    return latent_classes.load_latent_task(name, tfds_dir=tfds_dir, split=image_split,
                                           download=tfds_download)
  if images.is_image_name(name):
    x, y = images.load_image_task(name, tfds_dir=tfds_dir, split=image_split,
                                  anomaly_ratio=image_anomaly_ratio, download=tfds_download)
    return x, y
  return load_npz(name, resolve_data_dir(data_dir))


def feature_shape(name: str) -> tuple[int, ...] | None:
  """The per-example shape of an image dataset ([h, w, c]) known from its name alone, or None
  for tabular data sets (whose width is only known once loaded)."""
  if latent_classes.is_latent_name(name):  # CLAD scenarios
    return latent_classes.image_shape(name)
  return images.image_shape(name)
