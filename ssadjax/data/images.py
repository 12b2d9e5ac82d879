"""Raw-image anomaly-detection tasks: one class of an image classification set is normal.

Names (also accepted by `ssadjax.data.load_dataset`):
  tfds:mnist/0, tfds:fashion_mnist/3, tfds:cifar10/7, tfds:svhn_cropped/1,
  tfds:mnist_corrupted/shot_noise/4   (TFDS config, then the normal class)
  sklearn:digits/0                    (scikit-learn's bundled 8x8 digits; works offline)

One-vs-rest construction (`one_vs_rest`), the recipe behind ADBench's CV files (CIFAR10_k
has 5263 = 5000 / 0.95 rows): every image of the normal class k in the chosen split is a
normal; anomalies are drawn without replacement from the other classes so that they make up
`anomaly_ratio` (default 5%) of the task: round(n_k * r / (1 - r)) images. The draw uses a
FIXED seed (`construction_seed`, 0), so a task is a fixed data set like an ADBench file; the
experiment seeds then drive the usual protocol (resampling, split, labels) on top of it.
For mnist_corrupted each corruption config is its own task family (digit k of that
corruption is normal); ADBench's MNIST-C files are ResNet embeddings, not these pixels.

Images are returned as they are stored (uint8 [n, h, w, c]); the protocol's min-max scaling
(`minmax_scope='auto'` = one global range for images) maps them to [0, 1].

TFDS sets are read with `tfds.data_source` (array_record, no TensorFlow) from
`tfds_dir` (default ~/.cache/ssadjax/tfds), read once per process and kept in memory.
They must have been prepared there (`download=True` does it with network access).
"""

from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np

from ssadjax.data.adbench import DatasetError
from ssadjax.data.tfds_adbench import resolve_tfds_dir

ANOMALY_RATIO = 0.05
CONSTRUCTION_SEED = 0

# Catalogue TFDS image sets this module knows: feature shape and number of classes.
TFDS_IMAGE_SETS = {
    "mnist": ((28, 28, 1), 10),
    "fashion_mnist": ((28, 28, 1), 10),
    "cifar10": ((32, 32, 3), 10),
    "svhn_cropped": ((32, 32, 3), 10),
    "mnist_corrupted": ((28, 28, 1), 10),
}
MNIST_CORRUPTIONS = (
    "identity", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale",
    "rotate", "brightness", "translate", "stripe", "fog", "spatter", "dotted_line", "zigzag",
    "canny_edges")
SKLEARN_IMAGE_SETS = {"digits": ((8, 8, 1), 10)}

_NAME = re.compile(r"^(?P<source>tfds|sklearn):(?P<dataset>[a-z0-9_]+)"
                   r"(/(?P<config>[A-Za-z0-9_.+-]+))?/(?P<cls>\d+)$")


@dataclasses.dataclass(frozen=True)
class ImageTask:
  source: str          # 'tfds' | 'sklearn'
  dataset: str         # 'mnist', 'digits', ...
  config: str | None   # TFDS builder config (mnist_corrupted/<corruption>)
  normal_class: int

  @property
  def tfds_name(self) -> str:
    return self.dataset + (f"/{self.config}" if self.config else "")

  @property
  def image_shape(self) -> tuple[int, int, int]:
    table = TFDS_IMAGE_SETS if self.source == "tfds" else SKLEARN_IMAGE_SETS
    return table[self.dataset][0]


def is_image_name(name: str) -> bool:
  """True for names handled here (tfds:<set>/.../<k>, sklearn:<set>/<k>), not tfds:adbench."""
  return (name.startswith("sklearn:")
          or (name.startswith("tfds:") and not name.startswith("tfds:adbench/")))


def parse_image_name(name: str) -> ImageTask:
  """'tfds:mnist/0' -> ImageTask; raises DatasetError with the accepted forms otherwise."""
  m = _NAME.match(name.strip())
  forms = ("tfds:<set>/<k> with set in " + ", ".join(sorted(TFDS_IMAGE_SETS))
           + "; tfds:mnist_corrupted/<corruption>/<k>; sklearn:digits/<k>")
  if not m:
    raise DatasetError(f"Image dataset name {name!r} not understood; use {forms}.")
  source, dataset, config, cls = m["source"], m["dataset"], m["config"], int(m["cls"])
  table = TFDS_IMAGE_SETS if source == "tfds" else SKLEARN_IMAGE_SETS
  if dataset not in table:
    raise DatasetError(f"Unknown {source} image set {dataset!r} in {name!r}; use {forms}.")
  if dataset == "mnist_corrupted":
    if config not in MNIST_CORRUPTIONS:
      raise DatasetError(f"{name!r}: mnist_corrupted needs a corruption config, one of "
                         f"{', '.join(MNIST_CORRUPTIONS)}.")
  elif config is not None:
    raise DatasetError(f"{name!r}: {dataset} has no config; use {source}:{dataset}/<k>.")
  num_classes = table[dataset][1]
  if not 0 <= cls < num_classes:
    raise DatasetError(f"{name!r}: normal class {cls} outside 0..{num_classes - 1}.")
  return ImageTask(source, dataset, config, cls)


