"""Quick start: Deep SAD vs Deep SAD + AnoOnly on real data shipped in the package (no download).

  python -m experiments.main --config=experiments/configs/default.py --workdir=/tmp/ssadjax

The data is `embedded:optdigits` (ssadjax/data/files/SOURCE.md): UCI handwritten digits,
1-9 normal and 0 the rare anomaly (2.9 %), built with the recipe of ADBench's 26_optdigits.
Prints a two-row table (AUROC/AUPRC, mean +- std over 3 seeds) and writes results.csv,
report.md and one folder per variant. `--config.dataset=synthetic` runs the generated
Gaussian set instead; `--config.dataset=6_cardio` an ADBench file (needs data_dir).
"""

from ssadjax.data import embedded
from experiments.configs import common


def get_config(arg=None):
  del arg
  config = common.get_config()
  config.dataset = embedded.DEFAULT
  config.grid = "anomaly_only=False|True"
  return config
