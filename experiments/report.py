"""Our tables beside the published ones, with figures: reads grid workdirs, writes a report.

  python -m experiments.report runs/anoonly_table --table=anoonly
  python -m experiments.report runs/adbench_table --table=adbench --example=Classical/6_cardio

Reads every finished cell (`cells/*/results.json`, so a grid still running or interrupted
can be reported on; a `results.csv`, given as a file or found in a workdir without cell
folders, works too, without the ROC/histogram figure) and writes into `--out` (default WORKDIR/report/);
every file is written in a temporary folder beside it and moved in at the end, so a
failed report leaves nothing behind. Without matplotlib only the tables are written
(one line says how to get the figures: pip install 'ssadjax[report]'):

* report.md: our AUROC beside ADBench (tables D6/D8/D10) or AnoOnly (README overall),
  the differences, and a list of every gap larger than `--gap` points;
* anoonly_families.png: per family, baseline vs +AnoOnly bars per method (error bars: std
  over the family's sub-tasks, each a mean over seeds);
* auroc_vs_la.png: mean AUROC over the datasets against la, ours and ADBench's (only
  with at least two ratios);
* example_<dataset>.png: ROC curves and score histograms of every method on one dataset.

Aggregation as the references: a family is the mean over its sub-tasks, "overall" the
unweighted mean over families (as AnoOnly; docs/tables.md); classical datasets are
means over seeds. Published means are recomputed over the same datasets/families as
ours, so a table over a subset of ADBench compares like with like; the papers'
all-dataset means are quoted beside them.
"""

import argparse
import csv
import json
import os
import pathlib
import re
import shutil
import statistics
import sys
import tempfile
from collections import defaultdict

import numpy as np

from experiments import plots, published

GAP = 3.0  # AUROC points; larger differences to a published number are listed


# Per-seed columns of results.csv (experiments.workdir.RESULT_FIELDS minus the four that
# name the cell; not imported, as that would load JAX); every other column names the cell.
_PER_SEED = {"seed", "auroc", "auprc", "train_seconds", "compile_seconds", "steps", "devices"}


def read_cells(workdirs) -> list[dict]:
  """One record per finished cell: method, anomaly_only, dataset, la, per-seed AUROC/AUPRC
  (diverged seeds dropped) and the cell's folder (None when read from a results.csv).

  Each argument is a grid workdir (its `cells/*/results.json`, or its `results.csv` when
  the cell folders are absent, e.g. a table copied from another machine) or a
  `results.csv` file itself."""
  records = []
  for workdir in map(pathlib.Path, workdirs):
    if workdir.suffix == ".csv":
      records += _read_csv(workdir)
      continue
    paths = sorted(workdir.glob("cells/*/results.json"))
    if not paths and (workdir / "results.json").exists():
      paths = [workdir / "results.json"]
    if not paths and (workdir / "results.csv").exists():
      records += _read_csv(workdir / "results.csv")
      continue
    if not paths:
      raise FileNotFoundError(f"{workdir}: no finished cell (cells/*/results.json) "
                              "and no results.csv to report on")
    for path in paths:
      r = json.loads(path.read_text())
      keep = [i for i, v in enumerate(r["auroc"]) if v is not None]
      records.append({
          "method": r["method"], "anomaly_only": bool(r["anomaly_only"]),
          "dataset": r["dataset"], "la": float(r["la"]), "dir": path.parent,
          "auroc": [100 * r["auroc"][i] for i in keep],
          "auprc": [100 * r["auprc"][i] for i in keep]})
  return records


def _read_csv(path: pathlib.Path) -> list[dict]:
  """Records from a grid's results.csv (one row per seed): rows that agree on every
  column but the per-seed ones form one cell; diverged seeds (empty / nan) are dropped."""
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    rows = list(reader)
  missing = {"method", "anomaly_only", "dataset", "la", "auroc", "auprc"} - set(reader.fieldnames or ())
  if not rows or missing:
    raise ValueError(f"{path}: not a results.csv of a grid"
                     f"{f' (no column {sorted(missing)})' if missing else ' (no rows)'}")
  cells = defaultdict(lambda: {"auroc": [], "auprc": []})
  for row in rows:
    key = tuple((k, v) for k, v in row.items() if k not in _PER_SEED)
    cell = cells[key]
    if row["auroc"] not in ("", "nan", "None"):
      cell["auroc"].append(100 * float(row["auroc"]))
      cell["auprc"].append(100 * float(row["auprc"]))
  records = []
  for key, cell in cells.items():
    k = dict(key)
    extra = {c: v for c, v in k.items()
             if c not in ("method", "anomaly_only", "dataset", "la")}  # grid columns
    records.append({"method": k["method"], "anomaly_only": k["anomaly_only"] == "True",
                    "dataset": k["dataset"], "la": float(k["la"]), "dir": None,
                    "extra": extra, **cell})
  return records


