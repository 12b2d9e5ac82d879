"""PyOD-style estimators over the functional core: `fit(X, y)`, `decision_function(X)`.

    from ssadjax import DeepSAD
    detector = DeepSAD(anomaly_only=True).fit(X_train, y_train)   # y: 1 = labelled anomaly
    scores = detector.decision_function(X_test)                   # higher = more anomalous

Each estimator builds the same config, the same `Method` and calls the same
`engine.fit` / `engine.score` as `python -m experiments.main`; nothing here trains.
Parameters follow scikit-learn's conventions (`get_params`, `set_params`, `clone`, use
inside a `Pipeline` after a scaler); the inputs are not rescaled here.
"""

import inspect
import json
import pathlib

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from ssadjax import engine, methods, parallel
from ssadjax.data.adbench import DatasetError, validate_x

try:  # scikit-learn is optional: with it, detectors are full sklearn estimators
  from sklearn.base import BaseEstimator as _SklearnBase
except ImportError:  # pragma: no cover - exercised only without scikit-learn
  _SklearnBase = object


def default_config() -> ml_collections.ConfigDict:
  """The experiment defaults (experiments/configs/common.py), unlocked copy."""
  from experiments.configs import common
  return common.get_config()


def _validate_x(x, where: str, *, num_features: int | None = None) -> np.ndarray:
  """The data layer's X rules (one row suffices to score), plus the fitted width."""
  x32 = validate_x(x, where=where, min_rows=1)
  if num_features is not None and x32.shape[1] != num_features:
    raise DatasetError(f"{where}: X has {x32.shape[1]} features, the detector was fitted on "
                       f"{num_features}.")
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
                       f"{values[:10].tolist()}.")
  return y.astype(np.int32)


