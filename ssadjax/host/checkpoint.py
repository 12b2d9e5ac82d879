"""Orbax checkpoint helpers: one manager per training run, saved between chunks.

orbax is imported by the functions that use it, not at import time: it costs about a
quarter of a second and most processes (a detector's fit, `--help`) never checkpoint.
"""

from __future__ import annotations

import pathlib

import jax


def make_manager(directory, *, max_to_keep: int = 2) -> "ocp.CheckpointManager":
  import orbax.checkpoint as ocp
  directory = pathlib.Path(directory).absolute()
  return ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))


def save(manager: "ocp.CheckpointManager", step: int, state) -> None:
  import orbax.checkpoint as ocp
  manager.save(step, args=ocp.args.StandardSave(state))


def restore_latest(manager: "ocp.CheckpointManager", like):
  """(step, state) of the latest checkpoint restored onto the structure, dtypes and
  shardings of `like`, or (None, None) when there is none."""
  import orbax.checkpoint as ocp
  step = manager.latest_step()
  if step is None:
    return None, None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  try:
    return step, manager.restore(step, args=ocp.args.StandardRestore(abstract))
  except ValueError as e:
    # Another ssadjax version (its training state had other fields or shapes) wrote it.
    reason = " ".join(str(e).split()).split(" Truncating")[0][:200]
    raise ValueError(
        f"the checkpoint at {manager.directory}/{step} does not match this run's training "
        f"state ({reason}); it was written by another ssadjax version: resume it with "
        f"that version, or delete {manager.directory} to train from scratch") from e