def _has_scores(record) -> bool:
  return record["dir"] is not None and (record["dir"] / "scores.npz").exists()


def standard_error(values) -> float | None:
  """Of the mean of `values` (ddof 1); None for a single value."""
  return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None


def gap_z(ours: float, reference: float, se: float | None) -> str:
  """Δ over √2 SE: a published mean of as many seeds with our spread."""
  if se is None:
    return "–"
  return "∞" if se == 0 else f"{(ours - reference) / (np.sqrt(2) * se):+.1f}"


def variant(method: str, anomaly_only: bool) -> str:
  return method + ("+AnoOnly" if anomaly_only else "")


def _fmt(value, std=None) -> str:
  if value is None or (isinstance(value, float) and np.isnan(value)):
    return "–"
  return f"{value:.2f}" if std is None else f"{value:.2f} ± {std:.2f}"


def _diff(ours, ref) -> str:
  if ours is None or ref is None:
    return "–"
  d = ours - ref
  return f"**{d:+.2f}**" if abs(d) > GAP else f"{d:+.2f}"


_METHOD_ORDER = list(published.METHOD_COLUMN) + ["bgad", "funad", "deepsvdd", "clad"]


def _rank(method: str):
  return (_METHOD_ORDER.index(method) if method in _METHOD_ORDER else 99, method)


def _order(methods):
  return sorted(set(methods), key=_rank)


# ------------------------------------------------------------------------------ AnoOnly


def anoonly_summary(records):
  """{(method, anomaly_only): {family: [per sub-task mean AUROC]}} over CV/NLP cells."""
  out = defaultdict(lambda: defaultdict(list))
  for r in records:
    fam = published.family(r["dataset"])
    if fam is not None and r["auroc"]:
      out[(r["method"], r["anomaly_only"])][fam].append(float(np.mean(r["auroc"])))
  return out


def overall(per_family: dict) -> float:
  """Mean over families of the mean over each family's sub-tasks (AnoOnly's "overall")."""
  return float(np.mean([np.mean(v) for v in per_family.values()]))


