"""ADBench's semi-supervised tables D6 / D8 / D10 (la = 1 %, 5 %, 10 %) on every Classical
file under data_dir: Deep SAD, DevNet, PReNet and FEAWAD with the `adbench` preset, seeds
1-3 (ADBench's three repetitions), ADBench's protocol.

  python -m experiments.main --config=experiments/configs/adbench_table.py \
    --config.data_dir=../shared/data/adbench --workdir=runs/adbench_table
  python -m experiments.report --table=adbench runs/adbench_table

Variants: `:all` adds BGAD at the same ratios and FUN-AD once per dataset (la = 0, as the
method is published: fully unsupervised); neither has published ADBench numbers.
`:quick` keeps la = 0.1 and four datasets (cardio, thyroid, satellite, mammography).
Finished cells are reused and an interrupted cell resumes from its checkpoint.
"""

from experiments.configs import common

METHODS = "deepsad|devnet|prenet|feawad"
RATIOS = "0.1|0.05|0.01"  # D10 first: an interrupted table has the main ratio complete


def get_config(arg=None):
  options = set(filter(None, (arg or "").split(",")))
  unknown = options - {"all", "quick"}
  if unknown:
    raise ValueError(f"adbench_table.py: unknown variant(s) {sorted(unknown)}; use all and/or quick")
  config = common.get_config()
  config.preset = "adbench"
  config.seed, config.num_seeds = 1, 3
  files, ratios = "Classical/*", RATIOS
  if "quick" in options:
    files = "Classical/6_cardio|Classical/38_thyroid|Classical/30_satellite|Classical/23_mammography"
    ratios = "0.1"
  config.grid = f"la={ratios};method={METHODS};dataset={files}"
  if "all" in options:
    config.grid += f" + la={ratios};method=bgad;dataset={files} + la=0.0;method=funad;dataset={files}"
  config.plot = ""
  return config
