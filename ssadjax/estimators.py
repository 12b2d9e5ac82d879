"""PyOD-style estimators over the functional core: `fit(X, y)`, `decision_function(X)`.

    from ssadjax import DeepSAD
    detector = DeepSAD(anomaly_only=True, verbose=1).fit(X_train, y_train)  # y: 1 = labelled anomaly
    scores = detector.decision_function(X_test)                              # higher = more anomalous

Each estimator builds the same config, the same `Method` and calls the same
`engine.fit` / `engine.score` as `python -m experiments.main`; nothing here trains.

The public surface is PyOD's `BaseDetector` (Zhao et al., JMLR 2019): after `fit`,
`decision_scores_`, `threshold_` (the training-score quantile at 1 - contamination) and
`labels_`; `decision_function`, `predict(X, return_confidence=False)`,
`predict_proba(X, method='linear'|'unify', return_confidence=False)`,
`predict_confidence(X)` and `fit_predict(X, y=None)`. Parameters follow scikit-learn's
conventions (`get_params`, `set_params`, `clone`, use inside a `Pipeline` after a scaler)
without inheriting from scikit-learn, so that it stays optional and is never imported by
`import ssadjax`; the inputs are not rescaled here.

Every fit uses JAX's persistent compilation cache (ssadjax/host/compilation_cache.py;
`SSADJAX_COMPILATION_CACHE=off` switches it off) unless JAX already has one configured.
"""

import contextlib
import inspect
import json
import logging
import math
import pathlib
import sys
import time
import warnings

import jax
import ml_collections
import numpy as np

from ssadjax import hparams, methods
from ssadjax.host import compilation_cache, engine, files, grouping
from ssadjax.program import parallel
from ssadjax.data.adbench import DatasetError, validate_x

log = logging.getLogger(__name__)

PROBA_METHODS = ("linear", "unify")


class _NotFittedError(ValueError, AttributeError):
  """Raised before `fit` when scikit-learn is not installed (its NotFittedError derives
  from the same two classes, so `except ValueError` catches both)."""


def _not_fitted_error_class():
  try:  # scikit-learn's own class when it is installed, as its tools expect
    from sklearn.exceptions import NotFittedError
  except ImportError:
    return _NotFittedError
  return NotFittedError


def default_config() -> ml_collections.ConfigDict:
  """The experiment defaults (ssadjax/config.py), unlocked copy."""
  from ssadjax import config as config_lib
  return config_lib.get_config()


def _is_sparse(x) -> bool:
  """scipy.sparse matrices and arrays, recognised without importing scipy.sparse."""
  return (type(x).__module__ or "").startswith("scipy.sparse") or hasattr(x, "tocsr")


def _validate_x(x, where: str, *, num_features: int | None = None, min_rows: int = 1,
                owner: str = "the detector") -> np.ndarray:
  """The data layer's X rules, the fitted width, and one clear line for what scikit-learn
  users pass by habit: sparse matrices, 1-D arrays, object arrays of numbers (converted),
  complex values, zero rows or features, a single row to fit on."""
  if _is_sparse(x):
    raise TypeError(f"{where}: X is a sparse matrix ({type(x).__name__}); sparse input is not "
                    "supported, pass a dense array (X.toarray()).")
  x = np.asarray(x)
  if x.ndim == 1:
    raise DatasetError(f"{where}: X must be 2-D (rows x features), got a 1-D array of shape "
                       f"{x.shape}. Reshape your data: X.reshape(-1, 1) for one feature, "
                       "X.reshape(1, -1) for one row.")
  if np.iscomplexobj(x):
    raise DatasetError(f"{where}: Complex data not supported (X has dtype {x.dtype}); pass "
                       "real features, e.g. np.abs(X) or np.c_[X.real, X.imag].")
  if x.dtype == object:
    try:
      x = x.astype(np.float64)
    except TypeError as e:  # keeps numpy's "argument must be a string or a number" text
      raise TypeError(f"{where}: X must hold numbers only: {e}.") from None
    except ValueError as e:
      raise DatasetError(f"{where}: X must be numeric: {e}.") from None
  if x.ndim == 2 and x.shape[1] == 0:
    raise DatasetError(f"{where}: X has 0 feature(s) (shape={x.shape}) while a minimum of 1 "
                       "is required.")
  if x.ndim == 2 and x.shape[0] == 0:
    raise DatasetError(f"{where}: X is empty (shape={x.shape}); at least {min_rows} row(s) "
                       "are needed.")
  if x.ndim == 2 and x.shape[0] < min_rows:
    raise DatasetError(f"{where}: X has {x.shape[0]} sample(s); at least "
                       f"{min_rows} rows are needed to train.")
  x32 = validate_x(x, where=where, min_rows=min_rows)
  if num_features is not None and x32.shape[1] != num_features:
    raise DatasetError(f"{where}: X has {x32.shape[1]} features, but {owner} is expecting "
                       f"{num_features} features as input (it was fitted on {num_features}); "
                       "pass the columns used in fit.")
  return x32