def anoonly_report(records, gaps: list, who: str = "ours") -> str:
  """The AnoOnly family table; `who` names whose runs the records are (ours, or a
  reference implementation's, e.g. the AnoOnly repository's code)."""
  summary = anoonly_summary(records)
  if not summary:
    return ""
  methods = _order(m for m, _ in summary)
  families = [f for f in published.CV_FAMILIES + published.NLP_FAMILIES
              if any(f in summary[k] for k in summary)]
  lines = ["## AnoOnly table: CV and NLP families, la = 0.1", "",
           f"Families found: {', '.join(families)} ({len(families)} of 10). Per family: mean "
           "± std over its sub-tasks (each a mean over seeds); ADBench = Table D10's family value "
           "(baseline methods only).", ""]
  header = "| family | files |"
  rule = "|---|---|"
  for m in methods:
    header += f" {m} | {m}+AnoOnly | ADBench {m} |"
    rule += "---|---|---|"
  lines += [header, rule]
  for fam in families:
    n = max(len(summary[k].get(fam, [])) for k in summary)
    row = f"| {fam} | {n} |"
    for m in methods:
      for ao in (False, True):
        v = summary.get((m, ao), {}).get(fam)
        row += f" {_fmt(np.mean(v), np.std(v)) if v else '–'} |"
      ref = published.adbench(m, fam, 0.1)
      ours = summary.get((m, False), {}).get(fam)
      row += f" {_fmt(ref)} |"
      if ref is not None and ours and abs(np.mean(ours) - ref) > GAP:
        gaps.append((f"{m} on {fam} (family mean, la 0.1)", float(np.mean(ours)), ref,
                     "ADBench D10", None))
    lines.append(row)

  lines += ["", "Overall = unweighted mean over the families above (AnoOnly's aggregation). "
            "The AnoOnly README and ADBench 'all 10' means cover ten families; "
            "'ADBench, same families' averages D10 over ours only.", "",
            f"| method | {who} | {who} +AnoOnly | Δ {who} | AnoOnly README | README +AnoOnly | Δ README "
            f"| ADBench, same families | ADBench, all 10 | {who} CV / NLP | {who} +AnoOnly CV / NLP |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
  for m in methods:
    base, ao = summary.get((m, False), {}), summary.get((m, True), {})
    ob = overall(base) if base else None
    oa = overall(ao) if ao else None
    readme = published.ANOONLY_OVERALL.get(m, {})
    refs = [published.adbench(m, f, 0.1) for f in base]
    same = float(np.mean(refs)) if refs and None not in refs else None
    all10 = [published.adbench(m, f, 0.1) for f in published.CV_FAMILIES + published.NLP_FAMILIES]
    all10 = float(np.mean(all10)) if None not in all10 else None

    def by_modality(per_family):
      parts = []
      for mod in ("CV", "NLP"):
        sub = {f: v for f, v in per_family.items() if published.modality(f) == mod}
        parts.append(_fmt(overall(sub)) if sub else "–")
      return " / ".join(parts)

    lines.append(
        f"| {m} | {_fmt(ob)} | {_fmt(oa)} | {_fmt(oa - ob) if ob is not None and oa is not None else '–'} "
        f"| {_fmt(readme.get(False))} | {_fmt(readme.get(True))} | "
        f"{_fmt(readme[True] - readme[False]) if readme else '–'} | {_fmt(same)} | {_fmt(all10)} | "
        f"{by_modality(base)} | {by_modality(ao)} |")
    if ob is not None and same is not None and abs(ob - same) > GAP:
      gaps.append((f"{m} overall over {len(base)} families", ob, same,
                   "ADBench D10, same families", None))
    for ao_flag, ours in ((False, ob), (True, oa)):
      ref = readme.get(ao_flag)
      if ours is not None and ref is not None and abs(ours - ref) > GAP:
        gaps.append((f"{variant(m, ao_flag)} overall ({len(base)} of 10 families)", ours, ref,
                     "AnoOnly README (10 families)", None))
  return "\n".join(lines) + "\n"


def plot_families(records, out_png):
  plt = _pyplot()
  summary = anoonly_summary(records)
  families = [f for f in published.CV_FAMILIES + published.NLP_FAMILIES
              if any(f in summary[k] for k in summary)]
  methods = _order(m for m, _ in summary)
  fig, axes = plt.subplots(1, len(families), figsize=(3.2 * len(families) + 1, 3.4),
                           squeeze=False, sharey=True)
  width = 0.38
  lowest = 40.0  # lowered when a bar or a reference would fall below the axis
  for ax, fam in zip(axes[0], families):
    x = np.arange(len(methods))
    for j, ao in enumerate((False, True)):
      vals = [summary.get((m, ao), {}).get(fam, []) for m in methods]
      lowest = min([lowest, *(np.mean(v) - np.std(v) for v in vals if v)])
      ax.bar(x + (j - 0.5) * width, [np.mean(v) if v else np.nan for v in vals], width,
             yerr=[np.std(v) if v else 0 for v in vals], capsize=2,
             label="+AnoOnly" if ao else "baseline", color="C1" if ao else "C0")
    refs = [published.adbench(m, fam, 0.1) for m in methods]
    lowest = min([lowest, *(r for r in refs if r is not None)])
    ax.scatter(x - 0.5 * width, [np.nan if r is None else r for r in refs], marker="_", s=200,
               color="k", zorder=3, label="ADBench D10")
    ax.set_xticks(x, methods, rotation=30, fontsize=8)
    n_files = max(len(summary[k].get(fam, [])) for k in summary)
    ax.set_title(f"{fam} ({n_files} file{'' if n_files == 1 else 's'})")
    ax.grid(axis="y", alpha=0.3)
  axes[0][0].set_ylim(10 * np.floor(lowest / 10), 100)  # shared y
  axes[0][0].set_ylabel("AUROC %")
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.legend(handles, labels, fontsize=8, loc="upper center", ncol=3, frameon=False)
  fig.tight_layout(rect=(0, 0, 1, 0.9))
  fig.savefig(out_png, dpi=90)
  plt.close(fig)


# ------------------------------------------------------------------------------ ADBench


def adbench_summary(records):
  """{(method, anomaly_only, la): {dataset: [per-seed AUROC]}} over Classical cells."""
  out = defaultdict(dict)
  for r in records:
    if published.family(r["dataset"]) is None and r["auroc"]:
      out[(r["method"], r["anomaly_only"], r["la"])][r["dataset"]] = r["auroc"]
  return out


def adbench_report(records, gaps: list) -> str:
  summary = adbench_summary(records)
  if not summary:
    return ""
  lines = ["## ADBench table: Classical datasets", "",
           "Ours: mean ± std over seeds; ADBench: tables D6 (la 0.01), D8 (0.05), D10 (0.1), "
           "means of 3 repetitions. Bold: |difference| > "
           f"{GAP:g} points.", ""]
  ratios = sorted({la for _, _, la in summary})
  variants = sorted({(m, ao) for m, ao, _ in summary}, key=lambda v: (_rank(v[0]), v[1]))
  for la in ratios:
    datasets = sorted({d for (m, ao, l), v in summary.items() if l == la for d in v},
                      key=lambda d: (published.dataset_key(d) or d).lower())
    lines += [f"### la = {la:g}", ""]
    header, rule = "| dataset |", "|---|"
    for m, ao in variants:
      header += f" {variant(m, ao)} | ADBench | Δ |"
      rule += "---|---|---|"
    lines += [header, rule]
    for d in datasets:
      row = f"| {published.dataset_key(d) or d} |"
      for m, ao in variants:
        v = summary.get((m, ao, la), {}).get(d)
        ref = published.adbench(m, d, la) if not ao else None
        ours = float(np.mean(v)) if v else None
        row += f" {_fmt(ours, np.std(v)) if v else '–'} | {_fmt(ref)} | {_diff(ours, ref)} |"
        if ours is not None and ref is not None and abs(ours - ref) > GAP:
          gaps.append((f"{m} on {published.dataset_key(d)} (la {la:g})", ours, ref,
                       f"ADBench {'D6' if la == 0.01 else 'D8' if la == 0.05 else 'D10'}",
                       standard_error(v)))
      lines.append(row)
    row = "| **mean** |"
    for m, ao in variants:
      cell = summary.get((m, ao, la), {})
      ours = float(np.mean([np.mean(v) for v in cell.values()])) if cell else None
      refs = [published.adbench(m, d, la) for d in cell] if not ao else [None]
      ref = float(np.mean(refs)) if refs and None not in refs else None
      row += f" {_fmt(ours)} | {_fmt(ref)} | {_diff(ours, ref)} |"
    lines += [row, ""]
  return "\n".join(lines) + "\n"


def plot_vs_la(records, out_png):
  plt = _pyplot()
  summary = adbench_summary(records)
  variants = sorted({(m, ao) for m, ao, _ in summary}, key=lambda v: (_rank(v[0]), v[1]))
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for i, (m, ao) in enumerate(variants):
    ratios = sorted(la for mm, a, la in summary if (mm, a) == (m, ao))
    means, errs, refs = [], [], []
    for la in ratios:
      cell = summary[(m, ao, la)]
      # error bar: std over seeds of the per-seed mean over datasets
      n_seeds = min(len(v) for v in cell.values())
      per_seed = [np.mean([v[s] for v in cell.values()]) for s in range(n_seeds)]
      means.append(np.mean([np.mean(v) for v in cell.values()]))
      errs.append(np.std(per_seed))
      r = [published.adbench(m, d, la) for d in cell] if not ao else [None]
      refs.append(np.mean(r) if None not in r else np.nan)
    x = [100 * la for la in ratios]
    ax.errorbar(x, means, yerr=errs, marker="o", capsize=3, color=f"C{i}", label=variant(m, ao))
    if not np.all(np.isnan(refs)):
      ax.plot(x, refs, ls="--", marker="x", color=f"C{i}", alpha=0.7, label=f"ADBench {m}")
  ax.set_xscale("log")
  ax.set_xticks([1, 5, 10], ["1", "5", "10"])
  ax.set_xlabel("labelled anomalies la (% of train anomalies)")
  ax.set_ylabel("mean AUROC % over datasets")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  fig.savefig(out_png, dpi=90)
  plt.close(fig)


# ------------------------------------------------------------------------------ example


def roc_curve(labels, scores):
  """False/true positive rates at every distinct threshold (ties handled together)."""
  order = np.argsort(-scores, kind="stable")
  s, y = scores[order], labels[order].astype(bool)
  distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
  tp = np.cumsum(y)[distinct]
  fp = np.cumsum(~y)[distinct]
  return np.r_[0, fp / max(fp[-1], 1)], np.r_[0, tp / max(tp[-1], 1)]


def plot_example(records, dataset, out_png, la=None):
  """ROC curves (seed 0 of every method variant) and score histograms on `dataset`."""
  plt = _pyplot()
  cells = [r for r in records if r["dataset"] == dataset and (la is None or r["la"] == la)
           and _has_scores(r)]
  if not cells:
    known = sorted({r["dataset"] for r in records})
    raise ValueError(f"no finished cell with scores for dataset {dataset!r}"
                     f"{f' at la={la}' if la is not None else ''}; have: {', '.join(known[:10])}")
  if la is None:  # one ratio only: the largest present
    top = max(r["la"] for r in cells)
    cells = [r for r in cells if r["la"] == top]
  cells.sort(key=lambda r: (_rank(r["method"]), r["anomaly_only"]))
  ncols = min(5, 1 + len(cells))  # the ROC panel, then one histogram per variant
  nrows = -(-(1 + len(cells)) // ncols)
  fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.0 * nrows), squeeze=False)
  axes = axes.ravel()
  for ax in axes[1 + len(cells):]:
    ax.set_visible(False)
  roc_ax = axes[0]
  for i, r in enumerate(cells):
    with np.load(r["dir"] / "scores.npz") as f:
      labels, scores = f["labels"][0], f["scores"][0]
    fpr, tpr = roc_curve(labels, scores)
    name = variant(r["method"], r["anomaly_only"])
    roc_ax.plot(fpr, tpr, color=f"C{i}", label=f"{name} ({r['auroc'][0]:.1f})")
    ax = axes[i + 1]
    bins = np.histogram_bin_edges(scores, bins=40)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, density=True, label="normal")
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, density=True, label="anomaly")
    ax.set_title(name, fontsize=9)
    ax.set_xlabel("score")
    ax.legend(fontsize=7)
  roc_ax.plot([0, 1], [0, 1], "k:", lw=0.8)
  roc_ax.set_xlabel("false positive rate")
  roc_ax.set_ylabel("true positive rate")
  roc_ax.set_title(f"{dataset} (la {cells[0]['la']:g}, first seed of each)", fontsize=9)
  roc_ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  fig.savefig(out_png, dpi=90)
  plt.close(fig)


