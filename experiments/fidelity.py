"""Fidelity to the reference code: ours minus theirs on the same split and seed.

Input: two `results.csv` files with our grid runner's columns (experiments/runner.py), one
from our runner, one from `experiments/reference.py` (the reference code trained on exactly
the same splits). Rows are paired on (method, anomaly_only, dataset, la, seed); for each
method and ADBench collection (Classical, CV_by_ResNet18, NLP_by_BERT) the mean paired
difference (AUROC points) is tested against zero across every (file, seed) pair with the
Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided, zero differences dropped) when
scipy is installed, else with a paired t-test (two-sided, Student t). The report names the
test it used, lists every summary whose mean paired difference is significant, and puts
ADBench's published number beside each file (`experiments/published.py`) for orientation
only: the published numbers come from other splits and seeds.

  python -m experiments.fidelity results/ours_la0.1/results.csv \
    results/reference/results.csv --out=results/fidelity

writes fidelity.md, fidelity_methods.csv (one row per method and collection) and
fidelity_files.csv (one row per method and file). `fidelity_report(ours, reference)`
returns the markdown for experiments/report.py.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import pathlib
import statistics

ALPHA = 0.05
# The criterion the fidelity targets use: a mean paired difference within 1 AUROC point.
TOLERANCE_POINTS = 1.0


def _read(path) -> list[dict]:
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def _key(row: dict) -> tuple:
  anomaly_only = str(row.get("anomaly_only", "False")).strip().lower() in ("true", "1")
  return (row["method"], anomaly_only, row["dataset"], round(float(row["la"]), 6),
          int(row["seed"]))


def pair_rows(ours: list[dict], reference: list[dict], metric: str = "auroc"
              ) -> list[dict]:
  """One dict per key present in both (with a finite metric on both sides):
  method, anomaly_only, dataset, la, seed, ours, reference, diff (points = 100 x)."""
  def index(rows):
    out = {}
    for row in rows:
      value = row.get(metric, "")
      if value in ("", None) or not math.isfinite(float(value)):
        continue
      key = _key(row)
      if key in out:
        raise ValueError(f"duplicate row for {key} in a results.csv; pass one run per file")
      out[key] = 100.0 * float(value)
    return out
  a, b = index(ours), index(reference)
  pairs = []
  for key in sorted(a.keys() & b.keys()):
    method, anomaly_only, dataset, la, seed = key
    pairs.append({"method": method, "anomaly_only": anomaly_only, "dataset": dataset,
                  "la": la, "seed": seed, "ours": a[key], "reference": b[key],
                  "diff": a[key] - b[key]})
  return pairs


# ----------------------------------------------------------------------- paired tests

def _betacf(a: float, b: float, x: float) -> float:
  """Continued fraction of the regularised incomplete beta (modified Lentz)."""
  tiny = 1e-300
  c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
  d = 1.0 / (d if abs(d) > tiny else tiny)
  h = d
  for m in range(1, 300):
    for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
      d = 1.0 + num * d
      d = 1.0 / (d if abs(d) > tiny else tiny)
      c = 1.0 + num / c
      c = c if abs(c) > tiny else tiny
      h *= d * c
    if abs(d * c - 1.0) < 1e-14:
      break
  return h


def _betainc(a: float, b: float, x: float) -> float:
  """Regularised incomplete beta I_x(a, b)."""
  if x <= 0.0:
    return 0.0
  if x >= 1.0:
    return 1.0
  log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
               + a * math.log(x) + b * math.log1p(-x))
  if x < (a + 1.0) / (a + b + 2.0):
    return math.exp(log_front) * _betacf(a, b, x) / a
  return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def paired_t_test(diffs: list[float]) -> tuple[float, float]:
  """Two-sided one-sample t-test of mean(diffs) = 0: (t, p). p = 1 when all diffs are
  equal to 0, p = 0 when they are all equal and non-zero."""
  n = len(diffs)
  if n < 2:
    return math.nan, math.nan
  mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
  if sd == 0.0:
    return (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
  t = mean / (sd / math.sqrt(n))
  df = n - 1
  return t, _betainc(df / 2.0, 0.5, df / (df + t * t))


def paired_test(diffs: list[float]) -> tuple[str, float, float]:
  """(test name, statistic, two-sided p): Wilcoxon signed-rank with scipy, else t-test."""
  try:
    from scipy import stats
  except ImportError:
    t, p = paired_t_test(diffs)
    return "paired t-test", t, p
  if len(diffs) < 2 or all(d == 0 for d in diffs):
    return "Wilcoxon signed-rank", math.nan, (1.0 if diffs else math.nan)
  result = stats.wilcoxon(diffs, zero_method="wilcox", alternative="two-sided")
  return "Wilcoxon signed-rank", float(result.statistic), float(result.pvalue)


# ----------------------------------------------------------------------- summaries

@dataclasses.dataclass
class MethodSummary:
  method: str
  anomaly_only: bool
  la: float
  collection: str
  n_pairs: int
  n_files: int
  ours_mean: float
  reference_mean: float
  mean_diff: float
  sd_diff: float
  test: str
  statistic: float
  p_value: float
  significant: bool
  within_tolerance: bool


def collection(dataset: str) -> str:
  """The ADBench collection a file belongs to (`Classical/6_cardio` -> `Classical`):
  tabular files and CV/NLP embeddings are summarised apart, since a deviation may show on
  one kind of data only."""
  return dataset.split("/", 1)[0] if "/" in dataset else "-"


def summarise(pairs: list[dict], alpha: float = ALPHA) -> list[MethodSummary]:
  """One summary per (method, anomaly_only, la, collection)."""
  groups: dict[tuple, list[dict]] = {}
  for p in pairs:
    key = (p["method"], p["anomaly_only"], p["la"], collection(p["dataset"]))
    groups.setdefault(key, []).append(p)
  out = []
  for (method, anomaly_only, la, data), group in sorted(groups.items()):
    diffs = [p["diff"] for p in group]
    test, stat, pval = paired_test(diffs)
    mean_diff = statistics.fmean(diffs)
    out.append(MethodSummary(
        method=method, anomaly_only=anomaly_only, la=la, collection=data,
        n_pairs=len(group),
        n_files=len({p["dataset"] for p in group}),
        ours_mean=statistics.fmean(p["ours"] for p in group),
        reference_mean=statistics.fmean(p["reference"] for p in group),
        mean_diff=mean_diff, sd_diff=statistics.stdev(diffs) if len(diffs) > 1 else math.nan,
        test=test, statistic=stat, p_value=pval,
        significant=bool(pval == pval and pval < alpha),
        within_tolerance=abs(mean_diff) <= TOLERANCE_POINTS))
  return out


def per_file(pairs: list[dict], metric: str = "auroc") -> list[dict]:
  """Per (method, anomaly_only, la, dataset): seeds, means and the published value."""
  from experiments import published
  groups: dict[tuple, list[dict]] = {}
  for p in pairs:
    groups.setdefault((p["method"], p["anomaly_only"], p["la"], p["dataset"]), []).append(p)
  rows = []
  for (method, anomaly_only, la, dataset), group in sorted(groups.items()):
    pub = published.adbench(method, dataset, la, metric) if not anomaly_only else None
    rows.append({"method": method, "anomaly_only": anomaly_only, "la": la,
                 "dataset": dataset, "seeds": len(group),
                 "ours": statistics.fmean(p["ours"] for p in group),
                 "reference": statistics.fmean(p["reference"] for p in group),
                 "mean_diff": statistics.fmean(p["diff"] for p in group),
                 "published": pub})
  return rows


def failed_lines(reference: list[dict]) -> list[str]:
  """Markdown lines naming the reference rows with an `error` (the reference code produced
  no score for that seed: experiments/reference.py); empty when there are none."""
  failed = [r for r in reference if r.get("error")]
  if not failed:
    return []
  items = [f"{r['method']}{' +AnoOnly' if _key(r)[1] else ''} {r['dataset']} seed "
           f"{r['seed']} (`{r['error'][:120]}`)" for r in failed]
  return ["", f"Reference seeds that failed in the reference code itself (no score, so "
              f"not paired): {'; '.join(items)}."]


def _fmt(value, digits=2) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "-"
  return f"{value:.{digits}f}"


def format_markdown(summaries: list[MethodSummary], files: list[dict],
                    metric: str = "auroc", alpha: float = ALPHA,
                    failed: list[str] = ()) -> str:
  tests = sorted({s.test for s in summaries})
  name = metric.upper()
  lines = [f"### Fidelity to the reference code ({name}, points; ours minus reference, "
           "same split and seed)", "",
           f"Paired test across every (file, seed) pair: {', '.join(tests) or '-'}, "
           f"two-sided, alpha = {alpha}.", "",
           "| method | la | data | files | pairs | ours | reference | mean diff | sd | p | "
           "significant |", "|---|---|---|---|---|---|---|---|---|---|---|"]
  for s in summaries:
    label = s.method + (" +AnoOnly" if s.anomaly_only else "")
    lines.append(f"| {label} | {s.la:g} | {s.collection} | {s.n_files} | {s.n_pairs} | "
                 f"{_fmt(s.ours_mean)} | "
                 f"{_fmt(s.reference_mean)} | {s.mean_diff:+.2f} | {_fmt(s.sd_diff)} | "
                 f"{_fmt(s.p_value, 3)} | {'yes' if s.significant else 'no'} |")
  flagged = [s.method + (" +AnoOnly" if s.anomaly_only else "")
             + f" (la {s.la:g}, {s.collection})" for s in summaries if s.significant]
  lines += ["", "Significant mean paired differences: "
            + (", ".join(flagged) if flagged else "none") + ".", *failed, "",
            "| method | dataset | seeds | ours | reference | diff | published (ADBench) |",
            "|---|---|---|---|---|---|---|"]
  for f in files:
    label = f["method"] + (" +AnoOnly" if f["anomaly_only"] else "")
    lines.append(f"| {label} | {f['dataset']} | {f['seeds']} | {_fmt(f['ours'])} | "
                 f"{_fmt(f['reference'])} | {f['mean_diff']:+.2f} | {_fmt(f['published'])} |")
  return "\n".join(lines) + "\n"


def fidelity_report(ours_csv, reference_csv, *, metric: str = "auroc",
                    alpha: float = ALPHA) -> str:
  """Markdown for two results.csv paths (the entry point for experiments/report.py)."""
  reference = _read(reference_csv)
  pairs = pair_rows(_read(ours_csv), reference, metric)
  return format_markdown(summarise(pairs, alpha), per_file(pairs, metric), metric, alpha,
                         failed_lines(reference))


def methods_table(ours_csv, reference_csv, *, metric: str = "auroc",
                  alpha: float = ALPHA) -> str:
  """The per-method summary alone (README's table): method, files, pairs, means, mean
  paired difference, p, significant."""
  reference = _read(reference_csv)
  pairs = pair_rows(_read(ours_csv), reference, metric)
  lines = ["| method | la | data | files | pairs | ours | reference | ours - reference | p | "
           "significant |", "|---|---|---|---|---|---|---|---|---|---|"]
  for s in summarise(pairs, alpha):
    label = s.method + (" +AnoOnly" if s.anomaly_only else "")
    lines.append(f"| {label} | {s.la:g} | {s.collection} | {s.n_files} | {s.n_pairs} | "
                 f"{_fmt(s.ours_mean)} | "
                 f"{_fmt(s.reference_mean)} | {s.mean_diff:+.2f} | {_fmt(s.p_value, 3)} | "
                 f"{'yes' if s.significant else 'no'} |")
  return "\n".join(lines + failed_lines(reference)) + "\n"


def _write_csv(path: pathlib.Path, rows: list[dict]) -> None:
  with path.open("w", newline="") as f:
    if not rows:
      return
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("ours", help="our results.csv")
  parser.add_argument("reference", help="experiments/reference.py's results.csv")
  parser.add_argument("--metric", default="auroc", choices=("auroc", "auprc"))
  parser.add_argument("--alpha", type=float, default=ALPHA)
  parser.add_argument("--out", default=None, help="directory for fidelity.md and the CSVs")
  args = parser.parse_args(argv)
  for path in (args.ours, args.reference):
    if not pathlib.Path(path).is_file():
      parser.error(f"{path} is not a file; pass two results.csv paths")
  reference = _read(args.reference)
  pairs = pair_rows(_read(args.ours), reference, args.metric)
  if not pairs:
    parser.error("no (method, anomaly_only, dataset, la, seed) row is in both files")
  summaries = summarise(pairs, args.alpha)
  files = per_file(pairs, args.metric)
  text = format_markdown(summaries, files, args.metric, args.alpha,
                         failed_lines(reference))
  print(text)
  if args.out:
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fidelity.md").write_text(text)
    _write_csv(out / "fidelity_methods.csv", [dataclasses.asdict(s) for s in summaries])
    _write_csv(out / "fidelity_files.csv", files)


if __name__ == "__main__":
  main()
