"""ADBench's (or the AnoOnly repository's) own Deep SAD, DevNet, PReNet and FEAWAD on
exactly our splits.

The comparison that tells an implementation bug from split and seed noise: the reference
code (the `adbench` 0.1.11 package) is trained on the very rows, labelled anomalies and
min-max scaling that `experiments.runconfig.prepare_splits` gives our grid runner for the same
file, seed and `la`, and the results go to a `results.csv` with our grid's columns plus
`implementation=reference` (`experiments/fidelity.py` pairs it with ours).

Two Python environments, so neither pollutes the other:
* ours (jax, this repo) exports the splits (numpy .npz) and computes AUROC / AUPRC with
  `ssadjax.metrics`, exactly as our runner does;
* the reference one (torch, tensorflow-cpu, tf-keras, adbench; the `reference` extra and
  the install commands are in README.md) only trains and scores: this same file run as
  `--worker`, which imports numpy and adbench but nothing of ssadjax.

  python -m experiments.reference --ref_python=/work/refvenv/bin/python \
    --datasets=Classical/20_letter,Classical/42_WBC --methods=feawad,devnet \
    --seeds=1,2,3 --la=0.1 --out=results/reference/results.csv

`--implementation=anoonly` runs the AnoOnly repository's copies instead (a checkout of
github.com/cool-xuan/AnoOnly, `--anoonly_root`; it has no package to install), as its
`run.py` builds them, `Model(seed=, model_name=, anomaly_only=)`, for each of `--variants`
(baseline and/or anoonly); its rows carry `implementation=anoonly_repo` and pair with our
`anoonly_paper` preset (docs/tables.md):

  python -m experiments.reference --ref_python=/work/refvenv/bin/python \
    --implementation=anoonly --anoonly_root=/path/to/AnoOnly \
    --datasets=CV_by_ResNet18/CIFAR10_0 --seeds=1,2,3 --out=results/anoonly_repo/results.csv

Finished (method, anomaly_only, dataset, la, seed) rows already in `--out` are kept and not
rerun, so an interrupted run resumes. A seed on which the reference code itself fails (it happens: see
docs/methods/feawad.md) is written with its error and no metrics, and the run goes on;
`--retry_failed` reruns those. This harness installs nothing.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import types

METHODS = ("deepsad", "devnet", "prenet", "feawad")
# --implementation -> the `implementation` column of its rows.
IMPLEMENTATIONS = {"adbench": "reference", "anoonly": "anoonly_repo"}
# --variants -> anomaly_only.
VARIANTS = {"baseline": False, "anoonly": True}
# The AnoOnly repository's class of each method, under its `baseline` package.
ANOONLY_CLASSES = {"feawad": ("baseline.FEAWAD.run", "FEAWAD"),
                   "prenet": ("baseline.PReNet.run", "PReNet"),
                   "devnet": ("baseline.DevNet.run", "DevNet"),
                   "deepsad": ("baseline.DeepSAD.src.run", "DeepSAD")}
# One thread everywhere: the models are tiny (more threads do not help, BUILD_NOTES) and
# the machines these runs share are small.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
              "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


# ---------------------------------------------------------------------------------------
# Worker side: runs in the reference environment (numpy + adbench, never ssadjax).

def install_shims(anoonly_root: str | None = None) -> None:
  """Small import shims ADBench 0.1.11 (and the AnoOnly repository, a fork of ADBench's
  code) needs on today's packages (reference venv only)."""
  # ADBench's DevNet and FEAWAD are Keras 2 code that trains in TF1 graph mode
  # (disable_eager_execution, fit_generator, Adam(lr=...)). TF >= 2.16 ships Keras 3, which
  # has none of that; tf_keras is the Keras 2 API, and its *legacy* optimizers are the ones
  # that work in graph mode.
  import tf_keras
  sys.modules["keras"] = tf_keras
  for name in ("backend", "models", "layers", "callbacks", "losses", "regularizers"):
    sys.modules[f"keras.{name}"] = getattr(tf_keras, name)
  sys.modules["keras.optimizers"] = tf_keras.optimizers.legacy
  # ADBench's Deep SAD imports two torchvision helpers it never calls on tabular data
  # (make_grid for a plot, download_url for ODDS files); without a torchvision matching
  # the torch build, stubs are enough.
  if importlib.util.find_spec("torchvision") is None:
    sys.modules.update(torchvision_stub())
  if anoonly_root:
    # The AnoOnly repository imports `baseline.<Method>` and `myutils` from its root, but
    # its folder is named `baselines/`.
    sys.path.insert(0, anoonly_root)
    sys.modules.setdefault("baseline", importlib.import_module("baselines"))


