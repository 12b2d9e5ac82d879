"""Regenerates the embedded default data set `embedded:optdigits`, byte for byte.

  python -m experiments.embedded_data           # rewrites ssadjax/data/files/optdigits.npz
  python -m experiments.embedded_data --check   # exit 1 if the committed file differs

The recipe is ODDS's `optdigits` (the one ADBench ships as 26_optdigits): digits 1-9 are
normal, digit 0 is the anomaly class, down-sampled to ADBench's anomaly rate of that file
(150 anomalies in 5216 rows, 2.88 %). The source is the test part of the UCI "Optical
Recognition of Handwritten Digits" data (1797 rows, 64 pixel counts 0..16) as bundled in
scikit-learn (`sklearn.datasets.load_digits`), so it runs offline; ADBench's file uses both
UCI parts and its own draw of zeros, so the rows differ from 26_optdigits. Provenance and
licences: ssadjax/data/files/SOURCE.md. Needs scikit-learn (the `synthetic` extra); the
library itself only reads the file.
"""

import argparse
import io
import pathlib
import sys
import zipfile

import numpy as np

# ADBench's 26_optdigits: 150 anomalies out of 5216 rows.
ADBENCH_ANOMALIES, ADBENCH_ROWS = 150, 5216
SEED = 0
# Fixed member timestamps: np.savez stamps the current time, which breaks byte identity.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def build_optdigits() -> tuple[np.ndarray, np.ndarray]:
  """X uint8 [n, 64] (pixel counts 0..16) and y uint8 [n] (1 = digit 0), in source order."""
  from sklearn.datasets import load_digits
  digits = load_digits()
  pixels, target = digits.data, digits.target
  normal = np.flatnonzero(target != 0)
  zeros = np.flatnonzero(target == 0)
  rate = ADBENCH_ANOMALIES / ADBENCH_ROWS
  n_anomalies = round(normal.size * rate / (1 - rate))
  chosen = np.random.default_rng(SEED).choice(zeros, size=n_anomalies, replace=False)
  rows = np.sort(np.concatenate([normal, chosen]))
  x = pixels[rows].astype(np.uint8)
  if not np.array_equal(x, pixels[rows]):
    raise ValueError("load_digits no longer returns integer pixel counts 0..16")
  return x, (target[rows] == 0).astype(np.uint8)


def npz_bytes(**arrays) -> bytes:
  """An .npz archive (stored, not compressed) whose bytes depend only on the arrays."""
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
    for name, array in arrays.items():
      member = io.BytesIO()
      np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
      info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
      info.external_attr = 0o644 << 16
      archive.writestr(info, member.getvalue())
  return buffer.getvalue()


def optdigits_bytes() -> bytes:
  x, y = build_optdigits()
  return npz_bytes(X=x, y=y)


def main(argv=None) -> int:
  from ssadjax.data import embedded
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true",
                      help="compare with the committed file instead of writing it")
  args = parser.parse_args(argv)
  path = pathlib.Path(embedded.path("optdigits"))
  payload = optdigits_bytes()
  if args.check:
    same = path.exists() and path.read_bytes() == payload
    print(f"{path}: {'identical' if same else 'DIFFERS from the recipe'}")
    return 0 if same else 1
  path.write_bytes(payload)
  print(f"wrote {path} ({len(payload)} bytes)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
