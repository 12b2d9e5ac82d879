"""Figures and summary tables from a grid's results.csv.

Two kinds, chosen by `config.plot` (run after a grid by experiments/main.py) or on the
command line:

* `policy_bars`: grouped bars, one panel per dataset family, one group per value of the
  grid column `policy` (or `--column`), one bar per method variant (method, +anoonly);
  bar = mean AUROC over the family's datasets and seeds, error bar = standard deviation
  over seeds of the per-seed family mean.
* `knob:<column>`: AUROC against a numeric grid column (e.g. data.label_contamination),
  one line per method variant, one panel per family, same error bars.

Both also append a markdown table to the workdir's report.md. matplotlib is an optional
dependency (`pip install 'ssadjax[report]'`) and imported only when a figure is drawn;
without it the table is still written and one line says how to get the figure. A knob
plot with fewer than two values of its column is not drawn (a single point).

  python -m experiments.plots WORKDIR policy_bars [--out=FILE.png]
  python -m experiments.plots WORKDIR knob:data.la [--out=FILE.png]
"""

import argparse
import csv
import pathlib
import re
import sys
from collections import defaultdict

import numpy as np

CV_PREFIXES = ("CIFAR10", "SVHN", "MVTec-AD", "FashionMNIST", "MNIST-C")
NLP_PREFIXES = ("20news", "agnews", "amazon", "imdb", "yelp")


FIGURES_HINT = "figures skipped: matplotlib is not installed; pip install 'ssadjax[report]' to get them"


def _pyplot():
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError as err:
    raise ImportError("experiments/plots.py needs matplotlib: pip install 'ssadjax[report]' "
                      "(or pip install matplotlib)") from err
  return plt


def family(dataset: str) -> str:
  """Dataset family: Classical / CV / NLP (ADBench folders and file names), else the
  name's own prefix (synthetic, tfds:..., sklearn:...)."""
  folder, _, name = dataset.rpartition("/")
  if folder:
    top = folder.split("/")[0]
    if top.startswith("CV"):
      return "CV"
    if top.startswith("NLP"):
      return "NLP"
    if top == "Classical":
      return "Classical"
  name = name or dataset
  if re.match(r"^\d+_", name):
    return "Classical"
  if name.startswith(CV_PREFIXES):
    return "CV"
  if name.startswith(NLP_PREFIXES):
    return "NLP"
  return name.split(":")[0] if ":" in name else name


def read_results(path) -> list[dict]:
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  for r in rows:
    r["auroc"] = float(r["auroc"])
    r["variant"] = r["method"] + ("+anoonly" if r["anomaly_only"] in ("True", "1") else "")
    r["family"] = family(r["dataset"])
  return rows


def _ordered(values):
  seen = []
  for v in values:
    if v not in seen:
      seen.append(v)
  return seen


def aggregate(rows, column: str):
  """{(family, column value, variant): (mean, std over seeds, n seeds)}; a seed's value is
  its mean AUROC over the family's datasets."""
  per_seed = defaultdict(list)
  for r in rows:
    per_seed[(r["family"], r[column], r["variant"], r["seed"])].append(r["auroc"])
  per_cell = defaultdict(list)
  for (fam, value, variant, _), aurocs in per_seed.items():
    per_cell[(fam, value, variant)].append(float(np.mean(aurocs)))
  return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in per_cell.items()}


def markdown_table(rows, column: str) -> str:
  """One table per family: rows = values of `column`, columns = method variants,
  cells = AUROC mean ± std (%)."""
  stats = aggregate(rows, column)
  variants = _ordered(r["variant"] for r in rows)
  out = []
  for fam in _ordered(r["family"] for r in rows):
    out += [f"\n### {column}: {fam} (AUROC %, mean ± std over seeds)\n",
            "| " + column + " | " + " | ".join(variants) + " |",
            "|---" * (len(variants) + 1) + "|"]
    for value in _ordered(r[column] for r in rows if r["family"] == fam):
      cells = []
      for v in variants:
        m = stats.get((fam, value, v))
        cells.append(f"{100 * m[0]:.1f} ± {100 * m[1]:.1f}" if m else "—")
      out.append(f"| {value} | " + " | ".join(cells) + " |")
  return "\n".join(out) + "\n"


def _numeric(value):
  try:
    return float(value)
  except ValueError:
    return {"True": 1.0, "False": 0.0}.get(value, np.nan)


