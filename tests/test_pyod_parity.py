"""The calls PyOD's own tests make on its deep detectors (pyod/test/test_deepsvdd.py,
test_auto_encoder.py), made against ours: fitted attributes, scores, labels, the two
probability conversions, confidences, fit_predict, clone; plus PyOD's small-data and
not-fitted behaviour and the input errors scikit-learn users meet."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from ssadjax import DeepSAD, DeepSVDD, metrics
from ssadjax.data import DatasetError, adbench_splits, make_synthetic

CONTAMINATION = 0.1
ARGS = dict(num_epochs=3, batch_size=64, contamination=CONTAMINATION, random_state=4)


@pytest.fixture(scope="module")
def split():
  x, y, _ = make_synthetic(seed=2, n_normal=500, n_local=15, n_global=15, n_cluster=15)
  return adbench_splits(x, y, rng=np.random.default_rng(0), la=0.2)


@pytest.fixture(scope="module")
def clf(split):
  return DeepSAD(**ARGS).fit(split.x_train, split.semi_labels)


def test_parameters(clf):
  for name in ("decision_scores_", "labels_", "threshold_", "_mu", "_sigma"):
    assert getattr(clf, name, None) is not None, name
  assert clf._sigma > 0 and clf._classes == 2


def test_train_scores_and_labels(clf, split):
  n = split.x_train.shape[0]
  assert clf.decision_scores_.shape == (n,)
  # PyOD's threshold: the (1 - contamination) percentile of the training scores.
  assert clf.threshold_ == pytest.approx(
      np.percentile(clf.decision_scores_, 100 * (1 - CONTAMINATION)))
  np.testing.assert_array_equal(clf.labels_, clf.decision_scores_ > clf.threshold_)
  assert abs(clf.labels_.mean() - CONTAMINATION) < 2 / n


def test_prediction_scores_and_labels(clf, split):
  scores = clf.decision_function(split.x_test)
  assert scores.shape == (split.x_test.shape[0],)
  assert metrics.auroc(split.y_test, scores) > 0.7
  labels = clf.predict(split.x_test)
  assert labels.shape == scores.shape
  np.testing.assert_array_equal(labels, (scores > clf.threshold_).astype(int))


def test_prediction_proba_linear_and_unify(clf, split):
  scores = clf.decision_function(split.x_test)
  train = clf.decision_scores_
  default = clf.predict_proba(split.x_test)
  linear = clf.predict_proba(split.x_test, method="linear")
  np.testing.assert_array_equal(default, linear)
  expected = np.clip((scores - train.min()) / (train.max() - train.min()), 0, 1)
  np.testing.assert_allclose(linear[:, 1], expected, rtol=1e-6)
  unify = clf.predict_proba(split.x_test, method="unify")
  from scipy.special import erf
  np.testing.assert_allclose(
      unify[:, 1], np.clip(erf((scores - train.mean()) / (train.std() * np.sqrt(2))), 0, 1),
      rtol=1e-5, atol=1e-7)
  for probs in (linear, unify):
    assert probs.shape == (split.x_test.shape[0], 2)
    assert probs.min() >= 0 and probs.max() <= 1
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    # Probabilities order the rows as the scores do.
    assert metrics.auroc(split.y_test, probs[:, 1]) > 0.7
  with pytest.raises(ValueError, match="method='something' is not a probability"):
    clf.predict_proba(split.x_test, method="something")


def test_confidence(clf, split):
  labels, confidence = clf.predict(split.x_test, return_confidence=True)
  np.testing.assert_array_equal(labels, clf.predict(split.x_test))
  assert confidence.shape == labels.shape
  assert confidence.min() >= 0 and confidence.max() <= 1
  np.testing.assert_allclose(confidence, clf.predict_confidence(split.x_test))
  probs, confidence2 = clf.predict_proba(split.x_test, method="linear",
                                         return_confidence=True)
  np.testing.assert_array_equal(probs, clf.predict_proba(split.x_test))
  np.testing.assert_allclose(confidence2, confidence)
  # ExCeeD: the most extreme rows are predicted with high confidence, rows at the
  # threshold with little.
  scores = clf.decision_function(split.x_test)
  order = np.argsort(scores)
  assert confidence[order[0]] > 0.9 and confidence[order[-1]] > 0.9
  at_threshold = np.argmin(np.abs(scores - clf.threshold_))
  assert confidence[at_threshold] < confidence[order[0]]


def test_fit_predict_and_scoring(split):
  """fit_predict returns the training labels; fit_predict_score's check, by hand."""
  detector = DeepSAD(**ARGS)
  labels = detector.fit_predict(split.x_train, split.semi_labels)
  np.testing.assert_array_equal(labels, detector.labels_)
  assert labels.shape == (split.x_train.shape[0],)
  assert metrics.auroc(split.train_labels, detector.decision_scores_) > 0.7


def test_model_clone(clf):
  copy = clone(clf)
  assert copy.get_params() == clf.get_params() and not hasattr(copy, "decision_scores_")
  with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
    copy.decision_function(np.ones((3, clf.n_features_in_)))


@pytest.mark.parametrize("call", ["decision_function", "predict", "predict_proba",
                                  "predict_confidence"])
def test_not_fitted(call):
  with pytest.raises(NotFittedError, match=f"{call}: this DeepSVDD is not fitted yet"):
    getattr(DeepSVDD(), call)(np.ones((3, 2)))


def test_input_errors_one_line_each(clf, split):
  from scipy import sparse
  x = split.x_train
  cases = [
      (lambda: DeepSAD().fit(sparse.csr_matrix(x)), TypeError, "sparse input is not supported"),
      (lambda: DeepSAD().fit(x[:0]), DatasetError, r"X is empty \(shape=\(0, "),
      (lambda: DeepSAD().fit(x[:, :0]), DatasetError, r"0 feature\(s\)"),
      (lambda: DeepSAD().fit(x.astype(np.complex64)), DatasetError, "Complex data not supported"),
      (lambda: DeepSAD().fit(x[:1]), DatasetError, "1 sample"),
      (lambda: DeepSAD().fit(x[:, 0]), DatasetError, r"1-D array.*reshape"),
      (lambda: DeepSAD().fit(np.full((20, 3), "a", dtype=object)), DatasetError, "numeric"),
      (lambda: DeepSAD().fit(x, np.arange(x.shape[0]) % 3), DatasetError, "multi-class"),
      (lambda: clf.predict(x[:, :-1]), DatasetError,
       f"X has {x.shape[1] - 1} features, but DeepSAD is expecting {x.shape[1]} features"),
      (lambda: clf.predict(sparse.csr_matrix(x)), TypeError, "sparse"),
      (lambda: clf.decision_function(x[0]), DatasetError, r"reshape\(1, -1\)"),
  ]
  for call, error, match in cases:
    with pytest.raises(error, match=match) as info:
      call()
    assert "\n" not in str(info.value), str(info.value)
  # Numbers in an object array are numbers (as scikit-learn accepts them).
  np.testing.assert_array_equal(clf.decision_function(split.x_test[:5].astype(object)),
                                clf.decision_function(split.x_test[:5]))


def test_pickle_round_trip(clf, split):
  import pickle
  loaded = pickle.loads(pickle.dumps(clf))
  np.testing.assert_array_equal(loaded.decision_function(split.x_test),
                                clf.decision_function(split.x_test))
  np.testing.assert_array_equal(loaded.predict_proba(split.x_test),
                                clf.predict_proba(split.x_test))
