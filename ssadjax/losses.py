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


DEVIATION_ANOMALY_TERMS = ("hinge", "abs", "linear")


def deviation(scores: ArrayLike, *, reference_mean: ArrayLike = 0.0,
              reference_std: ArrayLike = 1.0) -> jax.Array:
  r"""DevNet's standardised deviation :math:`(\phi(x) - \mu_R) / \sigma_R`, `[batch]`.

  `reference_mean` / `reference_std` are numbers (e.g. the sample mean and population
  std of 5000 N(0, 1) draws made once per model, as the reference); (0, 1) gives the
  raw score, i.e. AnoOnly's `dev := phi`.
  """
  return (jnp.asarray(scores) - reference_mean) / reference_std


def deviation_loss(scores: ArrayLike, semi_labels: ArrayLike, *, margin: float = 5.0,
                   reference_mean: ArrayLike = 0.0, reference_std: ArrayLike = 1.0,
                   anomaly_term: str = "hinge") -> jax.Array:
  r"""Per-example DevNet deviation loss.

  .. math::
    \mathrm{dev}_i = (\phi(x_i) - \mu_R)/\sigma_R, \qquad
    \ell_i = (1 - y_i)\,|\mathrm{dev}_i| + y_i\, t(\mathrm{dev}_i)

  with the anomaly term :math:`t` chosen by `anomaly_term`:
  'hinge' :math:`\max(0, a - \mathrm{dev})` (paper, official code, ADBench);
  'abs' :math:`|a - \mathrm{dev}|` (the AnoOnly copy's baseline, two-sided);
  'linear' :math:`a - \mathrm{dev}` (the AnoOnly copy's +AnoOnly loss, unbounded).

  Args:
    scores: `[batch]` raw scores phi(x).
    semi_labels: `[batch]` 1 = labelled anomaly, 0 = unlabelled.
    margin: confidence margin a (5 in every reference).
    reference_mean: mu_R, a scalar.
    reference_std: sigma_R, a positive scalar.
    anomaly_term: 'hinge' | 'abs' | 'linear'.

  Returns:
    `[batch]` losses; the references average them over the whole batch.

  References:
    Pang, Shen, van den Hengel, "Deep Anomaly Detection with Deviation Networks",
    KDD 2019.
  """
  if anomaly_term not in DEVIATION_ANOMALY_TERMS:
    raise ValueError(f"anomaly_term={anomaly_term!r}; expected one of "
                     f"{DEVIATION_ANOMALY_TERMS}")
  dev = deviation(scores, reference_mean=reference_mean, reference_std=reference_std)
  if anomaly_term == "hinge":
    anomaly = jnp.maximum(margin - dev, 0.0)
  elif anomaly_term == "abs":
    anomaly = jnp.abs(margin - dev)
  else:
    anomaly = margin - dev
  y = (jnp.asarray(semi_labels) == 1).astype(dev.dtype)
  return (1.0 - y) * jnp.abs(dev) + y * anomaly


FEAWAD_RECONSTRUCTION_TERMS = ("normalised_residual", "residual")


def safe_l2_norm(x: ArrayLike, *, eps: float = 1e-8) -> jax.Array:
  r"""Row-wise :math:`\max(\|x\|_2, \varepsilon)` with finite gradients everywhere.

  The square root is taken of :math:`\max(\sum x^2, \varepsilon^2)`, so an exact zero
  row gives the value eps and a zero gradient instead of NaN. `[batch, d] -> [batch]`.
  """
  x = jnp.asarray(x)
  return jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1), eps * eps))


def feawad_loss(scores: ArrayLike, residuals: ArrayLike, semi_labels: ArrayLike, *,
                margin: float = 5.0, reconstruction_term: str = "normalised_residual",
                eps: float = 1e-8) -> jax.Array:
  r"""Per-example FEAWAD objective.

  .. math::
    \ell_i = (1 - y_i)\big(|\phi_i| + e_i\big)
           + y_i\big(\max(0, a - \phi_i) + \max(0, a - e_i)\big)

  where :math:`e_i` is the reconstruction-error term, chosen by `reconstruction_term`:
  'normalised_residual' (the official code, ADBench and AnoOnly, methods.md pitfall 6):
  :math:`e_i = \| r_i / \|r_i\| \|_2`, which is identically 1 (a constant with zero
  gradient); 'residual' (the paper's intent): :math:`e_i = \|r_i\|_2`.
  :math:`\|r_i\|` is guarded as :func:`safe_l2_norm` (pitfall 9: the reference divides
  by it unguarded and gives NaN for an exact reconstruction).

  Args:
    scores: `[batch]` phi(x).
    residuals: `[batch, d]` r = x - x_hat.
    semi_labels: `[batch]` 1 = labelled anomaly, 0 = unlabelled.
    margin: a (5 in every reference).
    reconstruction_term: 'normalised_residual' | 'residual'.
    eps: floor of ||r||.

  Returns:
    `[batch]` losses.

  References:
    Zhou et al., "Feature Encoding with AutoEncoders for Weakly-supervised Anomaly
    Detection", TNNLS 2021.
  """
  if reconstruction_term not in FEAWAD_RECONSTRUCTION_TERMS:
    raise ValueError(f"reconstruction_term={reconstruction_term!r}; expected one of "
                     f"{FEAWAD_RECONSTRUCTION_TERMS}")
  scores = jnp.asarray(scores)
  residuals = jnp.asarray(residuals)
  norm = safe_l2_norm(residuals, eps=eps)
  if reconstruction_term == "normalised_residual":
    error = safe_l2_norm(residuals / norm[:, None], eps=eps)
  else:
    error = norm
  y = (jnp.asarray(semi_labels) == 1).astype(scores.dtype)
  unlabelled = jnp.abs(scores) + error
  anomaly = jnp.maximum(margin - scores, 0.0) + jnp.maximum(margin - error, 0.0)
  return (1.0 - y) * unlabelled + y * anomaly


