"""Start-up stays light: `import ssadjax`, the engine and `--help` load none of the heavy
optional modules (scikit-learn alone took 2.6 s of a 5 s start on a busy machine)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
HEAVY = ("sklearn", "matplotlib", "orbax", "tensorflow_datasets", "tensorflow")


STATEMENTS = [
    "import ssadjax",
    "import ssadjax.engine",
    "import ssadjax.estimators",
    "from ssadjax import DeepSAD; DeepSAD(num_epochs=1).get_params()",
]


def test_import_loads_no_heavy_module():
  """One fresh process runs the statements in turn and lists what each one added."""
  code = "import json, sys\nloaded = {}\n" + "".join(
      f"{statement}\nloaded[{statement!r}] = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
      for statement in STATEMENTS) + "print(json.dumps(loaded))"
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
  assert out.returncode == 0, out.stderr[-2000:]
  loaded = json.loads(out.stdout.strip().splitlines()[-1])
  assert loaded == {statement: [] for statement in STATEMENTS}


def test_lazy_names_resolve():
  import ssadjax
  from ssadjax import estimators
  assert ssadjax.DeepSAD is estimators.DeepSAD and "CLAD" in dir(ssadjax)
  with pytest.raises(AttributeError, match="no attribute 'DeepSADD'"):
    ssadjax.DeepSADD  # noqa: B018


def test_cli_help_imports_no_heavy_module():
  """`-X importtime` lists every module the process imported, on stderr."""
  out = subprocess.run([sys.executable, "-X", "importtime", "-m", "experiments.main", "--help"],
                       cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
  modules = {line.split("|")[-1].strip().split(".")[0]
             for line in out.stderr.splitlines() if line.startswith("import time:")}
  assert "absl" in modules, out.stderr[-2000:]  # the listing is there
  assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
