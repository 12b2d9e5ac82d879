"""AUROC/AUPRC against scikit-learn on random and tied scores."""

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
from sklearn import metrics as skm

from ssadjax import metrics


def _labels_scores(draw_labels, draw_scores):
  labels = np.asarray(draw_labels, np.int32)
  return labels, np.asarray(draw_scores, np.float64)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(st.data())
def test_match_sklearn_with_ties(data):
  n = data.draw(st.integers(2, 60))
  labels = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
  hypothesis.assume(0 < labels.sum() < n)
  # few distinct values -> many ties
  scores = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)), float)
  assert metrics.auroc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores))
  assert metrics.auprc(labels, scores) == pytest.approx(
      skm.average_precision_score(labels, scores))


@pytest.mark.parametrize("seed", range(5))
def test_match_sklearn_random(seed):
  rng = np.random.default_rng(seed)
  labels = (rng.random(2000) < 0.05).astype(int)
  scores = rng.normal(size=2000) + labels
  assert metrics.auroc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores))
  assert metrics.auprc(labels, scores) == pytest.approx(
      skm.average_precision_score(labels, scores))


def test_known_values():
  assert metrics.auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
  assert metrics.auroc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
  assert metrics.auroc([0, 1], [0.5, 0.5]) == 0.5
  # ranking: anomaly, normal, anomaly -> precision 1 at recall .5, 2/3 at recall 1
  assert metrics.auprc([1, 0, 1], [3.0, 2.0, 1.0]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


@pytest.mark.parametrize("labels,scores,match", [
    ([0, 0], [1.0, 2.0], "both anomalies and normals"),
    ([0, 2], [1.0, 2.0], "0/1"),
    ([0, 1], [1.0, np.nan], "not finite"),
    ([0, 1, 1], [1.0, 2.0], "differ in length"),
])
def test_errors(labels, scores, match):
  with pytest.raises(ValueError, match=match):
    metrics.auroc(labels, scores)
