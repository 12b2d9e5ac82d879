"""The dataset catalogue command (python -m experiments.datasets)."""

import subprocess
import sys

import numpy as np

from experiments import datasets
from tests.conftest import REPO_ROOT


def _manual(tmp_path):
  root = tmp_path / "adb"
  (root / "Classical").mkdir(parents=True)
  np.savez(root / "Classical" / "1_small.npz", X=np.zeros((40, 3)), y=np.r_[np.zeros(30),
                                                                           np.ones(10)])
  np.savez(root / "Classical" / "10_big.npz", X=np.zeros((40, 3)), y=np.r_[np.zeros(30),
                                                                         np.ones(10)])
  (root / "NLP_by_BERT").mkdir()
  np.savez(root / "NLP_by_BERT" / "text_0.npz", X=np.zeros((200, 7), np.float32),
           y=np.r_[np.zeros(199), np.ones(1)])
  (root / "Classical" / "broken.npz").write_bytes(b"not a zip")
  return root


def test_catalogue_rows(tmp_path):
  rows = {r["name"]: r for r in datasets.catalogue(_manual(tmp_path), tmp_path / "tfds")}
  small = rows["Classical/1_small"]
  assert (small["rows"], small["features"], small["anomalies"], small["anomaly %"]) == (
      "40", "3", "10", "25.00")
  assert rows["NLP_by_BERT/text_0"]["anomaly %"] == "0.50"
  assert rows["Classical/broken"]["status"].startswith("unreadable")
  assert rows["synthetic"]["rows"] == "3000" and rows["synthetic"]["anomaly %"] == "10.00"
  assert rows["tfds:mnist/<k>"]["features"] == "28x28x1"
  assert rows["tfds:mnist/<k>"]["status"].startswith("not downloaded: add "
                                                     "--config.data.tfds_download=True")
  assert rows["embedded:optdigits"]["rows"] == "1667"
  assert rows["embedded:optdigits"]["status"].startswith("ready")
  names = list(rows)
  assert names.index("Classical/1_small") < names.index("Classical/10_big")  # natural order


def test_natural_key():
  names = ["Classical/10_cover", "Classical/2_annthyroid", "CV_by_ResNet18/MVTec-AD_bottle"]
  assert sorted(names, key=datasets.natural_key) == [
      "Classical/2_annthyroid", "Classical/10_cover", "CV_by_ResNet18/MVTec-AD_bottle"]


def test_catalogue_command_prints_a_table(tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "experiments.datasets", f"--data_dir={_manual(tmp_path)}",
       f"--tfds_dir={tmp_path / 'tfds'}"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
      env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
  assert out.returncode == 0, out.stderr
  lines = out.stdout.splitlines()
  assert lines[0].startswith("| name") and "anomaly %" in lines[0]
  assert any(line.startswith("| Classical/1_small ") and "| 25.00 " in line for line in lines)
  assert any(line.startswith("| tfds:cifar10/<k>") for line in lines)
  assert any(line.startswith("| embedded:optdigits ") for line in lines)
  assert out.stderr == ""  # no library log lines