def one_vs_rest(images: np.ndarray, labels: np.ndarray, normal_class: int, *,
                anomaly_ratio: float = ANOMALY_RATIO, seed: int = CONSTRUCTION_SEED
                ) -> tuple[np.ndarray, np.ndarray]:
  """Normals = class `normal_class`; anomalies = a uniform draw from the other classes making
  up `anomaly_ratio` of the result. Returns (images [n, ...], y int32 [n]) in a shuffled order."""
  if not 0.0 < anomaly_ratio < 1.0:
    raise DatasetError(f"anomaly_ratio must be in (0, 1), got {anomaly_ratio}.")
  labels = np.asarray(labels).reshape(-1)
  normal = np.flatnonzero(labels == normal_class)
  others = np.flatnonzero(labels != normal_class)
  if normal.size == 0:
    raise DatasetError(f"No image of normal class {normal_class}.")
  n_anomaly = max(1, int(round(normal.size * anomaly_ratio / (1.0 - anomaly_ratio))))
  if others.size < n_anomaly:
    raise DatasetError(f"{n_anomaly} anomalies needed but only {others.size} images of other "
                       "classes.")
  rng = np.random.default_rng(seed)
  anomalies = rng.choice(others, size=n_anomaly, replace=False)
  index = rng.permutation(np.concatenate([normal, anomalies]))
  y = (labels[index] != normal_class).astype(np.int32)
  return images[index], y


@functools.lru_cache(maxsize=4)
def _tfds_split_arrays(tfds_name: str, split: str, data_dir: str, download: bool
                       ) -> tuple[np.ndarray, np.ndarray]:
  import tensorflow_datasets as tfds  # core dependency, imported late
  try:
    source = tfds.data_source(tfds_name, split=split, data_dir=data_dir, download=download)
  except Exception as e:  # TFDS raises several types for "not prepared here"
    raise DatasetError(
        f"TFDS dataset {tfds_name!r} (split {split!r}) cannot be read from {data_dir} "
        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}).\n"
        f"With network access, prepare it once (array_record, no TensorFlow needed to read):\n"
        f"  python -c \"import tensorflow_datasets as tfds; "
        f"tfds.data_source('{tfds_name}', data_dir='{data_dir}', download=True)\"\n"
        f"or run with --config.data.tfds_download=True; point --config.data.tfds_dir at an "
        f"existing TFDS folder (e.g. ~/tensorflow_datasets) to reuse one.") from e
  n = len(source)
  if n == 0:
    raise DatasetError(f"TFDS dataset {tfds_name!r} split {split!r} is empty.")
  rows = [source[i] for i in range(n)]  # one pass, kept in memory (lru_cache)
  images = np.stack([np.asarray(r["image"]) for r in rows])
  labels = np.asarray([int(r["label"]) for r in rows], dtype=np.int64)
  return images, labels


def load_tfds_images(tfds_name: str, *, split: str = "train", tfds_dir=None,
                     download: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """All (image uint8 [n, h, w, c], label int64 [n]) of a TFDS split, read once per process."""
  images, labels = _tfds_split_arrays(tfds_name, split, str(resolve_tfds_dir(tfds_dir)),
                                      bool(download))
  return images, labels


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's bundled 8x8 digits (1797 images, values 0..16) as [n, 8, 8, 1] float32."""
  try:
    from sklearn.datasets import load_digits  # optional extra: ssadjax[synthetic]
  except ImportError as e:
    raise DatasetError("sklearn:digits needs scikit-learn, which is not installed: "
                       "pip install 'ssadjax[synthetic]' (or pip install scikit-learn).") from e
  bunch = load_digits()
  return bunch.images.astype(np.float32)[..., None], bunch.target.astype(np.int64)


def load_image_task(name: str, *, tfds_dir=None, split: str = "train",
                    anomaly_ratio: float = ANOMALY_RATIO, download: bool = False,
                    construction_seed: int = CONSTRUCTION_SEED
                    ) -> tuple[np.ndarray, np.ndarray]:
  """Images [n, h, w, c] (stored dtype) and y int32 [n] of image task `name`."""
  task = parse_image_name(name)
  if task.source == "sklearn":
    images, labels = load_digits_images()
  else:
    images, labels = load_tfds_images(task.tfds_name, split=split, tfds_dir=tfds_dir,
                                      download=download)
  if images.ndim == 3:
    images = images[..., None]
  if images.shape[1:] != task.image_shape:
    raise DatasetError(f"{name}: images have shape {images.shape[1:]}, expected "
                       f"{task.image_shape}.")
  return one_vs_rest(images, labels, task.normal_class, anomaly_ratio=anomaly_ratio,
                     seed=construction_seed)


def image_shape(name: str) -> tuple[int, int, int] | None:
  """The [h, w, c] of an image task name, or None if `name` is not an image task."""
  if not is_image_name(name):
    return None
  return parse_image_name(name).image_shape
