"""Deep SVDD's hyper-parameters (Ruff et al., ICML 2018): `config.deepsvdd`.

Deep SVDD is Deep SAD trained without labels (ssadjax/methods/deepsad.py). Under any
preset but its own it follows Deep SAD's section; `preset=deepsvdd_official` is Ruff et
al.'s Deep-SVDD-PyTorch (README's MNIST command), `preset=deepsvdd_adbench` what
ADBench's DeepSVDD row runs (PyOD 1.0's Keras DeepSVDD with its defaults). Any field set
in `config.deepsvdd` wins over both."""

import ml_collections
from ml_collections import config_dict

from ssadjax.hparams import deepsad

PRESETS = {
    "deepsvdd_official": dict(
        architecture="mlp", batch_size=200, num_epochs=150, learning_rate=1e-4,
        lr_milestone_at_zero=False, lr_milestones=(50,), weight_decay=5e-7,
        pretrain_epochs=150, pretrain_transfer=True, pretrain_learning_rate=1e-4,
        pretrain_lr_milestones=(50,), pretrain_batch_size=200, pretrain_weight_decay=5e-4,
        adam_eps=1e-8, activity_l2=0.0, standardize=False, center_from_other_init=False),
    "deepsvdd_adbench": dict(
        architecture="pyod", hidden_dims=(64,), rep_dim=32, batch_size=32,
        num_epochs=100, learning_rate=1e-3, lr_milestone_at_zero=False, lr_milestones=(),
        weight_decay=0.0, pretrain_epochs=0, adam_eps=1e-7, activity_l2=0.1,
        standardize=True, center_from_other_init=True),
}

# Deep SVDD trains without labels: no AnoOnly variant (runconfig.UNSUPERVISED says why).
anoonly_changes = None


def section() -> ml_collections.ConfigDict:
  """`config.deepsvdd`: every field a placeholder (None = Deep SAD's or the preset's)."""
  deepsad_defaults = deepsad.section()
  s = ml_collections.ConfigDict()
  for key in ("hidden_dims", "rep_dim", "batch_size", "num_epochs", "learning_rate",
              "lr_milestones", "weight_decay", "pretrain_epochs", "pretrain_learning_rate",
              "pretrain_lr_milestones"):
    s[key] = config_dict.placeholder(type(deepsad_defaults[key]))
  s.pretrain_batch_size = config_dict.placeholder(int)
  s.pretrain_weight_decay = config_dict.placeholder(float)
  s.lr_milestone_at_zero = config_dict.placeholder(bool)
  s.pretrain_transfer = config_dict.placeholder(bool)
  s.architecture = config_dict.placeholder(str)  # mlp (Deep SAD's) | pyod (d-64-32 ReLU)
  s.adam_eps = config_dict.placeholder(float)    # 1e-8 (PyTorch) | 1e-7 (Keras)
  s.activity_l2 = config_dict.placeholder(float)  # Keras activity L2 per layer (PyOD 0.1)
  s.standardize = config_dict.placeholder(bool)   # PyOD's StandardScaler on the inputs
  s.center_from_other_init = config_dict.placeholder(bool)  # PyOD: c from a discarded net
  return s


def resolve(cfg) -> dict:
  """Deep SVDD's hyper-parameters: Deep SAD's section, then the `deepsvdd_*` preset's
  values, then every field of `cfg.deepsvdd` that is set (not None)."""
  values = {**dict(cfg.deepsad), **deepsad.SVDD_FIELDS}
  values.update(PRESETS.get(cfg.get("preset", ""), {}))
  for key, value in (cfg.get("deepsvdd") or {}).items():
    if value is not None:
      values[key] = value
  return values
