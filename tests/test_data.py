"""Tests of ssadjax.data: ADBench loading/validation, the ADBench split protocol, `synthetic`."""

import ast
import math
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

import ssadjax.data as data
from ssadjax.data import DatasetError, adbench_splits, make_synthetic

ENV = "SSADJAX_DATA_DIR"


def _write(path: pathlib.Path, **arrays) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez(path, **arrays)
  return path


def _toy(n_normal=80, n_anomaly=20, dim=3, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n_normal + n_anomaly, dim))
  y = np.r_[np.zeros(n_normal), np.ones(n_anomaly)].astype(np.int64)
  perm = rng.permutation(y.size)
  return x[perm], y[perm]


# --------------------------------------------------------------------------- library hygiene


def test_library_code_imports_neither_jax_nor_sklearn():
  # jax/flax/torch never; the optional extras (scikit-learn for the realistic synthetic
  # anomalies and the digits set, copulas/pandas for 'dependency') only inside a function,
  # so that importing the data layer never needs them.
  banned = {"jax", "sklearn", "flax", "torch", "copulas", "pandas"}
  lazy_ok = {"sklearn", "copulas", "pandas"}
  for path in pathlib.Path(data.__file__).parent.glob("*.py"):
    tree = ast.parse(path.read_text())
    in_function = set()
    for fn in ast.walk(tree):
      if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        in_function.update(id(n) for n in ast.walk(fn))
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        roots = {a.name.split(".")[0] for a in node.names}
      elif isinstance(node, ast.ImportFrom):
        roots = {(node.module or "").split(".")[0]}
      else:
        continue
      allowed = lazy_ok if id(node) in in_function else set()
      assert not roots & (banned - allowed), f"{path.name} imports {roots & banned}"


# --------------------------------------------------------------------------- loading real files


@pytest.mark.parametrize("name, shape, n_anomalies", [
    ("6_cardio", (1831, 21), 176),
    ("6_cardio.npz", (1831, 21), 176),
    ("Classical/6_cardio", (1831, 21), 176),
    ("Classical/4_breastw", (683, 9), 239),  # uint8 on disk
    ("CV_by_ResNet18/MVTec-AD_bottle", (292, 512), 63),
    ("NLP_by_BERT/20news_3", (615, 768), 30),
])
def test_load_npz_name_forms(adbench_dir, name, shape, n_anomalies):
  x, y = data.load_npz(name, adbench_dir)
  assert x.dtype == np.float32 and y.dtype == np.int32
  assert x.shape == shape and y.shape == (shape[0],)
  assert set(np.unique(y)) == {0, 1} and int(y.sum()) == n_anomalies
  # Values unchanged apart from the cast.
  path = data.find_dataset_file(name, adbench_dir)
  raw = np.load(path)
  np.testing.assert_array_equal(x, raw["X"].astype(np.float32))
  np.testing.assert_array_equal(y, raw["y"])


def test_find_dataset_file_forms_agree(adbench_dir):
  expected = adbench_dir / "Classical" / "6_cardio.npz"
  for name in ("6_cardio", "6_cardio.npz", "Classical/6_cardio", "Classical/6_cardio.npz"):
    assert data.find_dataset_file(name, adbench_dir) == expected
  assert data.find_dataset_file("MVTec-AD_bottle", adbench_dir) == (
      adbench_dir / "CV_by_ResNet18" / "MVTec-AD_bottle.npz")


def test_list_datasets_real(adbench_dir):
  names = data.list_datasets(adbench_dir)
  assert names == sorted(names)
  for name in ("Classical/6_cardio", "CV_by_ResNet18/MVTec-AD_bottle", "NLP_by_BERT/20news_3"):
    assert name in names
  assert not any(n.endswith(".npz") for n in names)


def test_load_dataset_dispatch(adbench_dir, monkeypatch):
  x, y = data.load_dataset("Classical/6_cardio", str(adbench_dir))
  assert x.shape == (1831, 21) and y.dtype == np.int32
  monkeypatch.setenv(ENV, str(adbench_dir))
  x2, _ = data.load_dataset("6_cardio", None)
  np.testing.assert_array_equal(x, x2)


def test_load_dataset_synthetic_needs_no_dir(monkeypatch):
  monkeypatch.delenv(ENV, raising=False)
  x, y = data.load_dataset("synthetic", None)
  x0, y0, _ = make_synthetic(seed=0)
  np.testing.assert_array_equal(x, x0)
  np.testing.assert_array_equal(y, y0)


