"""Compiled programs kept for reuse: in this process (`compiled`), and on disk, found by
what ssadjax knows about them, not by their HLO.

JAX's persistent compilation cache is keyed by the lowered program, so a warm start
still traces and lowers every program (Flax modules, optax, nested scans) before it can
look the executable up; on a loaded 2-core machine that tracing is most of a warm run.
This cache is keyed instead by the engine's program key (the experiment's resolved
method config, the argument shapes and dtypes, the device layout) together with
everything else that could change the program: the ssadjax source files, the jax and
jaxlib versions, the JAX options that change tracing, XLA_FLAGS and the devices. A hit
deserialises the executable and skips tracing altogether.

Off unless a directory is given (env `SSADJAX_EXECUTABLE_CACHE` or `set_directory`);
experiments/main.py turns it on next to the compilation cache. Only programs whose key
is a config string (given by the experiment runner) are stored, only in single-process
runs. Any failure to read or write falls back to compiling.
"""

import functools
import gc
import hashlib
import logging
import os
import pathlib
import pickle
import time
from typing import Any, Callable

import jax
import numpy as np

log = logging.getLogger(__name__)

_directory: str | None = None
_jax_cache_hits = 0


def _count_jax_cache_hits(event: str, **kwargs) -> None:
  global _jax_cache_hits
  if event == "/jax/compilation_cache/cache_hits":
    _jax_cache_hits += 1


jax.monitoring.register_event_listener(_count_jax_cache_hits)


def jax_cache_hits() -> int:
  """How many programs this process took from JAX's persistent compilation cache. Such
  executables must not be stored here: serialising one that was itself deserialised
  drops kernels on XLA:CPU (jax 0.10.2), and a later process that loads it fails at run
  time with `NOT_FOUND: Function <fusion> not found`."""
  return _jax_cache_hits


def set_directory(path: str | None) -> None:
  global _directory
  _directory = path


def directory() -> pathlib.Path | None:
  path = _directory or os.environ.get("SSADJAX_EXECUTABLE_CACHE", "")
  if not path or jax.process_count() > 1:
    return None
  return pathlib.Path(path)


_PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[1]  # ssadjax/


def _source_files() -> list[pathlib.Path]:
  """Every source file of the package: a change to any of them (a method, a model, the
  engine) may change a program, so it invalidates every stored executable."""
  return sorted(_PACKAGE_ROOT.rglob("*.py"))


@functools.lru_cache(maxsize=1)
def _environment_digest() -> str:
  h = hashlib.sha256()
  for path in _source_files():
    h.update(str(path.relative_to(_PACKAGE_ROOT)).encode())
    h.update(path.read_bytes())
  import jaxlib
  h.update(f"{jax.__version__} {jaxlib.__version__}".encode())
  return h.hexdigest()


def _digest(key) -> str:
  h = hashlib.sha256(_environment_digest().encode())
  options = ("jax_enable_x64", "jax_default_prng_impl", "jax_threefry_partitionable",
             "jax_default_matmul_precision", "jax_numpy_rank_promotion")
  h.update(repr([(o, getattr(jax.config, o, None)) for o in options]).encode())
  h.update(os.environ.get("XLA_FLAGS", "").encode())
  h.update(repr([(d.platform, d.device_kind, d.id) for d in jax.devices()]).encode())
  h.update(repr(key).encode())
  return h.hexdigest()


def load(key):
  """The stored executable for `key`, or None."""
  root = directory()
  if root is None:
    return None
  path = root / _digest(key)
  if not path.exists():
    return None
  try:
    from jax.experimental import serialize_executable
    payload, in_tree, out_tree = pickle.loads(path.read_bytes())
    return serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
  except Exception as e:  # a stale or truncated entry: compile instead
    log.warning("ignoring executable cache entry %s: %s", path.name, e)
    return None


def store(key, compiled) -> None:
  root = directory()
  if root is None:
    return
  try:
    from jax.experimental import serialize_executable
    blob = pickle.dumps(serialize_executable.serialize(compiled))
    root.mkdir(parents=True, exist_ok=True)
    path = root / _digest(key)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)
  except Exception as e:
    log.warning("could not store a compiled program: %s", e)


