"""The persistent compilation cache helper: where it points, how it is switched off, and
that a detector's fit turns it on unless JAX already has a directory."""

import os
import pathlib
import subprocess
import sys

import pytest

from ssadjax.host import compilation_cache

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value,expected", [
    (None, os.path.expanduser("~/.cache/ssadjax/jax")),
    ("/tmp/somewhere", "/tmp/somewhere"),
    ("", None), ("off", None), ("OFF", None),
])
def test_resolve(monkeypatch, value, expected):
  if value is None:
    monkeypatch.delenv(compilation_cache.ENV, raising=False)
  else:
    monkeypatch.setenv(compilation_cache.ENV, value)
  assert compilation_cache.resolve() == expected
  assert compilation_cache.resolve("~/x") == os.path.expanduser("~/x")  # an argument wins


FIT = """
import os, sys, json
import jax, numpy as np
from ssadjax import DeepSAD
if len(sys.argv) > 1:
  jax.config.update("jax_compilation_cache_dir", sys.argv[1])
x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
DeepSAD(num_epochs=1, batch_size=20).fit(x)
print(json.dumps(jax.config.jax_compilation_cache_dir))
"""


def _fit_in_process(env_value, *args):
  env = {**os.environ, "PYTHONPATH": str(REPO)}
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  env[compilation_cache.ENV] = env_value
  out = subprocess.run([sys.executable, "-c", FIT, *args], cwd=REPO, capture_output=True,
                       text=True, timeout=300, env=env)
  assert out.returncode == 0, out.stderr[-2000:]
  return out.stdout.strip().splitlines()[-1]


def test_off_changes_nothing(monkeypatch):
  import jax
  before = jax.config.jax_compilation_cache_dir
  monkeypatch.setenv(compilation_cache.ENV, "off")
  assert compilation_cache.enable() is None
  assert jax.config.jax_compilation_cache_dir == before


def test_fit_uses_the_cache_unless_the_user_configured_one(tmp_path):
  ours, users = tmp_path / "ours", tmp_path / "users"
  assert _fit_in_process(str(ours)) == f'"{ours}"'
  assert any(ours.iterdir())  # the fit's programs were written there
  assert _fit_in_process(str(ours), str(users)) == f'"{users}"'
  assert any(users.iterdir()) and len(list(ours.iterdir())) > 0
