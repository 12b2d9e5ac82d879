"""Method registry: name -> how its hyper-parameters are resolved from a config, its
factory `(hp, policy, input_dim, num_train, *, image_shape=(), insert_norm=False)`, and its
declared AnoOnly changes.

A factory sees its own hyper-parameters (a dict) and the norm policy, never the whole
config: `build` resolves them and applies the AnoOnly transformation.
"""

import dataclasses
from typing import Callable

from ssadjax import data as data_lib
from ssadjax import hparams, runconfig
from ssadjax.methods import anoonly
from ssadjax.methods import bgad, clad, deepsad, devnet, feawad, funad, prenet
from ssadjax.methods.base import Method, Sampler
from ssadjax.methods.train_data import TrainData, make_train_data
from ssadjax import norm
from ssadjax.norm import NormPolicy


@dataclasses.dataclass(frozen=True)
class Entry:
  """A method as the registry knows it.

  Attributes:
    make: the factory `(hp, policy, input_dim, num_train, *, image_shape=(),
      insert_norm=False) -> Method`.
    hparams: `cfg -> dict`: the method's config section resolved against its presets.
    anoonly_changes: `hp -> {name: value}`, what AnoOnly changes in the method's own
      hyper-parameters (declared next to its presets); None: no AnoOnly variant.
  """
  make: Callable
  hparams: Callable
  anoonly_changes: Callable | None


def _entry(make: Callable, name: str) -> Entry:
  module = hparams.MODULES[name]
  return Entry(make, module.resolve, module.anoonly_changes)


# Hyper-parameters, presets and AnoOnly declarations: ssadjax/hparams/<name>.py.
REGISTRY = {
    "deepsad": _entry(deepsad.make_method, "deepsad"),
    # Deep SVDD is Deep SAD without labels (the engine also hides them from the data).
    "deepsvdd": _entry(deepsad.make_deepsvdd, "deepsvdd"),
    "devnet": _entry(devnet.make_method, "devnet"),
    "feawad": _entry(feawad.make_method, "feawad"),
    "prenet": _entry(prenet.make_method, "prenet"),
    "funad": _entry(funad.make_method, "funad"),
    "bgad": _entry(bgad.make_method, "bgad"),
    "clad": _entry(clad.make_method, "clad"),
}
FACTORIES = {name: entry.make for name, entry in REGISTRY.items()}

# The rules on names, hyper-parameters, norm placements and AnoOnly live in
# ssadjax/runconfig.py (numpy only), so the command line checks them before importing JAX;
# the methods' own declarations must agree with them.
UNSUPERVISED = runconfig.UNSUPERVISED
NO_ANOONLY = runconfig.NO_ANOONLY
PLACEMENTS = runconfig.PLACEMENTS
check_hparams = runconfig.check_hparams
assert sorted(REGISTRY) == sorted(runconfig.METHODS), "update runconfig.METHODS"
assert ({name for name, entry in REGISTRY.items() if entry.anoonly_changes is None}
        == set(UNSUPERVISED) | set(NO_ANOONLY)), "update runconfig.NO_ANOONLY"


def build(cfg, input_dim: int, num_train: int) -> Method:
  """The method named by `cfg.method`, transformed by AnoOnly if `cfg.anomaly_only`.

  A BatchNorm momentum that is set (`norm.momentum`) is run data: the models are built
  with their reference momenta and the run carries the value as the run hyper-parameter
  'norm.momentum', which the engine applies while training (`norm.run_momentum`), so a
  sweep over momenta is one program. Unset, each layer keeps its reference momentum in
  the program, exactly as before.
  """
  runconfig.check_method(cfg)
  entry = REGISTRY[cfg.method]
  factory = entry.make
  if cfg.anomaly_only:
    factory = anoonly.anomaly_only(factory, entry.anoonly_changes,
                                   empty_batch=cfg.anoonly.empty_batch)
  policy = NormPolicy.from_config(cfg.norm)
  run_momentum = policy.kind == "batch" and policy.momentum is not None
  method = factory(entry.hparams(cfg),
                   dataclasses.replace(policy, momentum=None) if run_momentum else policy,
                   input_dim, num_train,
                   image_shape=data_lib.feature_shape(cfg.get("dataset", "") or ""))
  if not run_momentum:
    return method
  return dataclasses.replace(method, run_hparams={**method.run_hparams,
                                                  norm.RUN_HPARAM: policy.momentum})


__all__ = ["FACTORIES", "REGISTRY", "Entry", "Method", "Sampler", "TrainData", "build",
           "make_train_data"]