def balanced_bce_terms(logits: ArrayLike, targets: ArrayLike, *,
                       balanced: bool = True) -> jax.Array:
  r"""Per-example terms of FUN-AD's (balanced) binary cross-entropy; their SUM is the loss.

  .. math::
    L = \frac{1}{|P|}\sum_{i\in P}\mathrm{bce}_i + \frac{1}{|N|}\sum_{i\in N}\mathrm{bce}_i,
    \qquad \mathrm{bce}_i = -t_i\log\sigma(z_i) - (1-t_i)\log(1-\sigma(z_i))

  with P / N the rows whose (pseudo-)label t is 1 / 0. An empty class contributes 0 (its
  count is clamped at 1), which also covers the reference's skip of the positive term when
  all distances are zero (methods.md pitfall 32). `balanced=False` gives the plain mean
  over the batch. The logit form is used (PyTorch's BCELoss clamps log at -100 instead,
  which only differs for saturated predictions).

  Args:
    logits: `[batch]` discriminator logits z.
    targets: `[batch]` pseudo-labels t in {0, 1}.
    balanced: class-balanced (FUN-AD `--balancing`) or plain mean.

  Returns:
    `[batch]` weighted terms; `jnp.sum` of them is the mini-batch loss.

  References:
    Im, Son, Hong, "Fully Unsupervised Learning for Anomaly Detection with Noisy
    Training Data", WACV 2025 (arXiv 2411.16110).
  """
  logits = jnp.asarray(logits)
  t = jnp.asarray(targets).astype(logits.dtype)
  bce = jax.nn.softplus(logits) - t * logits
  if not balanced:
    return bce / logits.shape[0]
  n_pos = jnp.maximum(jnp.sum(t), 1.0)
  n_neg = jnp.maximum(jnp.sum(1.0 - t), 1.0)
  return bce * (t / n_pos + (1.0 - t) / n_neg)


def mutual_smoothness_terms(probs: ArrayLike, partner: ArrayLike, is_pair: ArrayLike, *,
                            kind: str = "mae") -> jax.Array:
  r"""Per-example terms of FUN-AD's mutual smoothness loss; their SUM is the loss.

  For each mutual-nearest-neighbour pair (i, j), listed once (row i, `partner[i] = j`,
  `is_pair[i]`), with :math:`m_{ij} = (p_i + p_j)/2`:

  .. math::
    L_{ms} = \tfrac12\Big[\operatorname{mean}_{(i,j)} g(p_i, m_{ij})
             + \operatorname{mean}_{(i,j)} g(p_j, m_{ij})\Big]

  with g = |a - b| ('mae', the reference's `oto_loss=mae`; then
  :math:`L_{ms} = \tfrac12\operatorname{mean}|p_i - p_j|`) or g = (a - b)^2 ('mse',
  :math:`\tfrac14\operatorname{mean}(p_i - p_j)^2`). Gradients reach both p_i and p_j.
  No pair gives 0.

  Args:
    probs: `[batch]` clean-input predictions p = sigmoid(logit).
    partner: `[batch]` int index of each row's nearest neighbour.
    is_pair: `[batch]` bool, True on the first row of each mutual pair.
    kind: 'mae' | 'mse'.

  Returns:
    `[batch]` terms (non-zero on pair rows only).

  References:
    Im, Son, Hong, WACV 2025 (arXiv 2411.16110).
  """
  p = jnp.asarray(probs)
  q = p[jnp.asarray(partner)]
  m = 0.5 * (p + q)
  if kind == "mae":
    g = jnp.abs(p - m) + jnp.abs(q - m)
  elif kind == "mse":
    g = jnp.square(p - m) + jnp.square(q - m)
  else:
    raise ValueError(f"mutual smoothness kind={kind!r}; expected 'mae' or 'mse'")
  pair = jnp.asarray(is_pair).astype(p.dtype)
  return 0.5 * pair * g / jnp.maximum(jnp.sum(pair), 1.0)
