"""The BatchNorm policy: every choice about normalisation statistics, as configuration.

AnoOnly's claim is that unlabelled rows supervise the model only through BatchNorm
statistics. To ablate it, these choices are explicit rather than buried in a module:

* `kind`: 'batch' (BatchNorm), 'layer' (LayerNorm: no cross-row statistics, a control)
  or 'none' (identity: no normalisation at all).
* `stats_rows`: which rows of a training batch feed the batch mean/variance:
  'all' (the reference behaviour), 'unlabelled' or 'labelled_anomalies'. Every row is
  still normalised; only the statistics change (Linen's BatchNorm `mask`).
* `eval_stats`: 'running' (the reference: running averages, eval mode) or 'batch'
  (statistics of the scored batch itself, i.e. test-batch statistics).
* `momentum`: Flax momentum = 1 - PyTorch momentum; None keeps the model's reference
  value (0.9 for the PyTorch references, 0.99 for Keras ones).
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

KINDS = ("batch", "layer", "none")
STATS_ROWS = ("all", "unlabelled", "labelled_anomalies")
EVAL_STATS = ("running", "batch")


@dataclasses.dataclass(frozen=True)
class NormPolicy:
  kind: str = "batch"
  stats_rows: str = "all"
  eval_stats: str = "running"
  momentum: float | None = None

  def __post_init__(self):
    for name, allowed in (("kind", KINDS), ("stats_rows", STATS_ROWS),
                          ("eval_stats", EVAL_STATS)):
      value = getattr(self, name)
      if value not in allowed:
        raise ValueError(f"norm.{name}={value!r}; expected one of {allowed}")
    if self.momentum is not None and not 0.0 <= self.momentum < 1.0:
      raise ValueError(f"norm.momentum={self.momentum} must be in [0, 1)")

  @classmethod
  def from_config(cls, cfg: Any) -> "NormPolicy":
    return cls(kind=cfg.kind, stats_rows=cfg.stats_rows, eval_stats=cfg.eval_stats,
               momentum=cfg.momentum)


def stats_mask(policy: NormPolicy, semi_labels: jax.Array) -> jax.Array | None:
  """`[batch, 1]` mask of the rows that feed the batch statistics, or None for all.

  If a batch has no row of the selected kind (e.g. no labelled anomaly), all rows are
  used for that batch instead of producing a NaN mean.
  """
  if policy.stats_rows == "all" or policy.kind != "batch":
    return None
  if policy.stats_rows == "unlabelled":
    mask = semi_labels == 0
  else:
    mask = semi_labels == 1
  mask = jnp.where(jnp.any(mask), mask, jnp.ones_like(mask))
  return mask[:, None]


class Norm(nn.Module):
  """BatchNorm / LayerNorm / identity chosen by the policy.

  `epsilon`, `affine` and `momentum` are the reference architecture's values; the
  policy's momentum overrides the latter when set.
  """
  policy: NormPolicy
  epsilon: float = 1e-5
  affine: bool = True
  momentum: float = 0.9

  @nn.compact
  def __call__(self, x, *, train: bool, mask=None):
    if self.policy.kind == "none":
      return x
    if self.policy.kind == "layer":
      return nn.LayerNorm(epsilon=self.epsilon, use_bias=self.affine,
                          use_scale=self.affine)(x)
    momentum = self.momentum if self.policy.momentum is None else self.policy.momentum
    return nn.BatchNorm(use_running_average=not train, momentum=momentum,
                        epsilon=self.epsilon, use_bias=self.affine,
                        use_scale=self.affine)(x, mask=mask)
