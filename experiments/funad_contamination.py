"""FUN-AD vs Deep SVDD (both unsupervised, la = 0) at controlled contamination ratios,
with Deep SAD (la = 0.1, the protocol's natural contamination) as a reference line.

  PYTHONPATH=. python -m experiments.funad_contamination --data_dir=../shared/data/adbench \
    --workdir=/tmp/funad_table [--datasets=6_cardio,38_thyroid] [--ratios=0,0.05,0.1,0.2]

The ADBench protocol puts every training anomaly into the unlabelled set, so the
contamination is the dataset's own; it has no knob for an anomaly ratio. Until it has one
(docs/methods/funad.md), this script applies `funad.subsample_contamination` to
each seed's split (anomaly-to-normal ratio, FUN-AD's `--noise`; normals are subsampled
when a dataset has too few anomalies) by wrapping `runconfig.prepare_splits`, and
otherwise runs the ordinary `runner.run_single` (same engine, same result files).
Both methods see identical training sets (the subsampling generator depends on the seed
only).
"""

import contextlib
import json
import pathlib
import time

from absl import app, flags
import numpy as np

from experiments.configs import adbench
from ssadjax import runconfig
from experiments import runner
from ssadjax.methods import funad

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", "../shared/data/adbench", "ADBench folder")
flags.DEFINE_string("workdir", "/tmp/funad_contamination", "output folder")
flags.DEFINE_list("datasets", ["6_cardio", "38_thyroid", "30_satellite", "7_Cardiotocography"],
                  "ADBench datasets")
flags.DEFINE_list("ratios", ["0", "0.05", "0.1", "0.2"], "anomaly-to-normal ratios")
flags.DEFINE_integer("num_seeds", 3, "seeds 1..num_seeds")
flags.DEFINE_integer("funad_epochs", 0, "0 = config default")
flags.DEFINE_integer("funad_bank_period", 0, "0 = config default")
flags.DEFINE_bool("deepsad_reference", True, "add the Deep SAD la = 0.1 line")

SUBSAMPLE_SALT = 1011


@contextlib.contextmanager
def contaminated(ratio: float, record: dict):
  original = runconfig.prepare_splits

  def prepare(config, seeds):
    out = []
    for seed, split in zip(seeds, original(config, seeds)):
      split, info = funad.subsample_contamination(
          split, ratio, np.random.default_rng((seed, SUBSAMPLE_SALT)))
      record.setdefault("info", []).append(info)
      out.append(split)
    return out

  runconfig.prepare_splits = prepare
  try:
    yield
  finally:
    runconfig.prepare_splits = original


def config_for(method: str, dataset: str, la: float):
  c = adbench.get_config()
  c.method, c.dataset, c.la = method, dataset, la
  c.data_dir = FLAGS.data_dir
  c.num_seeds = FLAGS.num_seeds
  c.checkpoint.enabled = False
  c.train.chunk_epochs = 1000
  if FLAGS.funad_epochs:
    c.funad.num_epochs = FLAGS.funad_epochs
  if FLAGS.funad_bank_period:
    c.funad.bank_period = FLAGS.funad_bank_period
  return c


def main(argv):
  del argv
  root = pathlib.Path(FLAGS.workdir)
  rows = []
  for dataset in FLAGS.datasets:
    for ratio in map(float, FLAGS.ratios):
      for method in ("funad", "deepsvdd"):
        record = {}
        t = time.time()
        with contaminated(ratio, record):
          r = runner.run_single(config_for(method, dataset, 0.0),
                                    root / f"{dataset}_{ratio}_{method}")
        rows.append({"dataset": dataset, "ratio": ratio, "method": method,
                     "auroc": r["auroc"], "auprc": r["auprc"], "n_train": r["num_train"],
                     "info": record["info"][0], "train_s": r["train_seconds"],
                     "compile_s": r["compile_seconds"], "wall_s": time.time() - t})
        print(json.dumps(rows[-1]), flush=True)
    if FLAGS.deepsad_reference:
      t = time.time()
      r = runner.run_single(config_for("deepsad", dataset, 0.1),
                                root / f"{dataset}_deepsad_la0.1")
      rows.append({"dataset": dataset, "ratio": None, "method": "deepsad la=0.1",
                   "auroc": r["auroc"], "auprc": r["auprc"], "n_train": r["num_train"],
                   "info": None, "train_s": r["train_seconds"],
                   "compile_s": r["compile_seconds"], "wall_s": time.time() - t})
      print(json.dumps(rows[-1]), flush=True)
  (root / "rows.json").write_text(json.dumps(rows, indent=1))
  print(table(rows))
  (root / "table.md").write_text(table(rows))


def _fmt(values):
  return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"


def table(rows) -> str:
  ratios = sorted({r["ratio"] for r in rows if r["ratio"] is not None})
  head = ("| dataset | method | " + " | ".join(f"r = {x:g}" for x in ratios)
          + " | Deep SAD la = 0.1 |")
  lines = [head, "|" + "---|" * (len(ratios) + 3)]
  for dataset in dict.fromkeys(r["dataset"] for r in rows):
    ref = [r for r in rows if r["dataset"] == dataset and r["ratio"] is None]
    ref_txt = _fmt(ref[0]["auroc"]) if ref else "—"
    for method in ("funad", "deepsvdd"):
      cells = []
      for x in ratios:
        hit = [r for r in rows if r["dataset"] == dataset and r["method"] == method
               and r["ratio"] == x]
        cells.append(_fmt(hit[0]["auroc"]) if hit else "—")
      lines.append(f"| {dataset} | {method} | " + " | ".join(cells) + f" | {ref_txt} |")
  sizes = ["", "training rows (normals + anomalies) per ratio:"]
  for dataset in dict.fromkeys(r["dataset"] for r in rows):
    sizes.append(f"* {dataset}: " + ", ".join(
        f"r={r['ratio']:g}: {r['info']['normals']}+{r['info']['anomalies']}"
        for r in rows if r["dataset"] == dataset and r["method"] == "funad"))
  return "\n".join(lines + sizes) + "\n"


if __name__ == "__main__":
  app.run(main)
