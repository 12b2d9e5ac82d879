"""Orbax checkpoint helpers: one manager per training run, saved between chunks."""

import pathlib

import jax
import orbax.checkpoint as ocp


def make_manager(directory, *, max_to_keep: int = 2) -> ocp.CheckpointManager:
  directory = pathlib.Path(directory).absolute()
  return ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))


def save(manager: ocp.CheckpointManager, step: int, state) -> None:
  manager.save(step, args=ocp.args.StandardSave(state))


def restore_latest(manager: ocp.CheckpointManager, like):
  """(step, state) of the latest checkpoint restored onto the structure, dtypes and
  shardings of `like`, or (None, None) when there is none."""
  step = manager.latest_step()
  if step is None:
    return None, None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  return step, manager.restore(step, args=ocp.args.StandardRestore(abstract))
