"""The PyOD-style estimators: same numbers as the CLI, persistence, sklearn protocol,
input validation, and the README example."""

import json
import pathlib
import re
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from ssadjax import DeepSAD, DeepSVDD, metrics
from ssadjax.data import DatasetError, adbench_splits, load_npz, make_synthetic
from ssadjax import methods
from ssadjax.estimators import DETECTORS, BaseDetector

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_split():
  x, y, _ = make_synthetic(seed=0, n_normal=600, n_local=20, n_global=20, n_cluster=20)
  return adbench_splits(x, y, rng=np.random.default_rng(1), la=0.2)


@pytest.fixture(scope="module")
def fitted(small_split):
  return DeepSAD(num_epochs=4, batch_size=64, random_state=3).fit(small_split.x_train,
                                                                   small_split.semi_labels)


def test_fit_sets_pyod_attributes(fitted, small_split):
  n = small_split.x_train.shape[0]
  assert fitted.decision_scores_.shape == (n,)
  assert fitted.labels_.mean() == pytest.approx(0.1, abs=0.01)
  flags = fitted.predict(small_split.x_train)
  np.testing.assert_array_equal(flags, fitted.labels_)
  scores = fitted.decision_function(jnp.asarray(small_split.x_test))  # jax arrays too
  assert scores.shape == (small_split.x_test.shape[0],)
  assert metrics.auroc(small_split.y_test, scores) > 0.7


def test_save_load_round_trip_gives_identical_scores(fitted, small_split, tmp_path):
  fitted.save(tmp_path / "det")
  loaded = BaseDetector.load(tmp_path / "det")
  assert isinstance(loaded, DeepSAD) and loaded.get_params() == fitted.get_params()
  np.testing.assert_array_equal(loaded.decision_function(small_split.x_test),
                                fitted.decision_function(small_split.x_test))
  assert loaded.threshold_ == fitted.threshold_
  with pytest.raises(ValueError, match="holds a DeepSAD"):
    DeepSVDD.load(tmp_path / "det")


def test_clone_and_pipeline(small_split):
  detector = DeepSVDD(num_epochs=2, batch_size=64, norm={"stats_rows": "all"})
  copy = clone(detector)
  assert copy.get_params() == detector.get_params() and copy is not detector
  assert not hasattr(copy, "state_")
  raw = small_split.x_test * 50.0 + 3.0
  pipe = make_pipeline(MinMaxScaler(), copy).fit(raw)
  assert pipe.decision_function(raw).shape == (raw.shape[0],)
  detector.set_params(num_epochs=3)
  assert detector.num_epochs == 3
  with pytest.raises(ValueError, match="no parameter"):
    detector.set_params(epochs=3)


@pytest.mark.parametrize("make_input,match", [
    (lambda x, y: (np.where(np.arange(x.size).reshape(x.shape) == 0, np.nan, x), y),
     "non-finite"),
    (lambda x, y: (x[:, 0], y), "2-D"),
    (lambda x, y: (x.astype(object), y), "numeric"),
    (lambda x, y: (x, y[:-1]), "one label per row"),
    (lambda x, y: (x, y + 1), "labelled anomaly"),
    (lambda x, y: (x[:0], y[:0]), "empty"),
    (lambda x, y: (np.full_like(x, 1e39, dtype=np.float64), y), "overflow"),
])
def test_fit_input_errors(small_split, make_input, match):
  x, y = make_input(small_split.x_train, small_split.semi_labels)
  with pytest.raises(DatasetError, match=match):
    DeepSAD(num_epochs=1).fit(x, y)


def test_usage_errors(fitted, small_split):
  with pytest.raises(RuntimeError, match="not fitted"):
    DeepSAD().decision_function(small_split.x_test)
  with pytest.raises(DatasetError, match="features"):
    fitted.decision_function(small_split.x_test[:, :3])
  with pytest.raises(ValueError, match="labelled anomalies"):
    DeepSAD(anomaly_only=True).fit(small_split.x_train, None)
  with pytest.raises(ValueError, match="not a deepsad hyper-parameter"):
    DeepSAD(hparams={"etaa": 1.0}).fit(small_split.x_train, small_split.semi_labels)
  with pytest.raises(ValueError, match="contamination"):
    DeepSAD(contamination=0.7).fit(small_split.x_train, small_split.semi_labels)


@pytest.mark.slow
def test_same_auroc_as_the_cli_for_the_same_seed_and_split(adbench_dir, tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "experiments.main", "--config=experiments/configs/adbench.py",
       "--config.dataset=6_cardio", f"--config.data_dir={adbench_dir}",
       "--config.num_seeds=1", "--config.seed=2", "--config.anomaly_only=True",
       f"--workdir={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  cli = json.loads((tmp_path / "results.json").read_text())
  x, y = load_npz("6_cardio", adbench_dir)
  split = adbench_splits(x, y, rng=np.random.default_rng(2), la=0.1)
  detector = DeepSAD(anomaly_only=True, random_state=2).fit(split.x_train, split.semi_labels)
  scores = detector.decision_function(split.x_test)
  np.testing.assert_allclose(scores, np.load(tmp_path / "scores.npz")["scores"][0], rtol=1e-5)
  assert metrics.auroc(split.y_test, scores) == pytest.approx(cli["auroc"][0], abs=1e-9)


@pytest.mark.slow
def test_readme_example_runs(tmp_path):
  readme = (REPO / "README.md").read_text()
  section = readme.split("## As a detector")[1]
  code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
  code = code.replace("/tmp/ssadjax-detector", str(tmp_path / "det"))
  namespace = {}
  exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the documented example
  assert namespace["scores"].shape == namespace["flags"].shape
  assert (tmp_path / "det" / "detector.json").exists()
  assert metrics.auroc(namespace["split"].y_test, namespace["scores"]) > 0.8


# One short run per registered method: the facade reaches every method's engine path.
SHORT = {"deepsad": {"num_epochs": 2}, "deepsvdd": {"num_epochs": 2},
         "devnet": {"num_epochs": 2}, "prenet": {"num_epochs": 2},
         "feawad": {"num_epochs": 2, "pretrain_epochs": 1}, "bgad": {"meta_epochs": 2},
         "funad": {"num_epochs": 2}}


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_fits_and_scores(name, small_split, tmp_path):
  cls = DETECTORS[name]
  if cls._method not in methods.FACTORIES:
    pytest.skip(f"{cls._method} is not registered in this build")
  section = "deepsad" if cls._method == "deepsvdd" else cls._method
  short = {k: v for k, v in SHORT[cls._method].items()}
  detector = cls(hparams=short, random_state=1) if cls not in (DeepSAD, DeepSVDD) else cls(
      num_epochs=2, batch_size=64, random_state=1)
  del section
  detector.fit(small_split.x_train, small_split.semi_labels)
  scores = detector.decision_function(small_split.x_test)
  assert scores.shape == (small_split.x_test.shape[0],) and np.all(np.isfinite(scores))
  detector.save(tmp_path / name)
  np.testing.assert_array_equal(BaseDetector.load(tmp_path / name).decision_function(
      small_split.x_test), scores)
