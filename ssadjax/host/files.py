"""Writes that an interruption cannot leave half-done: a file is written under a temporary
name and renamed over its target; a directory is built beside its target and swapped in.
In a multi-process run only the main process writes files.
"""

import contextlib
import io
import os
import pathlib
import shutil

import numpy as np

from ssadjax.program import parallel


def atomic_write_bytes(path, payload: bytes) -> None:
  """Temporary file + rename; only the main process writes in a multi-process run."""
  if not parallel.is_main_process():
    return
  path = pathlib.Path(path)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_bytes(payload)
  os.replace(tmp, path)


def atomic_write_text(path, text: str) -> None:
  atomic_write_bytes(path, text.encode())


def atomic_write_npz(path, **arrays) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  atomic_write_bytes(path, buffer.getvalue())


@contextlib.contextmanager
def replaced_directory(path, *, marker: str, what: str):
  """Yields an empty directory beside `path` to write into; when the block ends without
  an error it takes the place of `path`, otherwise it is removed and `path` is untouched.

  An existing `path` is replaced only if it holds `marker` (a file that what we write
  also holds) or is empty, so that a wrong path never deletes a user's files.
  """
  path = pathlib.Path(path).absolute()
  if path.exists() and not (path.is_dir() and ((path / marker).exists()
                                               or not any(path.iterdir()))):
    raise FileExistsError(f"{path} exists and is not a saved {what}; choose a new path or "
                          "remove it first")
  path.parent.mkdir(parents=True, exist_ok=True)
  staging = path.with_name(f".{path.name}.writing-{os.getpid()}")
  shutil.rmtree(staging, ignore_errors=True)
  staging.mkdir()
  try:
    yield staging
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  previous = path.with_name(f".{path.name}.previous-{os.getpid()}")
  if path.exists():
    os.replace(path, previous)
  os.replace(staging, path)
  shutil.rmtree(previous, ignore_errors=True)
