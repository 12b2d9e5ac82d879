"""The command line a new user meets: `python -m experiments.main`, run as a subprocess.

Every user mistake must end in one `error: ...` line on stderr, exit status 2, no
traceback, and nothing created on disk; --help must exit 0 and list what a user needs.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from experiments import grid
from ssadjax import runconfig
from ssadjax.data import embedded
from tests.conftest import REPO_ROOT

DEFAULT = "experiments/configs/default.py"
ADBENCH = "experiments/configs/adbench.py"


def _env(home: pathlib.Path, **extra) -> dict:
  env = {"PYTHONPATH": str(REPO_ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
         "HOME": str(home), "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false",
         "OMP_NUM_THREADS": "1"}
  env.update(extra)
  return env


def _cli(args, home, timeout=300, **env):
  return subprocess.run([sys.executable, "-m", "experiments.main", *args], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=timeout,
                        env=_env(home, **env))


def _tree(root: pathlib.Path) -> list[str]:
  return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory):
  """A data folder in ADBench's layout holding one good and several broken files."""
  root = tmp_path_factory.mktemp("adbench")
  (root / "Classical").mkdir()
  rng = np.random.default_rng(0)
  x = rng.normal(size=(60, 3))
  y = np.r_[np.ones(6), np.zeros(54)].astype(np.int64)
  np.savez(root / "Classical" / "1_good.npz", X=x, y=y)
  x_nan = x.copy()
  x_nan[3, 1] = np.nan
  np.savez(root / "Classical" / "2_nan.npz", X=x_nan, y=y)
  np.savez(root / "Classical" / "3_three.npz", X=x, y=np.r_[y[:-1], 2])
  (root / "Classical" / "4_corrupt.npz").write_bytes(b"this is not a zip archive")
  return root


def _other_config_workdir(root: pathlib.Path) -> pathlib.Path:
  """A workdir holding the config.json of another experiment (here: another method)."""
  workdir = root / "taken"
  workdir.mkdir()
  from experiments.configs import default
  config = default.get_config()
  config.method = "devnet"
  (workdir / "config.json").write_text(grid.config_json(config))
  return workdir


# (name, arguments after --config / --workdir, expected part of the error line)
CASES = [
    ("misspelt field", [DEFAULT, "--config.num_seed=3"],
     "--config.num_seed is not a config field; did you mean --config.num_seeds?"),
    ("unknown method", [DEFAULT, "--config.method=deepsadd"],
     "method='deepsadd' is not available; use one of"),
    ("unknown dataset", [DEFAULT, "--config.dataset=nosuch"],
     "Dataset 'nosuch' not found"),
    ("deepsvdd + anoonly", [DEFAULT, "--config.method=deepsvdd"],
     "deepsvdd trains without labels, so anomaly_only=True has no meaning"),
    ("funad + anoonly", [ADBENCH, "--config.method=funad", "--config.anomaly_only=True"],
     "funad is fully unsupervised and has no AnoOnly variant"),
    ("clad + anoonly", [ADBENCH, "--config.method=clad", "--config.anomaly_only=True"],
     "clad has no AnoOnly variant"),
    ("negative la", [DEFAULT, "--config.la=-1"], "la as a count must be >= 0, got -1"),
    ("ratio above 1", [DEFAULT, "--config.la=1.5"], "la as a ratio must be in [0, 1], got 1.5"),
    ("too many labels", [DEFAULT, "--config.la=5000"],
     "la=5000 labelled anomalies requested but the training split has only"),
    ("nan features", [DEFAULT, "--config.dataset=2_nan"],
     "2_nan.npz: X has 1 non-finite value(s) (NaN or inf); impute"),
    ("non-binary labels", [DEFAULT, "--config.dataset=Classical/3_three"],
     "y must be binary (0 = normal, 1 = anomaly), found distinct values [0, 1, 2]"),
    ("missing file", [DEFAULT, "--config.dataset=Classical/9_missing"],
     "Dataset 'Classical/9_missing' not found"),
    ("corrupt npz", [DEFAULT, "--config.dataset=4_corrupt"],
     "4_corrupt.npz: not an .npz archive"),
    ("bad grid", [DEFAULT, "--config.grid=anomaly_only"],
     "grid entry 'anomaly_only' is not of the form key=v1|v2"),
    ("grid key", [DEFAULT, "--config.grid=nosuch=1|2"], "grid key 'nosuch' is not a config field"),
    ("bad value type", [DEFAULT, "--config.num_seeds=abc"],
     "flag --config.num_seeds=abc: invalid literal for int()"),
    ("missing config file", ["experiments/configs/nope.py"],
     "config file 'experiments/configs/nope.py' does not exist"),
    ("zero seeds", [DEFAULT, "--config.num_seeds=0"], "num_seeds=0 must be >= 1"),
    ("bad learning rate", [DEFAULT, "--config.deepsad.learning_rate=0"],
     "deepsad.learning_rate=0.0 must be > 0"),
]


