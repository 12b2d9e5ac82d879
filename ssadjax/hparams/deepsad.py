"""Deep SAD's hyper-parameters (Ruff et al., ICLR 2020): `config.deepsad`, ADBench's recipe.

The method is ssadjax/methods/deepsad.py."""

import ml_collections
from ml_collections import config_dict

# Deep SVDD-only fields (ssadjax/hparams/deepsvdd.py) at the values that follow Deep SAD's
# recipe; Deep SAD's factory reads them too.
SVDD_FIELDS = dict(architecture="mlp", adam_eps=1e-8, activity_l2=0.0, standardize=False,
                   center_from_other_init=False)


def section() -> ml_collections.ConfigDict:
  """`config.deepsad` with every default."""
  s = ml_collections.ConfigDict()
  s.hidden_dims = (100, 20)    # ADBench MLP d-100-20-10, no bias
  s.rep_dim = 10
  s.batch_size = 128
  s.num_epochs = 50
  s.learning_rate = 1e-3       # nominal (ADBench); see lr_milestone_at_zero
  s.lr_milestone_at_zero = True  # ADBench's MultiStepLR([0]) bug: effective lr x0.1
  s.weight_decay = 1e-6        # L2 added to the gradient (PyTorch Adam)
  s.eta = 1.0
  s.eps = 1e-6
  s.center_eps = 0.1           # |c_k| < 0.1 -> +-0.1
  # Rows the initial centre averages: all | loader (ADBench's init_center_c reads its
  # shuffled drop_last loader: floor(n / batch_size) * batch_size random rows).
  s.center_rows = "all"
  s.pretrain_epochs = 0        # AE pretraining epochs (ADBench: 100, but discarded)
  s.pretrain_transfer = True   # False: train the AE and discard it, as the reference
  s.pretrain_learning_rate = 1e-3
  s.encoder = "auto"           # auto (LeNet for image datasets, else MLP) | mlp | lenet_mnist | lenet_cifar
  s.lr_milestones = ()         # epochs after which the lr is x0.1 (MultiStepLR)
  s.pretrain_lr_milestones = ()
  s.pretrain_batch_size = config_dict.placeholder(int)  # None = batch_size
  s.pretrain_weight_decay = config_dict.placeholder(float)  # None = weight_decay
  return s


def resolve(cfg) -> dict:
  """Deep SAD's hyper-parameters: `cfg.deepsad` (no presets), with `SVDD_FIELDS`."""
  from ssadjax.hparams import deepsvdd
  if cfg.get("preset", "") in deepsvdd.PRESETS:
    raise ValueError(f"preset={cfg.preset!r} is a Deep SVDD recipe; use method=deepsvdd "
                     "or preset=adbench for deepsad")
  return {**dict(cfg.deepsad), **SVDD_FIELDS}


def anoonly_changes(hp: dict) -> dict:
  """AnoOnly changes nothing in Deep SAD's hyper-parameters: its MLP already has the
  BatchNorm AnoOnly needs, and eta weighs the labelled terms AnoOnly keeps."""
  del hp
  return {}
