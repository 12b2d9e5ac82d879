"""BatchNorm statistics as an ablation: which normalisation choices make AnoOnly work.

A grid over datasets x methods x {baseline, +AnoOnly} x norm policies, every cell one
compiled program (seeds vmapped), under the AnoOnly paper's settings (preset
anoonly_paper, la = 0.1). Writes results.csv (one row per seed, with a `policy` column),
report.md (the runner's table, then policy x variant tables per dataset family) and
policy_bars.png (grouped bars per family, error bars = std over seeds).

  # smoke: synthetic data, Deep SAD and DevNet, 4 policies, 2 seeds, ~2 min on 2 cores
  python -m experiments.main --config=experiments/configs/bn_ablation.py:smoke --workdir=W
  # 3 Classical datasets, Deep SAD and DevNet, every policy, shorter training (~25 min)
  python -m experiments.main --config=experiments/configs/bn_ablation.py:quick \
    --config.data_dir=../shared/data/adbench --workdir=W
  # Classical tabular datasets, all four methods, every policy (ADBench data needed)
  python -m experiments.main --config=experiments/configs/bn_ablation.py:classical \
    --config.data_dir=../shared/data/adbench --workdir=W
  # the full grid: Classical + CV + NLP families
  python -m experiments.main --config=experiments/configs/bn_ablation.py \
    --config.data_dir=../shared/data/adbench --workdir=W

Policies (`@policy=...` in the grid; each one a bundle of `norm.*` overrides in
`grid_presets.policy`, see experiments/runner.py preset_overrides and ssadjax/norm.py):

  ref          the reference: BN as each reference / AnoOnly places it, all rows feed
               the statistics, running statistics at test time
  unlab_stats  batch statistics from the unlabelled rows only (all rows normalised)
  anom_stats   batch statistics from the labelled anomalies only
  eval_batch   test-batch statistics at evaluation
  eval_recomp  statistics recomputed after training, one pass over the unlabelled rows
  mom0         momentum 0: the running statistics are the last training batch's
  affine_off   BN without learnable scale/shift (Deep SAD's reference already is)
  affine_on    BN with learnable scale/shift
  bn_head      one BN after the last hidden layer, in the baseline too
  bn_all       BN after every hidden layer, in the baseline too
  per_device   per-device statistics: 4 groups of rows per batch (norm.sync=False)
  layer        LayerNorm where BN was (no cross-row statistics)
  none         no normalisation (with anomaly_only=True: AnoOnly's loss without any BN)

A policy that a method's reference has no BN for (e.g. DevNet's baseline under
`unlab_stats`) runs and equals `ref`: the bars show that too.
"""

from experiments.configs import common

POLICIES = {
    "ref": "",
    "unlab_stats": "norm.stats_rows=unlabelled",
    "anom_stats": "norm.stats_rows=labelled_anomalies",
    "eval_batch": "norm.eval_stats=batch",
    "eval_recomp": "norm.eval_stats=recomputed",
    "mom0": "norm.momentum=0.0",
    "affine_off": "norm.affine=False",
    "affine_on": "norm.affine=True",
    "bn_head": "norm.placement=last_hidden",
    "bn_all": "norm.placement=all_hidden",
    "per_device": "norm.sync=False,norm.stat_groups=4",
    "layer": "norm.kind=layer",
    "none": "norm.kind=none",
}

METHODS = ("deepsad", "devnet", "prenet", "feawad")
CLASSICAL = ("6_cardio", "38_thyroid", "30_satellite", "31_satimage-2", "18_Ionosphere",
             "23_mammography")
CV = ("CV_by_ResNet18/CIFAR10_0", "CV_by_ResNet18/SVHN_0", "CV_by_ResNet18/MVTec-AD_bottle")
NLP = ("NLP_by_BERT/20news_3",)


def grid(datasets, methods, policies) -> str:
  return (f"dataset={'|'.join(datasets)};method={'|'.join(methods)};"
          f"anomaly_only=False|True;@policy={'|'.join(policies)}")


def add_policies(config):
  config.grid_presets.policy = dict(POLICIES)
  return config


def shorten(config, epochs: int, steps: int):
  """Shorter training for quick variants (every method, same factor)."""
  config.deepsad.num_epochs = epochs
  for section in ("devnet", "prenet", "feawad"):
    config[section].num_epochs = epochs
    config[section].steps_per_epoch = steps
  config.feawad.pretrain_epochs = epochs
  config.feawad.pretrain_steps_per_epoch = steps
  return config


def get_config(arg=None):
  config = add_policies(common.get_config())
  config.preset = "anoonly_paper"
  config.la = 0.1
  config.num_seeds = 3
  config.plot = "policy_bars"
  config.checkpoint.enabled = False
  config.train.chunk_epochs = 50  # one dispatch per cell: no checkpoints to write between
  variant = arg or "full"
  if variant == "smoke":
    config.dataset = "synthetic"
    config.num_seeds = 2
    shorten(config, epochs=5, steps=10)
    config.grid = grid(["synthetic"], ["deepsad", "devnet"],
                       ["ref", "eval_recomp", "layer", "none"])
  elif variant == "classical":
    config.grid = grid(CLASSICAL, METHODS, list(POLICIES))
  elif variant == "quick":
    # The run docs/ablation.md reports: 3 Classical datasets, Deep SAD and DevNet.
    shorten(config, epochs=20, steps=20)
    config.grid = grid(("6_cardio", "31_satimage-2", "38_thyroid"), ["deepsad", "devnet"],
                       list(POLICIES))
  elif variant == "full":
    config.grid = grid(CLASSICAL + CV + NLP, METHODS, list(POLICIES))
  else:
    raise ValueError(f"bn_ablation variant {arg!r}; expected smoke | quick | classical | full")
  return config
