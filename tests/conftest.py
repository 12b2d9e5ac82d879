"""Shared pytest fixtures."""

import os
import pathlib
import tempfile

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_ADBENCH_DIR = REPO_ROOT.parent / "shared" / "data" / "adbench"


def pytest_configure(config):
  """One JAX persistent compilation cache per test run, shared by the xdist workers and
  by the command-line subprocesses the tests start (they read SSADJAX_COMPILATION_CACHE):
  many tests compile the same programs, and a program compiled once is loaded in ~0.1 s.
  CI points SSADJAX_COMPILATION_CACHE at a fresh folder; a local run gets its own under
  the temp dir, so results never depend on what earlier runs left."""
  del config
  run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
  cache = os.environ.get("SSADJAX_COMPILATION_CACHE") or os.path.join(
      tempfile.gettempdir(), f"ssadjax-pytest-jax-cache-{run_id}")
  if cache.lower() in ("off", "none", "false", "0"):  # as ssadjax.host.compilation_cache
    return  # the user switched the cache off: no folder named 'off'
  os.environ["SSADJAX_COMPILATION_CACHE"] = cache
  import jax
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


@pytest.fixture(autouse=True)
def _bounded_memory_mappings():
  """A pytest worker runs hundreds of tests, each compiling programs that JAX keeps
  alive; past vm.max_map_count regions XLA:CPU segfaults (ssadjax.host.program_cache).
  The library's own valve acts at half the cap, inside a compile; releasing earlier,
  between tests, keeps it from firing in the middle of a test that counts compiles."""
  from ssadjax.host import program_cache
  program_cache.release_if_near_mapping_limit(share=0.3)
  yield


@pytest.fixture
def without_jax_cache():
  """JAX's persistent compilation cache off for one test (and back on after it):
  the executable cache stores only programs this process really compiled (a program JAX
  loaded from its persistent cache does not re-serialise whole on XLA:CPU), and the
  suite's shared cache may already hold a test's programs."""
  import jax
  from jax.experimental.compilation_cache import compilation_cache
  directory = jax.config.jax_compilation_cache_dir
  jax.config.update("jax_compilation_cache_dir", None)
  compilation_cache.reset_cache()
  yield
  jax.config.update("jax_compilation_cache_dir", directory)
  compilation_cache.reset_cache()


@pytest.fixture(scope="session")
def adbench_dir() -> pathlib.Path:
  """The ADBench data directory ($SSADJAX_DATA_DIR, else ../shared/data/adbench).

  Skips the test when it is absent, or fails it when SSADJAX_REQUIRE_DATA=1 (CI).
  """
  path = pathlib.Path(os.environ.get("SSADJAX_DATA_DIR") or DEFAULT_ADBENCH_DIR)
  if not path.is_dir():
    reason = f"ADBench data not found at {path}; set SSADJAX_DATA_DIR"
    if os.environ.get("SSADJAX_REQUIRE_DATA") == "1":
      pytest.fail(f"{reason} (SSADJAX_REQUIRE_DATA=1 requires it)")
    pytest.skip(reason)
  return path