# --------------------------------------------------------------------------- data dir / lookup


def test_resolve_data_dir_missing_names_both_options(monkeypatch):
  monkeypatch.delenv(ENV, raising=False)
  for arg in (None, ""):
    with pytest.raises(DatasetError) as e:
      data.resolve_data_dir(arg)
    assert "--config.data_dir" in str(e.value) and ENV in str(e.value)


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
  a, b = tmp_path / "a", tmp_path / "b"
  a.mkdir()
  b.mkdir()
  monkeypatch.setenv(ENV, str(b))
  assert data.resolve_data_dir(str(a)) == a
  assert data.resolve_data_dir(None) == b
  assert data.resolve_data_dir("") == b
  with pytest.raises(DatasetError, match="does not exist"):
    data.resolve_data_dir(str(tmp_path / "nope"))
  monkeypatch.setenv(ENV, str(tmp_path / "gone"))
  with pytest.raises(DatasetError, match=ENV):
    data.resolve_data_dir(None)


def test_find_dataset_file_any_layout(tmp_path):
  x, y = _toy()
  _write(tmp_path / "top.npz", X=x, y=y)
  _write(tmp_path / "CV_by_ViT" / "CIFAR10_0.npz", X=x, y=y)  # folder not in the dev subset
  _write(tmp_path / "deep" / "er" / "nested_1.npz", X=x, y=y)
  assert data.find_dataset_file("top", tmp_path) == tmp_path / "top.npz"
  assert data.find_dataset_file("CIFAR10_0", tmp_path) == tmp_path / "CV_by_ViT" / "CIFAR10_0.npz"
  assert data.find_dataset_file("nested_1", tmp_path) == tmp_path / "deep/er/nested_1.npz"
  assert data.list_datasets(tmp_path) == ["CV_by_ViT/CIFAR10_0", "deep/er/nested_1", "top"]


def test_find_dataset_file_ambiguous(tmp_path):
  x, y = _toy()
  _write(tmp_path / "CV_by_ResNet18" / "CIFAR10_0.npz", X=x, y=y)
  _write(tmp_path / "CV_by_ViT" / "CIFAR10_0.npz", X=x, y=y)
  with pytest.raises(DatasetError) as e:
    data.find_dataset_file("CIFAR10_0", tmp_path)
  msg = str(e.value)
  assert "ambiguous" in msg
  assert "CV_by_ResNet18/CIFAR10_0" in msg and "CV_by_ViT/CIFAR10_0" in msg
  # The qualified names resolve.
  assert data.find_dataset_file("CV_by_ViT/CIFAR10_0", tmp_path).parent.name == "CV_by_ViT"


def test_find_dataset_file_not_found_suggests(tmp_path):
  x, y = _toy()
  _write(tmp_path / "Classical" / "6_cardio.npz", X=x, y=y)
  with pytest.raises(DatasetError) as e:
    data.find_dataset_file("6_cardoi", tmp_path)
  msg = str(e.value)
  assert "not found" in msg and str(tmp_path) in msg and "Classical/6_cardio" in msg
  with pytest.raises(DatasetError) as e:
    data.find_dataset_file("Classical/6_cadio", tmp_path)
  assert "Classical/6_cardio" in str(e.value) and str(tmp_path) in str(e.value)
  with pytest.raises(DatasetError, match="not found"):
    data.find_dataset_file("zzzzzz", tmp_path)


# --------------------------------------------------------------------------- validation


def _load_error(tmp_path, **arrays) -> str:
  _write(tmp_path / "Classical" / "bad.npz", **arrays)
  with pytest.raises(DatasetError) as e:
    data.load_npz("bad", tmp_path)
  msg = str(e.value)
  assert "bad.npz" in msg, msg  # every message names the file
  return msg


def test_validation_missing_keys(tmp_path):
  x, y = _toy()
  msg = _load_error(tmp_path, X=x, labels=y)
  assert "'y'" in msg and "labels" in msg
  msg = _load_error(tmp_path, data=x, y=y)
  assert "'X'" in msg


def test_validation_shapes(tmp_path):
  x, y = _toy()
  assert "2-D" in _load_error(tmp_path, X=x[:, 0], y=y)
  assert "2-D" in _load_error(tmp_path, X=x[None], y=y)
  assert "1-D" in _load_error(tmp_path, X=x, y=y[:, None])
  msg = _load_error(tmp_path, X=x, y=y[:-1])
  assert "100 rows" in msg and "99 labels" in msg


