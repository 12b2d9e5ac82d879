"""FEAWAD's hyper-parameters (Zhou et al., TNNLS 2021): `config.feawad`, its presets
(where ADBench and the AnoOnly copy differ) and its AnoOnly changes.

The method is ssadjax/methods/feawad.py."""

import ml_collections
from ml_collections import config_dict

from ssadjax.hparams.common import resolve_section

PRESETS = {
    "adbench": {"norm_before_head": False},
    "anoonly_paper": {"norm_before_head": True},
}


def section() -> ml_collections.ConfigDict:
  """`config.feawad`; placeholder = preset-dependent."""
  s = ml_collections.ConfigDict()
  s.norm_before_head = config_dict.placeholder(bool)  # False | True (AnoOnly copy's BN)
  s.fixed_batch = True          # ADBench/AnoOnly replay one batch (re-seeded per call); False: fresh
  # ADBench: the replayed end-to-end batch's unlabelled rows come from the replayed AE batch
  # (one re-seeded RandomState feeds both); False: drawn independently of it.
  s.replay_pretrain_rows = True
  s.reconstruction_term = "normalised_residual"  # reference (||r/||r|||| = 1) | residual
  s.margin = 5.0
  s.batch_size = 512            # 256 unlabelled + 256 labelled anomalies, alternating
  s.learning_rate = 1e-4
  s.steps_per_epoch = 20
  s.num_epochs = 30
  s.select_best_epoch = True
  s.pretrain_epochs = 100       # AE on unlabelled rows; 0 = no pretraining
  s.pretrain_steps_per_epoch = 20
  s.pretrain_batch_size = 512
  s.pretrain_learning_rate = 1e-4
  s.pretrain_select_best = True
  s.adam_eps = 1e-7             # Keras Adam
  s.residual_eps = 1e-8         # floor of ||x - x_hat|| (the reference divides unguarded)
  s.norm_epsilon = 1e-3         # Keras BatchNormalization
  s.norm_momentum = 0.99
  return s


def resolve(cfg) -> dict:
  return resolve_section(cfg.feawad, PRESETS, cfg.preset)


def anoonly_changes(hp: dict) -> dict:
  """AnoOnly changes nothing in FEAWAD's hyper-parameters beyond its BatchNorm before
  the score head (`insert_norm`)."""
  del hp
  return {}
