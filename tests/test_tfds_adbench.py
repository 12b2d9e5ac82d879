"""The ADBench TFDS builder (array_record, no TensorFlow): discovery, preparation, read-back."""

import collections
import pathlib
import urllib.error

import numpy as np
import pytest

import ssadjax.data as data
from ssadjax.data import DatasetError, tfds_adbench


def _rows(x, y):
  """Rows as a multiset of exact tuples (TFDS reorders rows while writing)."""
  return collections.Counter(tuple(r) for r in np.c_[x.astype(np.float64), y].tolist())


def _write(path: pathlib.Path, x, y):
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez(path, X=x, y=y)


def _tiny(seed=0, n=40, d=3):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)).astype(np.float32)
  y = (np.arange(n) % 5 == 0).astype(np.int64)
  return x, y


@pytest.fixture
def manual(tmp_path):
  root = tmp_path / "manual"
  x, y = _tiny()
  _write(root / "Classical" / "1_tiny.npz", x, y)
  # Same stem in two folders: both get folder-qualified config names.
  _write(root / "CV_by_ResNet18" / "twin.npz", *_tiny(1, d=4))
  _write(root / "CV_by_ViT" / "twin.npz", *_tiny(2, d=5))
  return root


def test_configs_are_discovered_from_the_manual_dir(manual):
  configs = {c.name: c for c in tfds_adbench.adbench_configs(manual)}
  assert set(configs) == {"1_tiny", "CV_by_ResNet18.twin", "CV_by_ViT.twin"}
  assert configs["1_tiny"].relpath == "Classical/1_tiny"
  assert configs["1_tiny"].num_features == 3
  assert configs["CV_by_ViT.twin"].num_features == 5


def test_npz_shape_reads_the_header_only(manual):
  assert tfds_adbench.npz_shape(manual / "CV_by_ViT" / "twin.npz") == (40, 5)


def test_prepare_and_read_back_exactly(manual, tmp_path):
  tfds_dir = tmp_path / "tfds"
  x, y = tfds_adbench.load_adbench_tfds("1_tiny", manual_dir=manual, data_dir=tfds_dir)
  x0, y0 = _tiny()
  assert x.dtype == np.float32 and y.dtype == np.int32 and x.shape == (40, 3)
  assert _rows(x, y) == _rows(x0, y0)
  assert (tfds_dir / "adbench" / "1_tiny" / "1.0.0" / "dataset_info.json").is_file()
  # Prepared: readable without the manual dir, same rows.
  x2, y2 = tfds_adbench.load_adbench_tfds("1_tiny", data_dir=tfds_dir)
  assert _rows(x2, y2) == _rows(x0, y0)


def test_ambiguous_stem_needs_the_folder(manual, tmp_path):
  with pytest.raises(DatasetError, match="ambiguous"):
    tfds_adbench.load_adbench_tfds("twin", manual_dir=manual, data_dir=tmp_path / "t")
  x, y = tfds_adbench.load_adbench_tfds("CV_by_ViT/twin", manual_dir=manual,
                                        data_dir=tmp_path / "t")
  assert _rows(x, y) == _rows(*_tiny(2, d=5))


def test_missing_everything_is_a_clear_error(tmp_path):
  with pytest.raises(DatasetError, match="(?s)not prepared.*Minqi824/ADBench"):
    tfds_adbench.load_adbench_tfds("6_cardio", data_dir=tmp_path / "empty")
  with pytest.raises(DatasetError, match="does not exist"):
    tfds_adbench.prepare_adbench("6_cardio", manual_dir=tmp_path / "nowhere",
                                 data_dir=tmp_path / "t")


def test_download_offline_is_a_clear_error(tmp_path, monkeypatch):
  seen = []

  def offline(url, timeout):
    seen.append(url)
    raise urllib.error.URLError("network unreachable")

  monkeypatch.setattr(tfds_adbench.urllib.request, "urlopen", offline)
  with pytest.raises(DatasetError, match="copy the file by hand"):
    tfds_adbench.download_adbench_file("Classical/6_cardio", tmp_path)
  assert seen == ["https://github.com/Minqi824/ADBench/raw/main/adbench/datasets/"
                  "Classical/6_cardio.npz"]
  assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob("*.npz"))
  with pytest.raises(DatasetError, match="folder"):
    tfds_adbench.download_adbench_file("6_cardio", tmp_path)


def test_load_dataset_dispatches_tfds_names(manual, tmp_path):
  x, y = data.load_dataset("tfds:adbench/1_tiny", str(manual), tfds_dir=str(tmp_path / "t"))
  assert _rows(x, y) == _rows(*_tiny())


def test_real_adbench_file_through_tfds_matches_the_npz(adbench_dir, tmp_path):
  tfds_dir = tmp_path / "tfds"
  x, y = data.load_dataset("tfds:adbench/6_cardio", str(adbench_dir), tfds_dir=str(tfds_dir))
  x0, y0 = data.load_npz("6_cardio", adbench_dir)
  assert x.shape == x0.shape == (1831, 21) and int(y.sum()) == 176
  assert _rows(x, y) == _rows(x0, y0)
  assert not np.array_equal(x, x0)  # TFDS reordered: the multiset check above is the point
  # uint8 on disk (4_breastw) becomes float32 the same way as load_npz does it.
  xb, yb = data.load_dataset("tfds:adbench/Classical/4_breastw", str(adbench_dir),
                             tfds_dir=str(tfds_dir))
  assert _rows(xb, yb) == _rows(*data.load_npz("4_breastw", adbench_dir))
