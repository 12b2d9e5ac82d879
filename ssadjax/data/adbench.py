"""ADBench `.npz` files: locating, loading and validating them (numpy only).

An ADBench dataset is an `.npz` with `X` (n x d, any real dtype) and `y` (n, 0 = normal,
1 = anomaly). Names are given relative to a data directory in ADBench's own layout, e.g.
`Classical/6_cardio`, `CV_by_ResNet18/MVTec-AD_bottle`, `NLP_by_BERT/20news_3`, or as a bare
stem (`6_cardio`) that is looked up in every folder under the directory.
"""

from __future__ import annotations

import difflib
import os
import pathlib
import zipfile

import numpy as np

ENV_DATA_DIR = "SSADJAX_DATA_DIR"
MIN_ROWS = 10  # below this a 70/30 stratified split cannot hold both classes on both sides


class DatasetError(ValueError):
  """A dataset cannot be found, read, or used as asked."""


def resolve_data_dir(data_dir: str | os.PathLike | None) -> pathlib.Path:
  """Returns `data_dir` if given, else `$SSADJAX_DATA_DIR`; it must be an existing directory."""
  if data_dir is not None and str(data_dir) != "":
    source, value = "--config.data_dir", str(data_dir)
  elif os.environ.get(ENV_DATA_DIR):
    source, value = ENV_DATA_DIR, os.environ[ENV_DATA_DIR]
  else:
    raise DatasetError(
        "No ADBench data directory given: pass --config.data_dir=DIR or set the "
        f"environment variable {ENV_DATA_DIR}=DIR (a folder in ADBench's layout, e.g. "
        "holding Classical/ and CV_by_ResNet18/). The 'synthetic' dataset needs neither.")
  path = pathlib.Path(value).expanduser()
  if not path.is_dir():
    raise DatasetError(f"ADBench data directory {str(path)!r} (from {source}) does not exist "
                       "or is not a directory; point it at the folder that holds Classical/, "
                       "CV_by_ResNet18/, ...")
  return path


def _strip_npz(name: str) -> str:
  return name[:-len(".npz")] if name.endswith(".npz") else name


def _all_npz(data_dir: pathlib.Path) -> list[pathlib.Path]:
  # Recursive on purpose: a full ADBench checkout has more folders than the development
  # subset (CV_by_ViT, NLP_by_RoBERTa, ...), and we must not hard-code that list.
  return sorted(p for p in data_dir.rglob("*.npz") if p.is_file())


def _relative_name(path: pathlib.Path, data_dir: pathlib.Path) -> str:
  return _strip_npz(path.relative_to(data_dir).as_posix())


def list_datasets(data_dir: str | os.PathLike) -> list[str]:
  """Relative names (`Classical/6_cardio`, ...) of every `.npz` under `data_dir`, sorted."""
  data_dir = pathlib.Path(data_dir)
  return [_relative_name(p, data_dir) for p in _all_npz(data_dir)]


def find_dataset_file(name: str, data_dir: str | os.PathLike) -> pathlib.Path:
  """Path of dataset `name` (bare stem or folder-qualified, `.npz` optional) under `data_dir`."""
  data_dir = pathlib.Path(data_dir)
  name = _strip_npz(str(name).strip().replace("\\", "/"))
  if not name:
    raise DatasetError("Empty dataset name.")
  if "/" in name:
    # Qualified: exactly one place to look, so no search and no ambiguity.
    path = data_dir / f"{name}.npz"
    if path.is_file():
      return path
    candidates = list_datasets(data_dir)
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
  else:
    files = _all_npz(data_dir)
    matches = [p for p in files if p.stem == name]
    if len(matches) == 1:
      return matches[0]
    if len(matches) > 1:
      listed = ", ".join(_relative_name(p, data_dir) for p in matches)
      raise DatasetError(f"Dataset name {name!r} is ambiguous under {str(data_dir)!r}: it matches "
                         f"{listed}. Use the folder-qualified name.")
    # Offer both stems and qualified names so a typo in either form finds its neighbour.
    by_stem = {p.stem: _relative_name(p, data_dir) for p in files}
    close = [by_stem[s] for s in difflib.get_close_matches(name, list(by_stem), n=5, cutoff=0.5)]
  hint = f" Close names: {', '.join(close)}." if close else ""
  raise DatasetError(f"Dataset {name!r} not found under {str(data_dir)!r} "
                     f"(searched for {name}.npz).{hint}")


