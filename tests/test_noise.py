"""ADBench noise types: duplicated anomalies, irrelevant features, label contamination."""

import numpy as np
import pytest

from ssadjax.data import DatasetError, adbench_splits, noise


def _toy(n_normal=400, n_anomaly=60, dim=4, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n_normal + n_anomaly, dim))
  x[n_normal:] += 4.0
  y = np.r_[np.zeros(n_normal), np.ones(n_anomaly)].astype(np.int64)
  perm = rng.permutation(y.size)
  return x[perm], y[perm]


# ------------------------------------------------------------------ duplicated anomalies


def test_duplicated_anomalies_index_counts_and_content():
  y = np.array([0] * 30 + [1] * 7)
  idx = noise.duplicated_anomalies_index(y, 3, np.random.default_rng(0))
  assert np.count_nonzero(y[idx] == 1) == 21  # int(7 * 3)
  assert sorted(idx[y[idx] == 0].tolist()) == list(range(30))  # every normal once
  assert set(idx[y[idx] == 1].tolist()) <= set(range(30, 37))
  assert not np.array_equal(idx, np.sort(idx))  # shuffled
  # times <= 1: unchanged (ADBench does nothing).
  assert np.array_equal(noise.duplicated_anomalies_index(y, 1, np.random.default_rng(0)),
                        np.arange(37))


def test_duplicated_anomalies_in_the_protocol_hits_train_and_test():
  x, y = _toy()
  plain = adbench_splits(x, y, rng=np.random.default_rng(3), la=0.1, resample=False)
  dup = adbench_splits(x, y, rng=np.random.default_rng(3), la=0.1, resample=False,
                       noise_type="duplicated_anomalies", duplicate_times=2)
  for p_labels, d_labels in ((plain.train_labels, dup.train_labels),
                             (plain.y_test, dup.y_test)):
    assert np.count_nonzero(d_labels == 1) == 2 * np.count_nonzero(p_labels == 1)
    assert np.count_nonzero(d_labels == 0) == np.count_nonzero(p_labels == 0)
  # Same split before the duplication: the normals are the same input rows.
  assert set(dup.train_index[dup.train_labels == 0]) == set(
      plain.train_index[plain.train_labels == 0])
  assert set(dup.train_index[dup.train_labels == 1]) <= set(
      plain.train_index[plain.train_labels == 1])
  # Rows really are the input rows (scaled): a duplicated anomaly appears several times.
  _, counts = np.unique(dup.train_index, return_counts=True)
  assert counts.max() > 1


# ------------------------------------------------------------------ irrelevant features


@pytest.mark.parametrize("ratio, d, extra", [(0.05, 20, 1), (0.5, 6, 6), (0.25, 9, 3),
                                             (0.01, 20, 0)])
def test_irrelevant_features_counts(ratio, d, extra):
  x = np.random.default_rng(0).normal(size=(50, d))
  out, source = noise.irrelevant_features(x, ratio, np.random.default_rng(1))
  assert out.shape == (50, d + extra)  # int(r / (1 - r) * d)
  assert sorted(source[source >= 0].tolist()) == list(range(d))
  for j, s in enumerate(source):
    if s >= 0:
      np.testing.assert_array_equal(out[:, j], x[:, s])


def test_irrelevant_feature_values_lie_in_the_range_of_a_real_column():
  rng = np.random.default_rng(0)
  # Columns with disjoint ranges, so the source column of each noise column is identifiable.
  x = np.stack([rng.uniform(10 * k, 10 * k + 1, size=500) for k in range(4)], axis=1)
  out, source = noise.irrelevant_features(x, 0.5, np.random.default_rng(2))
  for j in np.flatnonzero(source < 0):
    col = out[:, j]
    k = int(col.min() // 10)
    assert x[:, k].min() <= col.min() and col.max() <= x[:, k].max()
    assert col.std() > 0.2  # uniform noise on [~10k, ~10k + 1], not a copy
    assert not any(np.array_equal(col, x[:, i]) for i in range(4))
  assert not np.array_equal(source, np.sort(source))  # columns permuted


def test_irrelevant_features_in_the_protocol_widens_both_splits():
  x, y = _toy(dim=10)
  s = adbench_splits(x, y, rng=np.random.default_rng(0), la=0.1, resample=False,
                     noise_type="irrelevant_features", noise_ratio=0.25)
  assert s.x_train.shape[1] == s.x_test.shape[1] == 13
  assert s.x_train.min() == 0.0 and s.x_train.max() == 1.0
  with pytest.raises(DatasetError, match="images"):
    adbench_splits(np.zeros((100, 4, 4, 1)), np.r_[np.zeros(90), np.ones(10)],
                   rng=np.random.default_rng(0), la=0.1, noise_type="irrelevant_features")


# ------------------------------------------------------------------ label contamination


def test_noise_type_label_contamination_is_the_existing_step():
  x, y = _toy()
  a = adbench_splits(x, y, rng=np.random.default_rng(5), la=0.2, resample=False,
                     noise_type="label_contamination", noise_ratio=0.05)
  b = adbench_splits(x, y, rng=np.random.default_rng(5), la=0.2, resample=False,
                     label_contamination=0.05)
  np.testing.assert_array_equal(a.x_train, b.x_train)
  np.testing.assert_array_equal(a.semi_labels, b.semi_labels)
  assert a.label_flipped.sum() == int(a.x_train.shape[0] * 0.05) > 0
  with pytest.raises(DatasetError, match="conflicts"):
    adbench_splits(x, y, rng=np.random.default_rng(5), la=0.2,
                   noise_type="label_contamination", noise_ratio=0.05, label_contamination=0.1)


def test_unknown_noise_type_and_disabled_noise():
  x, y = _toy()
  with pytest.raises(DatasetError, match="noise_type"):
    adbench_splits(x, y, rng=np.random.default_rng(0), la=0.1, noise_type="gaussian")
  # '' and None mean no noise and spend no randomness: identical to the plain protocol.
  a = adbench_splits(x, y, rng=np.random.default_rng(0), la=0.1, noise_type="")
  b = adbench_splits(x, y, rng=np.random.default_rng(0), la=0.1)
  np.testing.assert_array_equal(a.x_train, b.x_train)
  np.testing.assert_array_equal(a.train_index, b.train_index)