@pytest.mark.parametrize("name,args,expected", CASES, ids=[c[0] for c in CASES])
def test_user_mistake_is_one_line(tmp_path, bad_data, name, args, expected):
  home = tmp_path / "home"
  home.mkdir()
  workdir = tmp_path / "run"
  before = _tree(tmp_path)
  config, *overrides = args
  out = _cli([f"--config={config}", *overrides, f"--workdir={workdir}"], home,
             SSADJAX_DATA_DIR=str(bad_data))
  assert out.returncode == 2, (out.stdout, out.stderr)
  assert "Traceback" not in out.stderr
  assert out.stdout == ""
  assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
  assert expected in out.stderr, out.stderr
  assert "\\n" not in out.stderr and "\\'" not in out.stderr  # no escaped repr text
  assert _tree(tmp_path) == before  # no workdir, no cache, nothing


def test_workdir_of_another_experiment(tmp_path):
  workdir = _other_config_workdir(tmp_path)
  before = _tree(tmp_path)
  out = _cli([f"--config={DEFAULT}", f"--workdir={workdir}"], tmp_path)
  assert out.returncode == 2 and "Traceback" not in out.stderr
  assert out.stderr == (f"error: workdir {workdir} already holds a run with a different "
                        "config (differs in: method); use a new --workdir or delete it\n")
  assert _tree(tmp_path) == before


def test_usage_mistakes(tmp_path):
  """Flags themselves: no --workdir, a stray argument, an unknown flag."""
  for args, expected in (
      ([f"--config={DEFAULT}"], "error: missing --workdir=DIR"),
      ([f"--config={DEFAULT}", f"--workdir={tmp_path / 'w'}", "extra"],
       "error: unexpected arguments ['extra']"),
      ([f"--config={DEFAULT}", f"--wrokdir={tmp_path / 'w'}"],
       "Unknown command line flag 'wrokdir'"),
      ([f"--workdir={tmp_path / 'w'}"], "error: missing --config=FILE")):
    out = _cli(args, tmp_path)
    assert out.returncode == 2, (args, out.stderr)
    assert expected in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert "Traceback" not in out.stderr
  assert not (tmp_path / "w").exists()


def test_debug_shows_the_traceback(tmp_path):
  for args, env in ((["--debug"], {}), ([], {"SSADJAX_DEBUG": "1"})):
    out = _cli([f"--config={DEFAULT}", "--config.method=deepsadd",
                f"--workdir={tmp_path / 'w'}", *args], tmp_path, **env)
    assert out.returncode != 0
    assert "Traceback" in out.stderr and "method='deepsadd'" in out.stderr


def test_errors_before_jax_import(tmp_path, bad_data):
  """The checks that need no JAX run before it is imported (fast failures)."""
  probe = subprocess.run([sys.executable, "-c", "import sys, ssadjax.runconfig; "
                          "print('jax' in sys.modules)"], cwd=REPO_ROOT, capture_output=True,
                         text=True, env=_env(tmp_path), check=True)
  if probe.stdout.strip() == "True":
    pytest.skip("`import ssadjax` loads JAX in this checkout (eager estimators import)")
  code = ("import runpy, sys\n"
          "sys.argv = ['main', '--config=experiments/configs/default.py', "
          f"'--config.dataset=2_nan', '--workdir={tmp_path / 'w'}']\n"
          "try:\n  runpy.run_module('experiments.main', run_name='__main__')\n"
          "except SystemExit as e:\n  print(e.code, 'jax' in sys.modules)\n")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                       text=True, env=_env(tmp_path, SSADJAX_DATA_DIR=str(bad_data)))
  assert out.stdout.split() == ["2", "False"], out.stderr


