"""The experiment entry point: result files, resume, grids, config errors, end to end."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from experiments.configs import adbench as adbench_config
from experiments.configs import default as default_config
from experiments import grid
from experiments import runner, workdir
from tests.helpers import tiny_config

REPO = pathlib.Path(__file__).resolve().parents[1]


class Interrupted(Exception):
  pass


def _synthetic_config(**overrides):
  return tiny_config(dataset="synthetic", num_seeds=2, **overrides)


def test_single_run_writes_result_files(tmp_path):
  results = runner.run_single(_synthetic_config(), tmp_path)
  for name in ("config.json", "metrics.jsonl", "results.json", "scores.npz"):
    assert (tmp_path / name).exists(), name
  on_disk = json.loads((tmp_path / "results.json").read_text())
  assert on_disk == json.loads(json.dumps(results))
  for key in ("method", "anomaly_only", "dataset", "la", "seeds", "auroc", "auprc",
              "auroc_mean", "auprc_mean", "train_seconds", "compile_seconds", "steps",
              "devices", "versions"):
    assert key in on_disk, key
  assert on_disk["seeds"] == [1, 2] and len(on_disk["auroc"]) == 2
  scores = np.load(tmp_path / "scores.npz")
  assert scores["scores"].shape == scores["labels"].shape == (2, on_disk["num_test"])
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert sorted((l["seed"], l["epoch"]) for l in lines) == [(s, e) for s in (1, 2)
                                                            for e in range(1, 5)]
  assert not list(tmp_path.glob("*.tmp"))


def test_single_run_writes_the_grid_files_too(tmp_path):
  """One output shape: a single run also writes results.csv and report.md."""
  result = runner.train_and_evaluate(_synthetic_config(), tmp_path)
  rows = (tmp_path / "results.csv").read_text().splitlines()
  assert rows[0].split(",") == list(workdir.RESULT_FIELDS)
  assert [r.split(",")[4] for r in rows[1:]] == ["1", "2"]  # one row per seed
  assert (tmp_path / "report.md").read_text() == workdir.format_table([result])
  assert result["programs"]["compiled"] + result["programs"]["from_jax_cache"] + (
      result["programs"]["reused"]) == 1  # one program initialises, trains and scores


def test_resume_after_interruption_equals_uninterrupted(tmp_path):
  config = _synthetic_config()
  reference = runner.run_single(config, tmp_path / "reference")

  def stop_after_first_chunk(epoch, metrics):
    if epoch == 2:
      raise Interrupted

  with pytest.raises(Interrupted):
    runner.run_single(config, tmp_path / "resumed", on_chunk_end=stop_after_first_chunk)
  assert not (tmp_path / "resumed" / "results.json").exists()
  resumed = runner.run_single(config, tmp_path / "resumed")
  assert resumed["auroc"] == reference["auroc"] and resumed["auprc"] == reference["auprc"]
  a = np.load(tmp_path / "reference" / "scores.npz")
  b = np.load(tmp_path / "resumed" / "scores.npz")
  np.testing.assert_array_equal(a["scores"], b["scores"])
  assert _curves(tmp_path / "reference") == _curves(tmp_path / "resumed")


def _curves(workdir):
  """metrics.jsonl without the wall-clock fields."""
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [{k: v for k, v in l.items() if k not in ("steps_per_second", "eta_seconds")}
          for l in lines]


def test_checkpoint_folder_names_stay_short_for_many_seeds():
  assert runner.seeds_dir_name([1, 2, 3]) == "seeds_1_2_3"  # earlier runs still resume
  assert runner.seeds_dir_name(range(1, 101)) == "seeds_1-100"
  scattered = [*range(1, 100), 500]
  name = runner.seeds_dir_name(scattered)
  assert name.startswith("seeds_1-500_100_") and len(name) < 64
  assert name != runner.seeds_dir_name([*range(1, 100), 501])


def test_a_hundred_seeds_train_and_checkpoint(tmp_path):
  # 100 seeds once made a checkpoint folder name longer than the file system allows.
  config = tiny_config(dataset="synthetic", num_seeds=100)
  first = runner.run_single(config, tmp_path)
  assert len(first["auroc"]) == 100
  assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["seeds_1-100"]


def test_workdir_with_a_different_config_is_refused(tmp_path):
  runner.run_single(_synthetic_config(), tmp_path)
  before = (tmp_path / "results.json").read_text()
  with pytest.raises(ValueError, match="different config.*deepsad.eta"):
    runner.run_single(_synthetic_config(**{"deepsad.eta": 2.0}), tmp_path)
  assert (tmp_path / "results.json").read_text() == before


def test_parse_grid():
  cells = grid.parse_grid("dataset=6_cardio|CV_by_ResNet18/MVTec-AD_bottle;"
                                "anomaly_only=False|True")
  assert cells == [{"dataset": "6_cardio", "anomaly_only": False},
                   {"dataset": "6_cardio", "anomaly_only": True},
                   {"dataset": "CV_by_ResNet18/MVTec-AD_bottle", "anomaly_only": False},
                   {"dataset": "CV_by_ResNet18/MVTec-AD_bottle", "anomaly_only": True}]
  with pytest.raises(ValueError, match="key=v1"):
    grid.parse_grid("anomaly_only")


def test_grid_writes_csv_and_report(tmp_path):
  config = _synthetic_config(grid="anomaly_only=False|True")
  summaries = runner.train_and_evaluate(config, tmp_path)
  assert [s["name"] for s in summaries] == ["deepsad", "deepsad+anoonly"]
  rows = (tmp_path / "results.csv").read_text().splitlines()
  assert len(rows) == 1 + 2 * 2
  report = (tmp_path / "report.md").read_text()
  assert "deepsad+anoonly" in report and "synthetic" in report


def test_parse_grid_concatenates_products_joined_by_plus():
  cells = grid.parse_grid("method=deepsad|devnet;la=0.01|1e+3 + method=funad;la=0.0")
  assert cells == [{"method": "deepsad", "la": 0.01}, {"method": "deepsad", "la": 1000.0},
                   {"method": "devnet", "la": 0.01}, {"method": "devnet", "la": 1000.0},
                   {"method": "funad", "la": 0.0}]


def _fake_adbench(root, names):
  rng = np.random.default_rng(0)
  for name in names:
    path = root / f"{name}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, X=rng.normal(size=(40, 3)).astype(np.float32), y=np.r_[np.zeros(36), np.ones(4)])


def test_dataset_patterns_expand_to_the_files_found(tmp_path):
  _fake_adbench(tmp_path, ["Classical/6_cardio", "Classical/2_annthyroid",
                           "CV_by_ResNet18/CIFAR10_0", "NLP_by_BERT/20news_3"])
  cells = grid.expand_dataset_patterns(
      grid.parse_grid("method=devnet;dataset=CV_by_ResNet18/*|NLP_by_BERT/*|6_cardio"),
      str(tmp_path))
  assert [c["dataset"] for c in cells] == ["CV_by_ResNet18/CIFAR10_0", "NLP_by_BERT/20news_3",
                                           "6_cardio"]
  assert all(c["method"] == "devnet" for c in cells)
  cells = grid.expand_dataset_patterns([{"dataset": "Classical/*"}], str(tmp_path))
  assert [c["dataset"] for c in cells] == ["Classical/2_annthyroid", "Classical/6_cardio"]
  with pytest.raises(ValueError, match="matches no .npz file"):
    grid.expand_dataset_patterns([{"dataset": "CV_by_ViT/*"}], str(tmp_path))


def test_table_configs_cover_every_file_found(tmp_path):
  from experiments.configs import adbench_table, anoonly_table
  _fake_adbench(tmp_path, ["Classical/6_cardio", "Classical/2_annthyroid",
                           "CV_by_ResNet18/CIFAR10_0", "NLP_by_BERT/20news_3"])
  expand = lambda c: grid.expand_dataset_patterns(grid.parse_grid(c.grid), str(tmp_path))
  cells = expand(anoonly_table.get_config())
  assert len(cells) == 4 * 2 * 2  # methods x {baseline, AnoOnly} x CV/NLP files
  cells = expand(adbench_table.get_config("all"))
  # 4 ADBench methods and BGAD at three ratios, FUN-AD once (unsupervised), per file
  assert len(cells) == (4 * 3 + 3 + 1) * 2
  assert {c["la"] for c in cells if c["method"] == "funad"} == {0.0}
  with pytest.raises(ValueError, match="unknown variant"):
    adbench_table.get_config("quik")


def test_grid_union_writes_one_csv_with_every_column(tmp_path):
  config = _synthetic_config(grid="anomaly_only=False|True + method=deepsvdd")
  config.num_seeds = 1
  runner.train_and_evaluate(config, tmp_path)
  rows = (tmp_path / "results.csv").read_text().splitlines()
  assert len(rows) == 1 + 3
  assert rows[-1].startswith("deepsvdd,False,synthetic")


def _main(*args, env=None, timeout=600):
  return subprocess.run([sys.executable, "-m", "experiments.main", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout,
                        env={**os.environ, **(env or {})})


def test_config_typo_fails_loudly(tmp_path):
  out = _main("--config=experiments/configs/adbench.py", "--config.methd=devnet",
              f"--workdir={tmp_path}")
  assert out.returncode != 0
  assert "methd" in out.stderr
  assert not (tmp_path / "config.json").exists()


def test_missing_data_dir_names_both_options(tmp_path, monkeypatch):
  monkeypatch.delenv("SSADJAX_DATA_DIR", raising=False)
  config = adbench_config.get_config()
  with pytest.raises(ValueError, match="(?s)data_dir.*SSADJAX_DATA_DIR"):
    runner.run_single(config, tmp_path)


@pytest.mark.slow
def test_default_config_end_to_end(tmp_path):
  out = _main("--config=experiments/configs/default.py", f"--workdir={tmp_path}")
  assert out.returncode == 0, out.stderr[-3000:]
  assert "deepsad+anoonly" in out.stdout and "steps/s" in out.stderr
  rows = (tmp_path / "results.csv").read_text().splitlines()
  assert len(rows) == 1 + 2 * default_config.get_config().num_seeds


@pytest.mark.slow
@pytest.mark.parametrize("anomaly_only,floor", [(False, 0.75), (True, 0.85)])
def test_issue_command_on_cardio(tmp_path, adbench_dir, anomaly_only, floor):
  """The foundation issue's command; observed AUROC 0.87 (Deep SAD) and 0.97 (+AnoOnly)."""
  out = _main("--config=experiments/configs/adbench.py", "--config.method=deepsad",
              f"--config.anomaly_only={anomaly_only}", "--config.dataset=6_cardio",
              f"--config.data_dir={adbench_dir}", "--config.num_seeds=3",
              f"--workdir={tmp_path}")
  assert out.returncode == 0, out.stderr[-3000:]
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["name"] == "deepsad+anoonly" if anomaly_only else "deepsad"
  assert results["seeds"] == [1, 2, 3] and results["steps"] == 50 * (1281 // 128)
  assert results["auroc_mean"] > floor
