"""Speed benchmark: ssadjax against DeepOD (PyTorch) on the same splits and the same work.

  pip install -e ".[bench]" && pip install --no-deps deepod==0.4.1
  python -m experiments.bench_speed --data_dir=../shared/data/adbench --out=/tmp/bench

For every dataset, method and repetition it runs, in fresh subprocesses and in alternating
order, ssadjax with an empty compilation cache ("cold"), ssadjax with the cache the cold
run filled ("warm"; the same process then refits to give the steady state; in the first
repetition it also trains 3 seeds together, compiled once then 3 times steady, against
1 seed), and DeepOD (1 torch thread, device='cpu', after an untimed warm-up fit
that absorbs torch's lazy initialisation). Timed: fit + scoring of the test split,
excluding imports and the (shared) data protocol. Printed: medians over repetitions,
the FLOP floor of each run (counted forward + backward FLOPs / probed matmul FLOP/s) and
the machine's load average. `--grid` also times the full grid of the foundation issue
(4 methods x {baseline, AnoOnly} x 6 datasets x 3 seeds) through experiments.main, with
a fresh cache and then with the cache it filled. `--tables=cell,quick,adbench_table`
times whole README commands (TABLE_RUNS) the same way and writes timings.csv (rendered by
experiments.report's `timings` block) and each run's results.csv; `--table=false` skips
the per-model table.

Work matching (ours configured to DeepOD's defaults unless said otherwise): batch 64,
100 epochs, Deep SAD d-100-50-128 without bias or BatchNorm (norm.kind=none) and
floor(n/64) steps per epoch (DeepOD: ceil); DevNet d-100-50-1, ceil(n/64) steps per
epoch; PReNet psi d-100-50-128, 64 pairs per step, int(n/64) steps per epoch; FEAWAD
100 single-batch steps without AE pretraining, with DeepOD's autoencoder configured to
ours (hidden_dims='d,128', rep_dim=64; its decoder keeps one extra d x d layer).
Losses, optimisers and initialisations stay each library's own.
"""

import csv
import importlib
import json
import math
import os
import pathlib
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

METHODS = ("deepsad", "devnet", "prenet", "feawad")
DATASETS = ("6_cardio", "38_thyroid", "30_satellite", "CV_by_ResNet18/CIFAR10_0")
GRID_DATASETS = ("6_cardio", "38_thyroid", "30_satellite", "23_mammography",
                 "CV_by_ResNet18/MVTec-AD_bottle", "NLP_by_BERT/20news_3")
BATCH, EPOCHS = 64, 100

FLAGS = flags.FLAGS


def define_flags():
  """The command line, defined only when this file runs as a script: importing it (the
  report's `bench` block reads `report`) must not clash with other modules' absl flags."""
  flags.DEFINE_string("data_dir", os.environ.get("SSADJAX_DATA_DIR", "../shared/data/adbench"),
                      "ADBench npz folder")
  flags.DEFINE_string("out", "/tmp/ssadjax-bench", "where results (jsonl, tables) go")
  flags.DEFINE_list("datasets", list(DATASETS), "datasets of the per-model table")
  flags.DEFINE_list("methods", list(METHODS), "methods of the per-model table")
  flags.DEFINE_integer("reps", 3, "repetitions per cell (medians are printed)")
  flags.DEFINE_integer("epochs", EPOCHS, "epochs of both implementations (100 = DeepOD's)")
  flags.DEFINE_bool("deepod", True, "also run DeepOD (needs torch and deepod)")
  flags.DEFINE_bool("table", True, "run the per-model table")
  flags.DEFINE_bool("grid", False, "also time the full grid, cold and warm cache")
  flags.DEFINE_list("tables", [], "also time these whole commands (names of TABLE_RUNS), "
                    "each with a fresh compilation cache and then with the cache it filled; "
                    "writes timings.csv and each run's results.csv under --out")
  flags.DEFINE_list("table_caches", ["cold", "warm"], "caches of the --tables runs")
  flags.DEFINE_list("plan", [], "print how many program groups (one program each) "
                    "these table configs (adbench_table, adbench_table:quick, "
                    "adbench_table:all, anoonly_table:seeds3) compile, without training")
  flags.DEFINE_string("report_only", "", "print the tables of an existing results.jsonl")
  flags.DEFINE_bool("executable_cache", True,
                    "ssadjax workers also use ssadjax.host.program_cache (opt-in in experiments.main); "
                    "False: JAX's persistent compilation cache only")
  # Internal: one measurement in this process.
  flags.DEFINE_enum("worker", "", ["", "ssadjax", "deepod", "deepod_cell", "flops"], "internal")
  flags.DEFINE_string("dataset", "", "internal")
  flags.DEFINE_string("method", "", "internal")
  flags.DEFINE_string("cache", "", "internal: compilation cache dir")
  flags.DEFINE_bool("steady", False, "internal: also refit, and train 3 seeds")