def load_npz(name: str, data_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """Loads and validates dataset `name`: returns X float32 [n, d] and y int32 [n] in {0, 1}."""
  path = find_dataset_file(name, data_dir)
  where = str(path)
  if not zipfile.is_zipfile(path):
    # np.load would try it as a pickle and talk about "object data".
    raise DatasetError(f"{where}: not an .npz archive (a zip holding X.npy and y.npy); the "
                       "file is damaged or in another format: download or write it again.")
  try:
    # allow_pickle=False: a data file must never be able to run code.
    with np.load(path, allow_pickle=False) as f:
      if not isinstance(f, np.lib.npyio.NpzFile):
        raise DatasetError(f"{where}: not an .npz archive.")
      missing = [k for k in ("X", "y") if k not in f.files]
      if missing:
        raise DatasetError(f"{where}: missing key(s) {missing}; found {sorted(f.files)} "
                           "(an ADBench file has 'X' and 'y').")
      x, y = f["X"], f["y"]
  except DatasetError:
    raise
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    if "allow_pickle" in str(e):
      raise DatasetError(f"{where}: holds object arrays, which only pickle can read and "
                         "pickle can run code; save X and y as numeric arrays.") from e
    raise DatasetError(f"{where}: cannot be read as an .npz archive ({e}); download or "
                       "write it again.") from e
  return validate_xy(x, y, where=where)


# Squares of larger values overflow float32 (distances, variances), so such inputs would
# silently turn into inf/NaN losses: refuse them up front.
MAX_ABS_VALUE = 1e18


def check_magnitude(x: np.ndarray, where: str) -> None:
  biggest = float(np.max(np.abs(x))) if x.size else 0.0
  if biggest > MAX_ABS_VALUE:
    raise DatasetError(f"{where}: X has values up to {biggest:.3g} in magnitude; values "
                       f"beyond {MAX_ABS_VALUE:.0e} overflow float32 arithmetic. Rescale the "
                       "data.")


def validate_x(x, *, where: str = "data", min_rows: int = MIN_ROWS) -> np.ndarray:
  """Checks a feature matrix and returns it as float32 [n, d]; `where` names the source.

  One set of rules for every entry point (files, experiments, estimators): 2-D, real and
  numeric, enough rows, finite, representable in float32 with squares that do not
  overflow, and not constant everywhere.
  """
  x = np.asarray(x)
  if x.ndim != 2:
    raise DatasetError(f"{where}: X must be 2-D (rows x features), got shape {x.shape}.")
  if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
    raise DatasetError(f"{where}: X must be numeric, got dtype {x.dtype}.")
  if np.iscomplexobj(x):
    raise DatasetError(f"{where}: X must be real, got dtype {x.dtype}.")
  if x.shape[0] == 0 or x.shape[1] == 0:
    raise DatasetError(f"{where}: X is empty (shape {x.shape}); at least {min_rows} rows and "
                       "one feature are needed.")
  if x.shape[0] < min_rows:
    raise DatasetError(f"{where}: only {x.shape[0]} rows; at least {min_rows} are needed.")
  n_bad = int(x.size - np.count_nonzero(np.isfinite(x)))
  if n_bad:
    raise DatasetError(f"{where}: X has {n_bad} non-finite value(s) (NaN or inf); impute "
                       "them or drop those rows.")
  with np.errstate(over="ignore"):
    x32 = x.astype(np.float32)
  n_over = int(x32.size - np.count_nonzero(np.isfinite(x32)))
  if n_over:
    raise DatasetError(f"{where}: {n_over} value(s) of X overflow float32.")
  check_magnitude(x32, where)
  if x32.shape[0] > 1 and np.all(x32 == x32[:1]):
    raise DatasetError(f"{where}: every feature of X is constant; nothing can be learnt.")
  return x32


def validate_xy(x: np.ndarray, y: np.ndarray, *, where: str = "data"
                ) -> tuple[np.ndarray, np.ndarray]:
  """Checks an (X, y) pair and returns it as float32 [n, d] / int32 [n]; `where` names the source."""
  x, y = np.asarray(x), np.asarray(y)
  if x.ndim != 2:
    raise DatasetError(f"{where}: X must be 2-D (rows x features), got shape {x.shape}.")
  if y.ndim != 1:
    raise DatasetError(f"{where}: y must be 1-D, got shape {y.shape}.")
  if y.shape[0] != x.shape[0]:
    raise DatasetError(f"{where}: X has {x.shape[0]} rows but y has {y.shape[0]} labels.")
  x32 = validate_x(x, where=where)
  if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
    raise DatasetError(f"{where}: y must be numeric 0/1 labels, got dtype {y.dtype}.")
  values = np.unique(y)
  if not np.all(np.isin(values, [0, 1])):
    shown = values[:10].tolist()
    more = f" (and {values.size - 10} more)" if values.size > 10 else ""
    raise DatasetError(f"{where}: y must be binary (0 = normal, 1 = anomaly), "
                       f"found distinct values {shown}{more}; map the classes to 0/1.")
  y32 = y.astype(np.int32)
  n_anomalies = int(y32.sum())
  if n_anomalies == 0:
    raise DatasetError(f"{where}: no anomalies (y is all 0).")
  if n_anomalies == y32.size:
    raise DatasetError(f"{where}: no normal rows (y is all 1).")
  return x32, y32