def test_validation_non_binary_labels(tmp_path):
  x, y = _toy()
  y = y.copy()
  y[:3] = [2, -1, 2]
  msg = _load_error(tmp_path, X=x, y=y)
  assert "binary" in msg and "[-1, 0, 1, 2]" in msg


def test_validation_non_finite(tmp_path):
  x, y = _toy()
  x = x.copy()
  x[0, 0], x[5, 1], x[7, 2] = np.nan, np.inf, -np.inf
  msg = _load_error(tmp_path, X=x, y=y)
  assert "3 non-finite" in msg
  x, y = _toy()
  x = x.copy()
  x[1, 1] = 1e300  # finite in float64, not in float32
  assert "float32" in _load_error(tmp_path, X=x, y=y)


def test_validation_single_class_and_tiny(tmp_path):
  x, y = _toy()
  assert "no anomalies" in _load_error(tmp_path, X=x, y=np.zeros_like(y))
  assert "no normal" in _load_error(tmp_path, X=x, y=np.ones_like(y))
  msg = _load_error(tmp_path, X=x[:9], y=np.r_[np.zeros(5), np.ones(4)])
  assert "9 rows" in msg


def test_validation_unreadable(tmp_path):
  path = tmp_path / "junk.npz"
  path.write_bytes(b"this is not a zip archive")
  with pytest.raises(DatasetError, match="junk.npz: not an .npz archive") as e:
    data.load_npz("junk", tmp_path)
  assert "pickle" not in str(e.value)  # np.load's fallback, meaningless for a broken file
  # Object arrays need pickle, which is refused.
  x, y = _toy()
  np.savez(tmp_path / "obj.npz", X=x.astype(object), y=y)
  with pytest.raises(DatasetError, match="obj.npz: holds object arrays"):
    data.load_npz("obj", tmp_path)


def test_validation_accepts_integer_and_float_encodings(tmp_path):
  x, y = _toy()
  _write(tmp_path / "ok.npz", X=(np.abs(x) * 10).astype(np.uint8), y=y.astype(np.float64))
  xx, yy = data.load_npz("ok", tmp_path)
  assert xx.dtype == np.float32 and yy.dtype == np.int32
  np.testing.assert_array_equal(yy, y)


# --------------------------------------------------------------------------- protocol: real data


def _class_counts(labels):
  return np.array([(labels == 0).sum(), (labels == 1).sum()])


def _check_split_sizes(s, n, y_resampled_counts, test_size=0.3):
  n_test = math.ceil(test_size * n)
  assert s.x_test.shape[0] == n_test and s.x_train.shape[0] == n - n_test
  exact_test = n_test * y_resampled_counts / n
  exact_train = (n - n_test) * y_resampled_counts / n
  assert np.all(np.abs(_class_counts(s.y_test) - exact_test) < 1)
  assert np.all(np.abs(_class_counts(s.train_labels) - exact_train) < 1)


def test_split_sizes_and_stratification_cardio(adbench_dir):
  x, y = data.load_npz("6_cardio", adbench_dir)
  s = adbench_splits(x, y, rng=np.random.default_rng(1), la=0.1)
  n = 1831  # between the thresholds: no resampling
  _check_split_sizes(s, n, _class_counts(y))
  assert s.x_test.shape[0] == 550
  # The two index sets partition the rows, and the labels follow the rows.
  np.testing.assert_array_equal(np.sort(np.r_[s.train_index, s.test_index]), np.arange(n))
  np.testing.assert_array_equal(s.train_labels, y[s.train_index])
  np.testing.assert_array_equal(s.y_test, y[s.test_index])
  # Same per-class allocation as sklearn's stratified train_test_split.
  _, _, _, y_te = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
  np.testing.assert_array_equal(_class_counts(s.y_test), _class_counts(y_te))
  # Rows are shuffled, not grouped by label (AnoOnly's ordering is not reproduced).
  assert not np.all(np.diff(s.train_labels) >= 0)
  assert s.x_train.dtype == np.float32 and s.semi_labels.dtype == np.int32
  assert s.train_labels.dtype == np.int32 and s.y_test.dtype == np.int32


