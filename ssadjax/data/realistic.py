"""ADBench's realistic synthetic anomalies (Han et al., NeurIPS 2022), `realistic_synthetic_mode`.

The real rows are replaced by synthetic ones: a generative model is fitted to the NORMAL
rows only, then n_normal synthetic normals and n_anomaly synthetic anomalies are drawn
(the counts of the input), X = [normals; anomalies], y = [0...; 1...].

* local / cluster / global: a full-covariance Gaussian mixture, its number of components
  (1..max_components, ADBench 9) chosen by the lowest BIC, refitted with that count.
  - local: every covariance x alpha;  cluster: every mean x alpha.
  - global: per feature j, uniform on [lo_j, hi_j] over the synthetic normals:
    `global_bounds='adbench'` (default, ADBench's formula): lo_j = min_j (1 + p),
    hi_j = max_j (1 + p). This is NOT a symmetric widening: a positive minimum moves up,
    a negative maximum moves down, and a feature with min = max = 0 stays constant.
    `global_bounds='symmetric'`: lo_j = min_j - p r_j, hi_j = max_j + p r_j, r_j = max_j - min_j.
  - cluster multiplies the raw means, so how far the anomaly cluster sits from the normals
    depends on where the data lies (reproduced as is: data centred at 0 give anomalies on
    top of the normals).
* dependency: if d > max_features (ADBench 50) a random subset of 50 columns is kept (the
  DIMENSION CHANGES); normals from a C-vine copula (`copulas.VineCopula('center')`), anomalies
  feature by feature from 1-D Gaussian KDEs (`copulas.GaussianKDE`), which keeps the marginals
  and destroys the dependence. ADBench caches this result on disk because fitting is slow; we
  do not (it is drawn again per seed).

Libraries (optional extras, imported only when a mode needs them):
  * scikit-learn's `GaussianMixture` (`pip install 'ssadjax[synthetic]'`): a well-tested EM
    with k-means initialisation and the BIC, the same estimator ADBench uses;
  * `copulas` (`pip install 'ssadjax[copulas]'`): the vine-copula library ADBench uses.
Their seeds are drawn from the `np.random.Generator` passed in, so a seed reproduces a run.
"""

from __future__ import annotations

import numpy as np

from ssadjax.data.adbench import DatasetError

MODES = ("local", "global", "cluster", "dependency")
GLOBAL_BOUNDS = ("adbench", "symmetric")
ALPHA = 5.0
PERCENTAGE = 0.1
MAX_COMPONENTS = 9
DEPENDENCY_MAX_FEATURES = 50


def check_mode(mode: str | None) -> str | None:
  """'' or None -> None; otherwise one of MODES or a DatasetError."""
  if mode in (None, "", "none"):
    return None
  if mode not in MODES:
    raise DatasetError(f"realistic_synthetic_mode={mode!r}; expected one of {MODES} or ''.")
  return mode


def _seed(rng: np.random.Generator) -> int:
  return int(rng.integers(2**31 - 1))


def _gaussian_mixture_cls():
  try:
    from sklearn.mixture import GaussianMixture  # optional extra: ssadjax[synthetic]
  except ImportError as e:
    raise DatasetError(
        "realistic_synthetic_mode local/global/cluster fits a Gaussian mixture with "
        "scikit-learn, which is not installed: pip install 'ssadjax[synthetic]' "
        "(or pip install scikit-learn).") from e
  return GaussianMixture


def fit_gaussian_mixture(x: np.ndarray, rng: np.random.Generator, *,
                         max_components: int = MAX_COMPONENTS):
  """Full-covariance mixtures with 1..max_components components, the lowest BIC, refitted
  (ADBench refits with the same seed, which reproduces the selected fit exactly).

  Returns the fitted sklearn `GaussianMixture` and the list of BIC values.
  """
  gm_cls = _gaussian_mixture_cls()
  if max_components < 1:
    raise DatasetError(f"max_components must be >= 1, got {max_components}.")
  from threadpoolctl import threadpool_limits  # a dependency of scikit-learn
  x = np.asarray(x, np.float64)
  seed = _seed(rng)
  # A mixture cannot have more components than rows.
  counts = list(range(1, min(max_components, x.shape[0]) + 1))
  # One BLAS/OpenMP thread: the matrices are tiny, and on a busy machine the spinning
  # worker threads made the 9 fits ~20x slower (12 s instead of 0.6 s for 600 x 3).
  with threadpool_limits(limits=1):
    bics = [gm_cls(n_components=k, random_state=seed).fit(x).bic(x) for k in counts]
    best = counts[int(np.argmin(bics))]
    gm = gm_cls(n_components=best, random_state=seed).fit(x)
  return gm, bics


