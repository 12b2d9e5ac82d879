"""PReNet's hyper-parameters (Pang et al., KDD 2023): `config.prenet`, its presets and
its AnoOnly changes.

Presets: 'adbench' (ADBench's PyTorch port), 'anoonly_paper' (the AnoOnly copy),
'official' (the authors' Keras code); every preset-dependent field is a placeholder in
`config.prenet` and wins when set. The method is ssadjax/methods/prenet.py."""

import ml_collections
from ml_collections import config_dict

from ssadjax.hparams.common import resolve_section

_ADBENCH = {
    "orientation": "adbench",
    "init_scheme": "torch",
    "unlabelled_replace": True,
    "distinct_anomaly_pairs": False,
    "weight_decay": 1e-2,
    "l2_kernel": 0.0,
    "rms_decay": 0.99,
    "rms_eps": 1e-8,
    "clipnorm": 0.0,
    "lr_schedule": "constant",
    "select_best_epoch": False,
    "score_references": "per_point",
}

PRESETS = {
    "adbench": dict(_ADBENCH),
    "anoonly_paper": {**_ADBENCH, "lr_schedule": "cosine", "unlabelled_replace": False},
    "official": {
        "orientation": "official",
        "init_scheme": "keras",
        "unlabelled_replace": False,
        "distinct_anomaly_pairs": True,
        "weight_decay": 0.0,
        "l2_kernel": 0.01,
        "rms_decay": 0.9,
        "rms_eps": 1e-7,
        "clipnorm": 1.0,
        "lr_schedule": "constant",
        "select_best_epoch": True,
        "score_references": "shared",
    },
}


def section() -> ml_collections.ConfigDict:
  """`config.prenet`; None = set by the preset (the value after "adbench:" is the
  default preset's)."""
  s = ml_collections.ConfigDict()
  s.hidden_dims = (20,)         # psi; (1000, 250, 20) = the official deeper variant
  s.batch_size = 512            # pairs: 1/4 (a,a) + 1/4 mixed + 1/2 (u,u)
  s.steps_per_epoch = 20
  s.num_epochs = 50
  s.learning_rate = 1e-3
  s.target_aa = 8.0             # ordinal targets
  s.target_au = 4.0
  s.target_uu = 0.0
  s.num_references = 30         # E reference anomalies + E unlabelled rows at scoring
  s.joint_norm_pass = False     # AnoOnly BN: one pass over [left; right] (ref: two)
  s.cosine_eta_min = 1e-5       # used when lr_schedule = cosine
  s.cosine_t_max = 0            # epochs; 0 -> num_epochs
  s.clipnorm_mode = "global"    # global (Keras 2) | per_tensor (TF2 Keras)
  s.orientation = config_dict.placeholder(str)       # adbench: adbench (a,u) | official (u,a)
  s.init_scheme = config_dict.placeholder(str)       # adbench: torch | keras
  s.unlabelled_replace = config_dict.placeholder(bool)  # adbench: True; anoonly_paper: False
  s.distinct_anomaly_pairs = config_dict.placeholder(bool)  # adbench: False
  s.weight_decay = config_dict.placeholder(float)    # adbench: 1e-2, added to the grad, all params
  s.l2_kernel = config_dict.placeholder(float)       # adbench: 0; official: Keras l2 0.01 on psi kernels
  s.rms_decay = config_dict.placeholder(float)       # adbench: 0.99 (PyTorch alpha); official 0.9
  s.rms_eps = config_dict.placeholder(float)         # adbench: 1e-8; official 1e-7
  s.clipnorm = config_dict.placeholder(float)        # adbench: 0 (off); official 1
  s.lr_schedule = config_dict.placeholder(str)       # adbench: constant; anoonly_paper: cosine
  s.select_best_epoch = config_dict.placeholder(bool)  # adbench: False (last epoch)
  s.score_references = config_dict.placeholder(str)  # adbench: per_point | shared
  return s


def resolve(cfg) -> dict:
  return resolve_section(cfg.prenet, PRESETS, cfg.preset)


def anoonly_changes(hp: dict) -> dict:
  """AnoOnly changes nothing in PReNet's hyper-parameters beyond its BatchNorm after psi
  (`insert_norm`)."""
  del hp
  return {}
