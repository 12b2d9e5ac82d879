"""A run's folder and the files in it: the claim on the workdir (config.json),
metrics.jsonl, results.csv and report.md, and the reuse of a finished run's results.

Files written: config.json, metrics.jsonl, checkpoints/, results.json,
scores.npz, and for every run (single or grid) results.csv (one row per seed and cell) and
report.md (the table `format_table` prints); a grid has one sub-folder per cell.
"""

import csv
import importlib.metadata
import io
import json
import logging
import pathlib


from experiments import grid
from ssadjax.host.files import atomic_write_text
from ssadjax.program import parallel

log = logging.getLogger(__name__)

RESULT_FIELDS = ("method", "anomaly_only", "dataset", "la", "seed", "auroc", "auprc",
                 "train_seconds", "compile_seconds", "steps", "devices")


def versions() -> dict:
  out = {}
  for pkg in ("ssadjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"):
    try:
      out[pkg] = importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
      out[pkg] = None
  return out


def claim(config, workdir: pathlib.Path) -> None:
  """Checks the workdir (grid.check_workdir: it must hold this experiment or
  nothing), creates it, then writes config.json (once)."""
  if grid.check_workdir(config, workdir) or not parallel.is_main_process():
    return
  try:
    workdir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise ValueError(f"workdir {workdir} cannot be created ({e}); choose another "
                     "--workdir") from e
  atomic_write_text(workdir / "config.json", grid.config_json(config))


class MetricsLog:
  """metrics.jsonl: one line per (seed, epoch) of the main stage, and per (seed, stage,
  epoch) of an earlier stage (e.g. {"stage": "pretrain", "pretrain/loss": ...}). Rewriting
  the lines of the epochs being reported makes a resumed run's log identical to an
  uninterrupted one."""

  def __init__(self, path):
    self.path = pathlib.Path(path)

  def write(self, seeds, last_epoch: int, steps_per_epoch: int, chunk_metrics: dict):
    num_epochs = chunk_metrics["loss"].shape[1]
    epochs = range(last_epoch - num_epochs + 1, last_epoch + 1)
    stage = chunk_metrics.get("stage")
    steps_per_epoch = chunk_metrics.get("steps_per_epoch", steps_per_epoch)
    new = []
    for si, seed in enumerate(seeds):
      for ei, epoch in enumerate(epochs):
        loss = float(chunk_metrics["loss"][si, ei])
        if stage:
          new.append({"seed": seed, "stage": stage, "epoch": epoch,
                      "step": epoch * steps_per_epoch, f"{stage}/loss": loss})
          continue
        new.append({"seed": seed, "epoch": epoch, "step": epoch * steps_per_epoch,
                    "train/loss": loss,
                    "train/updated_fraction": float(chunk_metrics["updated"][si, ei])})
    new[-1]["steps_per_second"] = chunk_metrics["steps_per_second"]
    new[-1]["eta_seconds"] = chunk_metrics["eta_seconds"]
    key = lambda r: (r["seed"], r.get("stage"), r["epoch"])
    replaced = {key(r) for r in new}
    old = []
    if self.path.exists():
      old = [json.loads(line) for line in self.path.read_text().splitlines() if line]
      old = [r for r in old if key(r) not in replaced]
    atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in old + new))


def finished(config, workdir):
  """The results of a finished run in `workdir` (same config, checked), else None."""
  workdir = pathlib.Path(workdir)
  grid.check_workdir(config, workdir)
  if (workdir / "results.json").exists():
    log.info("%s already finished; reusing its results.json", workdir)
    # "reused" (never written) tells callers that nothing ran in this process.
    return {**json.loads((workdir / "results.json").read_text()), "reused": True}
  return None


def write_results(workdir, summaries: list[dict], overrides: list[dict] | None = None) -> None:
  """results.csv (one row per scored seed; a grid's values as extra columns) and
  report.md (`format_table`) for a single run (one summary) or a grid."""
  overrides = overrides or [{} for _ in summaries]
  rows = []
  for result, cell in zip(summaries, overrides):
    for seed, roc, pr in zip(result["seeds"], result["auroc"], result["auprc"]):
      if roc is None:
        continue  # a diverged seed
      rows.append({**{k: result[k] for k in RESULT_FIELDS if k in result},
                   "seed": seed, "auroc": roc, "auprc": pr,
                   # the cell's grid values as extra columns ('@policy' -> 'policy')
                   **{k.lstrip("@"): v for k, v in cell.items()
                      if k.lstrip("@") not in RESULT_FIELDS}})
  extra = list(dict.fromkeys(k.lstrip("@") for cell in overrides for k in cell
                             if k.lstrip("@") not in RESULT_FIELDS))
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=list(RESULT_FIELDS) + extra, restval="")
  writer.writeheader()
  writer.writerows(rows)
  atomic_write_text(pathlib.Path(workdir) / "results.csv", out.getvalue())
  atomic_write_text(pathlib.Path(workdir) / "report.md", format_table(summaries))


def format_table(results: list[dict]) -> str:
  # A grid's other knobs (e.g. preset, @policy) get a column where they vary, so that no
  # two rows look alike; method, AnoOnly, dataset and la are shown already.
  shown = {"method", "anomaly_only", "dataset", "la"}
  knobs = [k for k in dict.fromkeys(k for r in results for k in r.get("grid", {}))
           if k not in shown and len({repr(r.get("grid", {}).get(k)) for r in results}) > 1]
  head = ["method", "dataset", "la", *(k.lstrip("@") for k in knobs), "AUROC", "AUPRC",
          "seeds", "train s", "compile s"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in results:
    values = "".join(f"{r.get('grid', {}).get(k, '')} | " for k in knobs)
    lines.append(
        f"| {r['name']} | {r['dataset']} | {r['la']} | {values}"
        f"{100 * r['auroc_mean']:.2f} ± {100 * r['auroc_std']:.2f} | "
        f"{100 * r['auprc_mean']:.2f} ± {100 * r['auprc_std']:.2f} | {len(r['seeds'])} | "
        f"{r['train_seconds']:.1f} | {r['compile_seconds']:.1f} |")
  return "\n".join(lines) + "\n"
