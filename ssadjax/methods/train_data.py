"""The data a run trains on, as the compiled program sees it: `TrainData` (rows, their
semi-supervised labels, the index pools the samplers draw from) and its padding to a shape
bucket, with the helpers that read a padded run's real sizes and masks (numpy in, arrays
out)."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class TrainData(NamedTuple):
  """Device-resident training arrays of one run.

  `anomaly_index` / `unlabelled_index` are the row pools that balanced samplers draw
  from; computing them on the host keeps every in-graph draw a static-shape gather.

  Shape buckets (`pad_train_data`): runs of different sizes share one compiled program
  when their arrays are padded to common shapes. The four counts then say how much of
  each array is real: rows `>= num_rows` and feature columns `>= num_features` of `x`
  are zero and never sampled, and only the first `num_anomalies` / `num_unlabelled`
  entries of the pools are rows. None (unpadded data) means "the whole array"; read
  them through `rows(data)`, `features(data)`, `anomaly_count(data)` and
  `unlabelled_count(data)`, which return the static size then, so an unpadded run
  traces exactly the program it always did.
  """
  x: jax.Array              # [n, d] float32
  semi_labels: jax.Array    # [n] int32, 1 = labelled anomaly
  anomaly_index: jax.Array  # [m] int32 rows with semi_label 1
  unlabelled_index: jax.Array  # [n - m] int32 rows with semi_label 0
  num_rows: Any = None      # int32 scalar: real rows of x
  num_features: Any = None  # int32 scalar: real columns of x
  num_anomalies: Any = None   # int32 scalar: real entries of anomaly_index
  num_unlabelled: Any = None  # int32 scalar: real entries of unlabelled_index


def rows(data: TrainData):
  """Real rows of `data.x` (static int when unpadded, else a traced int32)."""
  return data.x.shape[0] if data.num_rows is None else data.num_rows


def features(data: TrainData):
  return data.x.shape[-1] if data.num_features is None else data.num_features


def anomaly_count(data: TrainData):
  return data.anomaly_index.shape[0] if data.num_anomalies is None else data.num_anomalies


def unlabelled_count(data: TrainData):
  return (data.unlabelled_index.shape[0] if data.num_unlabelled is None
          else data.num_unlabelled)


def is_padded(data: TrainData) -> bool:
  return data.num_rows is not None


def row_mask(data: TrainData) -> jax.Array:
  """[n] bool: the real rows of `data.x`."""
  return jnp.arange(data.x.shape[0]) < rows(data)


def feature_mask(data: TrainData) -> jax.Array:
  """[d] bool: the real feature columns of `data.x`."""
  return jnp.arange(data.x.shape[-1]) < features(data)


def masked_mean_rows(x, data: TrainData) -> jax.Array:
  """Mean over the real rows of `x` `[n, ...]` (rows aligned with `data.x`)."""
  if not is_padded(data):
    return jnp.mean(x, axis=0)
  mask = row_mask(data).reshape((-1,) + (1,) * (x.ndim - 1))
  return jnp.sum(jnp.where(mask, x, 0), axis=0) / rows(data).astype(x.dtype)


def make_train_data(x, semi_labels) -> TrainData:
  """Host arrays -> TrainData with the index pools (numpy in, numpy out)."""
  semi_labels = np.asarray(semi_labels, np.int32)
  return TrainData(
      x=np.asarray(x, np.float32),
      semi_labels=semi_labels,
      anomaly_index=np.flatnonzero(semi_labels == 1).astype(np.int32),
      unlabelled_index=np.flatnonzero(semi_labels == 0).astype(np.int32),
  )


def pad_train_data(data: TrainData, *, num_rows: int, num_features: int,
                   num_anomalies: int, num_unlabelled: int) -> TrainData:
  """Host TrainData -> the same run padded to a shape bucket (numpy in, numpy out).

  Padded rows and feature columns of `x` are zero, padded rows carry semi_label 0 but
  are in no pool, and padded pool entries repeat row 0 (never drawn: every draw is
  bounded by the counts). The counts are always set, even when nothing is padded, so
  that runs of one program have the same tree structure.
  """
  x = np.asarray(data.x, np.float32)
  n, d = x.shape
  m, u = len(data.anomaly_index), len(data.unlabelled_index)
  if n > num_rows or d > num_features or m > num_anomalies or u > num_unlabelled:
    raise ValueError(f"a run of {n} rows x {d} features ({m} labelled anomalies, {u} "
                     f"unlabelled) does not fit the bucket {num_rows} x {num_features} "
                     f"({num_anomalies}, {num_unlabelled})")
  padded_x = np.zeros((num_rows, num_features), np.float32)
  padded_x[:n, :d] = x
  semi = np.zeros(num_rows, np.int32)
  semi[:n] = data.semi_labels
  pool = lambda index, size: np.concatenate(
      [np.asarray(index, np.int32), np.zeros(size - len(index), np.int32)])
  return TrainData(x=padded_x, semi_labels=semi,
                   anomaly_index=pool(data.anomaly_index, num_anomalies),
                   unlabelled_index=pool(data.unlabelled_index, num_unlabelled),
                   num_rows=np.int32(n), num_features=np.int32(d),
                   num_anomalies=np.int32(m), num_unlabelled=np.int32(u))