def _validate_semi_labels(y, n: int) -> np.ndarray:
  if y is None:
    return np.zeros(n, np.int32)
  y = np.asarray(y)
  if y.ndim != 1 or y.shape[0] != n:
    raise DatasetError(f"fit: y must be 1-D with one label per row of X ({n}), got shape "
                       f"{y.shape}.")
  values = np.unique(y)
  if not np.all(np.isin(values, [0, 1])):
    raise DatasetError(f"fit: y must be 1 (labelled anomaly) or 0 (unlabelled), found "
                       f"{values[:10].tolist()}; other values (multi-class targets) are not supported.")
  return y.astype(np.int32)


# Batches drawn without replacement: a batch larger than its pool cannot be formed, so it
# is shrunk to the pool with a warning, as PyOD and DeepOD do. DevNet, PReNet and FEAWAD
# draw their rows with replacement (as their references) and CLAD caps its own batches:
# they train on few rows unchanged.
# method -> (config section, field, the pool the batch is drawn from)
_ROW_BOUND_BATCHES = {
    "deepsad": ("deepsad", "batch_size", "training rows"),
    "deepsvdd": ("deepsvdd", "batch_size", "training rows"),
    "funad": ("funad", "batch_size", "training rows"),
    "bgad": ("bgad", "batch_size", "unlabelled training rows"),
}


@contextlib.contextmanager
def _progress_logging(verbose: int):
  """verbose=0: the library's INFO lines (progress) are silenced during the call, whatever
  the logging set-up; verbose>=1: they are shown on stderr (through the user's handlers
  if the 'ssadjax' logger has some)."""
  logger = logging.getLogger("ssadjax")
  saved = logger.level, logger.propagate
  handler = None
  if verbose and verbose > 0:
    logger.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)
    if not logger.handlers:
      handler = logging.StreamHandler(sys.stderr)
      handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s",
                                             "%H:%M:%S"))
      logger.addHandler(handler)
      logger.propagate = False  # printed once, not again by a root handler
  else:
    logger.setLevel(logging.WARNING)
  try:
    yield
  finally:
    logger.setLevel(saved[0])
    logger.propagate = saved[1]
    if handler is not None:
      logger.removeHandler(handler)