def torchvision_stub() -> dict:
  """Stub modules torchvision, .utils (make_grid), .datasets, .datasets.utils
  (download_url); each function fails loudly if it is ever called."""
  def unavailable(name):
    def fail(*args, **kwargs):
      raise RuntimeError(f"torchvision stub (experiments/reference.py): {name} is "
                         "unavailable; install a torchvision matching the torch build")
    return fail

  modules = {name: types.ModuleType(name) for name in (
      "torchvision", "torchvision.utils", "torchvision.datasets", "torchvision.datasets.utils")}
  modules["torchvision.utils"].make_grid = unavailable("make_grid")
  modules["torchvision.datasets.utils"].download_url = unavailable("download_url")
  modules["torchvision"].__path__ = []  # a package, so submodule imports resolve
  modules["torchvision.datasets"].__path__ = []
  modules["torchvision"].utils = modules["torchvision.utils"]
  modules["torchvision"].datasets = modules["torchvision.datasets"]
  modules["torchvision.datasets"].utils = modules["torchvision.datasets.utils"]
  return modules


def _reference_model(method: str, seed: int, suffix: str, implementation: str = "adbench",
                     anomaly_only: bool = False):
  if implementation == "anoonly":
    # Imported in the order of the AnoOnly repository's run.py: FEAWAD's module switches
    # TensorFlow to graph mode when imported, so their DevNet trains in graph mode too.
    classes = {m: getattr(importlib.import_module(module), name)
               for m, (module, name) in ANOONLY_CLASSES.items()}
    # As their run.py builds its models.
    return classes[method](seed=seed, model_name=ANOONLY_CLASSES[method][1],
                           anomaly_only=anomaly_only)
  if anomaly_only:
    raise ValueError("ADBench's code has no AnoOnly variant; use --implementation=anoonly")
  if method == "feawad":
    from adbench.baseline.FEAWAD.run import FEAWAD
    return FEAWAD(seed=seed, save_suffix=suffix)
  if method == "devnet":
    from adbench.baseline.DevNet.run import DevNet
    return DevNet(seed=seed, save_suffix=suffix)
  if method == "prenet":
    from adbench.baseline.PReNet.run import PReNet
    return PReNet(seed=seed)
  if method == "deepsad":
    from adbench.baseline.DeepSAD.src.run import DeepSAD
    return DeepSAD(seed=seed)
  raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


