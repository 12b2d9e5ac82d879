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