def test_help(tmp_path):
  out = _cli(["--help"], tmp_path)
  assert out.returncode == 0 and out.stderr == ""
  text = out.stdout
  for config in sorted((REPO_ROOT / "experiments" / "configs").glob("*.py")):
    if config.name not in ("__init__.py", "common.py"):
      assert f"  {config.name} " in text
  assert "Quick start: Deep SAD vs Deep SAD + AnoOnly" in text  # default.py's docstring
  for method in runconfig.METHODS:
    assert method in text
  for name in ("embedded:optdigits", "synthetic", "Classical/6_cardio",
               "CV_by_ResNet18/MVTec-AD_bottle", "tfds:mnist/k", "sklearn:digits/k",
               "python -m experiments.datasets", "ssadjax/config.py"):
    assert name in text, name
  from experiments.configs import common
  defaults = common.get_config()
  for field in ("method", "anomaly_only", "la", "num_seeds", "seed"):
    assert f"  {field}={defaults[field]!r} " in text, field
  assert not list(tmp_path.iterdir())


def test_la_float_is_a_ratio_int_a_count_through_flags(tmp_path):
  """--config.la=1.0 labels every train anomaly, --config.la=5 five (ADBench)."""
  code = ("import sys\nfrom experiments import main\nfrom ssadjax import runconfig\n"
          "config, _ = main._parse(sys.argv)\n"
          "s = runconfig.prepare_splits(config, [1])[0]\n"
          "print(repr(config.la), s.num_labelled, int(s.train_labels.sum()))\n")
  for flag, expect_all, count in (("--config.la=1.0", True, None), ("--config.la=5", False, 5)):
    out = subprocess.run([sys.executable, "-c", code, f"--config={DEFAULT}", flag,
                          f"--workdir={tmp_path / 'w'}"], cwd=REPO_ROOT,
                         capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert out.returncode == 0, out.stderr
    shown, labelled, anomalies = out.stdout.split()
    assert shown == flag.split("=")[1]
    assert int(labelled) == (int(anomalies) if expect_all else count)
    assert int(anomalies) > 5


def test_la_float_is_a_ratio_int_a_count_through_the_grid():
  from experiments.configs import default
  config = default.get_config()
  config.grid = "la=1.0|5|0.1"
  got = {}
  for overrides, cell in grid.cells(config):
    split = runconfig.prepare_splits(cell, [1])[0]
    got[repr(cell.la)] = (split.num_labelled, int(split.train_labels.sum()))
  n = got["1.0"][1]
  assert got["1.0"] == (n, n)  # every train anomaly, not one
  assert got["5"][0] == 5
  assert got["0.1"][0] == int(np.ceil(0.1 * n))


def test_quick_start_output_shape(tmp_path):
  """A single run prints the grid's table, writes results.csv and report.md, and ends
  with the compile statistics and where the results are."""
  workdir = tmp_path / "run"
  out = _cli([f"--config={DEFAULT}", "--config.grid=", "--config.num_seeds=1",
              "--config.deepsad.num_epochs=2", "--config.deepsad.hidden_dims=(8,)",
              "--config.deepsad.rep_dim=4", f"--workdir={workdir}"], tmp_path, timeout=600,
             SSADJAX_COMPILATION_CACHE="")
  assert out.returncode == 0, out.stderr
  lines = out.stdout.splitlines()
  assert lines[0].startswith("| method | dataset | la | AUROC")
  assert lines[2].startswith(f"| deepsad | {embedded.DEFAULT} | 0.1 | ")
  assert lines[-2].startswith("programs: ") and " compiled" in lines[-2]
  assert lines[-1].startswith(f"results: {workdir / 'results.csv'}")
  rows = (workdir / "results.csv").read_text().splitlines()
  assert rows[0].startswith("method,anomaly_only,dataset,la,seed,auroc") and len(rows) == 2
  assert (workdir / "report.md").read_text().splitlines()[2] == lines[2]
  programs = json.loads((workdir / "results.json").read_text())["programs"]
  assert programs["compiled"] >= 1  # no persistent cache: everything compiled here