class BaseDetector(_SklearnBase):
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
  """
  _method = None

  def __init__(self, *, anomaly_only=False, norm=None, preset="adbench", hparams=None,
               contamination=0.1, random_state=0):
    self.anomaly_only = anomaly_only
    self.norm = norm
    self.preset = preset
    self.hparams = hparams
    self.contamination = contamination
    self.random_state = random_state

  # -- scikit-learn parameter protocol ------------------------------------------------
  @classmethod
  def _param_names(cls):
    return sorted(p.name for p in inspect.signature(cls.__init__).parameters.values()
                  if p.name != "self" and p.kind != p.VAR_KEYWORD)

  def get_params(self, deep=True):
    del deep
    return {name: getattr(self, name) for name in self._param_names()}

  def set_params(self, **params):
    for name, value in params.items():
      if name not in self._param_names():
        raise ValueError(f"{type(self).__name__} has no parameter {name!r}; valid: "
                         f"{self._param_names()}")
      setattr(self, name, value)
    return self

  def __repr__(self):
    args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
    return f"{type(self).__name__}({args})"

  def __sklearn_is_fitted__(self):
    return hasattr(self, "state_")

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
      section[key] = tuple(value) if isinstance(value, list) else value
    for key, value in (self.norm or {}).items():
      if key not in config.norm:
        raise ValueError(f"norm option {key!r} unknown; valid: {sorted(config.norm.keys())}")
      config.norm[key] = value
    if not 0.0 < self.contamination < 0.5:
      raise ValueError(f"contamination={self.contamination} must be in (0, 0.5)")
    return config

  # -- fit / score ------------------------------------------------------------------------
  def fit(self, X, y=None):
    """Trains on X; y: 1 = labelled anomaly, 0 = unlabelled (None: no labels)."""
    x = _validate_x(X, "fit")
    semi = _validate_semi_labels(y, x.shape[0])
    config = self.make_config()
    if self.anomaly_only and not semi.any():
      raise ValueError("anomaly_only=True needs labelled anomalies: y has no 1")
    self.config_ = config
    self.method_ = methods.build(config, x.shape[1], x.shape[0])
    data = engine.stack_data([methods.make_train_data(x, semi)])
    layout = parallel.make_layout(data=1)
    self.state_, self.timing_ = engine.fit(self.method_, data, [config.seed],
                                           chunk_epochs=config.train.chunk_epochs,
                                           layout=layout)
    if config.norm.eval_stats == "recomputed":  # as the experiment runner does
      self.state_ = engine.recompute_batch_stats(self.method_, self.state_, data, layout=layout)
    self.n_features_in_ = x.shape[1]
    self.num_train_ = x.shape[0]
    self.num_labelled_ = int(semi.sum())
    self.decision_scores_ = self._score(x)
    self.threshold_ = float(np.quantile(self.decision_scores_, 1.0 - self.contamination))
    self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int32)
    return self

  def _check_fitted(self):
    if not hasattr(self, "state_"):
      raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit(X, y) first")

  def _score(self, x):
    return engine.score(self.method_, self.state_, x[None],
                        layout=parallel.make_layout(data=1))[0]

  def decision_function(self, X) -> np.ndarray:
    """Anomaly scores, higher = more anomalous."""
    self._check_fitted()
    return self._score(_validate_x(X, "decision_function", num_features=self.n_features_in_))

  def predict(self, X) -> np.ndarray:
    """1 for rows scoring above `threshold_` (the training score quantile at
    1 - contamination), else 0."""
    return (self.decision_function(X) > self.threshold_).astype(np.int32)

  # -- persistence ------------------------------------------------------------------------
  def save(self, path) -> None:
    """Writes the trained state (orbax) and what is needed to rebuild the method."""
    self._check_fitted()
    path = pathlib.Path(path).absolute()
    path.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as checkpointer:
      checkpointer.save(path / "state", self.state_, force=True)
    meta = {"class": type(self).__name__, "params": self.get_params(),
            "config": json.loads(self.config_.to_json_best_effort()),
            "n_features_in": self.n_features_in_, "num_train": self.num_train_,
            "num_labelled": self.num_labelled_,
            "threshold": self.threshold_}
    (path / "detector.json").write_text(json.dumps(meta, indent=2))

  @classmethod
  def load(cls, path):
    path = pathlib.Path(path).absolute()
    meta = json.loads((path / "detector.json").read_text())
    klass = DETECTORS[meta["class"]]
    if cls is not BaseDetector and klass is not cls:
      raise ValueError(f"{path} holds a {meta['class']}, not a {cls.__name__}")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["params"].items()}
    detector = klass(**params)
    config = ml_collections.ConfigDict(meta["config"])
    detector.config_ = config
    detector.method_ = methods.build(config, meta["n_features_in"], meta["num_train"])
    like = jax.eval_shape(
        jax.vmap(lambda s, d: engine.create_train_state(
            detector.method_, *engine.seed_keys(s)[:2], d)),
        np.asarray([config.seed], np.int32),
        # Shapes only: some methods keep the labelled pool in their state.
        engine.stack_data([methods.make_train_data(
            np.zeros((meta["num_train"], meta["n_features_in"]), np.float32),
            (np.arange(meta["num_train"]) < meta["num_labelled"]).astype(np.int32))]))
    with ocp.StandardCheckpointer() as checkpointer:
      detector.state_ = checkpointer.restore(path / "state", like)
    detector.n_features_in_ = meta["n_features_in"]
    detector.num_train_ = meta["num_train"]
    detector.num_labelled_ = meta["num_labelled"]
    detector.threshold_ = meta["threshold"]
    return detector


class DeepSAD(BaseDetector):
  """Deep SAD (Ruff et al., ICLR 2020); with `anomaly_only=True`, Deep SAD + AnoOnly."""
  _method = "deepsad"

  def __init__(self, *, eta=1.0, num_epochs=50, batch_size=128, learning_rate=1e-3,
               hidden_dims=(100, 20), rep_dim=10, anomaly_only=False, norm=None,
               preset="adbench", hparams=None, contamination=0.1, random_state=0):
    super().__init__(anomaly_only=anomaly_only, norm=norm, preset=preset, hparams=hparams,
                     contamination=contamination, random_state=random_state)
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
  """Deep SVDD (Ruff et al., ICML 2018): Deep SAD trained without labels; `y` is ignored."""
  _method = "deepsvdd"

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
               contamination=0.1, random_state=0, **unexpected):
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
    x = _validate_x(X, "fit")
    shape = self._image_shape()
    if x.shape[1] != int(np.prod(shape)):
      raise DatasetError(f"fit: X has {x.shape[1]} features, but image_shape={shape} needs "
                         f"{'*'.join(map(str, shape))} = {int(np.prod(shape))}: the rows of X "
                         "must be images flattened as X.reshape(n, -1) of [n, h, w, c].")
    return super().fit(x, y)


DETECTORS = {cls.__name__: cls for cls in (DeepSAD, DeepSVDD, DevNet, PReNet, FEAWAD, BGAD,
                                            FUNAD, CLAD)}