def worker(split_files: list[str], method: str, out: str, implementation: str = "adbench",
           anomaly_only: bool = False, anoonly_root: str | None = None) -> None:
  """Trains the reference `method` on each exported split and writes its test scores.

  Runs in a fresh working directory: the AnoOnly repository's Keras baselines checkpoint
  under the working directory, with the same file name for every seed."""
  import numpy as np
  # The Keras baselines read hyper-parameters with argparse.parse_known_args(): our own
  # flags (e.g. a future --epochs) must not leak into them.
  sys.argv = sys.argv[:1]
  install_shims(anoonly_root if implementation == "anoonly" else None)
  import tensorflow as tf
  import torch
  torch.set_num_threads(1)
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  import tf_keras
  results = {}
  for path in split_files:
    split = np.load(path)
    seed = int(split["seed"])
    # A fresh graph per fit: the TF graph-level seed then gives the same weights whatever
    # ran before in this process.
    tf_keras.backend.clear_session()
    suffix = f"ssadjax_{os.getpid()}_{seed}"
    model = _reference_model(method, seed, suffix, implementation, anomaly_only)
    start = time.perf_counter()
    try:
      model.fit(split["x_train"], split["semi_labels"])
      fit_seconds = time.perf_counter() - start
      scores = np.asarray(model.predict_score(split["x_test"]), np.float64).reshape(-1)
      if not np.isfinite(scores).all():
        raise FloatingPointError(f"{int((~np.isfinite(scores)).sum())} of {scores.size} "
                                 "test scores are not finite")
    except Exception as error:  # noqa: BLE001 -- one seed's failure is a result too
      # The reference code fails on some seeds by itself (e.g. a Keras ModelCheckpoint
      # with save_best_only that never saves when the loss is NaN from the first epoch):
      # the seed is recorded as failed and the others still run.
      message = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
      results[f"{seed}_error"] = np.str_(message[:300])
      results[f"{seed}_seconds"] = np.float64(time.perf_counter() - start)
      print(f"reference {method} seed {seed}: FAILED {message}", file=sys.stderr, flush=True)
      continue
    finally:
      # ADBench's Keras baselines checkpoint into the installed package's model/ folder,
      # the AnoOnly repository's under the working directory, named alike for every seed:
      # a seed whose checkpoint never fires must not score with the previous seed's.
      checkpoints = [*pathlib.Path(sys.modules[type(model).__module__].__file__).parent.glob(
          f"model/*{suffix}.h5")]
      if implementation == "anoonly":
        checkpoints += [*pathlib.Path.cwd().glob("baseline/*/model/*.h5")]
      for checkpoint in checkpoints:
        checkpoint.unlink()
    results[str(seed)] = scores
    results[f"{seed}_seconds"] = np.float64(fit_seconds)
    print(f"reference {method} seed {seed}: fit {fit_seconds:.1f} s", file=sys.stderr,
          flush=True)
  np.savez(out, **results)


# ---------------------------------------------------------------------------------------
# Our side: exports splits, runs the worker, computes the metrics, writes results.csv.

def split_config(dataset: str, la: float, data_dir: str | None):
  """The `adbench_table` config for one cell: the splits our grid runner would use (the
  preset does not change the splits, so they are also those of `anoonly_paper`)."""
  from experiments.configs import common
  config = common.get_config()
  config.preset = "adbench"
  config.dataset = dataset
  config.la = la
  config.data_dir = data_dir or ""
  return config


def export_splits(dataset: str, seeds: list[int], la: float, data_dir: str | None,
                  directory: pathlib.Path) -> tuple[list[str], list]:
  """Writes one .npz per seed (x_train, semi_labels, x_test, seed) and returns the paths
  with the splits (whose y_test scores the worker's output)."""
  import numpy as np
  from ssadjax import runconfig
  splits = runconfig.prepare_splits(split_config(dataset, la, data_dir), seeds)
  paths = []
  for seed, split in zip(seeds, splits):
    path = directory / f"split_{seed}.npz"
    np.savez(path, x_train=split.x_train, semi_labels=split.semi_labels,
             x_test=split.x_test, seed=np.int64(seed))
    paths.append(str(path))
  return paths, splits


def read_rows(path: pathlib.Path) -> list[dict]:
  if not path.exists():
    return []
  with path.open(newline="") as f:
    return list(csv.DictReader(f))


def fieldnames() -> list[str]:
  from experiments.workdir import RESULT_FIELDS
  # `error`: empty, or why the reference code produced no score for this seed (its
  # auroc and auprc are then empty and experiments/fidelity.py leaves it unpaired).
  return list(RESULT_FIELDS) + ["implementation", "error"]


