"""Latent multi-class scenarios (CLAD, Park et al., ICLR 2021 workshop): the normal
class is a union of several classes of an image set (a "super-category"); every image of
the other classes is an anomaly. Numpy only.

Names (`ssadjax.data.load_dataset`, `--config.dataset=`):
  latent:sklearn:digits/0+3+8          scikit-learn's bundled 8x8 digits, offline
  latent:tfds:mnist/1+4+7              any TFDS set of `images.TFDS_IMAGE_SETS`
  latent:tfds:mnist_corrupted/fog/0+3+8
  latent:sklearn:digits/cur            a named scenario of the paper (SCENARIOS)

Named scenarios (the paper's README table 5): MNIST (and the 8x8 digits) CUR {0, 3, 8},
STR {1, 4, 7}, MIX {2, 5, 6, 9}; CIFAR-10 THG {airplane, automobile, ship, truck} =
{0, 1, 8, 9}, LIV {bird, cat, deer, dog, frog, horse} = {2, ..., 7}.

Construction (`latent_class_task`): every image of the chosen split is kept; y = 1 for the
classes outside the normal set. As in the paper, the anomalies are ALL the other classes
(for digits CUR: 540 normals, 1257 anomalies), not a small share as in the one-vs-rest
tasks; the rows are put in a fixed shuffled order (construction seed 0). The experiment's
protocol then splits them; `data.normal_clean=True` gives the paper's clean training set
(normals only, plus the labelled anomalies when la > 0), and the test split keeps both.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from ssadjax.data import images as image_lib
from ssadjax.data.adbench import DatasetError

PREFIX = "latent:"
CONSTRUCTION_SEED = 0
_MNIST_LIKE = {"cur": (0, 3, 8), "str": (1, 4, 7), "mix": (2, 5, 6, 9)}
SCENARIOS = {
    "digits": _MNIST_LIKE,
    "mnist": _MNIST_LIKE,
    "mnist_corrupted": _MNIST_LIKE,
    "cifar10": {"thg": (0, 1, 8, 9), "liv": (2, 3, 4, 5, 6, 7)},
}
_NAME = re.compile(r"^latent:(?P<base>(tfds|sklearn):[a-z0-9_]+(/[A-Za-z0-9_.+-]+?)?)"
                   r"/(?P<classes>[a-z]+|\d+(\+\d+)*)$")


@dataclasses.dataclass(frozen=True)
class LatentTask:
  base: str                      # 'sklearn:digits', 'tfds:mnist', 'tfds:mnist_corrupted/fog'
  normal_classes: tuple[int, ...]
  image_task: image_lib.ImageTask  # the base set (its normal_class is the first normal class)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return self.image_task.image_shape


def is_latent_name(name: str) -> bool:
  return name.startswith(PREFIX)


def parse_latent_name(name: str) -> LatentTask:
  """'latent:sklearn:digits/0+3+8' -> LatentTask; DatasetError naming the forms otherwise."""
  forms = ("latent:<image set>/<k1>+<k2>+... (e.g. latent:sklearn:digits/0+3+8, "
           "latent:tfds:mnist/1+4+7) or a named scenario: "
           + "; ".join(f"{d}: {', '.join(sorted(s))}" for d, s in sorted(SCENARIOS.items())))
  m = _NAME.match(name.strip())
  if not m:
    raise DatasetError(f"Latent-class dataset name {name!r} not understood; use {forms}.")
  base, spec = m["base"], m["classes"]
  dataset = base.split(":", 1)[1].split("/", 1)[0]
  if spec.isalpha():
    if spec not in SCENARIOS.get(dataset, {}):
      raise DatasetError(f"{name!r}: no scenario {spec!r} for {dataset}; use {forms}.")
    classes = SCENARIOS[dataset][spec]
  else:
    classes = tuple(int(c) for c in spec.split("+"))
  if len(set(classes)) != len(classes):
    raise DatasetError(f"{name!r}: a normal class is listed twice.")
  # Validates the set, its config and every class through the one-vs-rest parser.
  tasks = [image_lib.parse_image_name(f"{base}/{c}") for c in classes]
  num_classes = (image_lib.TFDS_IMAGE_SETS if tasks[0].source == "tfds"
                 else image_lib.SKLEARN_IMAGE_SETS)[tasks[0].dataset][1]
  if len(classes) >= num_classes:
    raise DatasetError(f"{name!r}: every class is normal; leave at least one out as anomalies.")
  return LatentTask(base=base, normal_classes=tuple(sorted(classes)), image_task=tasks[0])


def latent_class_task(images: np.ndarray, labels: np.ndarray, normal_classes, *,
                      seed: int = CONSTRUCTION_SEED) -> tuple[np.ndarray, np.ndarray]:
  """All images, y = 1 outside `normal_classes` (int32), in a fixed shuffled order."""
  labels = np.asarray(labels).reshape(-1)
  if images.shape[0] != labels.shape[0]:
    raise DatasetError(f"{images.shape[0]} images but {labels.shape[0]} labels.")
  normal = np.isin(labels, np.asarray(tuple(normal_classes)))
  if not normal.any():
    raise DatasetError(f"No image of the normal classes {tuple(normal_classes)}.")
  if normal.all():
    raise DatasetError(f"Every image is of the normal classes {tuple(normal_classes)}.")
  order = np.random.default_rng(seed).permutation(labels.shape[0])
  return images[order], (~normal[order]).astype(np.int32)


def load_latent_task(name: str, *, tfds_dir=None, split: str = "train",
                     download: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Images [n, h, w, c] (stored dtype) and y int32 [n] of latent-class task `name`."""
  task = parse_latent_name(name)
  base = task.image_task
  if base.source == "sklearn":
    images, labels = image_lib.load_digits_images()
  else:
    images, labels = image_lib.load_tfds_images(base.tfds_name, split=split,
                                                tfds_dir=tfds_dir, download=download)
  if images.ndim == 3:
    images = images[..., None]
  if images.shape[1:] != task.image_shape:
    raise DatasetError(f"{name}: images have shape {images.shape[1:]}, expected "
                       f"{task.image_shape}.")
  return latent_class_task(images, labels, task.normal_classes)


def image_shape(name: str) -> tuple[int, int, int] | None:
  """[h, w, c] of a latent-class task name, None for any other name."""
  if not is_latent_name(name):
    return None
  return parse_latent_name(name).image_shape
