"""Compiled programs on disk, found by what ssadjax knows about them, not by their HLO.

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
import hashlib
import logging
import os
import pathlib
import pickle

import jax

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


@functools.lru_cache(maxsize=1)
def _environment_digest() -> str:
  h = hashlib.sha256()
  root = pathlib.Path(__file__).parent
  for path in sorted(root.rglob("*.py")):
    h.update(str(path.relative_to(root)).encode())
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
