"""Deep SAD vs Deep SAD + AnoOnly on the embedded synthetic benchmark (no download).

  python -m experiments.main --config=experiments/configs/default.py --workdir=/tmp/ssadjax

Prints a two-row table (AUROC/AUPRC, mean +- std over 3 seeds) and writes
results.csv, report.md and one folder per variant. Under a minute on 2 CPU cores.
"""

from experiments.configs import common


def get_config(arg=None):
  del arg
  config = common.get_config()
  config.dataset = "synthetic"
  config.grid = "anomaly_only=False|True"
  return config