def write_rows(path: pathlib.Path, rows: list[dict]) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  with tmp.open("w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=fieldnames(), restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
  os.replace(tmp, path)


def row_key(row: dict) -> tuple:
  anomaly_only = str(row.get("anomaly_only", "False")).strip().lower() in ("true", "1")
  return (row["method"], anomaly_only, row["dataset"], f"{float(row['la']):g}",
          int(row["seed"]))


def run_reference(*, ref_python: str, datasets: list[str], methods: list[str],
                  seeds: list[int], la: float, out: pathlib.Path, data_dir: str | None,
                  nice: int = 10, retry_failed: bool = False,
                  implementation: str = "adbench", variants: tuple[str, ...] = ("baseline",),
                  anoonly_root: str | None = None) -> list[dict]:
  """Runs every (dataset, method, variant) missing from `out` and rewrites `out` after each.

  A seed on which the reference code itself fails is written as a row with an `error`
  and no metrics, and counts as done (the same split and seed fail the same way again)
  unless `retry_failed`."""
  from ssadjax import metrics
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"unknown implementation {implementation!r}; expected one of "
                     f"{sorted(IMPLEMENTATIONS)}")
  if implementation == "adbench" and "anoonly" in variants:
    raise ValueError("ADBench's code has no AnoOnly variant; use implementation='anoonly'")
  if implementation == "anoonly" and not (
      anoonly_root and (pathlib.Path(anoonly_root) / "baselines").is_dir()):
    raise ValueError(f"--anoonly_root={anoonly_root!r} is not a checkout of "
                     "github.com/cool-xuan/AnoOnly (no baselines/ folder in it)")
  tag = IMPLEMENTATIONS[implementation]
  rows = read_rows(out)
  if retry_failed:
    rows = [r for r in rows if not r.get("error")]
  done = {row_key(r) for r in rows}
  failed = []
  for dataset in datasets:
    todo = [(m, v) for m in methods for v in variants
            if any((m, VARIANTS[v], dataset, f"{la:g}", s) not in done for s in seeds)]
    if not todo:
      continue
    with tempfile.TemporaryDirectory(prefix="ssadjax_reference_") as tmp:
      tmp = pathlib.Path(tmp)
      paths, splits = export_splits(dataset, seeds, la, data_dir, tmp)
      for method, variant in todo:
        anomaly_only = VARIANTS[variant]
        scores_path = tmp / f"scores_{method}_{variant}.npz"
        command = ["nice", "-n", str(nice), ref_python, "-m", "experiments.reference",
                   "--worker", "--method", method, "--scores_out", str(scores_path),
                   "--implementation", implementation, "--variants", variant]
        if implementation == "anoonly":
          command += ["--anoonly_root", str(pathlib.Path(anoonly_root).resolve())]
        command += ["--split_files", *paths]
        env = {**os.environ, **THREAD_ENV,
               "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1])}
        label = method if implementation == "adbench" else f"{method} ({variant})"
        print(f"{dataset} {label}: {tag} seeds {seeds}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="cwd_", dir=tmp) as cwd:
          proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=cwd)
        if proc.returncode != 0:
          raise RuntimeError(f"{tag} {label} on {dataset} failed (exit "
                             f"{proc.returncode}):\n{proc.stderr[-4000:]}")
        import numpy as np
        result = np.load(scores_path)
        for seed, split in zip(seeds, splits):
          if (method, anomaly_only, dataset, f"{la:g}", seed) in done:
            continue
          row = {"method": method, "anomaly_only": anomaly_only, "dataset": dataset,
                 "la": la, "seed": seed,
                 "train_seconds": round(float(result[f"{seed}_seconds"]), 2),
                 "compile_seconds": 0.0, "steps": "", "devices": "cpu",
                 "implementation": tag}
          if f"{seed}_error" in result:
            row.update(auroc="", auprc="", error=str(result[f"{seed}_error"]))
            failed.append(f"{dataset} {label} seed {seed}: {row['error']}")
          else:
            scores = result[str(seed)]
            row.update(auroc=metrics.auroc(split.y_test, scores),
                       auprc=metrics.auprc(split.y_test, scores), error="")
          rows.append(row)
          done.add((method, anomaly_only, dataset, f"{la:g}", seed))
        write_rows(out, rows)
  for line in failed:
    print(f"reference failed (recorded in {out}, not paired): {line}", file=sys.stderr)
  return rows


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--split_files", nargs="*", help=argparse.SUPPRESS)
  parser.add_argument("--scores_out", help=argparse.SUPPRESS)
  parser.add_argument("--method", help=argparse.SUPPRESS)
  parser.add_argument("--ref_python", default=os.environ.get("SSADJAX_REFERENCE_PYTHON"),
                      help="python of the reference environment "
                           "(default $SSADJAX_REFERENCE_PYTHON)")
  parser.add_argument("--datasets", default="", help="comma-separated, e.g. Classical/6_cardio")
  parser.add_argument("--methods", default=",".join(METHODS))
  parser.add_argument("--seeds", default="1,2,3")
  parser.add_argument("--la", type=float, default=0.1)
  parser.add_argument("--data_dir", default=None, help="default $SSADJAX_DATA_DIR")
  parser.add_argument("--out", default="results/reference/results.csv")
  parser.add_argument("--nice", type=int, default=10)
  parser.add_argument("--retry_failed", action="store_true",
                      help="rerun the seeds recorded as failed in --out")
  parser.add_argument("--implementation", default="adbench", choices=sorted(IMPLEMENTATIONS),
                      help="adbench: the adbench 0.1.11 package; anoonly: a checkout of the "
                           "AnoOnly repository (--anoonly_root)")
  parser.add_argument("--anoonly_root", default=os.environ.get("SSADJAX_ANOONLY_ROOT"),
                      help="checkout of github.com/cool-xuan/AnoOnly "
                           "(default $SSADJAX_ANOONLY_ROOT)")
  parser.add_argument("--variants", default=None,
                      help="comma-separated baseline,anoonly (default: baseline for "
                           "adbench, both for anoonly)")
  args = parser.parse_args(argv)
  variants = [v for v in (args.variants or (
      "baseline" if args.implementation == "adbench" else "baseline,anoonly")).split(",") if v]
  if args.worker:
    worker(args.split_files, args.method, args.scores_out, args.implementation,
           VARIANTS[variants[0]], args.anoonly_root)
    return
  if not args.ref_python:
    parser.error("--ref_python is required (the reference venv's python, see README.md), "
                 "or set SSADJAX_REFERENCE_PYTHON")
  methods = [m for m in args.methods.split(",") if m]
  bad = sorted(set(methods) - set(METHODS))
  if bad:
    parser.error(f"unknown --methods {bad}; choose from {','.join(METHODS)}")
  bad = sorted(set(variants) - set(VARIANTS))
  if bad:
    parser.error(f"unknown --variants {bad}; choose from {','.join(VARIANTS)}")
  if args.implementation == "adbench" and "anoonly" in variants:
    parser.error("--variants=anoonly needs --implementation=anoonly: ADBench's code has no "
                 "AnoOnly variant")
  if args.implementation == "anoonly" and not (
      args.anoonly_root and pathlib.Path(args.anoonly_root, "baselines").is_dir()):
    parser.error(f"--anoonly_root={args.anoonly_root!r} is not a checkout of "
                 "github.com/cool-xuan/AnoOnly (no baselines/ folder); clone it and pass "
                 "its path, or set SSADJAX_ANOONLY_ROOT")
  datasets = [d for d in args.datasets.split(",") if d]
  if not datasets:
    parser.error("--datasets is empty; e.g. --datasets=Classical/6_cardio")
  rows = run_reference(ref_python=args.ref_python, datasets=datasets, methods=methods,
                       seeds=[int(s) for s in args.seeds.split(",")], la=args.la,
                       out=pathlib.Path(args.out), data_dir=args.data_dir, nice=args.nice,
                       retry_failed=args.retry_failed, implementation=args.implementation,
                       variants=tuple(variants), anoonly_root=args.anoonly_root)
  print(json.dumps({"rows": len(rows), "out": args.out}))


if __name__ == "__main__":
  main()