class BaseDetector:
  """Shared machinery; subclasses set `_method` and may add hyper-parameters.

  Args:
    anomaly_only: apply the AnoOnly transformation.
    norm: dict of BatchNorm policy fields (`stats_rows`, `eval_stats`, `kind`,
      `momentum`), see ssadjax/norm.py.
    preset: 'adbench' or 'anoonly_paper' where the references disagree.
    hparams: dict of the method's config fields (e.g. `{'num_epochs': 20}`), overriding
      the method's section of the experiment config.
    contamination: expected anomaly fraction of the training data; sets `threshold_`.
    random_state: the seed (model keys are derived from it as in experiments).
    verbose: 0 (default) silent; 1 logs the command line's progress lines (step, loss,
      steps/s, ETA after every chunk of epochs) and a summary line on stderr.
  """
  _method = None

  def __init__(self, *, anomaly_only=False, norm=None, preset="adbench", hparams=None,
               contamination=0.1, random_state=0, verbose=0):
    self.anomaly_only = anomaly_only
    self.norm = norm
    self.preset = preset
    self.hparams = hparams
    self.contamination = contamination
    self.random_state = random_state
    self.verbose = verbose

  # -- scikit-learn parameter protocol (no scikit-learn import needed) ------------------
  @classmethod
  def _get_param_names(cls):
    return sorted(p.name for p in inspect.signature(cls.__init__).parameters.values()
                  if p.name != "self" and p.kind != p.VAR_KEYWORD)

  _param_names = _get_param_names

  def get_params(self, deep=True):
    params = {}
    for name in self._param_names():
      value = getattr(self, name)
      if deep and hasattr(value, "get_params") and not isinstance(value, type):
        params.update((f"{name}__{k}", v) for k, v in value.get_params().items())
      params[name] = value
    return params

  def set_params(self, **params):
    for name, value in params.items():
      if name not in self._param_names():
        raise ValueError(f"{type(self).__name__} has no parameter {name!r}; valid: "
                         f"{self._param_names()}")
      setattr(self, name, value)
    return self

  def __repr__(self):
    args = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items())
    return f"{type(self).__name__}({args})"

  def __sklearn_is_fitted__(self):
    return hasattr(self, "state_")

  def __sklearn_tags__(self):
    """What scikit-learn's tools (Pipeline, check_estimator) read; only they call it, so
    scikit-learn is imported here. y is optional and binary: 1 = labelled anomaly.

    No estimator type: scikit-learn's outlier detectors predict -1 / +1 (inlier = +1),
    while these follow PyOD (0 / 1, outlier = 1)."""
    from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags
    return Tags(estimator_type=None,
                target_tags=TargetTags(required=False),
                # Binary targets only (scikit-learn's checks then pass 0/1 labels).
                classifier_tags=ClassifierTags(multi_class=False),
                transformer_tags=None, regressor_tags=None,
                input_tags=InputTags(sparse=False, allow_nan=False))

  def __getstate__(self):
    # The Method holds jitted closures; it is rebuilt from config_ on unpickling.
    state = dict(self.__dict__)
    state.pop("method_", None)
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    if "config_" in state and "n_features_in_" in state:
      self.__dict__.setdefault("bucket_", None)  # pickled before shape buckets
      self.method_ = self._method_at_bucket(self.num_train_, self.n_features_in_)

  # -- configuration --------------------------------------------------------------------
  def _section_overrides(self) -> dict:
    """Explicit hyper-parameter arguments of a subclass -> config fields."""
    return {}

  def make_config(self) -> ml_collections.ConfigDict:
    config = default_config()
    config.method = self._method
    config.anomaly_only = bool(self.anomaly_only)
    config.preset = self.preset
    config.seed = int(self.random_state)
    config.num_seeds = 1
    section_name = "deepsad" if self._method == "deepsvdd" else self._method
    section = config[section_name]
    overrides = {**self._section_overrides(), **(self.hparams or {})}
    for key, value in overrides.items():
      if key not in section:
        raise ValueError(f"{key!r} is not a {section_name} hyper-parameter; valid: "
                         f"{sorted(section.keys())}")
      value = tuple(value) if isinstance(value, list) else value
      if self._method == "deepsvdd" and key in config.deepsvdd:
        # Deep SVDD's own section wins over its deepsvdd_* presets; Deep SAD's would not.
        config.deepsvdd[key] = value
      else:
        section[key] = value
    for key, value in (self.norm or {}).items():
      if key not in config.norm:
        raise ValueError(f"norm option {key!r} unknown; valid: {sorted(config.norm.keys())}")
      config.norm[key] = value
    if not 0.0 < self.contamination < 0.5:
      raise ValueError(f"contamination={self.contamination} must be in (0, 0.5)")
    return config

  def _fit_batch_to_data(self, config, semi: np.ndarray) -> None:
    """Shrinks a batch drawn without replacement to the rows it is drawn from."""
    if self._method not in _ROW_BOUND_BATCHES:
      return
    section_name, field, pool_name = _ROW_BOUND_BATCHES[self._method]
    if self._method == "deepsvdd":  # its batches may come from a deepsvdd_* preset
      section_name = "deepsvdd"
      values = hparams.deepsvdd.resolve(config)
    else:
      values = dict(config[section_name])
    section = config[section_name]
    pool = int(semi.size - semi.sum()) if pool_name.startswith("unlabelled") else semi.size
    if pool < 1:
      return
    # The autoencoder pretraining's own batch (Deep SAD / SVDD) is drawn the same way.
    for name in (field, "pretrain_batch_size"):
      batch = values.get(name)
      if batch is None or batch <= pool:
        continue
      warnings.warn(f"{type(self).__name__}: {name}={batch} exceeds the {pool} "
                    f"{pool_name}; training with {name}={pool} (pass {name} <= {pool} "
                    "to silence this).", UserWarning, stacklevel=3)
      section[name] = pool
      per_batch = section.get("anomalies_per_batch")
      if per_batch is not None and per_batch >= pool:  # BGAD keeps its 1:7 mix
        section.anomalies_per_batch = max(1, pool // 8)

  # -- fit / score ------------------------------------------------------------------------
  def fit(self, X, y=None):
    """Trains on X; y: 1 = labelled anomaly, 0 = unlabelled (None: no labels).
    Returns self."""
    x = _validate_x(X, "fit", min_rows=2)
    semi = _validate_semi_labels(y, x.shape[0])
    config = self.make_config()
    if self.anomaly_only and not semi.any():
      raise ValueError("anomaly_only=True needs labelled anomalies: y has no 1")
    self._fit_batch_to_data(config, semi)
    compilation_cache.enable_unless_configured()
    with _progress_logging(self.verbose):
      t0 = time.perf_counter()
      self.config_ = config
      self.method_ = methods.build(config, x.shape[1], x.shape[0])
      self.bucket_ = self._shape_bucket(semi, x.shape[1])
      if self.bucket_ is not None:
        self.method_ = self._method_at_bucket(*x.shape)
      data = self._train_data(x, semi)
      layout = parallel.make_layout(data=1)
      recompute = config.norm.eval_stats == "recomputed"  # as the experiment runner does
      # One program trains and scores the training rows (PyOD's decision_scores_).
      self.state_, train_scores, self.timing_ = engine.fit_and_score(
          self.method_, data, [config.seed], self._padded(x, len(data.x[0]))[None],
          recompute_stats=recompute, chunk_epochs=config.train.chunk_epochs, layout=layout,
          compile_effort=config.train.compile, program_key=self._program_key())
      train_scores = train_scores[:, :x.shape[0]]
      if recompute:  # the statistics later scoring uses
        self.state_ = engine.recompute_batch_stats(self.method_, self.state_, data,
                                                   layout=layout)
      # A method that scores against its training rows (PReNet's reference pools) keeps
      # them; the training state never holds them.
      self.train_data_ = data if self.method_.needs_train_data else None
      self.n_features_in_ = x.shape[1]
      self.num_train_ = x.shape[0]
      self.num_labelled_ = int(semi.sum())
      self._set_training_scores(train_scores[0])
      log.info("%s fitted on %d rows x %d features (%d labelled anomalies): %d steps, "
               "%.1fs (compiling %.1fs)", type(self).__name__, x.shape[0], x.shape[1],
               self.num_labelled_, self.timing_["steps"], time.perf_counter() - t0,
               self.timing_["compile_seconds"])
    return self

  def _set_training_scores(self, scores: np.ndarray) -> None:
    """PyOD's fitted attributes from the training scores."""
    self.decision_scores_ = np.asarray(scores)
    self.threshold_ = float(np.quantile(self.decision_scores_, 1.0 - self.contamination))
    self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int32)
    self._mu = float(np.mean(self.decision_scores_))
    self._sigma = float(np.std(self.decision_scores_))
    self._classes = 2

  def fit_predict(self, X, y=None) -> np.ndarray:
    """Fits on X (and y) and returns the training labels `labels_` (1 = outlier)."""
    return self.fit(X, y).labels_

  def _check_fitted(self, where: str = "decision_function"):
    if not hasattr(self, "state_"):
      raise _not_fitted_error_class()(
          f"{where}: this {type(self).__name__} is not fitted yet; call fit(X, y) first.")

  def _score(self, x):
    n = x.shape[0]
    # Test rows are padded too, so that predictions on sets of similar sizes share a program.
    return engine.score(self.method_, self.state_,
                        self._padded(x, grouping.bucket_size(n, 256))[None],
                        layout=parallel.make_layout(data=1),
                        program_key=self._program_key(),
                        data=getattr(self, "train_data_", None))[0][:n]

  # -- shape buckets: fits of similar sizes share compiled programs ----------------------
  def _shape_bucket(self, semi: np.ndarray, num_features: int):
    """(rows, features, anomaly pool, unlabelled pool) this detector trains at, padded as
    the experiment runner pads a grid's runs (exact: the padding never reaches the math),
    so that a fit on another dataset of a similar size, in this process or a later one,
    reuses the compiled programs; None: this method and config train at the exact shape.
    Recomputed BatchNorm statistics read the unlabelled pool whole, so that pool keeps
    its size."""
    if not grouping.can_pad(self.method_, self.config_, padded_pools=False):
      return None
    anomalies, unlabelled = int(np.sum(semi == 1)), int(np.sum(semi == 0))
    if self.config_.norm.eval_stats != "recomputed":
      anomalies = grouping.bucket_size(anomalies, 8)
      unlabelled = grouping.bucket_size(unlabelled, 256)
    return (grouping.bucket_size(semi.size, 256), grouping.bucket_size(num_features, 8),
            anomalies, unlabelled)

  def _method_at_bucket(self, num_train: int, num_features: int):
    """The method built at the bucket's rows and features (the exact ones without one)."""
    rows, features = (self.bucket_ or (num_train, num_features))[:2]
    return methods.build(self.config_, features, rows)

  def _train_data(self, x, semi):
    data = methods.make_train_data(x, semi)
    if self.bucket_ is not None:
      rows, features, anomalies, unlabelled = self.bucket_
      data = methods.train_data.pad_train_data(data, num_rows=rows, num_features=features,
                                         num_anomalies=anomalies, num_unlabelled=unlabelled)
    return engine.stack_data([data])

  def _padded(self, x, num_rows: int):
    """`x` with zero rows up to `num_rows` and zero feature columns up to the bucket's
    width (unchanged without a bucket)."""
    if self.bucket_ is None:
      return x
    return np.pad(x, ((0, num_rows - x.shape[0]), (0, self.bucket_[1] - x.shape[1])))

  def _program_key(self):
    if self.bucket_ is None:
      return None  # programs shared by refits of this detector object only
    # Run hyper-parameters (η, margins, ...) are data of the program, not part of it.
    return grouping.program_key(self.config_, self.bucket_[1], self.bucket_[0],
                                  run_data=tuple(self.method_.run_hparams))

  def _test_scores(self, X, where: str) -> np.ndarray:
    self._check_fitted(where)
    return self._score(_validate_x(X, where, num_features=self.n_features_in_,
                                   owner=type(self).__name__))

  def decision_function(self, X) -> np.ndarray:
    """Anomaly scores, higher = more anomalous."""
    return self._test_scores(X, "decision_function")

  def _labels(self, scores) -> np.ndarray:
    return (scores > self.threshold_).astype(np.int32)

  def predict(self, X, return_confidence: bool = False):
    """1 for rows scoring above `threshold_` (the training score quantile at
    1 - contamination), else 0; with `return_confidence`, also `predict_confidence(X)`."""
    scores = self._test_scores(X, "predict")
    labels = self._labels(scores)
    return (labels, self._confidence(scores)) if return_confidence else labels

  def predict_proba(self, X, method: str = "linear", return_confidence: bool = False):
    """`[n, 2]` probabilities of (inlier, outlier), as PyOD: 'linear' rescales the scores
    by the training scores' min and max, clipped to [0, 1]; 'unify' is Kriegel et al.'s
    Gaussian scaling (SDM 2011), erf((s - mean) / (std sqrt 2)) clipped to [0, 1], with
    the training scores' mean and std. With `return_confidence`, also
    `predict_confidence(X)`."""
    if method not in PROBA_METHODS:
      raise ValueError(f"predict_proba: method={method!r} is not a probability conversion; "
                       f"use one of {PROBA_METHODS}.")
    scores = self._test_scores(X, "predict_proba")
    self._require_training_scores("predict_proba")
    train = self.decision_scores_
    if method == "linear":
      low, span = float(train.min()), float(train.max() - train.min())
      outlier = (scores - low) / (span if span > 0 else 1.0)
    else:
      from scipy.special import erf  # scipy comes with jax
      outlier = erf((scores - self._mu) / ((self._sigma or 1.0) * math.sqrt(2.0)))
    outlier = np.clip(outlier, 0.0, 1.0)
    probs = np.stack([1.0 - outlier, outlier], axis=1)
    return (probs, self._confidence(scores)) if return_confidence else probs

  def predict_confidence(self, X) -> np.ndarray:
    """Per-row confidence in `predict`'s label, in [0, 1]: ExCeeD (Perini et al.,
    ECML-PKDD 2020) as PyOD computes it from the training scores and `contamination`."""
    return self._confidence(self._test_scores(X, "predict_confidence"))

  def _confidence(self, scores) -> np.ndarray:
    self._require_training_scores("predict_confidence")
    from scipy.special import bdtr  # the binomial CDF; scipy comes with jax
    train = np.sort(self.decision_scores_)
    n = train.size
    # Bayesian estimate of each row's outlier probability: its rank among the training
    # scores with a uniform prior, then the probability that fewer than n * contamination
    # of n rows drawn at that probability would outrank it.
    rank = np.searchsorted(train, scores, side="right")
    p_outlier = (1.0 + rank) / (2.0 + n)
    confidence = 1.0 - bdtr(n - int(n * self.contamination), n, p_outlier)
    return np.where(self._labels(scores) == 1, confidence, 1.0 - confidence)

  def _require_training_scores(self, where: str) -> None:
    if getattr(self, "decision_scores_", None) is None:
      raise ValueError(f"{where}: this detector was saved without its training scores "
                       "(by an older ssadjax); refit it, or use decision_function / predict.")

  # -- persistence ------------------------------------------------------------------------
  def save(self, path) -> None:
    """Writes the trained state (orbax), the training scores and what is needed to
    rebuild the method into the folder `path`. The files are written beside it and swapped
    in at the end, so an interrupted save leaves an earlier detector at `path` whole; a
    `path` that holds anything but a saved detector is refused."""
    import orbax.checkpoint as ocp
    self._check_fitted("save")
    with files.replaced_directory(path, marker="detector.json", what="detector") as staging:
      with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(staging / "state", self.state_)
      np.save(staging / "decision_scores.npy", np.asarray(self.decision_scores_))
      if getattr(self, "train_data_", None) is not None:  # the rows its scoring rule reads
        np.savez(staging / "train_data.npz", **{
            field: np.asarray(value) for field, value in self.train_data_._asdict().items()
            if value is not None})
      meta = {"class": type(self).__name__, "params": self.get_params(deep=False),
              "config": json.loads(self.config_.to_json_best_effort()),
              "n_features_in": self.n_features_in_, "num_train": self.num_train_,
              "num_labelled": self.num_labelled_,
              "bucket": list(self.bucket_) if self.bucket_ is not None else None,
              "threshold": self.threshold_}
      (staging / "detector.json").write_text(json.dumps(meta, indent=2))

  @classmethod
  def load(cls, path):
    """The detector saved at `path`, ready to score (its class is read from the files)."""
    import orbax.checkpoint as ocp
    compilation_cache.enable_unless_configured()  # scoring compiles in a new process
    path = pathlib.Path(path).absolute()
    meta = json.loads((path / "detector.json").read_text())
    klass = DETECTORS[meta["class"]]
    if cls is not BaseDetector and klass is not cls:
      raise ValueError(f"{path} holds a {meta['class']}, not a {cls.__name__}")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["params"].items()}
    detector = klass(**params)
    config = ml_collections.ConfigDict(meta["config"])
    detector.config_ = config
    bucket = meta.get("bucket")
    detector.bucket_ = tuple(bucket) if bucket else None
    detector.method_ = detector._method_at_bucket(meta["num_train"], meta["n_features_in"])
    # Shapes only (the state's shapes follow the data's, pools included).
    semi = (np.arange(meta["num_train"]) < meta["num_labelled"]).astype(np.int32)
    like = jax.eval_shape(
        jax.vmap(lambda s, d: engine.create_train_state(
            detector.method_, *engine.seed_keys(s)[:2], d)),
        np.asarray([config.seed], np.int32),
        detector._train_data(np.zeros((meta["num_train"], meta["n_features_in"]),
                                      np.float32), semi))
    with ocp.StandardCheckpointer() as checkpointer:
      detector.state_ = checkpointer.restore(path / "state", like)
    detector.n_features_in_ = meta["n_features_in"]
    detector.num_train_ = meta["num_train"]
    detector.num_labelled_ = meta["num_labelled"]
    detector.train_data_ = None
    if detector.method_.needs_train_data:
      with np.load(path / "train_data.npz") as stored:
        detector.train_data_ = methods.TrainData(**{
            field: stored[field] if field in stored.files else None
            for field in methods.TrainData._fields})
    scores_file = path / "decision_scores.npy"
    if scores_file.exists():
      detector._set_training_scores(np.load(scores_file))
    detector.threshold_ = meta["threshold"]
    return detector


