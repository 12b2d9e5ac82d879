"""Pure per-example objectives. Arrays in, per-example losses out; the caller reduces.

Conventions (optax style): data arguments are positional, hyper-parameters keyword-only,
`semi_labels` use 1 = labelled anomaly and 0 = unlabelled.
"""

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def squared_distance(embeddings: ArrayLike, center: ArrayLike) -> jax.Array:
  """Squared Euclidean distance ||phi(x) - c||^2 of each row to the centre.

  Args:
    embeddings: `[batch, dim]` network outputs phi(x).
    center: `[dim]` hypersphere centre c.

  Returns:
    `[batch]` distances; this is also the Deep SVDD / Deep SAD anomaly score.
  """
  embeddings = jnp.asarray(embeddings)
  return jnp.sum(jnp.square(embeddings - jnp.asarray(center)), axis=-1)


def deep_sad_loss(embeddings: ArrayLike, center: ArrayLike, semi_labels: ArrayLike,
                  *, eta: float = 1.0, eps: float = 1e-6) -> jax.Array:
  r"""Per-example Deep SAD objective.

  .. math::
    \ell_i = (1 - y_i)\, d_i + y_i\, \eta\, (d_i + \varepsilon)^{-1},
    \qquad d_i = \|\phi(x_i) - c\|^2

  Unlabelled rows are pulled towards c, labelled anomalies pushed away through the
  inverse distance (Ruff's exponent \tilde y = -1). With no labelled anomaly in the data
  this is exactly one-class Deep SVDD.

  Args:
    embeddings: `[batch, dim]` phi(x).
    center: `[dim]` c.
    semi_labels: `[batch]` 1 = labelled anomaly, 0 = unlabelled.
    eta: weight of the labelled term.
    eps: keeps the inverse distance finite when phi(x) = c.

  Returns:
    `[batch]` losses; their mean is the Deep SAD mini-batch objective.

  References:
    Ruff et al., "Deep Semi-Supervised Anomaly Detection", ICLR 2020.
  """
  dist = squared_distance(embeddings, center)
  is_anomaly = jnp.asarray(semi_labels) == 1
  # jnp.where on both branches: the inverse is finite everywhere thanks to eps, so the
  # unselected branch cannot leak NaN gradients.
  return jnp.where(is_anomaly, eta / (dist + eps), dist)


def reconstruction_loss(x: ArrayLike, x_hat: ArrayLike) -> jax.Array:
  """Mean squared reconstruction error per row (mean over features), `[batch]`."""
  return jnp.mean(jnp.square(jnp.asarray(x) - jnp.asarray(x_hat)), axis=-1)


def pair_relation_targets(semi_labels_left: ArrayLike, semi_labels_right: ArrayLike, *,
                          target_aa: float = 8.0, target_au: float = 4.0,
                          target_uu: float = 0.0) -> jax.Array:
  r"""PReNet's ordinal pair targets from the semi-labels of the two sides.

  .. math::
    y_{ij} = \begin{cases} t_{aa} & x_i, x_j \in \mathcal A \\
                           t_{au} & \text{exactly one of } x_i, x_j \in \mathcal A \\
                           t_{uu} & x_i, x_j \in \mathcal U \end{cases}

  The mixed target does not depend on the side the anomaly is on, so ADBench's (a, u)
  and the official (u, a) orientation share it.

  Args:
    semi_labels_left: `[pairs]` 1 = labelled anomaly, 0 = unlabelled.
    semi_labels_right: `[pairs]`.
    target_aa, target_au, target_uu: the ordinal targets (8, 4, 0 in every reference).

  Returns:
    `[pairs]` float32 targets.
  """
  count = ((jnp.asarray(semi_labels_left) == 1).astype(jnp.int32)
           + (jnp.asarray(semi_labels_right) == 1).astype(jnp.int32))
  return jnp.where(count == 2, target_aa,
                   jnp.where(count == 1, target_au, target_uu)).astype(jnp.float32)


def pairwise_relation_loss(relation_scores: ArrayLike, semi_labels_left: ArrayLike,
                           semi_labels_right: ArrayLike, *, target_aa: float = 8.0,
                           target_au: float = 4.0, target_uu: float = 0.0) -> jax.Array:
  r"""Per-pair PReNet regression loss (absolute error to the ordinal target).

  .. math::
    \ell_{ij} = |y_{ij} - \phi(x_i, x_j)|

  with :math:`y_{ij}` from :func:`pair_relation_targets`. The references average it over
  the 512 pairs of a batch (baseline) or over the pairs that contain a labelled anomaly
  (AnoOnly); the caller reduces.

  Args:
    relation_scores: `[pairs]` phi(x_i, x_j).
    semi_labels_left: `[pairs]` semi-labels of x_i.
    semi_labels_right: `[pairs]` semi-labels of x_j.
    target_aa, target_au, target_uu: the ordinal targets.

  Returns:
    `[pairs]` losses.

  References:
    Pang, Shen, Jia, van den Hengel, "Deep Weakly-supervised Anomaly Detection",
    KDD 2023 (arXiv 1910.13601).
  """
  targets = pair_relation_targets(semi_labels_left, semi_labels_right,
                                  target_aa=target_aa, target_au=target_au,
                                  target_uu=target_uu)
  return jnp.abs(targets - jnp.asarray(relation_scores))
