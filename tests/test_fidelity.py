"""experiments/fidelity.py on hand-made results.csv files whose answers are known."""

import csv
import math

import numpy as np
import pytest

from experiments import fidelity

FIELDS = ["method", "anomaly_only", "dataset", "la", "seed", "auroc", "auprc"]


def _write(path, rows):
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=FIELDS + ["implementation"], restval="")
    writer.writeheader()
    writer.writerows(rows)
  return path


def _row(method, dataset, seed, auroc, la=0.1):
  return {"method": method, "anomaly_only": "False", "dataset": dataset, "la": la,
          "seed": seed, "auroc": auroc, "auprc": 0.5}


@pytest.fixture
def csvs(tmp_path):
  """devnet: ours beats the reference by 2 points on all 6 pairs (significant);
  feawad: +-1 point alternating, mean 0 (not significant); prenet only in ours."""
  ours, ref = [], []
  for i, (dataset, seed) in enumerate(
      [(d, s) for d in ("Classical/6_cardio", "Classical/42_WBC") for s in (1, 2, 3)]):
    base = 0.80 + 0.01 * i
    ref.append(_row("devnet", dataset, seed, base))
    ours.append(_row("devnet", dataset, seed, base + 0.02 + 0.001 * i))
    ref.append(_row("feawad", dataset, seed, base))
    ours.append(_row("feawad", dataset, seed, base + (0.01 if i % 2 else -0.01)))
  ours.append(_row("prenet", "Classical/6_cardio", 1, 0.9))
  return _write(tmp_path / "ours.csv", ours), _write(tmp_path / "ref.csv", ref)


def test_pairs_and_summary(csvs):
  ours, ref = csvs
  pairs = fidelity.pair_rows(fidelity._read(ours), fidelity._read(ref))
  assert len(pairs) == 12  # prenet has no reference row and is dropped
  summaries = {s.method: s for s in fidelity.summarise(pairs)}
  assert set(summaries) == {"devnet", "feawad"}
  devnet, feawad = summaries["devnet"], summaries["feawad"]
  assert devnet.n_pairs == 6 and devnet.n_files == 2
  assert devnet.mean_diff == pytest.approx(2.25)  # 2 + 0.1 * mean(0..5) points
  assert devnet.significant and not devnet.within_tolerance
  assert devnet.p_value == pytest.approx(2 / 64)  # exact Wilcoxon, 6 positive diffs
  assert feawad.mean_diff == pytest.approx(0.0, abs=1e-9)
  assert not feawad.significant and feawad.within_tolerance


def test_markdown_lists_the_significant_methods(csvs):
  text = fidelity.fidelity_report(*csvs)
  assert "Significant mean paired differences: devnet (la 0.1, Classical)." in text
  assert "Wilcoxon signed-rank" in text
  # ADBench publishes 96.57 for FEAWAD on cardio at la = 10 %, shown beside the pair.
  assert "| feawad | Classical/6_cardio | 3 |" in text and "96.57" in text


def test_collections_are_summarised_apart(tmp_path):
  """A deviation on the CV embeddings alone must not hide in a mean over tabular files:
  ours equals the reference on six Classical pairs and is 3 points low on six CV pairs."""
  ours, ref = [], []
  for dataset in ("Classical/6_cardio", "Classical/42_WBC", "CV_by_ResNet18/SVHN_0",
                  "CV_by_ResNet18/CIFAR10_0"):
    low = 0.03 if dataset.startswith("CV") else 0.0
    for seed in (1, 2, 3):
      base = 0.8 + 0.01 * seed
      ref.append(_row("feawad", dataset, seed, base))
      ours.append(_row("feawad", dataset, seed, base - low - 0.001 * seed))
  paths = _write(tmp_path / "ours.csv", ours), _write(tmp_path / "ref.csv", ref)
  pairs = fidelity.pair_rows(fidelity._read(paths[0]), fidelity._read(paths[1]))
  by_data = {s.collection: s for s in fidelity.summarise(pairs)}
  assert set(by_data) == {"Classical", "CV_by_ResNet18"}
  assert by_data["Classical"].mean_diff == pytest.approx(-0.2)
  assert by_data["CV_by_ResNet18"].mean_diff == pytest.approx(-3.2)
  assert by_data["CV_by_ResNet18"].n_files == 2 and by_data["CV_by_ResNet18"].n_pairs == 6
  assert not by_data["CV_by_ResNet18"].within_tolerance
  assert "| feawad | 0.1 | CV_by_ResNet18 | 2 | 6 |" in fidelity.methods_table(*paths)