def policy_bars(rows, out_png, column: str = "policy", title: str = ""):
  plt = _pyplot()
  stats = aggregate(rows, column)
  families = _ordered(r["family"] for r in rows)
  variants = _ordered(r["variant"] for r in rows)
  values = _ordered(r[column] for r in rows)
  fig, axes = plt.subplots(len(families), 1, figsize=(max(6, 0.9 * len(values) + 2),
                                                        2.6 * len(families)), squeeze=False)
  width = 0.8 / max(len(variants), 1)
  for ax, fam in zip(axes[:, 0], families):
    for j, variant in enumerate(variants):
      means = [stats.get((fam, v, variant), (np.nan, 0, 0))[0] for v in values]
      stds = [stats.get((fam, v, variant), (np.nan, 0, 0))[1] for v in values]
      ax.bar(np.arange(len(values)) + (j - (len(variants) - 1) / 2) * width, means, width,
             yerr=stds, capsize=2, label=variant)
    ax.set_xticks(np.arange(len(values)), values, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("AUROC")
    finite = [m for (f, _, _), (m, _, _) in stats.items() if f == fam and np.isfinite(m)]
    if finite:
      ax.set_ylim(max(0.0, min(finite) - 0.1), min(1.0, max(finite) + 0.05))
    ax.set_title(f"{title} {fam}".strip(), fontsize=9)
  fig.legend(*axes[0, 0].get_legend_handles_labels(), fontsize=7,
             ncol=min(4, len(variants)), loc="upper center")
  fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
  fig.savefig(out_png, dpi=80)
  plt.close(fig)


def knob_plot(rows, out_png, column: str, title: str = ""):
  plt = _pyplot()
  stats = aggregate(rows, column)
  families = _ordered(r["family"] for r in rows)
  variants = _ordered(r["variant"] for r in rows)
  values = sorted(_ordered(r[column] for r in rows), key=_numeric)
  fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.2),
                           squeeze=False)
  for ax, fam in zip(axes[0], families):
    for variant in variants:
      pts = [(_numeric(v), *stats[(fam, v, variant)][:2]) for v in values
             if (fam, v, variant) in stats]
      if pts:
        x, m, s = map(np.asarray, zip(*pts))
        ax.errorbar(x, m, yerr=s, marker="o", ms=3, capsize=2, label=variant,
                    linestyle="--" if "+anoonly" not in variant else "-")
    ax.set_xlabel(column)
    ax.set_ylabel("AUROC")
    ax.set_title(f"{title} {fam}".strip(), fontsize=9)
  axes[0, 0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out_png, dpi=80)
  plt.close(fig)


def make(workdir, plot: str, out_png=None) -> pathlib.Path:
  """Draws `plot` ('policy_bars' or 'knob:<column>') from WORKDIR/results.csv into
  `out_png` (default WORKDIR/<plot>.png) and appends its table to WORKDIR/report.md.
  Returns the figure's path, or None when no figure was drawn (no matplotlib, or a knob
  with a single value)."""
  workdir = pathlib.Path(workdir)
  rows = read_results(workdir / "results.csv")
  if not rows:
    raise ValueError(f"{workdir}/results.csv has no rows to plot")
  if plot == "policy_bars":
    column, draw = "policy", policy_bars
  elif plot.startswith("knob:"):
    column, draw = plot.split(":", 1)[1], knob_plot
  else:
    raise ValueError(f"plot={plot!r}; expected policy_bars or knob:<grid column>")
  if column not in rows[0]:
    raise ValueError(f"results.csv has no column {column!r} (columns: {sorted(rows[0])})")
  safe = re.sub(r"[^\w.-]", "_", plot)
  out_png = pathlib.Path(out_png) if out_png else workdir / f"{safe}.png"
  figure = ""
  if draw is knob_plot and len(set(r[column] for r in rows)) < 2:
    out_png, figure = None, f"(no figure: {column} takes a single value)\n"
  else:
    try:
      _pyplot()
    except ImportError:
      print(FIGURES_HINT, file=sys.stderr)
      out_png, figure = None, f"({FIGURES_HINT}.)\n"
  if out_png is not None:
    draw(rows, out_png, column)
    figure = f"![{plot}]({out_png.name})\n"
  report = workdir / "report.md"
  text = report.read_text() if report.exists() else ""
  marker = f"<!-- plot {plot} -->"
  text = text.split(marker)[0]  # re-running replaces the section
  tmp = report.with_name(report.name + ".tmp")
  tmp.write_text(text + f"{marker}\n{figure}" + markdown_table(rows, column))
  tmp.replace(report)
  return out_png


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdir")
  parser.add_argument("plot", help="policy_bars | knob:<column>")
  parser.add_argument("--out", default=None, help="PNG path (default WORKDIR/<plot>.png)")
  args = parser.parse_args(argv)
  out = make(args.workdir, args.plot, args.out)
  print(out if out is not None else pathlib.Path(args.workdir) / "report.md")


if __name__ == "__main__":
  main()
