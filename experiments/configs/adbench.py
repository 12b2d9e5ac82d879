"""Any method on any ADBench dataset, chosen through overrides.

  python -m experiments.main --config=experiments/configs/adbench.py \
    --config.method=deepsad --config.anomaly_only=True --config.dataset=6_cardio \
    --config.data_dir=../shared/data/adbench --config.num_seeds=3 --workdir=W

Expected (BUILD_NOTES.md, 3 seeds, la = 0.1): Deep SAD on 6_cardio AUROC about 0.85-0.95;
ADBench Table D10 reports 86.51 for Deep SAD on cardio. A few seconds on 2 CPU cores.
A grid: --config.grid="dataset=6_cardio|38_thyroid;anomaly_only=False|True".
"""

from experiments.configs import common


def get_config(arg=None):
  config = common.get_config()
  config.dataset = "6_cardio"
  if arg:  # e.g. --config=experiments/configs/adbench.py:38_thyroid
    config.dataset = arg
  return config
