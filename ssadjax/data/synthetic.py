"""The embedded default dataset `synthetic`: a Gaussian mixture with ADBench-style anomalies.

No file and no download: everything is generated from `seed` with `np.random.default_rng`.
Generative process (d = dim, K = n_components, alpha = 5), in the order the stream is used:

1. Mixture parameters (`synthetic_mixture`):
   * offset o = 2 * s, s_j uniform in {-1, +1} (so ||o|| = 2 sqrt(d));
   * weights w ~ Dirichlet(5, ..., 5);
   * means mu_k = o + z_k, z_k ~ N(0, I_d);
   * covariances Sigma_k = Q_k diag(lam_k) Q_k^T, Q_k a Haar-random orthogonal matrix
     (QR of a standard normal matrix, signs fixed), lam_k,j ~ Uniform(0.05, 0.3): random SPD,
     components well apart (mean gaps ~ sqrt(2d)) relative to their spread (std <= 0.55).
2. Normals: n_normal rows; component k ~ Categorical(w), x ~ N(mu_k, Sigma_k).
3. Local anomalies (ADBench 'local'): same mixture, every covariance scaled by alpha:
   x ~ N(mu_k, alpha Sigma_k).
4. Cluster anomalies (ADBench 'cluster'): every mean scaled by alpha, covariances kept:
   x ~ N(alpha mu_k, Sigma_k). ADBench multiplies the raw means, which only moves a cluster
   away if the data is not centred; the offset o plays that role here, so the cluster sits
   about (alpha - 1) ||mu_k|| ~ 4 ||o|| away from the normals instead of on top of them.
5. Global anomalies: per feature j, uniform on [min_j - 0.1 r_j, max_j + 0.1 r_j] with
   min_j, max_j, r_j = max_j - min_j over the generated normals (a symmetric 10% widening on
   each side; ADBench's [min (1 + p), max (1 + p)] is not symmetric and is not copied).
6. Rows of all four kinds are concatenated and shuffled with one permutation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SYNTHETIC_NAME = "synthetic"
ALPHA = 5.0  # ADBench's scaling factor for local/cluster anomalies
GLOBAL_WIDEN = 0.1  # fraction of the per-feature range added on each side for global anomalies


@dataclasses.dataclass(frozen=True)
class SyntheticMixture:
  """Parameters of the normal-data mixture: weights [K], means [K, d], covariances [K, d, d]."""
  weights: np.ndarray
  means: np.ndarray
  covariances: np.ndarray
  offset: np.ndarray


def _draw_mixture(rng: np.random.Generator, dim: int, n_components: int) -> SyntheticMixture:
  offset = 2.0 * rng.choice(np.array([-1.0, 1.0]), size=dim)
  weights = rng.dirichlet(np.full(n_components, 5.0))
  means = offset + rng.standard_normal((n_components, dim))
  covs = np.empty((n_components, dim, dim))
  for k in range(n_components):
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))  # sign fix makes Q Haar-distributed
    lam = rng.uniform(0.05, 0.3, size=dim)
    cov = (q * lam) @ q.T
    covs[k] = (cov + cov.T) / 2  # exact symmetry for the Cholesky factor
  return SyntheticMixture(weights=weights, means=means, covariances=covs, offset=offset)


def synthetic_mixture(*, seed: int = 0, dim: int = 12, n_components: int = 3) -> SyntheticMixture:
  """The mixture `make_synthetic(seed=seed, ...)` uses (drawn first from the same stream)."""
  return _draw_mixture(np.random.default_rng(seed), dim, n_components)


def _sample(rng, n, weights, means, covariances) -> np.ndarray:
  comp = rng.choice(len(weights), size=n, p=weights)
  chol = np.linalg.cholesky(covariances)  # [K, d, d]
  z = rng.standard_normal((n, means.shape[1]))
  return means[comp] + np.einsum("nij,nj->ni", chol[comp], z)


def make_synthetic(*, seed: int = 0, n_normal: int = 2700, n_local: int = 100,
                   n_global: int = 100, n_cluster: int = 100, dim: int = 12,
                   n_components: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Generates the default dataset (see the module docstring for the exact process).

  Returns:
    X float32 [n, d], y int32 [n] (1 = anomaly), kinds str [n] in
    {'normal', 'local', 'global', 'cluster'}; rows shuffled.
  """
  if n_normal < 2 or min(n_local, n_global, n_cluster) < 0 or dim < 1 or n_components < 1:
    raise ValueError("make_synthetic needs n_normal >= 2, non-negative anomaly counts, "
                     "dim >= 1 and n_components >= 1.")
  rng = np.random.default_rng(seed)
  mix = _draw_mixture(rng, dim, n_components)
  normal = _sample(rng, n_normal, mix.weights, mix.means, mix.covariances)
  local = _sample(rng, n_local, mix.weights, mix.means, ALPHA * mix.covariances)
  cluster = _sample(rng, n_cluster, mix.weights, ALPHA * mix.means, mix.covariances)
  lo, hi = normal.min(axis=0), normal.max(axis=0)
  pad = GLOBAL_WIDEN * (hi - lo)
  global_ = rng.uniform(lo - pad, hi + pad, size=(n_global, dim))

  x = np.concatenate([normal, local, global_, cluster])
  kinds = np.repeat(np.array(["normal", "local", "global", "cluster"]),
                    [n_normal, n_local, n_global, n_cluster])
  perm = rng.permutation(x.shape[0])
  x, kinds = x[perm], kinds[perm]
  return x.astype(np.float32), (kinds != "normal").astype(np.int32), kinds
