"""BGAD's hyper-parameters (Yao et al., CVPR 2023): `config.bgad`, its presets and its
AnoOnly changes.

Presets: 'adbench' and 'anoonly_paper' run 1 sub-epoch per meta-epoch without focal
weighting; 'bgad_reference' is the authors' MVTec script (8 sub-epochs, focal
weighting). A field set in `config.bgad` wins. The method is ssadjax/methods/bgad.py."""

import ml_collections
from ml_collections import config_dict

from ssadjax.hparams.common import resolve_section

# Schedule and weighting where our defaults and the authors' script differ.
PRESETS = {
    "adbench": {"sub_epochs": 1, "focal_weighting": False},
    "anoonly_paper": {"sub_epochs": 1, "focal_weighting": False},
    "bgad_reference": {"sub_epochs": 8, "focal_weighting": True},
}


def section() -> ml_collections.ConfigDict:
  """`config.bgad` (reference: the README MVTec command)."""
  s = ml_collections.ConfigDict()
  s.num_blocks = 8                # AllInOneBlocks per flow
  s.clamp_alpha = 1.9             # soft clamp alpha * tanh(s)
  s.subnet_ratio = 2.0            # subnet hidden width / input width
  s.pos_beta = 0.01               # boundary quantile (README 0.01; config default 0.05)
  s.margin_tau = 0.1              # b_a = b_n - tau
  s.normalizer = 10.0             # kappa
  s.push_pull_weight = 1.0        # lambda
  # Preset-dependent (ssadjax/methods/bgad.py PRESETS): adbench / anoonly_paper: off, 1;
  # --config.preset=bgad_reference (the authors' MVTec script): on, 8.
  s.focal_weighting = config_dict.placeholder(bool)  # off by default: 1/|u| blows up for u near 0 (docs/methods/bgad.md)
  s.batch_size = 128              # rows per step, labelled anomalies included
  s.anomalies_per_batch = 16      # labelled anomalies per batch (with replacement)
  s.learning_rate = 2e-4          # Adam
  s.lr_decay_rate = 0.1           # cosine to lr * rate**3
  s.lr_warm = True                # linear warm-up from lr/10 (correct progress; reference overshoots)
  s.lr_warm_epochs = 2            # meta-epochs
  s.meta_epochs = 25
  s.sub_epochs = config_dict.placeholder(int)  # epochs per meta-epoch (reference 8 over image chunks)
  s.ml_warmup = True              # meta-epoch 0: ML on unlabelled rows only (in init)
  s.anoonly_ml_warmup = False     # keep that ML phase under AnoOnly (a loss on unlabelled rows)
  s.norm_epsilon = 1e-5           # AnoOnly's inserted BatchNorm flow layer (PyTorch values)
  s.norm_momentum = 0.9
  return s


def resolve(cfg) -> dict:
  return resolve_section(cfg.bgad, PRESETS, cfg.preset)


def anoonly_changes(hp: dict) -> dict:
  """What AnoOnly changes in BGAD's hyper-parameters: the ML warm-up, a loss on the
  unlabelled rows only, is skipped unless `anoonly_ml_warmup`."""
  return {"ml_warmup": bool(hp["ml_warmup"] and hp["anoonly_ml_warmup"])}
