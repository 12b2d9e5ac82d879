"""Meshes, shardings and multi-host start-up.

One mesh with axes ('replica', 'data'). Training batches are sharded over 'data' (so
BatchNorm statistics of a global-view jit are global: synced BN); the seeds of an
experiment, which the engine vmaps, are spread over 'replica', so a pod slice trains
many seeds at once. Parameters, BatchNorm statistics and optimizer state are replicated
over 'data'. The training pool itself is replicated too: batches are gathered from it
in-graph by random index, and ADBench-sized data fits on every device.
"""

import dataclasses
import logging
import os

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Layout:
  """The mesh and the shardings the engine needs."""
  mesh: Mesh

  @property
  def data_size(self) -> int:
    return self.mesh.shape["data"]

  @property
  def replica_size(self) -> int:
    return self.mesh.shape["replica"]

  @property
  def per_seed(self) -> NamedSharding:
    """Arrays with a leading seed axis: seeds over 'replica', replicated over 'data'."""
    return NamedSharding(self.mesh, P("replica"))

  @property
  def batch(self) -> NamedSharding:
    """Constraint for one seed's batch inside vmap: rows over 'data' (vmap's
    spmd_axis_name adds 'replica' for the seed axis)."""
    return NamedSharding(self.mesh, P("data"))

  def put_per_seed(self, tree):
    """Host arrays with a leading seed axis -> global arrays laid out as `per_seed`."""
    return jax.tree.map(lambda a: global_array(self.per_seed, np.asarray(a)), tree)

  def check_batch(self, batch: dict) -> None:
    for name, leaf in batch.items():
      if leaf.shape[0] % self.data_size:
        raise ValueError(
            f"batch field {name!r} has {leaf.shape[0]} rows, not divisible by the "
            f"{self.data_size} devices of the 'data' axis (parallel.data); choose a batch "
            "size that is a multiple of it")

  def check_seeds(self, num_seeds: int) -> None:
    if num_seeds % self.replica_size:
      raise ValueError(f"{num_seeds} seeds cannot be spread evenly over the "
                       f"{self.replica_size} devices of the 'replica' axis (parallel.replica)")


def make_layout(data: int | None = None, replica: int = 1) -> Layout:
  """A ('replica', 'data') mesh over the first replica*data devices; `data=None` uses all
  devices not taken by 'replica'."""
  devices = jax.devices()
  if replica < 1:
    raise ValueError(f"parallel.replica={replica} must be >= 1")
  if data is None:
    data = len(devices) // replica
  if data < 1 or data * replica > len(devices):
    raise ValueError(f"parallel.data={data} x parallel.replica={replica} needs "
                     f"{data * replica} devices, but {len(devices)} are available "
                     f"({jax.process_count()} processes)")
  grid = np.asarray(devices[: data * replica]).reshape(replica, data)
  return Layout(Mesh(grid, ("replica", "data"), axis_types=(AxisType.Auto, AxisType.Auto)))


def initialize_distributed(cfg) -> None:
  """`jax.distributed.initialize` from config or the environment.

  `cfg.distributed`: 'off' (single process), 'auto' (initialise when the environment
  says this is one process of several: SLURM, TPU pods and the JAX_COORDINATOR_ADDRESS
  variable are detected by JAX itself), 'on' (always, with the given or detected values).
  """
  mode = cfg.distributed
  if mode not in ("off", "auto", "on"):
    raise ValueError(f"parallel.distributed={mode!r}; expected off | auto | on")
  if mode == "off":
    return
  explicit = bool(cfg.coordinator_address)
  in_cluster = explicit or any(v in os.environ for v in (
      "JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "TPU_WORKER_HOSTNAMES",
      "MEGASCALE_COORDINATOR_ADDRESS"))
  if mode == "auto" and not in_cluster:
    return
  kwargs = {}
  if explicit:
    kwargs = dict(coordinator_address=cfg.coordinator_address,
                  num_processes=cfg.num_processes, process_id=cfg.process_id)
  jax.distributed.initialize(**kwargs)
  log.info("process %d of %d, %d local / %d global devices", jax.process_index(),
           jax.process_count(), jax.local_device_count(), jax.device_count())


def global_array(sharding: NamedSharding, host_array: np.ndarray):
  """A global jax.Array from the host copy that every process holds (the training pool
  and test split are rebuilt deterministically from the seed on every process)."""
  if jax.process_count() == 1:
    return jax.device_put(host_array, sharding)
  # Each process contributes the slice its addressable devices own.
  return jax.make_array_from_callback(host_array.shape, sharding, lambda idx: host_array[idx])


def is_main_process() -> bool:
  return jax.process_index() == 0
