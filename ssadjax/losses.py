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


def reconstruction_loss(x: ArrayLike, x_hat: ArrayLike, num_features=None) -> jax.Array:
  """Mean squared reconstruction error per row (mean over features), `[batch]`.
  `num_features`: the real features of zero-padded rows (shape buckets), whose padded
  columns reconstruct exactly and must not count in the mean."""
  squared = jnp.square(jnp.asarray(x) - jnp.asarray(x_hat))
  if num_features is None:
    return jnp.mean(squared, axis=-1)
  return jnp.sum(squared, axis=-1) / jnp.asarray(num_features, squared.dtype)


# --------------------------------------------------------------------------- DevNet

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


# --------------------------------------------------------------------------- FEAWAD

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
  'normalised_residual' (the official code, ADBench and AnoOnly):
  :math:`e_i = \| r_i / \|r_i\| \|_2`, which is identically 1 (a constant with zero
  gradient); 'residual' (the paper's intent): :math:`e_i = \|r_i\|_2`.
  :math:`\|r_i\|` is guarded as :func:`safe_l2_norm` (the reference divides
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


# --------------------------------------------------------------------------- PReNet


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


# ------------------------------------------------------------------ FUN-AD (Im et al., WACV 2025)

def balanced_bce_terms(logits: ArrayLike, targets: ArrayLike, *,
                       balanced: bool = True) -> jax.Array:
  r"""Per-example terms of FUN-AD's (balanced) binary cross-entropy; their SUM is the loss.

  .. math::
    L = \frac{1}{|P|}\sum_{i\in P}\mathrm{bce}_i + \frac{1}{|N|}\sum_{i\in N}\mathrm{bce}_i,
    \qquad \mathrm{bce}_i = -t_i\log\sigma(z_i) - (1-t_i)\log(1-\sigma(z_i))

  with P / N the rows whose (pseudo-)label t is 1 / 0. An empty class contributes 0 (its
  count is clamped at 1), which also covers the reference's skip of the positive term when
  all distances are zero. `balanced=False` gives the plain mean
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


# --------------------------------------------------------------------------- BGAD


def flow_log_likelihood(z: ArrayLike, log_det: ArrayLike, *,
                        per_dimension: bool = True) -> jax.Array:
  r"""Normalising-flow log-likelihood under a standard normal base density.

  .. math::
    \log p(e) = -\tfrac{C}{2}\ln 2\pi - \tfrac12\|z\|^2 + \log|\det J|,
    \qquad \ell = \log p(e) / C \text{ (per dimension)}

  Args:
    z: `[batch, C]` flow outputs.
    log_det: `[batch]` log-determinants of the flow's Jacobian at each input.
    per_dimension: divide by C (BGAD's losses and score use the per-dimension value).

  Returns:
    `[batch]` log-likelihoods.
  """
  z = jnp.asarray(z)
  dim = z.shape[-1]
  logp = -0.5 * dim * jnp.log(2.0 * jnp.pi) - 0.5 * jnp.sum(jnp.square(z), -1) + log_det
  return logp / dim if per_dimension else logp


def safe_masked_mean(values: ArrayLike, mask: ArrayLike) -> jax.Array:
  """Mean of `values` over `mask`; 0 (value and gradient) when the mask is empty, where
  PyTorch's mean of an empty tensor is NaN (as in BGAD's reference code)."""
  values, mask = jnp.asarray(values), jnp.asarray(mask, bool)
  total = jnp.sum(jnp.where(mask, values, 0.0))
  return total / jnp.maximum(jnp.sum(mask), 1).astype(values.dtype)


def bgad_boundaries(loglik: ArrayLike, normal_mask: ArrayLike, *, beta: float = 0.05,
                    tau: float = 0.1, normalizer: float = 10.0) -> tuple[jax.Array, jax.Array]:
  r"""BGAD's explicit boundaries from the normal log-likelihoods (detached).

  .. math::
    b_n = \ell^{\uparrow}_{(\lfloor \beta N_n \rfloor)} / \kappa, \qquad b_a = b_n - \tau

  where :math:`\ell^{\uparrow}` are the per-dimension log-likelihoods of the `N_n`
  rows in `normal_mask` sorted ascending (0-based index), :math:`\kappa` the normaliser.

  Args:
    loglik: `[batch]` per-dimension log-likelihoods.
    normal_mask: `[batch]` bool, the rows the normal distribution is estimated from
      (unlabelled rows in the semi-supervised setting). With no such row, all rows are
      used.
    beta: quantile (`pos_beta`; 0.05 in the reference config, 0.01 in its README).
    tau: margin between the normal and the abnormal boundary (`margin_tau`).
    normalizer: kappa (10).

  Returns:
    `(b_n, b_a)` scalars without gradient.

  References:
    Yao et al., "Explicit Boundary Guided Semi-Push-Pull Contrastive Learning for
    Supervised Anomaly Detection", CVPR 2023.
  """
  loglik = jax.lax.stop_gradient(jnp.asarray(loglik))
  normal_mask = jnp.asarray(normal_mask, bool)
  normal_mask = jnp.where(jnp.any(normal_mask), normal_mask, True)
  count = jnp.sum(normal_mask)
  ordered = jnp.sort(jnp.where(normal_mask, loglik, jnp.inf))
  index = jnp.clip(jnp.floor(beta * count).astype(jnp.int32), 0, count - 1)
  b_n = ordered[index] / normalizer
  return b_n, b_n - tau


def bgad_focal_weights(loglik: ArrayLike, semi_labels: ArrayLike, *,
                       normal_alpha: float = 11.7, normal_gamma: float = 0.5,
                       normal_threshold: float = -0.2, anomaly_alpha: float = 0.53,
                       anomaly_gamma: float = 2.0, anomaly_threshold: float = -1.0,
                       normalizer: float = 10.0, eps: float = 1e-12) -> jax.Array:
  r"""BGAD's asymmetric focal weights (`--focal_weighting`), detached.

  With :math:`u = \ell/\kappa`: normal rows get 1 if :math:`u > -0.2`, else
  :math:`11.7\,(1-e^{u})^{0.5}\,|u|` (more weight on low-likelihood normals);
  anomalies get 1 if :math:`u \le -1`, else :math:`0.53\,(1+e^{u})^{2}/|u|` (more
  weight on high-likelihood anomalies; |u| is floored at `eps`).

  Args:
    loglik: `[batch]` per-dimension log-likelihoods.
    semi_labels: `[batch]` 1 = labelled anomaly, 0 = unlabelled (normal).

  Returns:
    `[batch]` non-negative weights without gradient.
  """
  u = jax.lax.stop_gradient(jnp.asarray(loglik)) / normalizer
  p = jnp.exp(jnp.minimum(u, 0.0))  # exp(u) on the branches where it is used
  normal_w = jnp.where(
      u > normal_threshold, 1.0,
      normal_alpha * jnp.power(jnp.maximum(1.0 - p, 0.0), normal_gamma) * jnp.abs(u))
  anomaly_w = jnp.where(
      u <= anomaly_threshold, 1.0,
      anomaly_alpha * jnp.power(1.0 + jnp.exp(jnp.minimum(u, 50.0)), anomaly_gamma)
      / jnp.maximum(jnp.abs(u), eps))
  return jnp.where(jnp.asarray(semi_labels) == 1, anomaly_w, normal_w)


def bgad_push_pull(loglik: ArrayLike, semi_labels: ArrayLike, b_n: ArrayLike,
                   b_a: ArrayLike, *, normalizer: float = 10.0
                   ) -> tuple[jax.Array, jax.Array]:
  r"""Per-example semi-push-pull hinge terms and the rows that enter the means.

  With :math:`\tilde\ell = \ell/\kappa`: a normal row i contributes
  :math:`b_n - \tilde\ell_i` if :math:`\tilde\ell_i \le b_n` (pulled up to the normal
  boundary), an anomaly j contributes :math:`\tilde\ell_j - b_a` if
  :math:`\tilde\ell_j \ge b_a` (pushed below the abnormal boundary); everything else
  contributes nothing.

  Args:
    loglik: `[batch]` per-dimension log-likelihoods.
    semi_labels: `[batch]` 1 = labelled anomaly, 0 = unlabelled (normal).
    b_n, b_a: scalar boundaries from :func:`bgad_boundaries`.
    normalizer: kappa.

  Returns:
    `(terms [batch] >= 0, active [batch] bool)`; the reference averages the normal and
    the anomaly terms separately over their active rows (:func:`safe_masked_mean`).
  """
  scaled = jnp.asarray(loglik) / normalizer
  is_anomaly = jnp.asarray(semi_labels) == 1
  active = jnp.where(is_anomaly, scaled >= b_a, scaled <= b_n)
  terms = jnp.where(is_anomaly, scaled - b_a, b_n - scaled)
  return jnp.where(active, terms, 0.0), active


def bgad_loss_contributions(loglik: ArrayLike, semi_labels: ArrayLike, *,
                            beta: float = 0.05, tau: float = 0.1,
                            normalizer: float = 10.0, push_pull_weight: float = 1.0,
                            focal_weighting: bool = False) -> jax.Array:
  r"""Per-example contributions to BGAD's mini-batch loss; their **sum** is the loss.

  .. math::
    L = \operatorname*{mean}_{i \in N} w_i\,[-\log\sigma(\ell_i)]
      + \lambda\,\mathbb 1[A \ne \emptyset]\Big(
        \operatorname*{mean}_{i \in N,\ \tilde\ell_i \le b_n} w_i (b_n - \tilde\ell_i)
      + \operatorname*{mean}_{j \in A,\ \tilde\ell_j \ge b_a} w_j (\tilde\ell_j - b_a)\Big)

  N = unlabelled rows (normal), A = labelled anomalies, boundaries from
  :func:`bgad_boundaries` over N, w = :func:`bgad_focal_weights` or 1. A batch without
  anomalies gets the maximum-likelihood term only (the reference's normal-only chunks).
  Empty means are 0 with zero gradients (the reference's are NaN). Contribution of row i is its
  term divided by the size of the set it is averaged over, so that
  `sum(contributions)` = L, and `sum` over the anomalies = :math:`\lambda L_a`.

  Args:
    loglik: `[batch]` per-dimension log-likelihoods.
    semi_labels: `[batch]` 1 = labelled anomaly, 0 = unlabelled.
    beta, tau, normalizer: see :func:`bgad_boundaries`.
    push_pull_weight: lambda (1).
    focal_weighting: the reference's `--focal_weighting`.

  Returns:
    `[batch]` contributions.
  """
  loglik = jnp.asarray(loglik)
  is_anomaly = jnp.asarray(semi_labels) == 1
  is_normal = ~is_anomaly
  has_anomaly = jnp.any(is_anomaly)
  weights = (bgad_focal_weights(loglik, semi_labels, normalizer=normalizer)
             if focal_weighting else jnp.ones_like(loglik))
  count = lambda m: jnp.maximum(jnp.sum(m), 1).astype(loglik.dtype)
  ml = jnp.where(is_normal, weights * jax.nn.softplus(-loglik), 0.0) / count(is_normal)
  b_n, b_a = bgad_boundaries(loglik, is_normal, beta=beta, tau=tau, normalizer=normalizer)
  terms, active = bgad_push_pull(loglik, semi_labels, b_n, b_a, normalizer=normalizer)
  normal_active, anomaly_active = active & is_normal, active & is_anomaly
  spp = jnp.where(normal_active, weights * terms / count(normal_active), 0.0)
  spp = spp + jnp.where(anomaly_active, weights * terms / count(anomaly_active), 0.0)
  return ml + push_pull_weight * jnp.where(has_anomaly, spp, 0.0)


# ----------------------------------------------------------------------------- CLAD (DEC)


def student_t_assignment(embeddings: ArrayLike, centers: ArrayLike, *,
                         alpha: float = 1.0) -> jax.Array:
  r"""DEC's soft cluster assignments (Xie et al., ICML 2016; CLAD's stage 2).

  .. math::
    q_{ij} = \frac{(1 + \|z_i - \mu_j\|^2 / \alpha)^{-(\alpha+1)/2}}
                  {\sum_{j'} (1 + \|z_i - \mu_{j'}\|^2 / \alpha)^{-(\alpha+1)/2}}

  computed as a softmax of the log-kernel (stable for far-away points).

  Args:
    embeddings: `[batch, dim]` z.
    centers: `[K, dim]` cluster centres.
    alpha: Student-t degrees of freedom (1 in DEC and CLAD).

  Returns:
    `[batch, K]` rows summing to 1.
  """
  z = jnp.asarray(embeddings)
  mu = jnp.asarray(centers)
  d2 = jnp.sum(jnp.square(z[:, None, :] - mu[None, :, :]), axis=-1)
  return jax.nn.softmax(-0.5 * (alpha + 1.0) * jnp.log1p(d2 / alpha), axis=-1)


def dec_target_distribution(q: ArrayLike) -> jax.Array:
  r"""DEC's auxiliary target: square and renormalise by cluster frequency.

  .. math:: p_{ij} = \frac{q_{ij}^2 / f_j}{\sum_{j'} q_{ij'}^2 / f_{j'}},\quad f_j = \sum_i q_{ij}

  over the rows given (CLAD: per mini-batch). The caller treats P as a constant
  (`jax.lax.stop_gradient`), as DEC does.

  Args:
    q: `[batch, K]` soft assignments (:func:`student_t_assignment`).

  Returns:
    `[batch, K]` rows summing to 1.
  """
  q = jnp.asarray(q)
  weight = jnp.square(q) / jnp.sum(q, axis=0, keepdims=True)
  return weight / jnp.sum(weight, axis=1, keepdims=True)


def dec_kl_terms(q: ArrayLike, p: ArrayLike) -> jax.Array:
  r"""Per-example :math:`\mathrm{KL}(P_i \| Q_i) = \sum_j p_{ij} \log(p_{ij} / q_{ij})`.

  CLAD's loss `KLDivLoss(reduction='sum')(log q, p) / batch` is the mean of these terms.
  Terms with :math:`p_{ij} = 0` contribute 0 (with a zero gradient).

  Args:
    q: `[batch, K]` soft assignments (differentiated).
    p: `[batch, K]` targets (:func:`dec_target_distribution`, detached by the caller).

  Returns:
    `[batch]` KL divergences, >= 0.
  """
  q = jnp.asarray(q)
  p = jnp.asarray(p)
  safe_p = jnp.where(p > 0, p, 1.0)
  log_q = jnp.log(jnp.maximum(q, jnp.finfo(q.dtype).tiny))
  return jnp.sum(jnp.where(p > 0, p * (jnp.log(safe_p) - log_q), 0.0), axis=-1)


def max_softmax(logits: ArrayLike, *, temperature: float = 1.0) -> jax.Array:
  r"""Confidence :math:`\max_k \mathrm{softmax}(l / T)_k` (ODIN's score; CLAD stage 4).

  Computed as :math:`\exp(\max_k l_k/T - \mathrm{logsumexp}(l/T))`.

  Args:
    logits: `[batch, K]`.
    temperature: T (CLAD: 1000).

  Returns:
    `[batch]` in [1/K, 1]; higher = more confidently in-distribution (normal).
  """
  scaled = jnp.asarray(logits) / temperature
  return jnp.exp(jnp.max(scaled, axis=-1) - jax.nn.logsumexp(scaled, axis=-1))
