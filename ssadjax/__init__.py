"""ssadjax: semi-supervised anomaly detection as pure JAX/Flax functions.

Labels: `labels` are ground truth (1 = anomaly); `semi_labels` are what training sees
(1 = labelled anomaly, 0 = unlabelled). Scores: higher = more anomalous, always.
"""

__version__ = "0.1.0"

from ssadjax.estimators import (  # noqa: E402
    BGAD, CLAD, FEAWAD, FUNAD, DeepSAD, DeepSVDD, DevNet, PReNet)

__all__ = ["BGAD", "CLAD", "FEAWAD", "FUNAD", "DeepSAD", "DeepSVDD", "DevNet", "PReNet"]
