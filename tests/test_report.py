"""experiments/report.py: aggregation as the references, published values, gaps, figures."""

import json
import pathlib
import re

import numpy as np
import pytest

from experiments import published, report
from ssadjax import metrics


def _cell(root, name, method, dataset, auroc, *, la=0.1, anomaly_only=False, seed=1):
  """A finished grid cell as run_single writes it (results.json + scores.npz)."""
  cell = root / "cells" / name
  cell.mkdir(parents=True)
  seeds = list(range(seed, seed + len(auroc)))
  (cell / "results.json").write_text(json.dumps({
      "method": method, "anomaly_only": anomaly_only, "dataset": dataset, "la": la,
      "seeds": seeds, "auroc": auroc, "auprc": [0.5] * len(auroc)}))
  rng = np.random.default_rng(len(name))
  labels = np.r_[np.zeros(40), np.ones(10)].astype(np.int32)
  scores = rng.normal(size=50) + 2 * labels
  np.savez(cell / "scores.npz", seeds=np.asarray(seeds), labels=np.stack([labels] * len(auroc)),
           scores=np.stack([scores] * len(auroc)))


def _row(md: str, first_cell: str) -> list[str]:
  for line in md.splitlines():
    cells = [c.strip() for c in line.strip("|").split("|")]
    if cells[0] == first_cell:
      return cells
  raise AssertionError(f"no row {first_cell!r} in\n{md}")


def test_published_lookup_names_the_papers_rows():
  assert published.dataset_key("Classical/6_cardio") == "cardio"
  assert published.dataset_key("Classical/7_Cardiotocography") == "Cardiotocography"
  assert published.dataset_key("CV_by_ResNet18/MVTec-AD_metal_nut") == "MVTec-AD"
  assert published.dataset_key("NLP_by_BERT/agnews_2") == "Agnews"
  assert published.dataset_key("Classical/99_unknown") is None
  assert published.adbench("deepsad", "Classical/6_cardio", 0.1) == 86.51  # D10
  assert published.adbench("devnet", "6_cardio", 0.01) == 89.74           # D6
  assert published.adbench("bgad", "6_cardio", 0.1) is None
  assert published.adbench("deepsad", "6_cardio", 0.25) is None


def test_anoonly_aggregation_is_family_mean_then_mean_over_families(tmp_path):
  # CIFAR10: two sub-tasks (0.70, 0.80) -> 75; MVTec-AD: one (0.90) -> 90; overall 82.5,
  # not the 80.0 a mean over the three files would give.
  _cell(tmp_path, "a", "deepsad", "CV_by_ResNet18/CIFAR10_0", [0.70])
  _cell(tmp_path, "b", "deepsad", "CV_by_ResNet18/CIFAR10_1", [0.80])
  _cell(tmp_path, "c", "deepsad", "CV_by_ResNet18/MVTec-AD_bottle", [0.90])
  _cell(tmp_path, "d", "deepsad", "CV_by_ResNet18/CIFAR10_0", [0.85], anomaly_only=True)
  _cell(tmp_path, "e", "deepsad", "CV_by_ResNet18/MVTec-AD_bottle", [0.95], anomaly_only=True)
  path = report.write_report([tmp_path], tmp_path / "out", table="anoonly")
  md = path.read_text()
  overall = _row(md, "deepsad")
  assert overall[1:4] == ["82.50", "90.00", "7.50"]
  # ADBench D10 over the same two families: (66.50 + 73.68) / 2
  assert overall[7] == f"{(66.50 + 73.68) / 2:.2f}"
  cifar = _row(md, "CIFAR10")
  assert cifar[1] == "2" and cifar[2] == "75.00 ± 5.00" and cifar[4] == "66.50"
  # Gaps over 3 points are listed with their source, smaller ones are not.
  gaps = md.split("## Gaps")[1].split("## Figures")[0]
  assert "deepsad on CIFAR10 (family mean, la 0.1) | 75.00 | 66.50 | +8.50 | – | ADBench D10" in gaps
  assert "deepsad+AnoOnly overall (2 of 10 families) | 90.00 | 85.00 | +5.00 | –" in gaps
  assert "deepsad on MVTec-AD (family mean, la 0.1) | 90.00 | 73.68 | +16.32 | –" in gaps
  assert "deepsad overall (2 of 10 families) | 82.50 | 65.40 | +17.10 | – | AnoOnly README" in gaps
  assert "CIFAR10 (family mean" in gaps and "+AnoOnly on CIFAR10" not in gaps  # no published
  pytest.importorskip("matplotlib")
  for name in ("anoonly_families.png", "example_CV_by_ResNet18_CIFAR10_0.png"):
    assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_adbench_table_compares_seed_means_per_ratio(tmp_path):
  _cell(tmp_path, "a", "deepsad", "Classical/6_cardio", [0.90, 0.92, 0.94])
  _cell(tmp_path, "b", "deepsad", "Classical/38_thyroid", [0.97, 0.97, 0.97])
  _cell(tmp_path, "c", "deepsad", "Classical/6_cardio", [0.70, 0.70, 0.70], la=0.01)
  md = report.write_report([tmp_path], tmp_path / "out", table="adbench").read_text()
  at_10 = md.split("### la = 0.1")[1]
  cardio = _row(at_10, "cardio")
  assert cardio[1:4] == [f"92.00 ± {np.std([90, 92, 94]):.2f}", "86.51", "**+5.49**"]
  thyroid = _row(at_10, "thyroid")
  assert thyroid[1:4] == ["97.00 ± 0.00", "97.10", "-0.10"]
  mean = _row(at_10, "**mean**")
  assert mean[1:3] == ["94.50", f"{(86.51 + 97.10) / 2:.2f}"]
  assert _row(md.split("### la = 0.01")[1], "cardio")[1:4] == ["70.00 ± 0.00", "69.21", "+0.79"]
  gaps = md.split("## Gaps")[1].split("## Figures")[0]
  assert re.search(r"deepsad on cardio \(la 0.1\) \| 92.00 \| 86.51 \| \+5.49 \| \+3.4 \| ADBench D10", gaps)
  assert "thyroid" not in gaps
  # the example dataset may be given without its folder
  report.write_report([tmp_path], tmp_path / "out2", table="adbench", example="38_thyroid")
  assert (tmp_path / "out2" / "example_Classical_38_thyroid.png").exists()


