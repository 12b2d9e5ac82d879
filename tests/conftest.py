"""Shared pytest fixtures."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_ADBENCH_DIR = REPO_ROOT.parent / "shared" / "data" / "adbench"


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
