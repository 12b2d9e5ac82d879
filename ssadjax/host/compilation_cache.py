"""JAX's persistent compilation cache, on by default for the detectors and the command line.

A fresh process otherwise recompiles every program (init, training chunk, scoring) of a
fit; with the cache a second process loads them from disk (figures in BUILD_NOTES.md).

    SSADJAX_COMPILATION_CACHE=DIR     keep the cache in DIR (default ~/.cache/ssadjax/jax)
    SSADJAX_COMPILATION_CACHE=off     no persistent cache (an empty value too)

`enable()` is what `python -m experiments.main` calls at start; the detectors call
`enable_unless_configured()` at fit time, which leaves alone a cache directory the user
has already given JAX (`jax.config.update('jax_compilation_cache_dir', ...)` or the
`JAX_COMPILATION_CACHE_DIR` environment variable).
"""

from __future__ import annotations

import os

ENV = "SSADJAX_COMPILATION_CACHE"
DEFAULT_DIR = "~/.cache/ssadjax/jax"
_OFF = ("", "off", "none", "false", "0")


def resolve(path: str | os.PathLike | None = None) -> str | None:
  """The cache directory to use: `path` if given, else $SSADJAX_COMPILATION_CACHE, else the
  default; None when switched off (an empty value or 'off')."""
  if path is None:
    path = os.environ.get(ENV, DEFAULT_DIR)
  path = os.fspath(path)
  if path.strip().lower() in _OFF:
    return None
  return os.path.abspath(os.path.expanduser(path))


def enable(path: str | os.PathLike | None = None) -> str | None:
  """Points JAX's persistent compilation cache at `resolve(path)` and caches every
  program, however fast it compiled (JAX's default skips those under one second, which
  are most of ours). Returns the directory, or None when the cache is switched off (then
  nothing is changed)."""
  directory = resolve(path)
  if directory is None:
    return None
  import jax
  if jax.config.jax_compilation_cache_dir != directory:
    jax.config.update("jax_compilation_cache_dir", directory)
    # JAX decides once per process whether to use the cache, at the first compilation: a
    # process that compiled before this call would otherwise keep running without it.
    from jax.experimental.compilation_cache import compilation_cache
    compilation_cache.reset_cache()
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  return directory


def enable_unless_configured() -> str | None:
  """`enable()` unless JAX already has a cache directory (the user's choice wins).
  Returns the directory in use, or None."""
  import jax
  configured = jax.config.jax_compilation_cache_dir
  if configured:
    return configured
  return enable()