class DeepSAD(BaseDetector):
  """Deep SAD (Ruff et al., ICLR 2020); with `anomaly_only=True`, Deep SAD + AnoOnly."""
  _method = "deepsad"

  def __init__(self, *, eta=1.0, num_epochs=50, batch_size=128, learning_rate=1e-3,
               hidden_dims=(100, 20), rep_dim=10, anomaly_only=False, norm=None,
               preset="adbench", hparams=None, contamination=0.1, random_state=0, verbose=0):
    super().__init__(anomaly_only=anomaly_only, norm=norm, preset=preset, hparams=hparams,
                     contamination=contamination, random_state=random_state, verbose=verbose)
    self.eta = eta
    self.num_epochs = num_epochs
    self.batch_size = batch_size
    self.learning_rate = learning_rate
    self.hidden_dims = hidden_dims
    self.rep_dim = rep_dim

  def _section_overrides(self):
    return {"eta": self.eta, "num_epochs": self.num_epochs, "batch_size": self.batch_size,
            "learning_rate": self.learning_rate, "hidden_dims": tuple(self.hidden_dims),
            "rep_dim": self.rep_dim}


class DeepSVDD(DeepSAD):
  """Deep SVDD (Ruff et al., ICML 2018): Deep SAD trained without labels; `y` is ignored.

  `preset='deepsvdd_official'` (Ruff et al.'s recipe) or `'deepsvdd_adbench'` (ADBench's
  row) choose Deep SVDD's own recipes; arguments left at None take the preset's values
  (under the default preset, Deep SAD's)."""
  _method = "deepsvdd"

  def __init__(self, *, eta=None, num_epochs=None, batch_size=None, learning_rate=None,
               hidden_dims=None, rep_dim=None, anomaly_only=False, norm=None,
               preset="adbench", hparams=None, contamination=0.1, random_state=0, verbose=0):
    super().__init__(eta=eta, num_epochs=num_epochs, batch_size=batch_size,
                     learning_rate=learning_rate, hidden_dims=hidden_dims, rep_dim=rep_dim,
                     anomaly_only=anomaly_only, norm=norm, preset=preset, hparams=hparams,
                     contamination=contamination, random_state=random_state, verbose=verbose)

  def _section_overrides(self):
    # Only what the user set: the rest comes from the preset.
    values = {"eta": self.eta, "num_epochs": self.num_epochs, "batch_size": self.batch_size,
              "learning_rate": self.learning_rate, "rep_dim": self.rep_dim,
              "hidden_dims": None if self.hidden_dims is None else tuple(self.hidden_dims)}
    return {k: v for k, v in values.items() if v is not None}

  def fit(self, X, y=None):
    del y
    return super().fit(X, None)