def _pyplot():
  return plots._pyplot()


def _plot_vs_la_points(records) -> int:
  """Ratios on the AUROC-vs-la axis; a line through one point says nothing."""
  return len({la for _, _, la in adbench_summary(records)})


def _move_into(tmp: pathlib.Path, out_dir: pathlib.Path) -> None:
  """Moves every file of `tmp` into `out_dir` (created now), each by an atomic rename."""
  out_dir.mkdir(parents=True, exist_ok=True)
  for f in sorted(tmp.iterdir()):
    os.replace(f, out_dir / f.name)


def _existing_ancestor(path: pathlib.Path) -> pathlib.Path:
  path = path.absolute()
  while not path.exists():
    path = path.parent
  return path


# ------------------------------------------------------------------------------ main


def write_report(workdirs, out_dir=None, *, table="auto", example=None,
                 reference=None) -> pathlib.Path:
  """Writes report.md and the figures; returns the report's path. With `reference` (a
  results.csv of experiments/reference.py: the reference code on our exact splits), the
  report opens with the paired comparison against it, the fidelity criterion; the
  published numbers follow."""
  if table not in ("auto", "anoonly", "adbench"):
    raise ValueError(f"table={table!r}; expected auto | anoonly | adbench")
  records = read_cells(workdirs)
  asked = example
  with_scores = sorted(r["dataset"] for r in records if _has_scores(r))
  example = example or (with_scores[0] if with_scores else None)
  if example and not any(r["dataset"] == example for r in records):  # '6_cardio'
    matches = sorted({r["dataset"] for r in records if r["dataset"].split("/")[-1] == example})
    if len(matches) == 1:
      example = matches[0]
  if asked and not any(r["dataset"] == example and _has_scores(r) for r in records):
    raise ValueError(f"no finished cell with scores for dataset {example!r}; have: "
                     f"{', '.join(sorted({r['dataset'] for r in records})[:10])}")
  out_dir = pathlib.Path(out_dir or pathlib.Path(workdirs[0]) / "report")
  if out_dir.exists() and not out_dir.is_dir():
    raise ValueError(f"--out={out_dir} is a file; give a folder")
  draw = figures_available()
  # Everything goes to a temporary folder first (same filesystem, so the final moves are
  # renames); a failure leaves neither an empty nor a half-written report folder.
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=".report-", dir=_existing_ancestor(out_dir.parent)))
  try:
    path = _write_all(records, workdirs, tmp, table=table, example=example, draw=draw,
                      reference=reference)
    _move_into(tmp, out_dir)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return out_dir / path.name