# ------------------------------------------------------------------------ shared helpers


def splits_for(dataset, data_dir, seeds):
  """The ADBench protocol splits (ssadjax.data.adbench_splits via the experiment
  runner), one per seed: both implementations train on these arrays."""
  from experiments.configs import common
  from ssadjax import runconfig
  c = common.get_config()
  c.dataset, c.data_dir = dataset, data_dir
  return runconfig.prepare_splits(c, list(seeds))


def ssadjax_config(dataset, method, data_dir, n_train, epochs):
  from experiments.configs import common
  c = common.get_config()
  c.dataset, c.data_dir, c.method = dataset, data_dir, method
  if method == "deepsad":
    c.deepsad.update(hidden_dims=(100, 50), rep_dim=128, batch_size=BATCH, num_epochs=epochs,
                     encoder="mlp")
    c.norm.kind = "none"  # DeepOD's MLP has no BatchNorm
  elif method == "devnet":
    c.devnet.update(hidden_dims=(100, 50), batch_size=BATCH, num_epochs=epochs,
                    steps_per_epoch=math.ceil(n_train / BATCH))
  elif method == "prenet":
    c.prenet.update(hidden_dims=(100, 50, 128), batch_size=BATCH, num_epochs=epochs,
                    steps_per_epoch=n_train // BATCH)
  elif method == "feawad":
    c.feawad.update(batch_size=BATCH, num_epochs=epochs, steps_per_epoch=1, pretrain_epochs=0,
                    fixed_batch=False)
  return c


def forward_macs(impl, method, d):
  """Multiply-accumulates of one training row's forward pass (rows per step below)."""
  mlp = lambda dims: sum(a * b for a, b in zip(dims[:-1], dims[1:]))
  if method == "deepsad":
    return mlp([d, 100, 50, 128])
  if method == "devnet":
    return mlp([d, 100, 50, 1])
  if method == "prenet":  # per row of a pair, plus half the 256 -> 1 head
    return mlp([d, 100, 50, 128]) + 128
  if impl == "ssadjax":  # FEAWAD: AE d-d-128-64-128-d, scorer [r, h, e] -> 256 -> 32 -> 1
    return mlp([d, d, 128, 64, 128, d]) + (d + 65) * 256 + 257 * 32 + 33
  return mlp([d, d, 128, 64, 128, d, d]) + mlp([d + 64, 256, 32, 1])


def rows_per_step(method):
  return 2 * BATCH if method == "prenet" else BATCH


def train_flops(impl, method, d, steps):
  """Forward + backward: 2 FLOPs per MAC, backward ~ twice the forward."""
  return 3 * 2 * forward_macs(impl, method, d) * rows_per_step(method) * steps


def maxrss_mb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def deepod_steps(method, n):
  return {"deepsad": math.ceil(n / BATCH), "devnet": math.ceil(n / BATCH),
          "prenet": n // BATCH, "feawad": 1}[method] * FLAGS.epochs


# ------------------------------------------------------------------------------ workers


def worker_ssadjax():
  import jax
  from ssadjax import methods, metrics
  from ssadjax.host import engine, grouping, program_cache
  if FLAGS.cache:  # both caches, as experiments/main.py sets them
    jax.config.update("jax_compilation_cache_dir", FLAGS.cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    if FLAGS.executable_cache:
      program_cache.set_directory(FLAGS.cache.rstrip("/") + "-executables")
  import numpy as np

  seeds3 = [0, 1, 2]
  splits = splits_for(FLAGS.dataset, FLAGS.data_dir, seeds3)
  n, d = splits[0].x_train.shape
  config = ssadjax_config(FLAGS.dataset, FLAGS.method, FLAGS.data_dir, n, FLAGS.epochs)
  key = grouping.program_key(config, d, n)
  datas = [methods.make_train_data(s.x_train, s.semi_labels) for s in splits]

  def run(k):
    method = methods.build(config, d, n)
    t = time.perf_counter()
    data = engine.stack_data(datas[:k])
    state, timing = engine.fit(method, data, seeds3[:k], program_key=key)
    scores = engine.score(method, state, np.stack([s.x_test for s in splits[:k]]),
                          program_key=key, data=data)
    wall = time.perf_counter() - t
    aurocs = [metrics.auroc(s.y_test, sc) for s, sc in zip(splits, scores)]
    return {"wall": wall, "compile": timing["compile_seconds"],
            "train": timing["train_seconds"], "steps": timing["steps"], "auroc": aurocs}

  out = {"n": n, "d": d, "one": run(1)}
  out["rss_mb_one"] = maxrss_mb()
  out["one_steady"] = run(1)  # in-process program cache: no compile at all
  # The arrays (not the optional bucket counts, None here) decide whether seeds stack.
  shapes = {tuple(np.shape(a) for a in d[:4]) for d in datas}
  if FLAGS.steady and len(shapes) > 1:
    # Small datasets are up-sampled per seed, so seeds may label different numbers of
    # anomalies: their arrays cannot be stacked into one vmapped program.
    out["three_skipped"] = "the 3 seeds' training arrays differ in shape"
  elif FLAGS.steady:  # 1 vs 3 seeds: 3 seeds compile once, then 3 runs of each, alternating
    out["three_first"] = run(3)
    for i in range(3):
      out[f"three_steady{i}"] = run(3)
      out[f"one_steady{i}"] = run(1)
  out["rss_mb"] = maxrss_mb()
  out["jax_x64"] = bool(jax.config.jax_enable_x64)
  print("RESULT " + json.dumps(out))


def worker_deepod():
  import numpy as np
  import torch
  from torch.optim.optimizer import register_optimizer_step_post_hook
  torch.set_num_threads(1)
  from deepod.models.tabular import DeepSAD, DevNet, FeaWAD, PReNet
  from sklearn.metrics import roc_auc_score

  split = splits_for(FLAGS.dataset, FLAGS.data_dir, [0])[0]
  x, y = split.x_train.astype(np.float32), split.semi_labels.astype(np.int64)
  n, d = x.shape
  kwargs = {"epochs": FLAGS.epochs, "batch_size": BATCH, "device": "cpu", "verbose": 0}
  cls = {"deepsad": DeepSAD, "devnet": DevNet, "prenet": PReNet, "feawad": FeaWAD}[FLAGS.method]
  if FLAGS.method == "deepsad":
    kwargs.update(hidden_dims="100,50", rep_dim=128)
  elif FLAGS.method in ("devnet", "prenet"):
    kwargs.update(hidden_dims="100,50", rep_dim=128)
  else:
    kwargs.update(hidden_dims=f"{d},128", rep_dim=64)
  # Untimed warm-up: torch's lazy initialisation (1-3 s) stays out of the timing.
  rng = np.random.default_rng(0)
  wx = x[rng.choice(n, 256)]
  wy = np.zeros(256, np.int64)
  wy[:8] = 1
  cls(**{**kwargs, "epochs": 1}, random_state=0).fit(wx, wy)
  steps = [0]
  register_optimizer_step_post_hook(
      lambda *a, **k: steps.__setitem__(0, steps[0] + 1))
  model = cls(**kwargs, random_state=0)
  t = time.perf_counter()
  model.fit(x, y)
  scores = model.decision_function(split.x_test.astype(np.float32))
  wall = time.perf_counter() - t
  scores = np.nan_to_num(np.asarray(scores, np.float64), nan=0.0)
  print("RESULT " + json.dumps({"n": n, "d": d, "wall": wall, "steps": steps[0],
                                "auroc": roc_auc_score(split.y_test, scores),
                                "rss_mb": maxrss_mb()}))


def worker_deepod_cell():
  """DeepOD's whole process for the `cell` run: Deep SAD with ADBench's settings (the
  `adbench` preset: d-100-20-10, batch 128, 50 epochs) on the ADBench splits of
  `--dataset`, seeds 1-3, one fit and one scoring per seed. The splits come from
  ssadjax.runconfig (numpy only, no JAX in this process)."""
  import numpy as np
  import torch
  torch.set_num_threads(1)
  from deepod.models.tabular import DeepSAD
  from sklearn.metrics import roc_auc_score
  from experiments.configs import common
  from ssadjax import runconfig
  c = common.get_config()
  c.dataset, c.data_dir = FLAGS.dataset, FLAGS.data_dir
  aurocs = []
  for seed, split in zip((1, 2, 3), runconfig.prepare_splits(c, [1, 2, 3])):
    model = DeepSAD(epochs=50, batch_size=128, hidden_dims="100,20", rep_dim=10,
                    device="cpu", verbose=0, random_state=seed)
    model.fit(split.x_train.astype(np.float32), split.semi_labels.astype(np.int64))
    scores = np.nan_to_num(np.asarray(model.decision_function(
        split.x_test.astype(np.float32)), np.float64), nan=0.0)
    aurocs.append(roc_auc_score(split.y_test, scores))
  print(f"deepod DeepSAD on {FLAGS.dataset}: AUROC {np.mean(aurocs):.4f} +- {np.std(aurocs):.4f}")


def worker_flops():
  """float32 matmul throughput: a jitted loop of 512^3 matmuls (what XLA reaches on this
  machine now) and of 64x128x128 ones (the size of our layers)."""
  import jax
  import jax.numpy as jnp

  def probe(m, k, iters):
    a = jnp.full((m, k), 0.01, jnp.float32)
    b = jnp.full((k, k), 0.01, jnp.float32)

    @jax.jit
    def loop(a, b):
      return jax.lax.fori_loop(0, iters, lambda i, acc: (acc * 1e-3 + a) @ b, a)

    loop(a, b).block_until_ready()
    times = []
    for _ in range(5):
      t = time.perf_counter()
      loop(a, b).block_until_ready()
      times.append(time.perf_counter() - t)
    return 2 * m * k * k * iters / statistics.median(times)

  print("RESULT " + json.dumps({"big": probe(512, 512, 40), "small": probe(64, 128, 4000)}))


# ------------------------------------------------------------------------------- driver


def _run(args, env_extra=None, timeout=1800):
  env = {**os.environ, **(env_extra or {})}
  env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pathlib.Path(__file__).parents[1]),
                                                    env.get("PYTHONPATH", "")]))
  t = time.perf_counter()
  proc = subprocess.run([sys.executable, "-m", "experiments.bench_speed", *args],
                        capture_output=True, text=True, env=env, timeout=timeout)
  wall = time.perf_counter() - t
  for line in proc.stdout.splitlines():
    if line.startswith("RESULT "):
      out = json.loads(line[7:])
      out["process_wall"] = wall
      return out
  raise RuntimeError(f"worker {args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def _load():
  return os.getloadavg()


def _record(path, row):
  with open(path, "a") as f:
    f.write(json.dumps(row) + "\n")


def run_table(out_dir: pathlib.Path):
  results = out_dir / "results.jsonl"
  common = [f"--data_dir={FLAGS.data_dir}", f"--epochs={FLAGS.epochs}",
            f"--executable_cache={FLAGS.executable_cache}"]
  one_thread = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
  _record(results, {"kind": "flops", "load": _load(), **_run(["--worker=flops"])})
  for dataset in FLAGS.datasets:
    for method in FLAGS.methods:
      for rep in range(FLAGS.reps):
        cache = tempfile.mkdtemp(prefix="ssadjax-bench-cache-")
        base = [*common, f"--dataset={dataset}", f"--method={method}"]
        steady = ["--steady"] if rep == 0 else []
        jobs = [("ssadjax_cold", ["--worker=ssadjax", f"--cache={cache}", *base], None),
                ("deepod", ["--worker=deepod", *base], one_thread),
                ("ssadjax_warm", ["--worker=ssadjax", f"--cache={cache}", *steady, *base],
                 None)]
        if rep % 2:  # alternate which implementation goes first (warm needs cold's cache)
          jobs = [jobs[1], jobs[0], jobs[2]]
        if not FLAGS.deepod:
          jobs = [j for j in jobs if j[0] != "deepod"]
        for kind, args, env in jobs:
          load = _load()
          row = _run(args, env)
          _record(results, {"kind": kind, "dataset": dataset, "method": method, "rep": rep,
                            "load": load, **row})
          print(f"{dataset} {method} rep {rep} {kind}: "
                f"{row.get('wall', row.get('one', {}).get('wall', 0)):.2f}s load {load[0]:.1f}",
                flush=True)
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(cache + "-executables", ignore_errors=True)
  _record(results, {"kind": "flops", "load": _load(), **_run(["--worker=flops"])})
  return results


def run_grid(out_dir: pathlib.Path):
  results = out_dir / "results.jsonl"
  cache = tempfile.mkdtemp(prefix="ssadjax-grid-cache-")
  grid = ("method=deepsad|devnet|prenet|feawad;anomaly_only=False|True;dataset="
          + "|".join(GRID_DATASETS))
  for kind in ("grid_cold", "grid_warm"):
    workdir = tempfile.mkdtemp(prefix=f"ssadjax-{kind}-")  # new workdir: nothing is reused
    cmd = [sys.executable, "-m", "experiments.main", "--config=experiments/configs/adbench.py",
           f"--config.data_dir={FLAGS.data_dir}", f"--config.grid={grid}",
           "--config.num_seeds=3", f"--workdir={workdir}"]
    env = {**os.environ, "SSADJAX_COMPILATION_CACHE": cache,
           "SSADJAX_EXECUTABLE_CACHE": cache + "-executables" if FLAGS.executable_cache else ""}
    load = _load()
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          cwd=pathlib.Path(__file__).parents[1])
    wall = time.perf_counter() - t
    if proc.returncode:
      raise RuntimeError(proc.stderr[-4000:])
    summaries = [json.loads(p.read_text())
                 for p in pathlib.Path(workdir).glob("cells/*/results.json")]
    row = {"kind": kind, "load": load, "load_after": _load(), "wall": wall,
           "cells": len(summaries),
           "compile_seconds": sum(s["compile_seconds"] for s in summaries),
           "train_seconds": sum(s["train_seconds"] for s in summaries)}
    _record(results, row)
    print(f"{kind}: {wall:.1f}s for {row['cells']} cells (compile {row['compile_seconds']:.1f}s,"
          f" train {row['train_seconds']:.1f}s), load {load[0]:.1f}", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
  shutil.rmtree(cache, ignore_errors=True)
  shutil.rmtree(cache + "-executables", ignore_errors=True)


# Whole commands as a user types them (README), timed as whole processes.
TABLE_RUNS = {
    "cell": ["--config=experiments/configs/adbench.py", "--config.dataset=6_cardio",
             "--config.num_seeds=3"],
    "cell_deepod": None,  # DeepOD's whole process for the same 3 fits (worker_deepod_cell)
    **{f"cell_{m}": ["--config=experiments/configs/adbench.py", "--config.dataset=6_cardio",
                     "--config.num_seeds=3", f"--config.method={m}"]
       for m in ("devnet", "prenet", "feawad")},
    # train.compile=fast: LLVM at -O0, about half the compile time, slower FLOP-bound steps
    "cell_fast": ["--config=experiments/configs/adbench.py", "--config.dataset=6_cardio",
                  "--config.num_seeds=3", "--config.train.compile=fast"],
    "quick": ["--config=experiments/configs/adbench_table.py:quick"],
    "quick_fast": ["--config=experiments/configs/adbench_table.py:quick",
                   "--config.train.compile=fast"],
    "adbench_table": ["--config=experiments/configs/adbench_table.py"],
    "adbench_table_exact": ["--config=experiments/configs/adbench_table.py",
                            "--config.train.buckets=exact"],
    "anoonly_seeds3": ["--config=experiments/configs/anoonly_table.py:seeds3"],
    # The 16 Classical files of results/ours_la0.1 (the engine before shape buckets) at
    # la = 0.1: the paired within-noise check of the buckets.
    "table_16_files": ["--config=experiments/configs/adbench_table.py",
                       "--config.grid=la=0.1;method=deepsad|devnet|prenet|feawad;dataset="
                       + "|".join(f"Classical/{f}" for f in (
                           "12_fault", "14_glass", "15_Hepatitis", "18_Ionosphere",
                           "20_letter", "21_Lymphography", "29_Pima", "2_annthyroid",
                           "38_thyroid", "40_vowels", "42_WBC", "45_wine", "47_yeast",
                           "4_breastw", "6_cardio", "7_Cardiotocography"))],
}
TABLE_RUNS["cell_feawad_fast"] = TABLE_RUNS["cell_feawad"] + ["--config.train.compile=fast"]
TABLE_RUNS["table_16_files_fast"] = TABLE_RUNS["table_16_files"] + ["--config.train.compile=fast"]
TIMING_FIELDS = ("run", "implementation", "cache", "wall_seconds", "programs_compiled",
                 "compile_seconds", "cells", "load", "command")
_PROGRAMS_LINE = re.compile(r"programs: (\d+) compiled.*?; ([\d.]+) s compiling")


def run_tables(out_dir: pathlib.Path):
  """Times each named command of TABLE_RUNS as a whole process (imports, data, compiling,
  training, files): first with an empty compilation cache, then with the cache it filled
  and a new workdir, so nothing but compiled programs is reused."""
  timings = out_dir / "timings.csv"
  if not timings.exists():
    timings.write_text(",".join(TIMING_FIELDS) + "\n")
  for name in FLAGS.tables:
    if name not in TABLE_RUNS:
      raise app.UsageError(f"--tables: unknown run {name!r}; known: {', '.join(TABLE_RUNS)}")
    cache = tempfile.mkdtemp(prefix=f"ssadjax-{name}-cache-")
    for kind in FLAGS.table_caches:
      workdir = tempfile.mkdtemp(prefix=f"ssadjax-{name}-{kind}-")
      peer = TABLE_RUNS[name] is None
      if peer:
        if kind != FLAGS.table_caches[0]:
          continue  # PyTorch has no compilation cache: one timing is the peer's
        cmd = [sys.executable, "-m", "experiments.bench_speed", "--worker=deepod_cell",
               "--dataset=6_cardio", f"--data_dir={FLAGS.data_dir}", f"--out={workdir}"]
      else:
        cmd = [sys.executable, "-m", "experiments.main", *TABLE_RUNS[name],
               f"--config.data_dir={FLAGS.data_dir}", f"--workdir={workdir}"]
      env = {**os.environ, "SSADJAX_COMPILATION_CACHE": cache, "SSADJAX_EXECUTABLE_CACHE": ""}
      load = _load()[0]
      t = time.perf_counter()
      proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                            cwd=pathlib.Path(__file__).parents[1])
      wall = time.perf_counter() - t
      if proc.returncode:
        raise RuntimeError(f"{name} ({kind}) failed:\n{proc.stderr[-4000:]}")
      match = _PROGRAMS_LINE.search(proc.stdout)
      cells = len(list(pathlib.Path(workdir).glob("cells/*/results.json"))) or 1
      row = {"run": name.removesuffix("_deepod"),
             "implementation": "deepod" if peer else "ssadjax", "cache": "-" if peer else kind,
             "wall_seconds": f"{wall:.2f}", "programs_compiled": match and match.group(1),
             "compile_seconds": match and match.group(2), "cells": cells,
             "load": f"{load:.2f}", "command": " ".join(["python", *cmd[1:-2]])}
      with open(timings, "a", newline="") as f:
        csv.DictWriter(f, TIMING_FIELDS).writerow(row)
      if kind == FLAGS.table_caches[0] and not peer:  # for the within-noise comparisons
        (out_dir / name).mkdir(exist_ok=True)
        shutil.copy(pathlib.Path(workdir) / "results.csv", out_dir / name / "results.csv")
      print(f"{name} ({kind} cache): {wall:.1f} s whole process, {row['programs_compiled']} "
            f"programs compiled in {row['compile_seconds']} s, {cells} cells, load {load:.1f}",
            flush=True)
      shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)


