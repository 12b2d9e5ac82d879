"""Method registry: name -> factory `(cfg, input_dim, num_train, insert_norm=False)`."""

import functools

from ssadjax.methods import anoonly, deepsad
from ssadjax.methods import devnet, feawad
from ssadjax.methods import prenet
from ssadjax.methods import funad
from ssadjax.methods import bgad
from ssadjax.methods import clad
from ssadjax.methods.base import Method, Sampler, TrainData, make_train_data
from ssadjax import runconfig

FACTORIES = {
    "deepsad": deepsad.make_method,
    # Deep SVDD is Deep SAD without labels (the engine also hides them from the data).
    "deepsvdd": functools.partial(deepsad.make_method, use_labels=False),
    "devnet": devnet.make_method,
    "feawad": feawad.make_method,
    "prenet": prenet.make_method,
    "funad": funad.make_method,  # fully unsupervised; refuses AnoOnly itself
    "bgad": bgad.make_method,
    "clad": clad.make_method,  # unsupervised; refuses AnoOnly itself, excludes labelled rows
}

# The rules on names, hyper-parameters, norm placements and AnoOnly live in
# ssadjax/runconfig.py (numpy only), so the command line checks them before importing JAX.
UNSUPERVISED = runconfig.UNSUPERVISED
NO_ANOONLY = runconfig.NO_ANOONLY
PLACEMENTS = runconfig.PLACEMENTS
check_hparams = runconfig.check_hparams
assert sorted(FACTORIES) == sorted(runconfig.METHODS), "update runconfig.METHODS"


def build(cfg, input_dim: int, num_train: int) -> Method:
  """The method named by `cfg.method`, transformed by AnoOnly if `cfg.anomaly_only`."""
  runconfig.check_method(cfg)
  factory = FACTORIES[cfg.method]
  if cfg.anomaly_only:
    factory = anoonly.anomaly_only(factory, empty_batch=cfg.anoonly.empty_batch)
  return factory(cfg, input_dim, num_train)


__all__ = ["FACTORIES", "Method", "Sampler", "TrainData", "build", "make_train_data"]