FIGURES_HINT = plots.FIGURES_HINT


def figures_available() -> bool:
  """matplotlib importable (the report's only optional dependency)."""
  try:
    import matplotlib  # noqa: F401
  except ImportError:
    return False
  return True


def _our_results_csv(workdirs) -> pathlib.Path:
  """The results.csv our runner wrote, for pairing with the reference's."""
  for workdir in map(pathlib.Path, workdirs):
    path = workdir if workdir.suffix == ".csv" else workdir / "results.csv"
    if path.is_file():
      return path
  raise ValueError("--reference needs our results.csv (a grid workdir or the file itself)")


def _write_all(records, workdirs, out_dir, *, table, example, draw,
               reference=None) -> pathlib.Path:
  gaps = []
  parts = [f"# Report: {', '.join(map(str, workdirs))}", "",
           f"{len(records)} finished cells. Generated by `python -m experiments.report`.", ""]
  if reference is not None:
    from experiments import fidelity
    if not pathlib.Path(reference).is_file():
      raise FileNotFoundError(f"--reference={reference}: no such results.csv "
                              "(experiments/reference.py writes it)")
    parts += ["## Fidelity to the reference code", "",
              fidelity.fidelity_report(_our_results_csv(workdirs), reference)]
  figures = []
  if table in ("auto", "anoonly") and anoonly_summary(records):
    parts.append(anoonly_report(records, gaps))
    if draw:
      plot_families(records, out_dir / "anoonly_families.png")
      figures.append("anoonly_families.png")
  if table in ("auto", "adbench") and adbench_summary(records):
    parts.append(adbench_report(records, gaps))
    if draw and _plot_vs_la_points(records) >= 2:
      plot_vs_la(records, out_dir / "auroc_vs_la.png")
      figures.append("auroc_vs_la.png")
  if len(parts) == 4 and reference is None:
    raise ValueError(f"no cell of the {table} table among {len(records)} finished cells")
  if example and draw:  # none when only results.csv files were read (no scores.npz)
    name = "example_" + example.replace("/", "_") + ".png"
    plot_example(records, example, out_dir / name)
    figures.append(name)
  parts += [f"## Gaps larger than {GAP:g} AUROC points to a published number ({len(gaps)})", "",
            "z: the difference over its standard error if the published value is a mean of "
            "as many seeds with the same spread as ours (√2 × our std over seeds (ddof 1) / "
            "√seeds). |z| < 2 is what seed noise alone gives; with n seeds the spread is "
            "itself estimated from n values, so Student's t with n - 1 degrees of freedom "
            "is the fair threshold (4.3 at 95 % for 3 seeds). ADBench does not publish its "
            "spread. Family and overall rows have none: their noise is mostly which "
            "sub-tasks are present.", "",
            "| what | ours | published | Δ | z | source |", "|---|---|---|---|---|---|"]
  parts += [f"| {w} | {o:.2f} | {p:.2f} | {o - p:+.2f} | "
            f"{gap_z(o, p, se)} | {s} |"
            for w, o, p, s, se in gaps]
  parts += ["", "## Figures", ""]
  parts += [f"![{f}]({f})" for f in figures] if draw else [FIGURES_HINT + "."]
  path = out_dir / "report.md"
  path.write_text("\n".join(parts) + "\n")
  return path


