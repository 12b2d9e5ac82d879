"""Data layer (numpy only): ADBench files, the ADBench split protocol, the embedded default."""

from __future__ import annotations

import numpy as np

from ssadjax.data.adbench import DatasetError
from ssadjax.data.adbench import find_dataset_file
from ssadjax.data.adbench import list_datasets
from ssadjax.data.adbench import load_npz
from ssadjax.data.adbench import resolve_data_dir
from ssadjax.data.protocol import Splits
from ssadjax.data.protocol import adbench_splits
from ssadjax.data.protocol import num_labelled_anomalies
from ssadjax.data.synthetic import SYNTHETIC_NAME
from ssadjax.data.synthetic import make_synthetic
from ssadjax.data.synthetic import synthetic_mixture

__all__ = [
    "DatasetError", "SYNTHETIC_NAME", "Splits", "adbench_splits", "find_dataset_file",
    "list_datasets", "load_dataset", "load_npz", "make_synthetic", "num_labelled_anomalies",
    "resolve_data_dir", "synthetic_mixture",
]


def load_dataset(name: str, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """X float32 [n, d], y int32 [n] for `name`: 'synthetic' (no files) or an ADBench name."""
  if name == SYNTHETIC_NAME:
    x, y, _ = make_synthetic(seed=0)
    return x, y
  return load_npz(name, resolve_data_dir(data_dir))