class DevNet(BaseDetector):
  """DevNet (Pang et al., KDD 2019): deviation loss; `hparams` sets `config.devnet` fields."""
  _method = "devnet"


class PReNet(BaseDetector):
  """PReNet (Pang et al., KDD 2023): pairwise relations; `hparams` sets `config.prenet`."""
  _method = "prenet"


class FEAWAD(BaseDetector):
  """FEAWAD (Zhou et al., TNNLS 2021): autoencoder + deviation; `hparams`: `config.feawad`."""
  _method = "feawad"


class BGAD(BaseDetector):
  """BGAD (Yao et al., CVPR 2023): flow likelihood + boundary-guided semi-push-pull."""
  _method = "bgad"


class FUNAD(BaseDetector):
  """FUN-AD (Im et al., WACV 2025): fully unsupervised; `y` may give known anomalies."""
  _method = "funad"


class CLAD(BaseDetector):
  """CLAD (Park et al., ICLR 2021 workshop): clustering-based self-labelling, a confidence
  classifier on the pseudo-labels, ODIN confidence as normality. Images only.

  The rows of X are flattened images, `X.reshape(n, -1)` of an `[n, h, w, c]` array, and
  `image_shape=(h, w, c)` is required (h and w divisible by 4 for the autoencoder). CLAD is
  unsupervised: with `labelled_anomalies='exclude'` (default) rows with y = 1 are left out
  of every stage, with 'ignore' they are used as unlabelled rows. There is no AnoOnly
  variant, hence no `anomaly_only` parameter. Defaults are `config.clad`'s (the reference's
  MNIST-scenario settings); `hparams` sets any other `config.clad` field (e.g.
  `kmeans_n_init`, `dec_tol`, `odin_epsilon_scale`). The inputs are standardised per
  channel inside the method (statistics of the training rows).
  """
  _method = "clad"
  anomaly_only = False  # read by make_config; not a parameter (methods.NO_ANOONLY)

  def __init__(self, *, image_shape=None, num_clusters=10, latent_dim=10, ae_epochs=100,
               dec_epochs=100, num_epochs=100, batch_size=128, learning_rate=1e-4,
               classifier="cnn", temperature=1000.0, odin_epsilon=1e-4,
               labelled_anomalies="exclude", norm=None, preset="adbench", hparams=None,
               contamination=0.1, random_state=0, verbose=0, **unexpected):
    if unexpected:  # not a parameter (the protocol ignores **): a clear TypeError
      if "anomaly_only" in unexpected:
        raise TypeError(
            "CLAD has no anomaly_only parameter: it has no AnoOnly variant (AnoOnly keeps "
            "only the labelled-anomaly loss terms, which would train CLAD's confidence "
            "classifier on anomalies alone and invert its score; see methods.NO_ANOONLY)")
      raise TypeError(f"CLAD got unexpected keyword argument(s) {sorted(unexpected)}; valid: "
                      f"{self._param_names()}")
    # BaseDetector's parameters except anomaly_only (the class attribute, always False).
    self.norm = norm
    self.preset = preset
    self.hparams = hparams
    self.contamination = contamination
    self.random_state = random_state
    self.verbose = verbose
    self.image_shape = image_shape
    self.num_clusters = num_clusters
    self.latent_dim = latent_dim
    self.ae_epochs = ae_epochs
    self.dec_epochs = dec_epochs
    self.num_epochs = num_epochs
    self.batch_size = batch_size
    self.learning_rate = learning_rate
    self.classifier = classifier
    self.temperature = temperature
    self.odin_epsilon = odin_epsilon
    self.labelled_anomalies = labelled_anomalies

  def _image_shape(self) -> tuple[int, int, int]:
    shape = self.image_shape
    if shape is None or (isinstance(shape, (tuple, list)) and not shape):
      raise ValueError("CLAD needs image_shape=(height, width, channels): the rows of X are "
                       "flattened images (e.g. (8, 8, 1) for the 8x8 digits, (28, 28, 1) "
                       "for MNIST, (32, 32, 3) for CIFAR-10)")
    try:
      dims = tuple(int(s) for s in shape)
      ok = len(dims) == 3 and all(d >= 1 and d == s for d, s in zip(dims, shape))
    except (TypeError, ValueError):
      ok = False
    if not ok:
      raise ValueError(f"CLAD: image_shape={shape!r} must be three positive integers "
                       "(height, width, channels)")
    return dims

  def _section_overrides(self):
    if "image_shape" in (self.hparams or {}):
      raise ValueError("CLAD: give the image shape as image_shape=(h, w, c), not in hparams")
    return {"image_shape": self._image_shape(), "num_clusters": self.num_clusters,
            "latent_dim": self.latent_dim, "ae_epochs": self.ae_epochs,
            "dec_epochs": self.dec_epochs, "num_epochs": self.num_epochs,
            "batch_size": self.batch_size, "learning_rate": self.learning_rate,
            "classifier": self.classifier, "temperature": self.temperature,
            "odin_epsilon": self.odin_epsilon, "labelled_anomalies": self.labelled_anomalies}

  def fit(self, X, y=None):
    """Trains on flattened images X; y: 1 = labelled anomaly (see `labelled_anomalies`)."""
    x = _validate_x(X, "fit", min_rows=2)
    shape = self._image_shape()
    if x.shape[1] != int(np.prod(shape)):
      raise DatasetError(f"fit: X has {x.shape[1]} features, but image_shape={shape} needs "
                         f"{'*'.join(map(str, shape))} = {int(np.prod(shape))}: the rows of X "
                         "must be images flattened as X.reshape(n, -1) of [n, h, w, c].")
    return super().fit(x, y)


DETECTORS = {cls.__name__: cls for cls in (DeepSAD, DeepSVDD, DevNet, PReNet, FEAWAD, BGAD,
                                            FUNAD, CLAD)}
