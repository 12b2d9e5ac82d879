"""Whole-process time of one detector fit, as a user of `ssadjax.DeepSAD` feels it.

Each measurement is a new Python process that imports ssadjax, loads an ADBench file,
fits `DeepSAD()` (ADBench's recipe) on one split and scores its test rows:

  cold         an empty compilation cache
  warm         the cache that the cold fit left, the same dataset again
  warm_other   that cache, another dataset of the same shape bucket (rows and features
               padded to powers of two: the fit reuses the compiled programs)
  deepod       DeepOD's DeepSAD, the same split and recipe, one torch thread (its
               fastest here, as in bench_speed; needs torch and deepod)

    python -m experiments.bench_detector --data_dir=../shared/data/adbench \\
        --out=results/engine_v2/detector_start.csv

Medians over --reps rounds are printed; every measurement is a row of --out.
"""

import csv
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
REPO = pathlib.Path(__file__).resolve().parents[1]
KINDS = ("cold", "warm", "warm_other", "deepod")


def define_flags():
  flags.DEFINE_string("data_dir", os.environ.get("SSADJAX_DATA_DIR", "../shared/data/adbench"),
                      "folder with the ADBench files")
  flags.DEFINE_list("datasets", ["6_cardio", "7_Cardiotocography"],
                    "two datasets of one shape bucket: the first is fitted cold and warm, "
                    "the second warm from the first's cache")
  flags.DEFINE_integer("reps", 3, "rounds (medians are printed)")
  flags.DEFINE_bool("deepod", True, "also time DeepOD's DeepSAD (needs torch and deepod)")
  flags.DEFINE_string("out", "/tmp/ssadjax-bench/detector_start.csv", "CSV of every run")
  flags.DEFINE_enum("worker", "", ["", "ssadjax", "deepod"], "internal")
  flags.DEFINE_string("dataset", "", "internal")


def _split(dataset):
  from ssadjax.data.adbench import load_npz
  from ssadjax.data.protocol import adbench_splits
  import numpy as np
  x, y = load_npz(dataset, FLAGS.data_dir)
  return adbench_splits(x, y, rng=np.random.default_rng(0), la=0.1)


def worker_ssadjax():
  from ssadjax import DeepSAD, metrics
  split = _split(FLAGS.dataset)
  detector = DeepSAD(random_state=0).fit(split.x_train, split.semi_labels)
  scores = detector.decision_function(split.x_test)
  return {"auroc": metrics.auroc(split.y_test, scores),
          "compile_s": detector.timing_["compile_seconds"]}


def worker_deepod():
  import numpy as np
  import torch
  torch.set_num_threads(1)  # DeepOD's fastest setting on this machine (as bench_speed)
  from deepod.models.tabular import DeepSAD
  from ssadjax import metrics
  from ssadjax.config import get_config
  split = _split(FLAGS.dataset)
  hp = get_config().deepsad  # the same recipe as ssadjax's default DeepSAD()
  model = DeepSAD(epochs=hp.num_epochs, batch_size=hp.batch_size, lr=hp.learning_rate,
                  hidden_dims=",".join(map(str, hp.hidden_dims)), rep_dim=hp.rep_dim,
                  device="cpu", verbose=0, random_state=0)
  model.fit(split.x_train.astype(np.float32), split.semi_labels.astype(np.int64))
  scores = np.nan_to_num(np.asarray(model.decision_function(split.x_test.astype(np.float32))))
  return {"auroc": metrics.auroc(split.y_test, scores)}


def _process(kind, dataset, cache):
  """Seconds of a whole worker process and what it printed."""
  env = {**os.environ, "SSADJAX_COMPILATION_CACHE": cache, "PYTHONPATH": str(REPO)}
  worker = "deepod" if kind == "deepod" else "ssadjax"
  if worker == "deepod":
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
  t = time.perf_counter()
  out = subprocess.run([sys.executable, "-m", "experiments.bench_detector",
                        f"--worker={worker}", f"--dataset={dataset}",
                        f"--data_dir={FLAGS.data_dir}"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=1800)
  seconds = time.perf_counter() - t
  if out.returncode != 0:
    raise RuntimeError(f"{kind} on {dataset} failed:\n{out.stderr[-3000:]}")
  return seconds, json.loads(out.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  if FLAGS.worker:
    print(json.dumps(worker_ssadjax() if FLAGS.worker == "ssadjax" else worker_deepod()))
    return
  first, other = FLAGS.datasets
  rows = []
  for rep in range(FLAGS.reps):
    with tempfile.TemporaryDirectory() as cache:
      plan = [("cold", first), ("warm", first), ("warm_other", other)]
      if FLAGS.deepod:
        plan.append(("deepod", first))
      for kind, dataset in plan:
        seconds, info = _process(kind, dataset, cache)
        rows.append({"rep": rep, "kind": kind, "dataset": dataset,
                     "seconds": round(seconds, 3), "auroc": round(info["auroc"], 6),
                     "compile_seconds": round(info.get("compile_s", float("nan")), 3)})
        print(f"round {rep + 1}: {kind:<10} {dataset:<22} {seconds:6.2f} s  "
              f"AUROC {info['auroc']:.4f}", flush=True)
  out = pathlib.Path(FLAGS.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  with out.open("w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  print(f"\nmedians of {FLAGS.reps} rounds (whole processes, seconds):")
  for kind in KINDS:
    values = [r["seconds"] for r in rows if r["kind"] == kind]
    if values:
      print(f"  {kind:<10} {statistics.median(values):6.2f}")
  print(f"rows: {out}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
