"""ssadjax: semi-supervised anomaly detection as pure JAX/Flax functions.

Labels: `labels` are ground truth (1 = anomaly); `semi_labels` are what training sees
(1 = labelled anomaly, 0 = unlabelled). Scores: higher = more anomalous, always.

`import ssadjax` loads nothing heavy: the detectors (`ssadjax.DeepSAD`, ...) are imported
from ssadjax/estimators.py on first use (PEP 562), and scikit-learn, orbax, matplotlib and
TFDS only by the functions that need them.
"""

__version__ = "0.1.0"

__all__ = ["BGAD", "CLAD", "FEAWAD", "FUNAD", "DeepSAD", "DeepSVDD", "DevNet", "PReNet"]


def __getattr__(name):
  if name in __all__:
    from ssadjax import estimators
    return getattr(estimators, name)
  raise AttributeError(f"module 'ssadjax' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + __all__)
