"""DevNet's hyper-parameters (Pang, Shen, van den Hengel, KDD 2019): `config.devnet`,
its presets and its AnoOnly changes.

Presets: 'adbench' is ADBench's DevNet, 'anoonly_paper' the AnoOnly copy's; a field
set in `config.devnet` wins over the preset. The method is ssadjax/methods/devnet.py."""

import ml_collections
from ml_collections import config_dict

from ssadjax.hparams.common import resolve_section

PRESETS = {
    "adbench": {
        "batch_size": 512,
        "learning_rate": 1e-3,
        "clipnorm": 1.0,
        "use_reference_normalisation": True,
        "anomaly_term": "hinge",
        "anoonly_anomaly_term": "linear",
    },
    "anoonly_paper": {
        "batch_size": 64,
        "learning_rate": 2e-4,
        "clipnorm": 0.0,
        "use_reference_normalisation": False,
        "anomaly_term": "abs",
        "anoonly_anomaly_term": "linear",
    },
}


def section() -> ml_collections.ConfigDict:
  """`config.devnet`; placeholder = preset-dependent (adbench | anoonly_paper)."""
  s = ml_collections.ConfigDict()
  s.hidden_dims = (20,)         # depth 2; (1000, 250, 20) = depth 4
  s.batch_size = config_dict.placeholder(int)       # 512 | 64
  s.learning_rate = config_dict.placeholder(float)  # 1e-3 | 2e-4
  s.clipnorm = config_dict.placeholder(float)       # 1.0 | 0.0 (= none); per tensor
  s.use_reference_normalisation = config_dict.placeholder(bool)  # True | False (dev := phi)
  s.anomaly_term = config_dict.placeholder(str)          # hinge | abs (baseline)
  s.anoonly_anomaly_term = config_dict.placeholder(str)  # linear | linear (anomaly_only; hinge collapses, docs/methods/devnet.md)
  s.margin = 5.0
  s.num_reference = 5000        # N(0, 1) draws for the reference mean/std
  s.l2 = 0.01                   # Keras l2 on the hidden kernels, added to the loss
  s.anoonly_l2_batch_mean = True  # under AnoOnly, L2 / 0.5: same objective as Keras' whole-batch mean
  s.rho = 0.9                   # Keras RMSprop
  s.rmsprop_eps = 1e-7
  s.steps_per_epoch = 20
  s.num_epochs = 50
  s.select_best_epoch = True    # Keras ModelCheckpoint(monitor='loss')
  s.norm_epsilon = 1e-3         # Keras BatchNormalization (AnoOnly)
  s.norm_momentum = 0.99
  return s


def resolve(cfg) -> dict:
  return resolve_section(cfg.devnet, PRESETS, cfg.preset)


def anoonly_changes(hp: dict) -> dict:
  """What AnoOnly changes in DevNet's hyper-parameters: the anomaly term becomes
  `anoonly_anomaly_term`, and with `anoonly_l2_batch_mean` the L2 weight is divided by a
  batch's anomaly fraction (ssadjax/methods/devnet.py says why)."""
  changes = {"anomaly_term": hp["anoonly_anomaly_term"]}
  if hp["anoonly_l2_batch_mean"]:
    batch_size = hp["batch_size"]
    changes["l2"] = hp["l2"] * batch_size / max(batch_size // 2, 1)
  return changes
