"""Ranking metrics computed on the host (scores of a whole test split are needed anyway).

Both follow scikit-learn's definitions exactly, ties included:
AUROC = `roc_auc_score` (area under the ROC curve with tied scores forming one
threshold, equal to the Mann-Whitney U statistic with average ranks) and
AUPRC = `average_precision_score` (sum over distinct thresholds of
(R_n - R_{n-1}) * P_n, positive class = anomaly).
"""

import numpy as np


def _check(labels, scores):
  labels = np.asarray(labels).reshape(-1)
  scores = np.asarray(scores, dtype=np.float64).reshape(-1)
  if labels.shape != scores.shape:
    raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in length")
  if not np.all(np.isin(labels, (0, 1))):
    raise ValueError(f"labels must be 0/1, got values {np.unique(labels)[:10]}")
  if not np.all(np.isfinite(scores)):
    raise ValueError(f"{int(np.sum(~np.isfinite(scores)))} scores are not finite")
  n_pos = int(labels.sum())
  if n_pos == 0 or n_pos == labels.size:
    raise ValueError("AUROC/AUPRC need both anomalies and normals in the labels")
  return labels.astype(bool), scores


def auroc(labels, scores) -> float:
  """Area under the ROC curve; ties count one half (as sklearn)."""
  labels, scores = _check(labels, scores)
  order = np.argsort(scores, kind="mergesort")
  sorted_scores = scores[order]
  ranks = np.empty(scores.size, dtype=np.float64)
  # Average rank within each group of tied scores.
  _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
  avg = first + (counts + 1) / 2.0
  ranks[order] = np.repeat(avg, counts)
  n_pos = labels.sum()
  n_neg = labels.size - n_pos
  return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auprc(labels, scores) -> float:
  """Average precision with anomalies as the positive class (as sklearn)."""
  labels, scores = _check(labels, scores)
  order = np.argsort(-scores, kind="mergesort")
  sorted_scores, sorted_labels = scores[order], labels[order]
  # The last index of each run of tied scores is one threshold.
  last = np.r_[np.nonzero(np.diff(sorted_scores))[0], sorted_scores.size - 1]
  tp = np.cumsum(sorted_labels)[last]
  precision = tp / (last + 1)
  recall = tp / labels.sum()
  return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
