"""Catalogue of the data sets this installation can use, as a Markdown table.

  python -m experiments.datasets --data_dir=../shared/data/adbench [--tfds_dir=DIR]

Lists the data shipped in the package (`embedded:optdigits`), the generated `synthetic` set,
every ADBench .npz under --data_dir (rows, features, anomalies and their share; read from
the files, X only through its header, in natural order: 2_annthyroid before 10_cover),
ADBench configs
already prepared as TFDS datasets, the TFDS image sets (prepared or not, under --tfds_dir),
and scikit-learn's digits. The `name` column is what --config.dataset accepts (image sets:
replace <k> by the normal class); `status` says whether it can be used as is or what it needs.
"""

import logging
import os
import pathlib
import re
import zipfile

from absl import app, flags
from absl import logging as absl_logging
import numpy as np

from ssadjax import data as data_lib
from ssadjax.data import images as images_lib
from ssadjax.data import tfds_adbench

_DATA_DIR = flags.DEFINE_string("data_dir", None, "ADBench folder (default $SSADJAX_DATA_DIR)")
_TFDS_DIR = flags.DEFINE_string("tfds_dir", None,
                                "TFDS data dir (default $SSADJAX_TFDS_DIR or ~/.cache/ssadjax/tfds)")

COLUMNS = ("name", "source", "rows", "features", "anomalies", "anomaly %", "status")


READY = "ready"
NOT_DOWNLOADED = "not downloaded: add --config.data.tfds_download=True (needs network)"


def natural_key(name: str):
  """'Classical/2_annthyroid' before 'Classical/10_cover': digit runs compare as numbers."""
  return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower())
          for part in re.split(r"(\d+)", name)]


def _row(name, source, rows=None, features=None, anomalies=None, status=READY):
  ratio = f"{100.0 * anomalies / rows:.2f}" if rows and anomalies is not None else ""
  return {"name": name, "source": source, "rows": "" if rows is None else str(rows),
          "features": "" if features is None else str(features),
          "anomalies": "" if anomalies is None else str(anomalies), "anomaly %": ratio,
          "status": status}


def adbench_rows(data_dir) -> list[dict]:
  """One row per .npz under `data_dir`; unreadable files are listed with their error."""
  out = []
  for name in sorted(data_lib.list_datasets(data_dir), key=natural_key):
    path = pathlib.Path(data_dir) / f"{name}.npz"
    try:
      shape = tfds_adbench.npz_shape(path)
      with np.load(path, allow_pickle=False) as f:
        y = np.asarray(f["y"])
      features = shape[1] if len(shape) == 2 else "x".join(map(str, shape[1:]))
      out.append(_row(name, "adbench", shape[0], features, int(np.count_nonzero(y == 1))))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
      out.append(_row(name, "adbench", status=f"unreadable ({type(e).__name__}): replace "
                      "the file"))
  return out


def embedded_rows() -> list[dict]:
  """The real data sets shipped inside the package (ssadjax/data/files/SOURCE.md)."""
  out = []
  for name in data_lib.embedded.NAMES:
    x, y = data_lib.embedded.load(name)
    default = " (default of configs/default.py)" if name == data_lib.embedded.DEFAULT else ""
    out.append(_row(name, "in the package", x.shape[0], x.shape[1], int(y.sum()),
                    status=READY + default))
  return out


def synthetic_row() -> dict:
  x, y, _ = data_lib.make_synthetic(seed=0)
  return _row(data_lib.SYNTHETIC_NAME, "generated", x.shape[0], x.shape[1], int(y.sum()))


def tfds_adbench_rows(tfds_dir) -> list[dict]:
  """ADBench configs already prepared under the TFDS data dir (read from dataset_info)."""
  import tensorflow_datasets as tfds
  root = tfds_adbench.resolve_tfds_dir(tfds_dir) / tfds_adbench.TFDS_NAME
  out = []
  for info in sorted(root.glob(f"*/{tfds_adbench.VERSION}/dataset_info.json")):
    builder = tfds.builder_from_directory(str(info.parent))
    n = builder.info.splits["train"].num_examples
    d = builder.info.features["x"].shape[0]
    out.append(_row(f"tfds:adbench/{info.parent.parent.name}", "tfds (prepared)", n, d))
  return out


def image_rows(tfds_dir) -> list[dict]:
  """The TFDS image sets this library knows, with whether they are prepared in tfds_dir."""
  root = tfds_adbench.resolve_tfds_dir(tfds_dir)
  out = []
  for name, (shape, classes) in sorted(images_lib.TFDS_IMAGE_SETS.items()):
    prepared = any(root.glob(f"{name}/**/dataset_info.json"))
    shown = f"tfds:{name}/<k>" if name != "mnist_corrupted" else f"tfds:{name}/<corruption>/<k>"
    status = READY + " (downloaded)" if prepared else NOT_DOWNLOADED
    out.append(_row(shown, f"tfds, {classes} classes", None, "x".join(map(str, shape)),
                    status=status))
  try:
    x, y = images_lib.load_digits_images()
    per_class = np.bincount(y)
    status = (f"{READY}; class 0 task: {per_class[0]} normals + "
              f"{round(per_class[0] * images_lib.ANOMALY_RATIO / (1 - images_lib.ANOMALY_RATIO))}"
              " anomalies")
    out.append(_row("sklearn:digits/<k>", "scikit-learn (bundled)", x.shape[0], "8x8x1",
                    status=status))
  except data_lib.DatasetError:
    out.append(_row("sklearn:digits/<k>", "scikit-learn",
                    status="needs scikit-learn: pip install scikit-learn"))
  return out


def format_table(rows: list[dict]) -> str:
  widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS}
  lines = ["| " + " | ".join(c.ljust(widths[c]) for c in COLUMNS) + " |",
           "|" + "|".join("-" * (widths[c] + 2) for c in COLUMNS) + "|"]
  for r in rows:
    lines.append("| " + " | ".join(r[c].ljust(widths[c]) for c in COLUMNS) + " |")
  return "\n".join(lines) + "\n"


def catalogue(data_dir=None, tfds_dir=None) -> list[dict]:
  rows = embedded_rows() + [synthetic_row()]
  data_dir = data_dir or os.environ.get(data_lib.adbench.ENV_DATA_DIR)
  if data_dir:
    rows += adbench_rows(data_lib.resolve_data_dir(data_dir))
  rows += tfds_adbench_rows(tfds_dir)
  rows += image_rows(tfds_dir)
  return rows


def main(argv):
  # TFDS logs "Load dataset info from ..." at INFO for every prepared set it opens.
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger("absl").setLevel(logging.WARNING)
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  rows = catalogue(_DATA_DIR.value, _TFDS_DIR.value)
  print(format_table(rows), end="")
  if not (_DATA_DIR.value or os.environ.get(data_lib.adbench.ENV_DATA_DIR)):
    print("\n(no ADBench folder: pass --data_dir=DIR or set SSADJAX_DATA_DIR)")


if __name__ == "__main__":
  app.run(main)