def test_roc_curve_integrates_to_the_auroc():
  rng = np.random.default_rng(3)
  labels = (rng.random(300) < 0.2).astype(int)
  scores = np.round(rng.normal(size=300) + labels, 1)  # with ties
  fpr, tpr = report.roc_curve(labels, scores)
  assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
  assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
  area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
  assert area == pytest.approx(metrics.auroc(labels, scores), abs=1e-9)


def test_report_errors_name_the_problem(tmp_path):
  with pytest.raises(FileNotFoundError, match="no finished cell"):
    report.write_report([tmp_path])
  _cell(tmp_path, "a", "deepsad", "Classical/6_cardio", [0.9])
  with pytest.raises(ValueError, match="no cell of the anoonly table"):
    report.write_report([tmp_path], table="anoonly")
  with pytest.raises(ValueError, match="no finished cell with scores for dataset 'nope'"):
    report.write_report([tmp_path], example="nope")


def test_a_results_csv_gives_the_same_tables_as_the_cells(tmp_path):
  cells, copied = tmp_path / "grid", tmp_path / "copied"
  _cell(cells, "a", "deepsad", "Classical/6_cardio", [0.90, 0.92, 0.94])
  _cell(cells, "b", "devnet", "Classical/6_cardio", [0.95, 0.97, None])  # a diverged seed
  _cell(cells, "c", "deepsad", "Classical/6_cardio", [0.70, 0.72, 0.71], la=0.01)
  copied.mkdir()
  lines = ["method,anomaly_only,dataset,la,seed,auroc,auprc,train_seconds"]
  for method, la, aurocs in (("deepsad", 0.1, [0.90, 0.92, 0.94]), ("devnet", 0.1, [0.95, 0.97, None]),
                             ("deepsad", 0.01, [0.70, 0.72, 0.71])):
    lines += [f"{method},False,Classical/6_cardio,{la},{seed},{'' if a is None else a},0.5,1.0"
              for seed, a in enumerate(aurocs, 1)]
  (copied / "results.csv").write_text("\n".join(lines) + "\n")

  def tables(md):
    return md.split("## ADBench table")[1].split("## Figures")[0]

  from_cells = report.write_report([cells], tmp_path / "r1", table="adbench").read_text()
  from_csv = report.write_report([copied], tmp_path / "r2", table="adbench").read_text()
  assert "96.00 ±" in tables(from_csv)  # the diverged seed is dropped, not counted as 0
  assert tables(from_csv) == tables(from_cells)
  assert "example_" not in from_csv  # no scores.npz: no ROC figure, and no error
  also_file = report.write_report([copied / "results.csv"], tmp_path / "r3", table="adbench")
  assert tables(also_file.read_text()) == tables(from_cells)
  with pytest.raises(ValueError, match="no finished cell with scores"):
    report.write_report([copied], tmp_path / "r4", example="6_cardio")
  (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
  with pytest.raises(ValueError, match="not a results.csv of a grid"):
    report.write_report([tmp_path / "bad.csv"])


def _no_matplotlib_env(tmp_path):
  """Environment of a child Python in which `import matplotlib` fails (sitecustomize)."""
  import os
  import pathlib
  shim = tmp_path / "shim"
  shim.mkdir()
  (shim / "sitecustomize.py").write_text("import sys\nsys.modules['matplotlib'] = None\n")
  repo = pathlib.Path(__file__).resolve().parents[1]
  return {**os.environ, "PYTHONPATH": f"{shim}{os.pathsep}{repo}"}


def test_report_without_matplotlib_writes_the_tables_and_one_hint_line(tmp_path):
  import subprocess
  import sys
  grid = tmp_path / "grid"
  _cell(grid, "a", "deepsad", "Classical/6_cardio", [0.90, 0.92, 0.94])
  env = _no_matplotlib_env(tmp_path)
  run = lambda *args: subprocess.run([sys.executable, "-m", "experiments.report", *map(str, args)],
                                     env=env, capture_output=True, text=True, timeout=120)
  probe = subprocess.run([sys.executable, "-c", "import matplotlib"], env=env,
                         capture_output=True, text=True)
  assert probe.returncode != 0  # the shim works: the report really runs without it
  done = run(grid)
  assert done.returncode == 0, done.stderr
  hint = [line for line in done.stderr.splitlines() if line.strip()]
  assert hint == [report.FIGURES_HINT] and "pip install 'ssadjax[report]'" in hint[0]
  out = grid / "report"
  assert sorted(p.name for p in out.iterdir()) == ["report.md"]  # no figure, nothing else
  md = (out / "report.md").read_text()
  assert _row(md, "cardio")[1].startswith("92.00 ±") and report.FIGURES_HINT in md
  assert [p.name for p in grid.iterdir() if p.name.startswith(".report-")] == []
  # A failing report: one line, status 2, and no report folder left behind.
  other = tmp_path / "other"
  _cell(other, "a", "deepsad", "Classical/6_cardio", [0.9])
  failed = run(other, "--table=anoonly")
  assert failed.returncode == 2 and "Traceback" not in failed.stderr
  assert failed.stderr.strip().splitlines() == [
      "experiments.report: no cell of the anoonly table among 1 finished cells"]
  assert sorted(p.name for p in other.iterdir()) == ["cells"]


def test_a_failed_report_leaves_no_partial_folder(tmp_path, monkeypatch):
  grid = tmp_path / "grid"
  _cell(grid, "a", "deepsad", "Classical/6_cardio", [0.9, 0.8])

  def broken(*args, **kwargs):
    raise RuntimeError("disk full")

  monkeypatch.setattr(report, "plot_example", broken)
  monkeypatch.setattr(report, "figures_available", lambda: True)
  monkeypatch.setattr(report, "plot_vs_la", lambda records, out: out.write_bytes(b"png"))
  with pytest.raises(RuntimeError, match="disk full"):
    report.write_report([grid])
  assert sorted(p.name for p in grid.iterdir()) == ["cells"]
  # An earlier report in place is kept whole when the next one fails.
  monkeypatch.setattr(report, "plot_example", lambda records, dataset, out: out.write_bytes(b"x"))
  first = report.write_report([grid]).read_text()
  monkeypatch.setattr(report, "plot_example", broken)
  with pytest.raises(RuntimeError):
    report.write_report([grid])
  assert (grid / "report" / "report.md").read_text() == first
  assert [p.name for p in grid.iterdir() if p.name.startswith(".report-")] == []


def test_the_auroc_vs_la_figure_needs_two_ratios(tmp_path, monkeypatch):
  drawn = []
  monkeypatch.setattr(report, "figures_available", lambda: True)
  monkeypatch.setattr(report, "plot_vs_la", lambda records, out: drawn.append(out.name)
                      or out.write_bytes(b"png"))
  monkeypatch.setattr(report, "plot_example", lambda records, dataset, out: out.write_bytes(b"x"))
  grid = tmp_path / "grid"
  _cell(grid, "a", "deepsad", "Classical/6_cardio", [0.9, 0.8])
  md = report.write_report([grid]).read_text()
  assert drawn == [] and "auroc_vs_la.png" not in md and "example_Classical_6_cardio.png" in md
  _cell(grid, "b", "deepsad", "Classical/6_cardio", [0.7, 0.6], la=0.01)
  md = report.write_report([grid]).read_text()
  assert drawn == ["auroc_vs_la.png"] and "![auroc_vs_la.png]" in md


def test_plots_write_the_table_without_a_figure_when_none_can_be_drawn(tmp_path, monkeypatch,
                                                                       capsys):
  from experiments import plots
  rows = ["method,anomaly_only,dataset,la,seed,auroc,auprc,policy",
          "deepsad,False,Classical/6_cardio,0.1,1,0.9,0.5,a",
          "deepsad,False,Classical/6_cardio,0.1,2,0.8,0.5,b"]
  (tmp_path / "results.csv").write_text("\n".join(rows) + "\n")
  # A knob with one value would be a single point: table only.
  assert plots.make(tmp_path, "knob:la") is None
  assert "la takes a single value" in (tmp_path / "report.md").read_text()

  def missing():
    raise ImportError("no matplotlib")

  monkeypatch.setattr(plots, "_pyplot", missing)
  assert plots.make(tmp_path, "policy_bars") is None
  md = (tmp_path / "report.md").read_text()
  assert "| a | 90.0 ± 0.0 |" in md and plots.FIGURES_HINT in md
  assert capsys.readouterr().err.strip() == plots.FIGURES_HINT
  assert not list(tmp_path.glob("*.png"))


def test_generated_markdown_blocks_follow_their_results_file(tmp_path):
  """--refresh rewrites a marked table from the CSV it names; --check reports a stale one
  and writes nothing; an unknown kind is one clear error."""
  (tmp_path / "r.csv").write_text(
      "method,anomaly_only,dataset,la,seed,auroc,auprc\n"
      "deepsad,False,d,0.1,1,0.80,0.50\ndeepsad,False,d,0.1,2,0.90,0.70\n"
      "deepsad,True,d,0.1,1,0.95,0.90\n")
  md = tmp_path / "doc.md"
  stale = "intro\n<!-- experiments.report: cells r.csv -->\n| typed by hand |\n<!-- /experiments.report -->\nend\n"
  md.write_text(stale)
  assert report.main(["--refresh", str(md), "--check"]) == 1
  assert md.read_text() == stale
  assert report.main(["--refresh", str(md)]) == 0
  text = md.read_text()
  assert "| deepsad | d | 0.1 | 85.00 ± 5.00 | 60.00 ± 10.00 | 2 |" in text
  assert "| deepsad+anoonly | d | 0.1 | 95.00 ± 0.00 | 90.00 ± 0.00 | 1 |" in text
  assert text.startswith("intro\n") and text.endswith("end\n")
  assert report.main(["--refresh", str(md), "--check"]) == 0
  # The AnoOnly family table from a committed results.csv (CV/NLP rows only count).
  (tmp_path / "ao.csv").write_text(
      "method,anomaly_only,dataset,la,seed,auroc,auprc\n"
      "devnet,False,CV_by_ResNet18/CIFAR10_0,0.1,1,0.80,0.5\n"
      "devnet,False,CV_by_ResNet18/CIFAR10_0,0.1,2,0.90,0.5\n"
      "devnet,True,CV_by_ResNet18/CIFAR10_0,0.1,1,0.70,0.5\n")
  md.write_text("<!-- experiments.report: anoonly ao.csv -->\n<!-- /experiments.report -->\n")
  assert report.main(["--refresh", str(md)]) == 0
  assert "| CIFAR10 | 1 | 85.00 ± 0.00 | 70.00 ± 0.00 |" in md.read_text()
  assert "| method | ours | ours +AnoOnly | Δ ours |" in md.read_text()
  # The same rows as the AnoOnly repository's runs: the columns say whose they are.
  md.write_text("<!-- experiments.report: anoonly_repo ao.csv -->\n<!-- /experiments.report -->\n")
  assert report.main(["--refresh", str(md)]) == 0
  text = md.read_text()
  assert "| CIFAR10 | 1 | 85.00 ± 0.00 | 70.00 ± 0.00 |" in text
  assert "| method | AnoOnly code | AnoOnly code +AnoOnly | Δ AnoOnly code |" in text
  assert "| method | ours |" not in text
  md.write_text("<!-- experiments.report: pie r.csv -->\n<!-- /experiments.report -->\n")
  assert report.main(["--refresh", str(md)]) == 2


@pytest.mark.parametrize("name", ["README.md", "BUILD_NOTES.md", "docs/speed.md",
                                  "docs/tables.md", "docs/methods/deepsad.md"])
def test_generated_tables_match_committed_results(name):
  """Every table marked in README.md / BUILD_NOTES.md / docs equals what experiments.report makes
  from the committed results file it names (no figure typed by hand, none stale)."""
  path = pathlib.Path(__file__).resolve().parents[1] / name
  assert "<!-- experiments.report:" in path.read_text()
  assert report.refresh_blocks(path, check=True) == []


def _grid_csv(path, cells):
  """results.csv rows: cells = {(method, dataset, la): [per-seed AUROC]}."""
  lines = ["method,anomaly_only,dataset,la,seed,auroc,auprc,train_seconds,compile_seconds,steps,devices"]
  for (method, dataset, la), aurocs in cells.items():
    for seed, a in enumerate(aurocs, 1):
      lines.append(f"{method},False,{dataset},{la},{seed},{a},0.5,2.0,1.0,10,1")
  path.write_text("\n".join(lines) + "\n")
  return path


def test_paired_comparison_judges_the_difference_against_seed_noise(tmp_path):
  base = {("deepsad", "a", 0.1): [0.80, 0.90, 0.70], ("deepsad", "b", 0.1): [0.60, 0.70, 0.80],
          ("feawad", "a", 0.1): [0.90, 0.91, 0.92]}
  moved = {**base, ("feawad", "a", 0.1): [0.70, 0.71, 0.72]}  # 20 points down, no noise
  a = report.read_cells([_grid_csv(tmp_path / "a.csv", moved)])
  b = report.read_cells([_grid_csv(tmp_path / "b.csv", base)])
  rows = {line.split(" | ")[0].strip("| "): line.split(" | ")
          for line in report.paired_comparison(a, b, "new", "old").splitlines()[2:]}
  assert rows["deepsad"][5] == "+0.00" and rows["deepsad"][7] == "yes"
  assert rows["feawad"][5] == "-20.00" and rows["feawad"][7] == "**no**"
  # seed std of deepsad's table mean: per-seed means 70, 80, 75 -> std 5
  assert rows["deepsad"][6] == "5.00"


def test_seconds_by_method_counts_each_cell_once(tmp_path):
  path = _grid_csv(tmp_path / "r.csv", {("deepsad", "a", 0.1): [0.8, 0.9],
                                        ("feawad", "a", 0.1): [0.7, 0.8],
                                        ("feawad", "b", 0.1): [0.7, 0.8]})
  table = report.seconds_by_method(path)
  assert "| deepsad | 1 | 2.0 | 1.0 |" in table and "| feawad | 2 | 4.0 | 2.0 |" in table
  assert "| **all** | 3 | 6.0 | 3.0 |" in table


def test_timings_table_takes_medians_and_generated_blocks_refresh(tmp_path):
  (tmp_path / "t.csv").write_text(
      "run,implementation,cache,wall_seconds,programs_compiled,compile_seconds,cells,load,command\n"
      "cell,ssadjax,cold,10,3,5,1,1.0,x\ncell,ssadjax,cold,30,3,7,1,1.0,x\n"
      "cell,ssadjax,cold,20,3,6,1,1.0,x\ncell,deepod,-,17,,,1,1.0,y\n")
  table = report.timings_table(tmp_path / "t.csv")
  assert "| cell | ssadjax | cold | 20.0 | 3 | 6.0 | 1 | 3 |" in table
  assert "| cell | deepod | - | 17.0 | – | – | 1 | 1 |" in table
  md = tmp_path / "doc.md"
  md.write_text("x\n<!-- experiments.report: timings t.csv -->\nstale\n<!-- /experiments.report -->\n")
  assert report.refresh_blocks(md) == ["timings t.csv"]
  assert table in md.read_text() and report.refresh_blocks(md, check=True) == []


def test_bench_block_renders_the_committed_per_method_table(tmp_path):
  """The README's fit-only table comes from bench_speed's results.jsonl through a block."""
  import pathlib
  import shutil
  source = pathlib.Path(__file__).parents[1] / "results/engine_v2/per_method/results.jsonl"
  shutil.copy(source, tmp_path / "r.jsonl")
  md = tmp_path / "doc.md"
  md.write_text("<!-- experiments.report: bench r.jsonl -->\n<!-- /experiments.report -->\n")
  assert report.refresh_blocks(md) == ["bench r.jsonl"]
  text = md.read_text()
  for method in ("deepsad", "devnet", "prenet", "feawad"):
    assert f"| 6_cardio | {method} |" in text
  assert report.refresh_blocks(md, check=True) == []