def test_upsampling_small_dataset(adbench_dir):
  x, y = data.load_npz("CV_by_ResNet18/MVTec-AD_bottle", adbench_dir)
  s = adbench_splits(x, y, rng=np.random.default_rng(1), la=0.1)
  assert s.x_train.shape == (700, 512) and s.x_test.shape == (300, 512)
  idx = np.r_[s.train_index, s.test_index]
  assert idx.min() >= 0 and idx.max() < 292
  assert np.unique(idx).size < 1000  # drawn with replacement: duplicates exist
  y_res = np.r_[s.train_labels, s.y_test]
  np.testing.assert_array_equal(y_res, y[idx])
  _check_split_sizes(s, 1000, _class_counts(y_res))
  # la = 0.1 -> ceil(0.1 * train anomalies).
  assert s.num_labelled == math.ceil(0.1 * s.train_labels.sum())


def test_downsampling_large_dataset(adbench_dir):
  x, y = data.load_npz("Classical/10_cover", adbench_dir)
  assert x.shape[0] > 10000
  s = adbench_splits(x, y, rng=np.random.default_rng(2), la=0.1)
  idx = np.r_[s.train_index, s.test_index]
  assert idx.size == 10000 and np.unique(idx).size == 10000  # without replacement
  assert s.x_test.shape[0] == 3000
  _check_split_sizes(s, 10000, _class_counts(y[idx]))


def test_no_resampling_when_disabled():
  x, y = _toy(n_normal=400, n_anomaly=40)
  s = adbench_splits(x, y, rng=np.random.default_rng(0), la=0.1, resample=False)
  assert s.x_train.shape[0] + s.x_test.shape[0] == 440
  s = adbench_splits(x, y, rng=np.random.default_rng(0), la=0.1, upsample_threshold=100,
                     downsample_threshold=200)
  assert s.x_train.shape[0] + s.x_test.shape[0] == 200


# --------------------------------------------------------------------------- protocol: labels


def test_labelled_counts():
  x, y = _toy(n_normal=1200, n_anomaly=300)
  rng = lambda: np.random.default_rng(3)
  s = adbench_splits(x, y, rng=rng(), la=0.1)
  n_train_anom = int(s.train_labels.sum())
  assert n_train_anom == 210
  assert s.num_labelled == math.ceil(0.1 * n_train_anom) == 21
  assert np.all(s.train_labels[s.labelled_anomaly_index] == 1)
  assert s.labelled_anomaly_index.size == s.num_labelled
  assert adbench_splits(x, y, rng=rng(), la=0.15).num_labelled == math.ceil(0.15 * 210)
  assert adbench_splits(x, y, rng=rng(), la=0.15,
                        at_least_one_labeled=False).num_labelled == int(0.15 * 210)
  assert adbench_splits(x, y, rng=rng(), la=7).num_labelled == 7
  assert adbench_splits(x, y, rng=rng(), la=np.int64(7)).num_labelled == 7
  assert adbench_splits(x, y, rng=rng(), la=210).num_labelled == 210
  assert adbench_splits(x, y, rng=rng(), la=1.0).num_labelled == 210
  assert adbench_splits(x, y, rng=rng(), la=1).num_labelled == 1  # int 1 = one anomaly
  assert adbench_splits(x, y, rng=rng(), la=0).num_labelled == 0
  assert adbench_splits(x, y, rng=rng(), la=0.0).num_labelled == 0
  # A tiny ratio still labels one anomaly with at_least_one_labeled, none without.
  assert adbench_splits(x, y, rng=rng(), la=1e-6).num_labelled == 1
  assert adbench_splits(x, y, rng=rng(), la=1e-6, at_least_one_labeled=False).num_labelled == 0
  summary = s.summary()
  assert summary["n_labelled"] == 21 and summary["n_train_anomalies"] == 210
  assert summary["n_unlabelled_anomalies"] == 189
  assert summary["n_train"] + summary["n_test"] == 1500
  assert summary["n_labelled_normals"] == 0 and summary["n_flipped"] == 0


@pytest.mark.parametrize("la, match", [
    (211, "only 210"), (-1, ">= 0"), (1.5, r"\[0, 1\]"), (-0.1, r"\[0, 1\]"),
    (float("nan"), r"\[0, 1\]"), (True, "bool"), ("0.1", "float"),
])
def test_invalid_la(la, match):
  x, y = _toy(n_normal=1200, n_anomaly=300)
  with pytest.raises(DatasetError, match=match):
    adbench_splits(x, y, rng=np.random.default_rng(3), la=la)