def print_plans():
  """--plan: the program groups of whole table configs, from experiments.runner.plan_grid."""
  from experiments import grid
  from experiments import runner
  rows = []
  for spec in FLAGS.plan:
    module, _, variant = spec.partition(":")
    for buckets in ("pow2", "exact"):
      config = importlib.import_module(f"experiments.configs.{module}").get_config(variant)
      config.data_dir = FLAGS.data_dir
      grid.set_field(config, "train.buckets", buckets)
      groups = runner.plan_grid(config)
      cells = sum(map(len, groups))
      # One program per group: it initialises, trains and scores (engine.fit_and_score).
      print(f"{spec} (train.buckets={buckets}): {cells} cells in {len(groups)} program "
            f"groups = {len(groups)} programs", flush=True)
      rows.append(f"{spec},{buckets},{cells},{len(groups)},{len(groups)}")
  out = pathlib.Path(FLAGS.out) / "plans.csv"
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text("config,buckets,cells,program groups,programs\n" + "\n".join(rows) + "\n")


# ------------------------------------------------------------------------------ report


def _med(values):
  values = [v for v in values if v is not None]
  return statistics.median(values) if values else float("nan")


def report(path) -> str:
  rows = [json.loads(line) for line in open(path) if line.strip()]
  flops = [r for r in rows if r["kind"] == "flops"]
  peak = _med([r["big"] for r in flops])
  small = _med([r["small"] for r in flops])
  loads = [r["load"][0] for r in rows if "load" in r]
  lines = [f"float32 matmul throughput (median of {len(flops)} probes): "
           f"{peak / 1e9:.1f} GFLOP/s at 512^3, {small / 1e9:.1f} GFLOP/s at 64x128x128; "
           f"1-min load average during the runs: median {_med(loads):.1f}, "
           f"range {min(loads, default=0):.1f}-{max(loads, default=0):.1f} (2 cores)", ""]
  head = ("| dataset | method | steps ours/DeepOD | ssadjax cold s | ssadjax warm s | "
          "DeepOD s | DeepOD/cold | DeepOD/warm | ms/step ours steady / DeepOD | "
          "floor s | steady/floor | 3 seeds/1 seed (cold, steady fit+score, train only) | "
          "AUROC ours / DeepOD | "
          "peak RSS MB ours / DeepOD |")
  lines += [head, "|" + "---|" * (head.count(" | ") + 1)]
  table = [r for r in rows if r["kind"] in ("ssadjax_cold", "ssadjax_warm", "deepod")]
  cells = sorted({(r["dataset"], r["method"]) for r in table},
                 key=lambda c: (DATASETS.index(c[0]) if c[0] in DATASETS else 99,
                                METHODS.index(c[1])))
  for dataset, method in cells:
    pick = lambda kind: [r for r in table if r["kind"] == kind and r["dataset"] == dataset
                         and r["method"] == method]
    cold, warm, peer = pick("ssadjax_cold"), pick("ssadjax_warm"), pick("deepod")
    if not (cold and warm):
      continue
    d, steps = warm[0]["d"], warm[0]["one"]["steps"]
    cold_s = _med([r["one"]["wall"] for r in cold])
    warm_s = _med([r["one"]["wall"] for r in warm])
    steady = _med([r["one_steady"]["train"] for r in warm + cold])
    sw = [r for r in warm if "three_steady0" in r]
    three_wall = _med([r[f"three_steady{i}"]["wall"] for r in sw for i in range(3)]) / _med(
        [r[f"one_steady{i}"]["wall"] for r in sw for i in range(3)]) if sw else float("nan")
    three_steady = _med([r[f"three_steady{i}"]["train"] for r in sw for i in range(3)]) / _med(
        [r[f"one_steady{i}"]["train"] for r in sw for i in range(3)]) if sw else float("nan")
    # 3 seeds with nothing cached (one run per cell) over the median cold 1-seed run.
    three_cold = sw[0]["three_first"]["wall"] / cold_s if sw else float("nan")
    floor = train_flops("ssadjax", method, d, steps) / peak
    auroc = _med([r["one"]["auroc"][0] for r in warm])
    rss = _med([r["rss_mb_one"] for r in cold])
    if peer:
      peer_s = _med([r["wall"] for r in peer])
      peer_steps = peer[0]["steps"]
      peer_txt = (f"{peer_s:.2f} | {peer_s / cold_s:.1f}x | {peer_s / warm_s:.1f}x | "
                  f"{1e3 * steady / steps:.3f} / {1e3 * peer_s / peer_steps:.3f} | ")
      tail = (f"{auroc:.3f} / {_med([r['auroc'] for r in peer]):.3f} | "
              f"{rss:.0f} / {_med([r['rss_mb'] for r in peer]):.0f} |")
      steps_txt = f"{steps}/{peer_steps}"
    else:
      peer_txt = f"- | - | - | {1e3 * steady / steps:.3f} / - | "
      tail = f"{auroc:.3f} / - | {rss:.0f} / - |"
      steps_txt = f"{steps}/-"
    lines.append(f"| {dataset} | {method} | {steps_txt} | {cold_s:.2f} | {warm_s:.2f} | "
                 + peer_txt + f"{floor:.3f} | {steady / floor:.1f}x | "
                 f"{three_cold:.2f} / {three_wall:.2f} / {three_steady:.2f} | " + tail)
  for r in rows:
    if r["kind"].startswith("grid"):
      lines.append(f"\n{r['kind']}: {r['wall']:.1f} s wall for {r['cells']} cells x 3 seeds "
                   f"(sum of compile {r['compile_seconds']:.1f} s, train+score "
                   f"{r['train_seconds']:.1f} s), load {r['load'][0]:.1f} -> "
                   f"{r['load_after'][0]:.1f}")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  if FLAGS.worker:
    {"ssadjax": worker_ssadjax, "deepod": worker_deepod, "deepod_cell": worker_deepod_cell,
     "flops": worker_flops}[FLAGS.worker]()
    return
  if FLAGS.report_only:
    print(report(FLAGS.report_only))
    return
  out_dir = pathlib.Path(FLAGS.out)
  out_dir.mkdir(parents=True, exist_ok=True)
  results = out_dir / "results.jsonl"
  if FLAGS.table:
    run_table(out_dir)
  if FLAGS.grid:
    run_grid(out_dir)
  if FLAGS.plan:
    print_plans()
    if not (FLAGS.tables or FLAGS.table or FLAGS.grid):
      return
  if FLAGS.tables:
    run_tables(out_dir)
    if not results.exists():
      return
  text = report(results)
  (out_dir / "report.md").write_text(text)
  print(text)


if __name__ == "__main__":
  define_flags()
  app.run(main)