def test_failed_reference_seeds_are_named_and_left_unpaired(tmp_path):
  ours = [_row("feawad", "Classical/23_mammography", s, 0.8) for s in (1, 2, 3)]
  ref = [_row("feawad", "Classical/23_mammography", s, 0.85) for s in (1, 3)]
  ref.append({**_row("feawad", "Classical/23_mammography", 2, ""),
              "auprc": "", "error": "FileNotFoundError: no weights"})
  paths = []
  for name, rows in (("ours.csv", ours), ("ref.csv", ref)):
    with open(tmp_path / name, "w", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=FIELDS + ["error"], restval="")
      writer.writeheader()
      writer.writerows(rows)
    paths.append(tmp_path / name)
  assert len(fidelity.pair_rows(fidelity._read(paths[0]), fidelity._read(paths[1]))) == 2
  for text in (fidelity.methods_table(*paths), fidelity.fidelity_report(*paths)):
    assert ("failed in the reference code itself (no score, so not paired): feawad "
            "Classical/23_mammography seed 2 (`FileNotFoundError: no weights`)") in text
  # Without failures the tables say nothing about them.
  assert "failed" not in fidelity.methods_table(paths[0], paths[0])


def test_cli_writes_markdown_and_csvs(csvs, tmp_path):
  fidelity.main([str(csvs[0]), str(csvs[1]), "--out", str(tmp_path / "out")])
  with open(tmp_path / "out" / "fidelity_methods.csv") as f:
    methods = {r["method"]: r for r in csv.DictReader(f)}
  assert methods["devnet"]["significant"] == "True"
  assert methods["feawad"]["significant"] == "False"
  with open(tmp_path / "out" / "fidelity_files.csv") as f:
    assert len(list(csv.DictReader(f))) == 4
  assert (tmp_path / "out" / "fidelity.md").read_text().startswith("### Fidelity")


def test_duplicate_rows_are_an_error(tmp_path):
  rows = [_row("devnet", "Classical/6_cardio", 1, 0.9)] * 2
  path = _write(tmp_path / "dup.csv", rows)
  with pytest.raises(ValueError, match="duplicate row"):
    fidelity.pair_rows(fidelity._read(path), fidelity._read(path))


def test_t_test_matches_scipy():
  stats = pytest.importorskip("scipy.stats")
  rng = np.random.default_rng(0)
  for n, shift in ((5, 0.0), (12, 0.7), (40, -0.3), (3, 2.0)):
    diffs = list(rng.normal(shift, 1.0, n))
    t, p = fidelity.paired_t_test(diffs)
    expected = stats.ttest_1samp(diffs, 0.0)
    assert t == pytest.approx(expected.statistic, rel=1e-10)
    assert p == pytest.approx(expected.pvalue, rel=1e-8, abs=1e-14)
  t, p = fidelity.paired_t_test([1.0, 2.0, 3.0, 4.0, 5.0])
  assert t == pytest.approx(3 / (math.sqrt(2.5) / math.sqrt(5)))
  assert fidelity.paired_t_test([0.0, 0.0, 0.0]) == (0.0, 1.0)


def test_report_opens_with_the_paired_comparison(csvs, tmp_path):
  """experiments.report --reference: the paired table first, naming the significant method."""
  from experiments import report
  ours, ref = csvs
  path = report.write_report([ours], tmp_path / "rep", reference=ref)
  text = path.read_text()
  assert text.index("## Fidelity to the reference code") < text.index("## Gaps larger")
  assert "Significant mean paired differences: devnet (la 0.1, Classical)." in text