def test_split_without_anomalies_raises():
  x = np.arange(20.0)[:, None]
  y = np.r_[np.zeros(19), 1]
  # One anomaly of 20: its test share 0.3 rounds to 0, so the test split has none.
  with pytest.raises(DatasetError, match="test split has no anomalies"):
    adbench_splits(x, y, rng=np.random.default_rng(0), la=0.1, resample=False)
  # With test_size 0.8 its share 0.8 rounds to 1: the training split has none.
  with pytest.raises(DatasetError, match="training split has no anomalies"):
    adbench_splits(x, y, rng=np.random.default_rng(0), la=0.1, resample=False, test_size=0.8)


# --------------------------------------------------------------------------- protocol: scaling


def test_minmax_fitted_on_train_only(adbench_dir):
  x, y = data.load_npz("Classical/6_cardio", adbench_dir)
  x = x.copy()
  x[:, 3] = 7.0  # a constant column
  s = adbench_splits(x, y, rng=np.random.default_rng(5), la=0.1)
  raw_tr = x[s.train_index].astype(np.float64)
  raw_te = x[s.test_index].astype(np.float64)
  lo, hi = raw_tr.min(0), raw_tr.max(0)
  nonconst = hi > lo
  assert not nonconst[3] and nonconst.sum() >= 20
  np.testing.assert_allclose(s.x_train.min(0)[nonconst], 0.0, atol=1e-7)
  np.testing.assert_allclose(s.x_train.max(0)[nonconst], 1.0, atol=1e-6)
  np.testing.assert_array_equal(s.x_train[:, 3], 0.0)
  span = np.where(nonconst, hi - lo, 1.0)
  np.testing.assert_allclose(s.x_test, (raw_te - lo) / span, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(s.x_train, (raw_tr - lo) / span, rtol=1e-6, atol=1e-6)
  # Identical to sklearn's MinMaxScaler fitted on the train rows.
  scaler = MinMaxScaler().fit(raw_tr)
  np.testing.assert_allclose(s.x_test, scaler.transform(raw_te), rtol=1e-5, atol=1e-6)
  # Fitted on train only: with all data the test rows would land inside [0, 1]; here
  # some typically do not, and the scaling differs from a fit on all rows.
  assert not np.allclose(s.x_test, MinMaxScaler().fit(x).transform(raw_te), atol=1e-4)


def test_constant_column_test_values_keep_offset():
  x, y = _toy(n_normal=90, n_anomaly=30, dim=2)
  x = np.c_[x, np.full(120, 3.0)]
  rng = np.random.default_rng(0)
  s = adbench_splits(x, y, rng=rng, la=0.1, resample=False)
  x2 = x.copy()
  x2[s.test_index, 2] = 5.0  # test-only deviation in the train-constant column
  s2 = adbench_splits(x2, y, rng=np.random.default_rng(0), la=0.1, resample=False)
  np.testing.assert_array_equal(s2.x_train[:, 2], 0.0)
  np.testing.assert_array_equal(s2.x_test[:, 2], 2.0)  # (5 - 3) / 1


def test_minmax_off_keeps_raw_values():
  x, y = _toy()
  s = adbench_splits(x, y, rng=np.random.default_rng(0), la=0.1, minmax=False, resample=False)
  np.testing.assert_array_equal(s.x_train, x[s.train_index].astype(np.float32))
  np.testing.assert_array_equal(s.x_test, x[s.test_index].astype(np.float32))


# --------------------------------------------------------------------------- normal_clean, noise


def test_normal_clean_removes_exactly_unlabelled_anomalies(adbench_dir):
  x, y = data.load_npz("Classical/6_cardio", adbench_dir)
  full = adbench_splits(x, y, rng=np.random.default_rng(9), la=0.1)
  clean = adbench_splits(x, y, rng=np.random.default_rng(9), la=0.1, normal_clean=True)
  unlabelled_anom = (full.train_labels == 1) & (full.semi_labels == 0)
  assert unlabelled_anom.sum() > 0
  keep = ~unlabelled_anom
  assert clean.x_train.shape[0] == full.x_train.shape[0] - unlabelled_anom.sum()
  np.testing.assert_array_equal(clean.x_train, full.x_train[keep])
  np.testing.assert_array_equal(clean.semi_labels, full.semi_labels[keep])
  np.testing.assert_array_equal(clean.train_index, full.train_index[keep])
  np.testing.assert_array_equal(clean.x_test, full.x_test)
  np.testing.assert_array_equal(clean.y_test, full.y_test)
  assert clean.num_labelled == full.num_labelled
  # Every kept anomaly is labelled; every unlabelled row is a true normal.
  np.testing.assert_array_equal(clean.train_labels, clean.semi_labels)
  assert clean.summary()["n_unlabelled_anomalies"] == 0


def test_label_contamination_flips_int_n_train_r():
  x, y = _toy(n_normal=900, n_anomaly=100, dim=2)
  x = np.c_[x, y]  # column 2 records the true label, to audit the flip independently
  r = 0.053  # n_train * r = 37.1, so int() and round()/ceil() differ
  s = adbench_splits(x, y, rng=np.random.default_rng(4), la=0.2, resample=False,
                     label_contamination=r, minmax=False)
  n_train = s.x_train.shape[0]
  assert n_train == 700
  assert s.label_flipped.sum() == int(n_train * r) == 37
  # train_labels are the true labels (the recorded column), not the flipped ones.
  np.testing.assert_array_equal(s.train_labels, s.x_train[:, 2].astype(np.int32))
  observed = s.train_labels ^ s.label_flipped
  assert np.sum(observed != s.train_labels) == 37
  # Labelled anomalies are drawn among the observed (flipped) positives.
  assert np.all(observed[s.labelled_anomaly_index] == 1)
  assert s.num_labelled == math.ceil(0.2 * observed.sum())
  assert s.summary()["n_flipped"] == 37
  # Flipping happens after the split: test labels are untouched.
  np.testing.assert_array_equal(s.y_test, y[s.test_index])
  # Some flipped normals end up labelled as anomalies for this seed/ratio.
  assert s.summary()["n_labelled_normals"] > 0


def test_label_contamination_zero_matches_default():
  x, y = _toy(n_normal=300, n_anomaly=50)
  a = adbench_splits(x, y, rng=np.random.default_rng(1), la=0.1)
  b = adbench_splits(x, y, rng=np.random.default_rng(1), la=0.1, label_contamination=0.0)
  np.testing.assert_array_equal(a.x_train, b.x_train)
  np.testing.assert_array_equal(a.semi_labels, b.semi_labels)


# --------------------------------------------------------------------------- determinism


def _splits_equal(a, b) -> bool:
  return all(np.array_equal(getattr(a, f), getattr(b, f))
             for f in ("x_train", "semi_labels", "train_labels", "x_test", "y_test",
                       "label_flipped", "train_index", "test_index"))


def test_determinism_per_seed(adbench_dir):
  x, y = data.load_npz("CV_by_ResNet18/MVTec-AD_bottle", adbench_dir)
  kw = dict(la=0.1, label_contamination=0.02)
  a = adbench_splits(x, y, rng=np.random.default_rng(1), **kw)
  b = adbench_splits(x, y, rng=np.random.default_rng(1), **kw)
  c = adbench_splits(x, y, rng=np.random.default_rng(2), **kw)
  assert _splits_equal(a, b)
  assert not np.array_equal(a.train_index, c.train_index)
  assert not np.array_equal(a.labelled_anomaly_index, c.labelled_anomaly_index)


def test_splits_is_frozen_and_validated():
  x, y = _toy()
  s = adbench_splits(x, y, rng=np.random.default_rng(0), la=0.1)
  with pytest.raises(Exception):
    s.x_train = s.x_test
  bare = data.Splits(x_train=s.x_train, semi_labels=s.semi_labels, train_labels=s.train_labels,
                     x_test=s.x_test, y_test=s.y_test)
  assert bare.label_flipped.shape == s.semi_labels.shape and not bare.label_flipped.any()
  with pytest.raises(ValueError, match="semi_labels"):
    data.Splits(x_train=s.x_train, semi_labels=s.semi_labels[:-1],
                train_labels=s.train_labels, x_test=s.x_test, y_test=s.y_test)


# --------------------------------------------------------------------------- property test


@settings(max_examples=60, deadline=None)
@given(
    n_normal=st.integers(8, 200),
    n_anomaly=st.integers(4, 60),
    dim=st.integers(1, 4),
    test_size=st.sampled_from([0.2, 0.25, 0.3, 0.5]),
    la=st.one_of(st.floats(0.0, 1.0), st.integers(0, 2)),
    at_least_one=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_protocol_invariants(n_normal, n_anomaly, dim, test_size, la, at_least_one, seed):
  data_rng = np.random.default_rng(seed ^ 0x5EED)
  x = data_rng.normal(size=(n_normal + n_anomaly, dim))
  x[:, 0] = np.round(x[:, 0])  # ties and repeated values, as in integer-coded features
  y = data_rng.permutation(np.r_[np.zeros(n_normal, int), np.ones(n_anomaly, int)])
  n = y.size
  kw = dict(la=la, at_least_one_labeled=at_least_one, test_size=test_size, resample=False)
  s = adbench_splits(x, y, rng=np.random.default_rng(seed), **kw)

  n_test = math.ceil(test_size * n)
  assert s.x_test.shape == (n_test, dim) and s.x_train.shape == (n - n_test, dim)
  assert s.x_train.dtype == s.x_test.dtype == np.float32
  assert s.semi_labels.dtype == s.train_labels.dtype == s.y_test.dtype == np.int32
  np.testing.assert_array_equal(np.sort(np.r_[s.train_index, s.test_index]), np.arange(n))
  np.testing.assert_array_equal(s.train_labels, y[s.train_index])
  np.testing.assert_array_equal(s.y_test, y[s.test_index])
  counts = _class_counts(y)
  assert np.all(np.abs(_class_counts(s.y_test) - n_test * counts / n) < 1)

  n_train_anom = int(s.train_labels.sum())
  if isinstance(la, int):
    expected = la
  else:
    expected = math.ceil(la * n_train_anom) if at_least_one else int(la * n_train_anom)
  assert s.num_labelled == expected
  assert set(np.unique(s.semi_labels)) <= {0, 1}
  assert np.all(s.train_labels[s.semi_labels == 1] == 1)

  raw_tr = x[s.train_index]
  lo, hi = raw_tr.min(0), raw_tr.max(0)
  span = np.where(hi > lo, hi - lo, 1.0)
  assert s.x_train.min() >= 0.0 and s.x_train.max() <= 1.0
  np.testing.assert_allclose(s.x_train.max(0)[hi > lo], 1.0, atol=1e-6)
  np.testing.assert_allclose(s.x_test, (x[s.test_index] - lo) / span, rtol=1e-5, atol=1e-5)

  again = adbench_splits(x, y, rng=np.random.default_rng(seed), **kw)
  assert _splits_equal(s, again)


# --------------------------------------------------------------------------- synthetic


def test_synthetic_shapes_counts_and_determinism():
  x, y, kinds = make_synthetic(seed=0)
  assert x.shape == (3000, 12) and x.dtype == np.float32 and y.dtype == np.int32
  names, counts = np.unique(kinds, return_counts=True)
  assert dict(zip(names.tolist(), counts.tolist())) == {
      "normal": 2700, "local": 100, "global": 100, "cluster": 100}
  np.testing.assert_array_equal(y, (kinds != "normal").astype(np.int32))
  assert np.isfinite(x).all()
  assert not np.all(kinds[:2700] == "normal")  # rows are shuffled
  x2, y2, k2 = make_synthetic(seed=0)
  np.testing.assert_array_equal(x, x2)
  np.testing.assert_array_equal(kinds, k2)
  x3, _, _ = make_synthetic(seed=1)
  assert not np.allclose(x, x3)
  xs, ys, ks = make_synthetic(seed=3, n_normal=50, n_local=1, n_global=2, n_cluster=0, dim=3,
                              n_components=1)
  assert xs.shape == (53, 3) and ys.sum() == 3 and "cluster" not in ks
  assert data.SYNTHETIC_NAME == "synthetic"


def _min_sq_mahalanobis(x, means, covs):
  prec = np.linalg.inv(covs)
  diff = x[:, None, :].astype(np.float64) - means[None]
  return np.einsum("nki,kij,nkj->nk", diff, prec, diff).min(axis=1)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_synthetic_follows_the_documented_process(seed):
  x, y, kinds = make_synthetic(seed=seed)
  mix = data.synthetic_mixture(seed=seed)
  d = x.shape[1]
  covs = mix.covariances
  np.testing.assert_allclose(covs, np.swapaxes(covs, 1, 2))
  eig = np.linalg.eigvalsh(covs)
  assert eig.min() >= 0.05 - 1e-9 and eig.max() <= 0.3 + 1e-9
  np.testing.assert_allclose(mix.weights.sum(), 1.0)
  normal = x[kinds == "normal"]
  # Normals: mean of the mixture, and each row ~ chi^2_d in Mahalanobis distance to its
  # (nearest) component.
  np.testing.assert_allclose(normal.mean(0), mix.weights @ mix.means, atol=0.15)
  m_normal = _min_sq_mahalanobis(normal, mix.means, covs)
  assert 0.85 * d < m_normal.mean() < 1.1 * d
  # Local: covariances x5 -> about 5 d.
  m_local = _min_sq_mahalanobis(x[kinds == "local"], mix.means, covs)
  assert 3.5 * d < m_local.mean() < 6 * d
  # Cluster: chi^2_d around the means x5, far from the normal means.
  cluster = x[kinds == "cluster"]
  assert _min_sq_mahalanobis(cluster, 5 * mix.means, covs).mean() < 1.2 * d
  assert _min_sq_mahalanobis(cluster, mix.means, covs).min() > 50 * d
  # Global: inside the normals' box widened by 10% of the range on each side, mostly
  # outside the unwidened box.
  glob = x[kinds == "global"]
  lo, hi = normal.min(0), normal.max(0)
  pad = 0.1 * (hi - lo)
  assert np.all(glob >= lo - pad - 1e-5) and np.all(glob <= hi + pad + 1e-5)
  outside = np.any((glob < lo) | (glob > hi), axis=1)
  assert outside.mean() > 0.5
  # And it fills the widened box: every feature's spread of global rows covers most of it.
  assert np.all((glob.max(0) - glob.min(0)) > 0.8 * (hi - lo))


def test_synthetic_anomalies_are_separable():
  x, y, kinds = make_synthetic(seed=0)
  mix = data.synthetic_mixture(seed=0)
  # A plain score computed here: Euclidean distance to the nearest normal mixture mean.
  score = np.linalg.norm(x[:, None, :] - mix.means[None], axis=2).min(axis=1)
  normal = kinds == "normal"

  def auroc(kind):
    sel = normal | (kinds == kind)
    return roc_auc_score(kinds[sel] == kind, score[sel])

  assert auroc("global") > 0.9
  assert auroc("cluster") > 0.99
  assert auroc("local") > 0.8
  assert roc_auc_score(y, score) > 0.9


def test_synthetic_through_the_protocol():
  x, y = data.load_dataset("synthetic", None)
  s = adbench_splits(x, y, rng=np.random.default_rng(1), la=0.1)
  assert s.x_train.shape == (2100, 12) and s.x_test.shape == (900, 12)
  assert s.y_test.sum() == 90 and s.train_labels.sum() == 210 and s.num_labelled == 21


def test_embedded_optdigits_is_the_recipe_byte_for_byte():
  """The shipped file is what experiments/embedded_data.py builds (provenance check)."""
  pytest.importorskip("sklearn")
  from experiments import embedded_data
  assert data.embedded.path("optdigits").read_bytes() == embedded_data.optdigits_bytes()
  x, y = data.load_dataset("embedded:optdigits")
  assert x.shape == (1667, 64) and x.dtype == np.float32 and int(y.sum()) == 48
  assert set(np.unique(x)) <= set(range(17))  # pixel counts 0..16, as in UCI optdigits


def test_protocol_settings_are_one_dataclass_that_the_config_and_the_runner_share():
  """The `data` section is built from `Protocol` (its only defaults), the runner hands
  every field to the protocol, and keyword settings override a `Protocol` the same way."""
  import dataclasses
  from experiments.configs import common
  from ssadjax import runconfig
  config = common.get_config()
  fields = {f.name: f.default for f in dataclasses.fields(data.Protocol)}
  assert {k: config.data[k] for k in fields} == fields
  rng = np.random.default_rng(0)
  x = rng.normal(size=(600, 5))
  y = (np.arange(600) < 60).astype(np.int32)
  by_keyword = adbench_splits(x, y, rng=np.random.default_rng(3), la=0.2, test_size=0.5,
                              resample=False)
  by_protocol = adbench_splits(x, y, rng=np.random.default_rng(3), la=0.2,
                               protocol=data.Protocol(test_size=0.5, resample=False))
  np.testing.assert_array_equal(by_keyword.x_test, by_protocol.x_test)
  assert by_keyword.x_test.shape[0] == 300
  config.data.test_size, config.data.resample = 0.5, False
  config.la = 0.2
  assert runconfig.prepare_splits(config, [3], data=(x, y))[0].x_test.shape[0] == 300
  with pytest.raises(TypeError, match="test_fraction.*fields of Protocol"):
    adbench_splits(x, y, rng=np.random.default_rng(3), la=0.2, test_fraction=0.5)
