"""The ADBench data protocol (ADBench `DataGenerator`, with AnoOnly's `normal_clean`), numpy only.

Order of operations (ADBench's; it fixes what the random stream is spent on):

  (a) resample: n < upsample_threshold -> upsample_threshold rows drawn with replacement;
      n > downsample_threshold -> downsample_threshold rows drawn without replacement;
  (a2) optional realistic synthetic anomalies (realistic.py): the rows are replaced;
  (a3) optional noise 'irrelevant_features' (noise.py): uniform-noise columns added;
  (b) stratified shuffled split, ceil(test_size * n) test rows, class shares preserved;
  (b2) optional noise 'duplicated_anomalies': train, then test, anomalies resampled;
  (c) optional label contamination: flip int(n_train * r) train labels 0 <-> 1
      (`label_contamination=r`, or `noise_type='label_contamination'` with `noise_ratio=r`);
  (d) min-max scaling fitted on the train split only, applied to both splits
      (per feature; for images [n, h, w, c] per pixel or one global range, `minmax_scope`);
  (e) choose the labelled anomalies among the (possibly flipped) train positives;
  (f) semi-supervised labels; optionally (`normal_clean`) drop the unlabelled anomalies.

All randomness comes from the `np.random.Generator` passed in, so a seed reproduces the
splits exactly. The optional steps draw from it only when they are enabled, so enabling none
of them gives exactly the splits of the plain protocol. It does not reproduce ADBench's own splits (which use the global numpy
stream and sklearn), only their distribution.

Row order: train rows stay in shuffled order. AnoOnly returns them re-ordered as
[normals, unlabelled anomalies, labelled anomalies]; our samplers draw by index, so that
ordering would change nothing for them, and a shuffled order is the safe one for anything
that reads rows in order.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from ssadjax.data import noise as noise_lib
from ssadjax.data import realistic as realistic_lib
from ssadjax.data.adbench import DatasetError

MINMAX_SCOPES = ("auto", "feature", "global")


@dataclasses.dataclass(frozen=True)
class Splits:
  """Train/test arrays produced by `adbench_splits`.

  Attributes:
    x_train: float32 [n_train, d] (or [n_train, h, w, c] for images), min-max scaled with
      train statistics.
    semi_labels: int32 [n_train], 1 = labelled anomaly, 0 = unlabelled (what training sees).
    train_labels: int32 [n_train], the TRUE labels of the train rows (before any label
      contamination flip); for evaluation/diagnostics only, never for training.
    x_test: float32 [n_test, d], scaled with the train statistics (may leave [0, 1]).
    y_test: int32 [n_test], true test labels.
    label_flipped: bool [n_train], rows whose label the contamination step flipped; the
      labels the protocol acted on are `train_labels ^ label_flipped`. All False if None.
    train_index, test_index: int64 row indices into the `x` given to `adbench_splits`
      (through any resampling, so duplicates share an index), or None (always None under
      realistic synthetic anomalies, whose rows are not input rows).
  """
  x_train: np.ndarray
  semi_labels: np.ndarray
  train_labels: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  label_flipped: np.ndarray | None = None
  train_index: np.ndarray | None = None
  test_index: np.ndarray | None = None

  def __post_init__(self):
    n = self.x_train.shape[0]
    if self.label_flipped is None:
      # Frozen dataclass: fill the default through object.__setattr__.
      object.__setattr__(self, "label_flipped", np.zeros(n, dtype=bool))
    for field in ("semi_labels", "train_labels", "label_flipped", "train_index"):
      value = getattr(self, field)
      if value is not None and value.shape != (n,):
        raise ValueError(f"Splits.{field} has shape {value.shape}, expected ({n},).")
    if self.y_test.shape != (self.x_test.shape[0],):
      raise ValueError(f"Splits.y_test has shape {self.y_test.shape}, "
                       f"expected ({self.x_test.shape[0]},).")

  @property
  def labelled_anomaly_index(self) -> np.ndarray:
    """Row indices of x_train whose semi-label is 1."""
    return np.flatnonzero(self.semi_labels == 1)

  @property
  def num_labelled(self) -> int:
    return int(np.count_nonzero(self.semi_labels == 1))

  def summary(self) -> dict[str, int]:
    """Counts describing the splits (all plain ints, JSON-ready)."""
    labelled = self.semi_labels == 1
    true_anomaly = self.train_labels == 1
    return {
        "n_train": int(self.x_train.shape[0]),
        "n_test": int(self.x_test.shape[0]),
        "dim": int(np.prod(self.x_train.shape[1:])),
        "n_labelled": int(labelled.sum()),
        "n_unlabelled": int((~labelled).sum()),
        "n_train_anomalies": int(true_anomaly.sum()),
        # The contamination of the unlabelled set, in true labels.
        "n_unlabelled_anomalies": int((true_anomaly & ~labelled).sum()),
        # Non-zero only under label contamination: "labelled anomalies" that are normals.
        "n_labelled_normals": int((~true_anomaly & labelled).sum()),
        "n_flipped": int(self.label_flipped.sum()),
        "n_test_anomalies": int(self.y_test.sum()),
        "n_test_normals": int((self.y_test == 0).sum()),
    }


def check_la(la) -> None:
  """`la` is a float ratio in [0, 1] (1.0 = every train anomaly) or an int count >= 0."""
  # bool is an int subclass: la=True would silently mean "1 labelled anomaly".
  if isinstance(la, (bool, np.bool_)):
    raise DatasetError(f"la must be a ratio (float) or a count (int), got bool {la!r}; "
                       "write e.g. la=0.1 (10 % of the train anomalies) or la=5 (five).")
  if isinstance(la, numbers.Integral):
    if la < 0:
      raise DatasetError(f"la as a count must be >= 0, got {la}; write e.g. la=5 (five "
                         "labelled anomalies) or la=0.1 (a ratio).")
  elif isinstance(la, numbers.Real):
    if not 0.0 <= la <= 1.0:  # also rejects NaN
      raise DatasetError(f"la as a ratio must be in [0, 1], got {la}; write e.g. la=0.1 "
                         "(10 % of the train anomalies) or an int count such as la=5.")
  else:
    raise DatasetError(f"la must be a float ratio or an int count, got {type(la).__name__} "
                       f"{la!r}; write e.g. la=0.1 or la=5.")


def num_labelled_anomalies(la: float | int, n_anomalies: int, *, at_least_one_labeled: bool = True
                           ) -> int:
  """How many of `n_anomalies` train anomalies get labelled (ADBench's rule).

  A float is a ratio: ceil(la * n) with `at_least_one_labeled`, else int(la * n). An int is a
  count. Note the ADBench convention: `la=1` means ONE anomaly, `la=1.0` means all of them.
  """
  check_la(la)
  if isinstance(la, numbers.Integral):
    if la > n_anomalies:
      raise DatasetError(f"la={la} labelled anomalies requested but the training split has only "
                         f"{n_anomalies} anomalies; lower the count or give a ratio "
                         "(la=1.0 labels all of them).")
    return int(la)
  # Same float expression as ADBench (math.ceil(la * n)), so counts match its splits.
  k = math.ceil(la * n_anomalies) if at_least_one_labeled else int(la * n_anomalies)
  return min(k, n_anomalies)


def _stratified_split(y: np.ndarray, n_test: int, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
  """Shuffled train/test indices with `n_test` test rows and class shares preserved."""
  n = y.shape[0]
  classes, counts = np.unique(y, return_counts=True)
  # Per-class test counts: floor of the exact share, then the leftover rows go to the
  # classes with the largest fractional parts (sklearn's _approximate_mode idea), so each
  # class count is within 1 of its exact share in both splits.
  exact = n_test * counts / n
  test_counts = np.floor(exact).astype(np.int64)
  leftover = n_test - int(test_counts.sum())
  order = np.argsort(-(exact - test_counts), kind="stable")
  test_counts[order[:leftover]] += 1
  train_idx, test_idx = [], []
  for c, k in zip(classes, test_counts):
    members = rng.permutation(np.flatnonzero(y == c))
    test_idx.append(members[:k])
    train_idx.append(members[k:])
  # Shuffle across classes too, so neither split is sorted by label.
  train = rng.permutation(np.concatenate(train_idx))
  test = rng.permutation(np.concatenate(test_idx))
  return train, test


@dataclasses.dataclass(frozen=True)
class Protocol:
  """The protocol's settings, with their only defaults (the config's `data` section is
  built from them, ssadjax/config.py). `adbench_splits` documents each."""
  at_least_one_labeled: bool = True    # ceil(la * n) labelled anomalies, >= 1
  test_size: float = 0.3               # stratified 70/30 split
  resample: bool = True                # ADBench: up-sample < 1000 rows, down-sample > 10000
  upsample_threshold: int = 1000
  downsample_threshold: int = 10000
  minmax: bool = True                  # min-max scaler fitted on the train split only
  normal_clean: bool = False           # AnoOnly --normal_clean: drop unlabelled train anomalies
  label_contamination: float = 0.0     # fraction of train labels flipped before labelling
  # ADBench's realistic synthetic anomalies and noise (Han et al., NeurIPS 2022; docs/data.md).
  realistic_synthetic_mode: str = ""   # '' | local | global | cluster | dependency
  alpha: float = realistic_lib.ALPHA   # local: covariances x alpha; cluster: means x alpha
  percentage: float = realistic_lib.PERCENTAGE  # global: uniform on [min (1+p), max (1+p)]
  global_bounds: str = "adbench"       # adbench (that asymmetric formula) | symmetric (+-p range)
  noise_type: str = ""                 # '' | duplicated_anomalies | irrelevant_features | label_contamination
  duplicate_times: int = 2             # duplicated_anomalies: anomalies x this, train and test
  noise_ratio: float = 0.05            # irrelevant_features / label_contamination ratio
  minmax_scope: str = "auto"           # auto (tabular: per feature, images: one global range) | feature | global


def adbench_splits(
    x: np.ndarray,
    y: np.ndarray,
    *,
    rng: np.random.Generator,
    la: float | int,
    protocol: Protocol | None = None,
    max_components: int = realistic_lib.MAX_COMPONENTS,
    dependency_max_features: int = realistic_lib.DEPENDENCY_MAX_FEATURES,
    **settings,
) -> Splits:
  """ADBench's semi-supervised train/test protocol (see the module docstring for the steps).

  Args:
    x: [n, d] features (any real dtype), or images [n, h, w, c]. y: [n] labels in {0, 1}.
    rng: the only source of randomness.
    la: labelled anomalies, a float ratio in [0, 1] of the train anomalies or an int count.
    protocol: the settings (`Protocol`; None: the defaults); `settings` are keyword
      overrides of its fields (`adbench_splits(x, y, rng=rng, la=0.1, test_size=0.5)`):
    at_least_one_labeled: ratio rounding, ceil (True, ADBench's pipelines) or int (False).
    test_size: test fraction; ceil(test_size * n) rows go to test.
    resample: apply the up/down-sampling thresholds.
    minmax: min-max scale with train statistics.
    normal_clean: AnoOnly's option: remove the unlabelled train anomalies (as the protocol
      sees them, i.e. after any contamination flip) so the unlabelled set is all normal.
    label_contamination: fraction r in [0, 1) of train labels flipped before labelling.
    realistic_synthetic_mode: None/'' or local | global | cluster | dependency (realistic.py),
      with `alpha` (local/cluster), `percentage` and `global_bounds` ('adbench' reproduces
      ADBench's asymmetric min(1+p)..max(1+p), 'symmetric' widens by p * range),
      `max_components` (BIC search) and `dependency_max_features`.
    noise_type: None/'' or duplicated_anomalies (`duplicate_times`) | irrelevant_features
      (`noise_ratio`) | label_contamination (`noise_ratio`; same as label_contamination=r).
    minmax_scope: 'feature' (per column / per pixel), 'global' (one min and max over all
      train values, e.g. 0..255 pixels -> 0..1) or 'auto' (feature for 2-D x, global for
      images).
    max_components, dependency_max_features: limits of the realistic synthesis' model fits.

  Returns:
    `Splits`. Raises DatasetError if a split lacks a class or `la` is invalid.
  """
  try:
    p = dataclasses.replace(protocol or Protocol(), **settings)
  except TypeError as e:
    raise TypeError(f"adbench_splits: {e}; the settings are the fields of Protocol") from None
  at_least_one_labeled = p.at_least_one_labeled
  test_size = p.test_size
  resample = p.resample
  upsample_threshold = p.upsample_threshold
  downsample_threshold = p.downsample_threshold
  minmax = p.minmax
  normal_clean = p.normal_clean
  label_contamination = p.label_contamination
  realistic_synthetic_mode = p.realistic_synthetic_mode
  alpha = p.alpha
  percentage = p.percentage
  global_bounds = p.global_bounds
  noise_type = p.noise_type
  duplicate_times = p.duplicate_times
  noise_ratio = p.noise_ratio
  minmax_scope = p.minmax_scope
  check_la(la)
  if not 0.0 < test_size < 1.0:
    raise DatasetError(f"test_size must be in (0, 1), got {test_size}.")
  if not 0.0 <= label_contamination < 1.0:
    raise DatasetError(f"label_contamination must be in [0, 1), got {label_contamination}.")
  if resample and upsample_threshold > downsample_threshold:
    raise DatasetError(f"upsample_threshold ({upsample_threshold}) > downsample_threshold "
                       f"({downsample_threshold}).")
  x, y = np.asarray(x), np.asarray(y)
  if x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
    raise DatasetError(f"Expected x [n, d] (or [n, h, w, c]) and y [n], got {x.shape} and "
                       f"{y.shape}.")
  if not np.all(np.isin(y, [0, 1])):
    raise DatasetError(f"y must be binary, found values {np.unique(y)[:10].tolist()}.")
  y = y.astype(np.int32)
  realistic_synthetic_mode = realistic_lib.check_mode(realistic_synthetic_mode)
  noise_type = noise_lib.check_noise_type(noise_type)
  if minmax_scope not in MINMAX_SCOPES:
    raise DatasetError(f"minmax_scope={minmax_scope!r}; expected one of {MINMAX_SCOPES}.")
  if noise_type == "label_contamination":
    if label_contamination not in (0.0, noise_ratio):
      raise DatasetError(f"label_contamination={label_contamination} conflicts with "
                         f"noise_type='label_contamination' and noise_ratio={noise_ratio}.")
    label_contamination = noise_ratio
    if not 0.0 <= label_contamination < 1.0:
      raise DatasetError(f"noise_ratio must be in [0, 1), got {noise_ratio}.")
  if noise_type == "duplicated_anomalies" and not duplicate_times > 0:
    raise DatasetError(f"duplicate_times must be > 0, got {duplicate_times}.")
  if x.ndim > 2 and (realistic_synthetic_mode or noise_type == "irrelevant_features"):
    raise DatasetError(f"realistic synthetic anomalies and irrelevant_features need tabular "
                       f"x [n, d]; got images of shape {x.shape}.")

  # (a) Resampling, done on indices so the result can be traced back to input rows.
  index = np.arange(x.shape[0])
  if resample and x.shape[0] < upsample_threshold:
    # With replacement and BEFORE the split (as ADBench): the same row can land in both
    # train and test, which leaks and flatters test scores on small datasets. Kept for
    # comparability with published numbers.
    index = rng.choice(x.shape[0], size=upsample_threshold, replace=True)
  elif resample and x.shape[0] > downsample_threshold:
    index = rng.choice(x.shape[0], size=downsample_threshold, replace=False)
  y_all = y[index]
  n = index.shape[0]

  # From here on `rows[i]` is row i of the data set the protocol works on and `origin[i]`
  # the input row it came from (None once realistic synthetic rows replace the data).
  rows, origin = x[index], index

  # (a2) Realistic synthetic anomalies replace the rows (same class counts).
  if realistic_synthetic_mode is not None:
    rows, y_all = realistic_lib.realistic_synthetic(
        rows, y_all, realistic_synthetic_mode, rng, alpha=alpha, percentage=percentage,
        global_bounds_mode=global_bounds, max_components=max_components,
        dependency_max_features=dependency_max_features)
    origin = None
  # (a3) Irrelevant features: before the split, on all rows (the rows themselves are kept).
  if noise_type == "irrelevant_features":
    rows, _ = noise_lib.irrelevant_features(rows, noise_ratio, rng)

  # (b) Stratified split; sklearn's rounding: ceil(test_size * n) test rows.
  n_test = math.ceil(test_size * n)
  if n_test >= n:
    raise DatasetError(f"test_size={test_size} leaves no training rows out of {n}.")
  tr, te = _stratified_split(y_all, n_test, rng)
  train_labels, y_test = y_all[tr], y_all[te]
  for name, labels in (("training", train_labels), ("test", y_test)):
    if not labels.any():
      # ADBench drops datasets whose training split has no anomaly; a test split without
      # one has no AUROC.
      raise DatasetError(f"The {name} split has no anomalies ({int(y.sum())} anomalies in "
                         f"{y.shape[0]} rows).")
    if labels.all():
      raise DatasetError(f"The {name} split has no normal rows.")

  # (b2) Duplicated anomalies, train then test (ADBench adds them to both splits).
  if noise_type == "duplicated_anomalies":
    keep = noise_lib.duplicated_anomalies_index(train_labels, duplicate_times, rng)
    tr, train_labels = tr[keep], train_labels[keep]
    keep = noise_lib.duplicated_anomalies_index(y_test, duplicate_times, rng)
    te, y_test = te[keep], y_test[keep]
  train_index = origin[tr] if origin is not None else None
  test_index = origin[te] if origin is not None else None

  # (c) Label contamination: flip a uniform subset of train labels before labelling, so some
  # "labelled anomalies" may be normals and some anomalies hide as normals.
  n_train = tr.shape[0]
  label_flipped = np.zeros(n_train, dtype=bool)
  n_flip = int(n_train * label_contamination)
  if n_flip:
    label_flipped[rng.choice(n_train, size=n_flip, replace=False)] = True
  observed = np.where(label_flipped, 1 - train_labels, train_labels).astype(np.int32)

  # (d) Min-max scaling fitted on train only. float64 arithmetic, float32 storage.
  x_train = rows[tr].astype(np.float64)
  x_test = rows[te].astype(np.float64)
  if minmax:
    scope = minmax_scope if minmax_scope != "auto" else ("feature" if rows.ndim == 2 else "global")
    axis = 0 if scope == "feature" else None
    lo = x_train.min(axis=axis)
    span = x_train.max(axis=axis) - lo
    # Constant train column: divide by 1, not 0 (as sklearn's MinMaxScaler); train values
    # become 0 and test values keep their offset from the train constant.
    span = np.where(span == 0, 1.0, span)
    x_train = (x_train - lo) / span
    x_test = (x_test - lo) / span

  # (e) Labelled anomalies, drawn among what the protocol believes are train anomalies.
  positives = np.flatnonzero(observed == 1)
  if positives.size == 0:
    raise DatasetError("No training anomalies left after label contamination.")
  k = num_labelled_anomalies(la, positives.size, at_least_one_labeled=at_least_one_labeled)
  labelled = rng.choice(positives, size=k, replace=False)

  # (f) Semi-supervised labels: unlabelled = normals + unlabelled anomalies, all 0.
  semi_labels = np.zeros(n_train, dtype=np.int32)
  semi_labels[labelled] = 1
  if normal_clean:
    # Last step and no randomness: the kept rows are exactly those of the same seed without
    # normal_clean, minus the unlabelled (observed) anomalies.
    keep = (observed == 0) | (semi_labels == 1)
    x_train, semi_labels, train_labels = x_train[keep], semi_labels[keep], train_labels[keep]
    label_flipped = label_flipped[keep]
    train_index = train_index[keep] if train_index is not None else None

  return Splits(
      x_train=x_train.astype(np.float32),
      semi_labels=semi_labels,
      train_labels=train_labels.astype(np.int32),
      x_test=x_test.astype(np.float32),
      y_test=y_test.astype(np.int32),
      label_flipped=label_flipped,
      train_index=train_index.astype(np.int64) if train_index is not None else None,
      test_index=test_index.astype(np.int64) if test_index is not None else None,
  )
