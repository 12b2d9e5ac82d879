"""Method registry: name -> factory `(cfg, input_dim, num_train, insert_norm=False)`."""

import functools

from ssadjax.methods import anoonly, deepsad
from ssadjax.methods import devnet, feawad
from ssadjax.methods import prenet
from ssadjax.methods import funad
from ssadjax.methods import bgad
from ssadjax.methods import clad
from ssadjax.methods.base import Method, Sampler, TrainData, make_train_data

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

# norm.placement choices of methods that do not honour all of them (ssadjax/norm.py):
# FUN-AD has no norm at all; BGAD's only norm is AnoOnly's flow layer at the input.
PLACEMENTS = {"funad": ("reference", "none"), "bgad": ("reference",)}

# Methods that cannot use labelled anomalies, hence have no AnoOnly variant.
UNSUPERVISED = ("deepsvdd",)

# Methods that may use labels but have no AnoOnly variant, with the reason. (Not in
# UNSUPERVISED: that would hide their labels too.)
NO_ANOONLY = {
    "funad": ("funad is fully unsupervised and has no AnoOnly variant: AnoOnly keeps only "
              "the loss terms of labelled anomalies and relies on BatchNorm statistics of "
              "the unlabelled rows, while FUN-AD has no BatchNorm and (at la = 0) no "
              "labelled anomaly; run it with anomaly_only=False"),
    "clad": ("clad has no AnoOnly variant: AnoOnly keeps only the labelled-anomaly loss "
             "terms, which would train CLAD's confidence classifier on anomalies alone and "
             "invert its score; CLAD is unsupervised (labelled anomalies are excluded from "
             "its training). Run it with anomaly_only=False"),
}


def check_hparams(cfg, section_name: str) -> None:
  """Clear errors for hyper-parameters that cannot work, before anything is compiled."""
  if section_name not in cfg:
    return
  for key, value in cfg[section_name].items():
    if value is None or isinstance(value, (bool, str, tuple, list)):
      continue
    if "learning_rate" in key and value <= 0:
      raise ValueError(f"{section_name}.{key}={value} must be > 0")
    if (key in ("batch_size", "steps_per_epoch", "pretrain_batch_size")
        or key.endswith("num_epochs")) and value < 1:
      raise ValueError(f"{section_name}.{key}={value} must be >= 1")


def build(cfg, input_dim: int, num_train: int) -> Method:
  """The method named by `cfg.method`, transformed by AnoOnly if `cfg.anomaly_only`."""
  if cfg.method not in FACTORIES:
    raise ValueError(f"method={cfg.method!r}; available: {sorted(FACTORIES)}")
  factory = FACTORIES[cfg.method]
  check_hparams(cfg, "deepsad" if cfg.method == "deepsvdd" else cfg.method)
  placement = cfg.norm.get("placement", "reference") or "reference"
  if placement not in PLACEMENTS.get(cfg.method, (placement,)):
    raise ValueError(f"norm.placement={placement!r} is not available for {cfg.method}; "
                     f"expected one of {PLACEMENTS[cfg.method]}")
  if cfg.anomaly_only:
    if cfg.method in UNSUPERVISED:
      raise ValueError(f"{cfg.method} trains without labels; anomaly_only=True needs a "
                       "method that uses labelled anomalies")
    if cfg.method in NO_ANOONLY:
      raise ValueError(NO_ANOONLY[cfg.method])
    factory = anoonly.anomaly_only(factory, empty_batch=cfg.anoonly.empty_batch)
  return factory(cfg, input_dim, num_train)


__all__ = ["FACTORIES", "Method", "Sampler", "TrainData", "build", "make_train_data"]
