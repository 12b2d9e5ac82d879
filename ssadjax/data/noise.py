"""ADBench's data corruptions (Han et al., NeurIPS 2022), numpy only, driven by an explicit Generator.

* `duplicated_anomalies`: after the split, on train and test separately; the anomalies are
  REPLACED by `int(n_a * duplicate_times)` draws with replacement from them (so some original
  anomalies may vanish, as in ADBench), the normals are kept, and the rows are shuffled.
* `irrelevant_features`: before the split; `int(r / (1 - r) * d)` uniform-noise columns,
  each in [min, max] of a randomly chosen existing column, then all columns are permuted.
* `label_contamination`: lives in `protocol.adbench_splits` (step c), it flips train labels.

The functions return indices / column maps as well as data, so that the protocol can keep
track of where every row came from.
"""

from __future__ import annotations

import numpy as np

from ssadjax.data.adbench import DatasetError

NOISE_TYPES = ("duplicated_anomalies", "irrelevant_features", "label_contamination")


def check_noise_type(noise_type: str | None) -> str | None:
  """'' or None -> None; otherwise one of NOISE_TYPES or a DatasetError."""
  if noise_type in (None, "", "none"):
    return None
  if noise_type not in NOISE_TYPES:
    raise DatasetError(f"noise_type={noise_type!r}; expected one of {NOISE_TYPES} or ''.")
  return noise_type


def duplicated_anomalies_index(y: np.ndarray, duplicate_times: float, rng: np.random.Generator
                               ) -> np.ndarray:
  """Row indices into `y` after ADBench's anomaly duplication (identity order if times <= 1).

  Normals are kept once each; the anomalies become `int(n_a * duplicate_times)` draws with
  replacement from the anomaly rows; the result is shuffled.
  """
  y = np.asarray(y)
  if duplicate_times <= 1:
    return np.arange(y.shape[0])
  normals = np.flatnonzero(y == 0)
  anomalies = np.flatnonzero(y == 1)
  if anomalies.size == 0:
    return np.arange(y.shape[0])
  drawn = rng.choice(anomalies, size=int(anomalies.size * duplicate_times), replace=True)
  return rng.permutation(np.concatenate([normals, drawn]))


def irrelevant_features(x: np.ndarray, noise_ratio: float, rng: np.random.Generator
                        ) -> tuple[np.ndarray, np.ndarray]:
  """Adds `int(r / (1 - r) * d)` uniform-noise columns and permutes all columns.

  Returns (x_new [n, d + k], source [d + k]) where `source[j]` is the original column of new
  column j, or -1 for a noise column.
  """
  if not 0.0 <= noise_ratio < 1.0:
    raise DatasetError(f"noise_ratio must be in [0, 1), got {noise_ratio}.")
  x = np.asarray(x)
  if x.ndim != 2:
    raise DatasetError(f"irrelevant_features needs tabular x [n, d], got shape {x.shape} "
                       "(it has no meaning for images).")
  d = x.shape[1]
  k = int(noise_ratio / (1.0 - noise_ratio) * d)
  if k <= 0:
    return x, np.arange(d)
  cols = []
  for _ in range(k):
    j = int(rng.integers(d))
    lo, hi = x[:, j].min(), x[:, j].max()
    cols.append(rng.uniform(lo, hi, size=x.shape[0]))
  widened = np.concatenate([x.astype(np.float64), np.stack(cols, axis=1)], axis=1)
  source = np.concatenate([np.arange(d), np.full(k, -1)])
  perm = rng.permutation(d + k)
  return widened[:, perm], source[perm]