def cells_table(records) -> str:
  """The runner's result table (mean ± std over seeds, ddof 0, as the command line prints
  it) for any records: one row per cell, in the order the records come."""
  # Columns that tell cells apart beyond method/dataset/la (a grid's other knobs, e.g.
  # preset), only where they vary.
  extra = [c for c in dict.fromkeys(c for r in records for c in r.get("extra", {}))
           if len({r.get("extra", {}).get(c) for r in records}) > 1]
  head = ["method", "dataset", "la", *extra, "AUROC", "AUPRC", "seeds"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in records:
    name = r["method"] + ("+anoonly" if r["anomaly_only"] else "")
    knobs = "".join(f"{r.get('extra', {}).get(c, '')} | " for c in extra)
    lines.append(f"| {name} | {r['dataset']} | {r['la']:g} | {knobs}"
                 f"{np.mean(r['auroc']):.2f} ± {np.std(r['auroc']):.2f} | "
                 f"{np.mean(r['auprc']):.2f} ± {np.std(r['auprc']):.2f} | {len(r['auroc'])} |")
  names = [r["method"] + ("+anoonly" if r["anomaly_only"] else "") for r in records]
  for name in dict.fromkeys(names):  # a mean row per variant that has several cells
    cells = [r for r, n in zip(records, names) if n == name]
    if len(cells) > 1 and not extra:
      auroc = np.mean([np.mean(r["auroc"]) for r in cells])
      auprc = np.mean([np.mean(r["auprc"]) for r in cells])
      lines.append(f"| **{name} mean** | {len(cells)} cells | | {auroc:.2f} | {auprc:.2f} | |")
  return "\n".join(lines) + "\n"


def paired_comparison(records_a, records_b, name_a: str, name_b: str) -> str:
  """Per variant and `la`: the table mean AUROC of two runs of the same cells (e.g. shape
  buckets vs exact shapes), their difference, and the seed noise it is judged against:
  the std over seeds of `name_b`'s per-seed table mean (how much the table moves when
  only the seeds change). Cells present in one run only are left out."""
  def by_cell(records):
    return {(variant(r["method"], r["anomaly_only"]), r["la"], r["dataset"]): r["auroc"]
            for r in records}
  a, b = by_cell(records_a), by_cell(records_b)
  common = sorted(set(a) & set(b), key=lambda k: (_rank(k[0].split("+")[0]), k[0], -k[1], k[2]))
  head = ["method", "la", "files", f"AUROC {name_a}", f"AUROC {name_b}", "Δ",
          "seed std of the table mean", "within seed std", "largest file Δ"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for name, la in dict.fromkeys((k[0], k[1]) for k in common):
    keys = [k for k in common if k[:2] == (name, la)]
    seeds = min(min(len(a[k]), len(b[k])) for k in keys)
    if seeds == 0:
      continue
    mean_a = float(np.mean([np.mean(a[k]) for k in keys]))
    mean_b = float(np.mean([np.mean(b[k]) for k in keys]))
    per_seed_b = [np.mean([b[k][s] for k in keys]) for s in range(seeds)]
    noise = float(np.std(per_seed_b, ddof=1)) if seeds > 1 else float("nan")
    worst = max(abs(np.mean(a[k]) - np.mean(b[k])) for k in keys)
    delta = mean_a - mean_b
    lines.append(f"| {name} | {la:g} | {len(keys)} | {mean_a:.2f} | {mean_b:.2f} | "
                 f"{delta:+.2f} | {noise:.2f} | {'yes' if abs(delta) <= noise else '**no**'} | "
                 f"{worst:.2f} |")
  return "\n".join(lines) + "\n"


def _paired_block(folder: pathlib.Path, source: str) -> str:
  """`A.csv,B.csv` (relative to the markdown file's folder): paired_comparison(A, B)."""
  first, sep, second = source.partition(",")
  if not sep:
    raise ValueError(f"paired block {source!r}: expected A.csv,B.csv")
  return paired_comparison(read_cells([folder / first]), read_cells([folder / second]),
                           pathlib.Path(first).parent.name, pathlib.Path(second).parent.name)


def timings_table(path: pathlib.Path) -> str:
  """experiments/bench_speed.py --tables output (timings.csv): one row per timed whole
  process, medians where it was repeated."""
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  if not rows:
    raise ValueError(f"{path}: no timing rows")
  groups = defaultdict(list)
  for row in rows:
    groups[(row["run"], row["implementation"], row["cache"])].append(row)
  head = ["run", "implementation", "cache", "whole process s", "programs compiled",
          "compile s", "cells", "repeats"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  def median(rs, column, fmt):
    values = [float(r[column]) for r in rs if r.get(column) not in (None, "", "nan")]
    return format(float(np.median(values)), fmt) if values else "–"
  for (run, impl, cache), rs in groups.items():
    lines.append(f"| {run} | {impl} | {cache} | {median(rs, 'wall_seconds', '.1f')} | "
                 f"{median(rs, 'programs_compiled', '.0f')} | "
                 f"{median(rs, 'compile_seconds', '.1f')} | {rs[0]['cells']} | {len(rs)} |")
  return "\n".join(lines) + "\n"


def csv_table(path: pathlib.Path) -> str:
  """Any small CSV as a markdown table, columns and rows as they are."""
  with open(path, newline="") as f:
    rows = list(csv.reader(f))
  if not rows:
    raise ValueError(f"{path}: empty")
  lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
  lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
  return "\n".join(lines) + "\n"


def medians_table(path: pathlib.Path) -> str:
  """Repeated measurements as medians: rows that agree on every text column (a `rep`
  column aside) are one line, each numeric column their median, `n` how many there were."""
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  if not rows:
    raise ValueError(f"{path}: empty")

  def number(value):
    try:
      return float(value)
    except ValueError:
      return None

  columns = [c for c in rows[0] if c != "rep"]
  numeric = [c for c in columns if all(number(r[c]) is not None for r in rows)]
  labels = [c for c in columns if c not in numeric]
  groups = {}
  for row in rows:
    groups.setdefault(tuple(row[c] for c in labels), []).append(row)
  lines = ["| " + " | ".join([*labels, "n", *(f"median {c}" for c in numeric)]) + " |",
           "|" + "---|" * (len(labels) + 1 + len(numeric))]
  for label, members in groups.items():
    medians = [statistics.median(number(r[c]) for r in members) for c in numeric]
    lines.append("| " + " | ".join([*label, str(len(members)),
                                    *("nan" if m != m else f"{m:.4g}" for m in medians)]) + " |")
  return "\n".join(lines) + "\n"


def seconds_by_method(path: pathlib.Path) -> str:
  """Where a grid's time went, per method: the training and compiling seconds of its cells
  (results.csv repeats a cell's seconds on every seed row; a program's seconds are shared
  out over the cells it trained)."""
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  cells = {}
  for row in rows:
    cells.setdefault((row["method"], row["anomaly_only"], row["dataset"], row["la"]), row)
  totals = defaultdict(lambda: [0, 0.0, 0.0])
  for (method, anomaly_only, _, _), row in cells.items():
    t = totals[variant(method, anomaly_only == "True")]
    t[0] += 1
    t[1] += float(row["train_seconds"])
    t[2] += float(row["compile_seconds"])
  lines = ["| method | cells | train + score s | compile s |", "|---|---|---|---|"]
  for name, (n, train, comp) in sorted(totals.items(), key=lambda kv: _rank(kv[0].split("+")[0])):
    lines.append(f"| {name} | {n} | {train:.1f} | {comp:.1f} |")
  lines.append(f"| **all** | {sum(t[0] for t in totals.values())} | "
               f"{sum(t[1] for t in totals.values()):.1f} | "
               f"{sum(t[2] for t in totals.values()):.1f} |")
  return "\n".join(lines) + "\n"


# A block of a markdown file that this module writes: the opening comment names the
# table kind and the committed results file it is made from, so no figure is typed by hand.
_BLOCK = re.compile(r"(<!-- experiments\.report: (\w+) (\S+) -->\n)(.*?)(<!-- /experiments\.report -->)",
                    re.S)
def _fidelity_block(folder: pathlib.Path, source: str) -> str:
  """`OURS.csv,REFERENCE.csv`, both relative to the markdown file's folder."""
  from experiments import fidelity
  ours, sep, ref = source.partition(",")
  if not sep:
    raise ValueError(f"fidelity block {source!r}: expected OURS.csv,REFERENCE.csv")
  return fidelity.methods_table(folder / ours, folder / ref)


def _bench_block(folder: pathlib.Path, source: str) -> str:
  """The per-method table of experiments/bench_speed.py from its results.jsonl."""
  from experiments import bench_speed
  return bench_speed.report(folder / source)


_BLOCK_KINDS = {"cells": lambda folder, source: cells_table(read_cells([folder / source])),
                "bench": _bench_block,
                "fidelity": _fidelity_block, "paired": _paired_block,
                "timings": lambda folder, source: timings_table(folder / source),
                "csv": lambda folder, source: csv_table(folder / source),
                "medians": lambda folder, source: medians_table(folder / source),
                "seconds": lambda folder, source: seconds_by_method(folder / source),
                "anoonly": lambda folder, source: anoonly_report(
                    read_cells([folder / source]), gaps=[]),
                # The same table from the reference harness's rows of the AnoOnly
                # repository's own code (experiments/reference.py --implementation=anoonly).
                "anoonly_repo": lambda folder, source: anoonly_report(
                    read_cells([folder / source]), gaps=[], who="AnoOnly code")}


def refresh_blocks(markdown: pathlib.Path, *, check: bool = False) -> list[str]:
  """Rewrites every generated block of `markdown` from its results file (paths relative
  to the file's folder); with `check`, writes nothing. Returns the blocks that were (or,
  with `check`, would be) changed."""
  text = markdown.read_text()
  changed = []

  def regenerate(match):
    kind, source = match.group(2), match.group(3)
    if kind not in _BLOCK_KINDS:
      raise ValueError(f"{markdown}: unknown generated block kind {kind!r}; "
                       f"known: {sorted(_BLOCK_KINDS)}")
    body = _BLOCK_KINDS[kind](markdown.parent, source)
    if body != match.group(4):
      changed.append(f"{kind} {source}")
    return match.group(1) + body + match.group(5)

  new = _BLOCK.sub(regenerate, text)
  if new != text and not check:
    tmp = markdown.with_name(markdown.name + ".tmp")
    tmp.write_text(new)
    tmp.replace(markdown)  # atomic: a failure leaves the old file whole
  return changed


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("workdirs", nargs="*", help="grid workdirs (cells/*/results.json, else results.csv) or results.csv files")
  parser.add_argument("--refresh", default=None, metavar="MARKDOWN",
                      help="rewrite the generated tables of a markdown file (e.g. README.md) "
                           "from the committed results files they name, then exit")
  parser.add_argument("--reference", default=None, metavar="CSV",
                      help="results.csv of experiments/reference.py (the reference code on "
                           "our exact splits): adds the paired comparison")
  parser.add_argument("--check", action="store_true",
                      help="with --refresh: change nothing, exit 1 if a table is stale")
  parser.add_argument("--table", default="auto", choices=("auto", "anoonly", "adbench"))
  parser.add_argument("--out", default=None, help="output folder (default WORKDIR/report)")
  parser.add_argument("--example", default=None,
                      help="dataset for the ROC/histogram figure (default: the first one)")
  args = parser.parse_args(argv)
  if args.refresh:
    try:
      changed = refresh_blocks(pathlib.Path(args.refresh), check=args.check)
    except (ValueError, FileNotFoundError) as err:
      print(f"experiments.report: {err}", file=sys.stderr)
      return 2
    for block in changed:
      print(f"{'stale' if args.check else 'refreshed'}: {args.refresh} ({block})")
    return 1 if (args.check and changed) else 0
  if not args.workdirs:
    parser.error("give grid workdirs or results.csv files (or --refresh MARKDOWN)")
  try:
    path = write_report(args.workdirs, args.out, table=args.table, example=args.example,
                        reference=args.reference)
  except (ValueError, FileNotFoundError) as err:
    print(f"experiments.report: {err}", file=sys.stderr)
    return 2
  if not figures_available():
    print(FIGURES_HINT, file=sys.stderr)
  print(path)
  return 0


if __name__ == "__main__":
  sys.exit(main())
