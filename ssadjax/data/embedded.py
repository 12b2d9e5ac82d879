"""Data sets shipped inside the package (numpy only): `embedded:optdigits`.

A small real data set so that the quick start runs on real data without any download.
How it is made: experiments/embedded_data.py (regenerates it byte for byte); where it
comes from and under which licence: ssadjax/data/files/SOURCE.md.
"""

from __future__ import annotations

import pathlib

import numpy as np

PREFIX = "embedded:"
# name -> (file under ssadjax/data/files, one line for catalogues and --help)
FILES = {
    "optdigits": ("optdigits.npz",
                  "UCI optdigits (scikit-learn's copy), ODDS/ADBench 26_optdigits recipe: "
                  "digit 0 = anomaly"),
}
NAMES = tuple(PREFIX + k for k in FILES)
DEFAULT = PREFIX + "optdigits"


def is_embedded_name(name: str) -> bool:
  return str(name).startswith(PREFIX)


def path(key: str) -> pathlib.Path:
  return pathlib.Path(__file__).with_name("files") / FILES[key][0]


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
  """X float32 [n, d] and y int32 [n] of an `embedded:<key>` name, validated like any file."""
  from ssadjax.data.adbench import DatasetError, load_npz
  key = name[len(PREFIX):]
  if key not in FILES:
    raise DatasetError(f"Unknown embedded dataset {name!r}; available: {', '.join(NAMES)}.")
  file = path(key)
  return load_npz(file.name, file.parent)