def _sample_mixture(gm, n: int, rng: np.random.Generator, *, mean_scale: float = 1.0,
                    cov_scale: float = 1.0) -> np.ndarray:
  """n rows from the fitted mixture with means x mean_scale and covariances x cov_scale.

  Sampled here (not with `gm.sample`) so that every draw comes from `rng` and the fitted
  object is never mutated.
  """
  if n == 0:
    return np.zeros((0, gm.means_.shape[1]))
  comp = rng.choice(gm.weights_.shape[0], size=n, p=gm.weights_ / gm.weights_.sum())
  means = gm.means_ * mean_scale
  chol = np.linalg.cholesky(gm.covariances_ * cov_scale)  # full covariances [K, d, d]
  z = rng.standard_normal((n, means.shape[1]))
  return means[comp] + np.einsum("nij,nj->ni", chol[comp], z)


def global_bounds(normals: np.ndarray, percentage: float, bounds: str
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Per-feature (lo, hi) of the uniform global anomalies (see the module docstring)."""
  lo, hi = normals.min(axis=0), normals.max(axis=0)
  if bounds == "adbench":
    return lo * (1 + percentage), hi * (1 + percentage)
  if bounds == "symmetric":
    span = hi - lo
    return lo - percentage * span, hi + percentage * span
  raise DatasetError(f"global_bounds={bounds!r}; expected one of {GLOBAL_BOUNDS}.")


def _copulas():
  try:
    import pandas as pd  # a dependency of copulas
    from copulas.multivariate import VineCopula
    from copulas.univariate import GaussianKDE
  except ImportError as e:
    raise DatasetError(
        "realistic_synthetic_mode='dependency' uses the vine copulas of the `copulas` "
        "library, which is not installed: pip install 'ssadjax[copulas]' "
        "(or pip install copulas).") from e
  return pd, VineCopula, GaussianKDE


def _dependency(normals: np.ndarray, n_normal: int, n_anomaly: int, rng: np.random.Generator,
                max_features: int) -> np.ndarray:
  pd, vine_cls, kde_cls = _copulas()
  if normals.shape[1] > max_features:
    cols = rng.choice(normals.shape[1], size=max_features, replace=False)
    normals = normals[:, cols]
  copula = vine_cls("center", random_state=_seed(rng))
  copula.fit(pd.DataFrame(normals))
  synth_normal = np.asarray(copula.sample(n_normal), dtype=np.float64)
  synth_anomaly = np.empty((n_anomaly, normals.shape[1]))
  for j in range(normals.shape[1]):
    kde = kde_cls(random_state=_seed(rng))
    kde.fit(normals[:, j])
    synth_anomaly[:, j] = np.asarray(kde.sample(n_anomaly), dtype=np.float64).reshape(-1)
  return np.concatenate([synth_normal, synth_anomaly])


def realistic_synthetic(x: np.ndarray, y: np.ndarray, mode: str, rng: np.random.Generator, *,
                        alpha: float = ALPHA, percentage: float = PERCENTAGE,
                        global_bounds_mode: str = "adbench",
                        max_components: int = MAX_COMPONENTS,
                        dependency_max_features: int = DEPENDENCY_MAX_FEATURES
                        ) -> tuple[np.ndarray, np.ndarray]:
  """Replaces (x, y) by synthetic normals and anomalies of kind `mode` (same counts).

  Returns X float64 [n, d'] (d' = d except for 'dependency' with d > 50) and y int32 [n]
  ordered [normals; anomalies]; the protocol's split shuffles them.
  """
  mode = check_mode(mode)
  if mode is None:
    raise DatasetError("realistic_synthetic needs a mode.")
  x, y = np.asarray(x), np.asarray(y)
  if x.ndim != 2:
    raise DatasetError(f"realistic synthetic anomalies need tabular x [n, d], got {x.shape} "
                       "(ADBench applies them to tabular data only).")
  if global_bounds_mode not in GLOBAL_BOUNDS:
    raise DatasetError(f"global_bounds={global_bounds_mode!r}; expected one of {GLOBAL_BOUNDS}.")
  normals = x[y == 0].astype(np.float64)
  n_normal, n_anomaly = normals.shape[0], int(np.count_nonzero(y == 1))
  if n_normal < 2:
    raise DatasetError(f"realistic_synthetic_mode={mode!r} needs >= 2 normal rows to fit on.")

  if mode == "dependency":
    x_new = _dependency(normals, n_normal, n_anomaly, rng, dependency_max_features)
  else:
    gm, _ = fit_gaussian_mixture(normals, rng, max_components=max_components)
    synth_normal = _sample_mixture(gm, n_normal, rng)
    if mode == "local":
      synth_anomaly = _sample_mixture(gm, n_anomaly, rng, cov_scale=alpha)
    elif mode == "cluster":
      synth_anomaly = _sample_mixture(gm, n_anomaly, rng, mean_scale=alpha)
    else:  # global
      lo, hi = global_bounds(synth_normal, percentage, global_bounds_mode)
      synth_anomaly = rng.uniform(lo, hi, size=(n_anomaly, synth_normal.shape[1]))
    x_new = np.concatenate([synth_normal, synth_anomaly])
  y_new = np.r_[np.zeros(n_normal, np.int32), np.ones(n_anomaly, np.int32)]
  if not np.all(np.isfinite(x_new)):
    raise DatasetError(f"realistic_synthetic_mode={mode!r} produced non-finite values.")
  return x_new, y_new
