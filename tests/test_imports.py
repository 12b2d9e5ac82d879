"""Start-up stays light: `import ssadjax`, the engine and `--help` load none of the heavy
optional modules (scikit-learn alone took 2.6 s of a 5 s start on a busy machine). And the
library's boundaries hold: it never imports the application, a method factory never sees
the run config, each method's defaults live in one file named after it."""

import inspect
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
    "import ssadjax.host.engine",
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


def test_detectors_work_without_scikit_learn():
  """scikit-learn made unimportable: parameters, the not-fitted error (a ValueError and an
  AttributeError, as scikit-learn's), a fit and PyOD's outputs all work without it."""
  code = """
import sys
sys.modules["sklearn"] = None  # import sklearn now raises ImportError
import numpy as np
from ssadjax import DeepSAD
detector = DeepSAD(num_epochs=1, batch_size=64, random_state=0)
assert detector.set_params(num_epochs=2).get_params()["num_epochs"] == 2
try:
  detector.predict(np.ones((2, 3)))
except ValueError as e:
  assert isinstance(e, AttributeError) and "not fitted yet" in str(e), e
else:
  raise AssertionError("no error before fit")
x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
labels, confidence = detector.fit(x).predict(x, return_confidence=True)
assert labels.shape == confidence.shape == (40,)
assert detector.predict_proba(x, method="unify").shape == (40, 2)
print("OK")
"""
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
  assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stderr[-2000:]


# The library's layers, bottom up (docs/design.md): a module imports only its own layer and
# those below it, so each folder can be read without the ones above it.
LAYERS = {**dict.fromkeys(("losses", "metrics", "ops", "norm", "optim", "data", "hparams",
                           "config", "runconfig"), 0),
          "models": 1, "methods": 2, "program": 3, "host": 4, "estimators": 5}


def _ssadjax_imports(path):
  """(line, top-level ssadjax package) of every import in `path`, function bodies too."""
  import ast
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = ([f"{node.module}.{a.name}" for a in node.names]
               if node.module == "ssadjax" else [node.module])
    elif isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    else:
      continue
    for name in names:
      parts = name.split(".")
      if parts[0] in ("ssadjax", "experiments") and (parts[0] == "experiments" or len(parts) > 1):
        yield node.lineno, parts[0] if parts[0] == "experiments" else parts[1]


def test_library_layers_import_downward_only_and_never_the_application():
  """ssadjax/ is the library, experiments/ the application: arrows run one way only, and
  inside the library from host/ to program/ to methods/ to models/ to the pure modules."""
  root = REPO / "ssadjax"
  offenders = []
  for path in sorted(root.rglob("*.py")):
    rel = path.relative_to(root)
    own = rel.parts[0].removesuffix(".py")
    if own == "__init__":
      continue
    for line, target in _ssadjax_imports(path):
      if target == "experiments" or LAYERS[target] > LAYERS[own]:
        offenders.append(f"ssadjax/{rel}:{line} imports {target}")
  assert offenders == []
  # The check sees what it should: the grid runner (application) imports the host loop.
  assert ("experiments" not in LAYERS and
          {t for _, t in _ssadjax_imports(REPO / "experiments" / "runner.py")} >= {"host"})


def test_method_factories_never_read_the_run_config():
  """A factory gets its own hyper-parameters and the norm policy; only the registry
  (methods/__init__.py) and the AnoOnly transformation know `anomaly_only`."""
  import ast
  root = REPO / "ssadjax" / "methods"
  def names(tree):
    for node in ast.walk(tree):
      yield node, (node.attr if isinstance(node, ast.Attribute) else
                   node.value if isinstance(node, ast.Constant) else
                   node.id if isinstance(node, ast.Name) else None)

  offenders, factories = [], 0
  for path in sorted(root.glob("*.py")):
    if path.name in ("__init__.py", "anoonly.py"):
      continue
    module = ast.parse(path.read_text())
    offenders += [f"{path.name}:{node.lineno}: anomaly_only"
                  for node, name in names(module) if name == "anomaly_only"]
    for factory in ast.walk(module):
      if isinstance(factory, ast.FunctionDef) and factory.name == "make_method":
        factories += 1
        offenders += [f"{path.name}:{node.lineno}: cfg in make_method"
                      for node, name in names(factory) if name == "cfg"]
  assert factories == 7  # every method module but base's
  assert offenders == []


def test_every_method_builds_from_its_hyperparameters_and_declares_anoonly():
  """Each registry entry builds from a plain dict of its hyper-parameters (no config in
  reach), and the methods with an AnoOnly variant build through the one transformation."""
  from ssadjax import config as config_lib
  from ssadjax import methods, runconfig
  from ssadjax.methods import anoonly
  from ssadjax.norm import NormPolicy
  cfg = config_lib.get_config()
  policy = NormPolicy.from_config(cfg.norm)
  built = {}
  for name, entry in methods.REGISTRY.items():
    cfg.method = name
    hp = dict(entry.hparams(cfg))
    # CLAD needs images: an 8x8 grey image per row.
    method = entry.make(hp, policy, 64, 512, image_shape=(8, 8, 1))
    assert method.name == name
    if entry.anoonly_changes is None:
      assert name in runconfig.NO_ANOONLY or name in runconfig.UNSUPERVISED
      continue
    variant = anoonly.anomaly_only(entry.make, entry.anoonly_changes)(
        hp, policy, 64, 512, image_shape=(8, 8, 1))
    assert variant.name == name + "+anoonly"
    assert variant.loss_terms == method.loss_terms
    built[name] = entry.anoonly_changes(hp)
  assert built["devnet"]["anomaly_term"] == "linear"
  assert built["bgad"] == {"ml_warmup": False}
  assert built["deepsad"] == built["feawad"] == built["prenet"] == {}


def test_config_and_preflight_import_no_jax_and_each_default_lives_in_its_method_file():
  """The config, its per-method sections and the command line's checks load without JAX;
  a method's defaults, presets and AnoOnly declaration are in ssadjax/hparams/<method>.py
  and nowhere else (ssadjax/config.py assembles the sections)."""
  code = ("import sys\n"
          "import ssadjax.config, ssadjax.runconfig, ssadjax.hparams, experiments.grid\n"
          "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'optax')))")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == "[]"
  from ssadjax import hparams, methods
  assert sorted(hparams.MODULES) == sorted(methods.REGISTRY)
  config_source = (REPO / "ssadjax" / "config.py").read_text()
  for name, module in hparams.MODULES.items():
    assert pathlib.Path(module.__file__).name == f"{name}.py"
    assert f"c.{name}." not in config_source
    assert {"section", "resolve", "anoonly_changes"} <= set(vars(module))
    # The factory sits in the method file of the same name (Deep SVDD: Deep SAD's, without
    # labels).
    factory_file = pathlib.Path(inspect.getsourcefile(methods.REGISTRY[name].make.func
                                if name == "deepsvdd" else methods.REGISTRY[name].make))
    assert factory_file.name == ("deepsad.py" if name == "deepsvdd" else f"{name}.py")