# Compiled programs kept for reuse within the process: the training program (its first
# call initialises, every call trains one chunk, with `fit_and_score` the last call also
# scores) and the scoring program of `score`.
#
# What triggers a compile: a new (program key, program kind, static lengths, argument
# shapes/dtypes, layout). The program key is the `program_key` given to fit/score (the
# experiment runner passes its resolved method config, so cells, seed groups and repeated
# runs with the same config and shapes share programs although every run builds a new
# Method object), else the Method object itself (the same detector refitted). Seeds are
# a runtime argument, the training program has one fixed chunk length (the last partial
# chunk skips slots with lax.cond), the start epoch comes from `state.step`, and whether
# a call initialises or scores is a runtime flag: none of them recompiles. A program not
# found here is looked up, for keys given by the runner, on disk (above: no tracing at all
# on a hit), then in JAX's persistent compilation cache when one is configured
# (experiments/main.py turns it on).
_PROGRAMS: dict = {}
_MAX_PROGRAMS = 128
program_stats = {"hits": 0, "compiles": 0, "loads": 0}


def avals_key(*trees):
  leaves, treedef = jax.tree.flatten(trees)
  def one(a):
    shape = a.shape if hasattr(a, "shape") else np.shape(a)
    return tuple(shape), str(getattr(a, "dtype", type(a)))
  return treedef, tuple(one(a) for a in leaves)


class _Same:
  """Hashes and compares by identity; holds the object so that its id stays unique."""

  def __init__(self, obj):
    self.obj = obj

  def __hash__(self):
    return id(self.obj)

  def __eq__(self, other):
    return isinstance(other, _Same) and other.obj is self.obj


def program_owner(method, program_key):
  return _Same(method) if program_key is None else program_key


def layout_key(layout):
  if layout is None:
    return None
  mesh = layout.mesh
  return (mesh.axis_names, mesh.devices.shape, tuple(d.id for d in mesh.devices.flat))


# `compile_effort` of engine.fit / fit_and_score / score: XLA options per program.
COMPILE_OPTIONS = {"optimized": {}, "fast": {"xla_backend_optimization_level": 0}}


def compiled(key, lower: Callable[[], Any], effort: str = "optimized"):
  """The compiled program for `key`, from `lower().compile()` on a miss; returns
  (program, seconds spent compiling here)."""
  options = COMPILE_OPTIONS[effort]
  if options:
    key = (*key, effort)
  program = _PROGRAMS.get(key)
  if program is not None:
    program_stats["hits"] += 1
    _PROGRAMS[key] = _PROGRAMS.pop(key)  # most recently used last
    return program, 0.0
  t = time.perf_counter()
  # Keys that start with a config string (the experiment runner's) mean the same program
  # in every process: they may also be kept on disk, skipping tracing (program_cache).
  stable = isinstance(key[0][0], str)
  program = load(key) if stable else None
  if program is None:
    hits_before = jax_cache_hits()
    program = lower().compile(options or None)
    program_stats["compiles"] += 1
    # An executable that JAX loaded from its own persistent cache does not re-serialise
    # whole on XLA:CPU (a later process fails with "Function ... not found"): only
    # programs really compiled here are stored.
    if stable and jax_cache_hits() == hits_before:
      store(key, program)
  else:
    program_stats["loads"] += 1
  while len(_PROGRAMS) >= _MAX_PROGRAMS:
    _PROGRAMS.pop(next(iter(_PROGRAMS)))
  release_if_near_mapping_limit()
  _PROGRAMS[key] = program
  return program, time.perf_counter() - t


def clear() -> None:
  _PROGRAMS.clear()


# XLA:CPU maps each compiled executable's code into memory regions of its own (a training
# program of ours takes hundreds to a few thousand), and JAX's own caches keep every
# executable alive after its last user drops it. Linux caps the regions of a process
# (vm.max_map_count, 65530 by default); past the cap the next compile's mmap fails and XLA
# segfaults, killing the process without a Python error. A long process that compiles
# many programs (our test suite under one pytest worker, a notebook fitting many
# detectors) reaches it after a few hundred programs, so past a share of the cap the
# kept programs and JAX's caches are dropped: a later use recompiles (or loads from the
# persistent caches) instead of crashing.
_MAPPING_SHARE = 0.5


def _mapping_limit() -> int | None:
  try:
    return int(pathlib.Path("/proc/sys/vm/max_map_count").read_text())
  except (OSError, ValueError):  # not Linux: no such cap to watch
    return None


def mapping_count() -> int | None:
  """How many memory regions this process has mapped (Linux), else None."""
  try:
    with open("/proc/self/maps", "rb") as f:
      return f.read().count(b"\n")
  except OSError:
    return None


def release_if_near_mapping_limit(share: float = _MAPPING_SHARE) -> bool:
  """Drops the kept programs and JAX's caches when this process maps more than `share`
  of the kernel's cap on memory regions; True when it did."""
  limit, count = _mapping_limit(), mapping_count()
  if limit is None or count is None or count <= share * limit:
    return False
  clear()
  jax.clear_caches()
  gc.collect()
  log.info("%d of at most %d memory regions mapped: dropped the kept compiled programs "
           "(%d now)", count, limit, mapping_count() or 0)
  return True
