"""The BatchNorm policy: every choice about normalisation statistics, as configuration.

AnoOnly's claim is that unlabelled rows supervise the model only through BatchNorm
statistics. To ablate it, these choices are explicit rather than buried in a module:

* `kind`: 'batch' (BatchNorm), 'layer' (LayerNorm: no cross-row statistics, a control)
  or 'none' (identity: no normalisation at all).
* `stats_rows`: which rows of a training batch feed the batch mean/variance:
  'all' (the reference behaviour), 'unlabelled' or 'labelled_anomalies'. Every row is
  still normalised; only the statistics change (Linen's BatchNorm `mask`).
* `eval_stats`: 'running' (the reference: running averages, eval mode), 'batch'
  (statistics of the scored batch itself, i.e. test-batch statistics) or 'recomputed'
  (after training, one full-batch train-mode pass over the unlabelled training rows with
  momentum 0 replaces the running statistics by the exact statistics of that set; the
  scoring itself is then an eval-mode pass: `engine.recompute_batch_stats`).
* `momentum`: Flax momentum = 1 - PyTorch momentum; None keeps the model's reference
  value (0.9 for the PyTorch references, 0.99 for Keras ones). In the engine it is run
  data, not part of the program (`run_momentum`): runs of one program may differ in it.
* `sync`: True (default) computes batch statistics over the whole global batch, however
  many devices it is sharded over. False gives per-device statistics: the batch is split
  into `groups` equal, contiguous row groups (the shards of the 'data' axis, so each
  group lives on one device and needs no collective) and each group is normalised with
  its own statistics; the running statistics move towards the mean of the group
  statistics (what a pmean of per-device statistics gives). This equals a shard_map with
  an unsynced BatchNorm, composes with vmap over seeds and lax.scan, and also lets the
  per-device ablation run on one device.
* `placement`: which layers carry a norm (`norm_placed`). 'reference' (default) is each
  reference architecture as it is: Deep SAD's norm after every hidden layer, and the
  norm that AnoOnly inserts (`insert_norm`: before DevNet's and FEAWAD's score layer,
  after PReNet's feature ReLU; FEAWAD's anoonly_paper baseline has it too). The others
  apply to the baseline and the AnoOnly variant alike: 'last_hidden' (one norm, after
  the last hidden layer, right before the linear head), 'all_hidden' (after every
  hidden layer of the scoring network) and 'none' (no norm layer at all).
* `affine`: None keeps each reference's choice (Deep SAD: off; the inserted AnoOnly
  norms: on); True / False force a learnable scale and shift on or off.
"""

import contextlib
import contextvars
import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

KINDS = ("batch", "layer", "none")
STATS_ROWS = ("all", "unlabelled", "labelled_anomalies")
EVAL_STATS = ("running", "batch", "recomputed")
PLACEMENTS = ("reference", "last_hidden", "all_hidden", "none")


@dataclasses.dataclass(frozen=True)
class NormPolicy:
  kind: str = "batch"
  stats_rows: str = "all"
  eval_stats: str = "running"
  momentum: float | None = None
  sync: bool = True
  groups: int = 1
  placement: str = "reference"
  affine: bool | None = None

  def __post_init__(self):
    for name, allowed in (("kind", KINDS), ("stats_rows", STATS_ROWS),
                          ("eval_stats", EVAL_STATS), ("placement", PLACEMENTS)):
      value = getattr(self, name)
      if value not in allowed:
        raise ValueError(f"norm.{name}={value!r}; expected one of {allowed}")
    if self.momentum is not None and not 0.0 <= self.momentum < 1.0:
      raise ValueError(f"norm.momentum={self.momentum} must be in [0, 1)")
    if self.groups < 1:
      raise ValueError(f"norm.stat_groups={self.groups} must be >= 1")

  @classmethod
  def from_config(cls, cfg: Any) -> "NormPolicy":
    """`cfg.stat_groups` None means the size of the 'data' mesh axis, which the
    experiment runner fills in before building a method (1 outside of it)."""
    sync = cfg.get("sync", True)
    groups = cfg.get("stat_groups", None) or 1
    return cls(kind=cfg.kind, stats_rows=cfg.stats_rows, eval_stats=cfg.eval_stats,
               momentum=cfg.momentum, sync=sync, groups=1 if sync else groups,
               placement=cfg.get("placement", "reference") or "reference",
               affine=cfg.get("affine", None))


def norm_placed(policy: NormPolicy, layer: int, num_layers: int, reference: bool) -> bool:
  """Whether hidden layer `layer` (0-based, of `num_layers`) carries a norm under
  `policy.placement`; `reference` is whether the reference architecture (with AnoOnly's
  insertion when requested) has one there."""
  if policy.placement == "reference":
    return reference
  if policy.placement == "all_hidden":
    return True
  if policy.placement == "last_hidden":
    return layer == num_layers - 1
  return False


def norm_affine(policy: NormPolicy, reference: bool) -> bool:
  """The reference's affine choice unless the policy forces one."""
  return reference if policy.affine is None else bool(policy.affine)


def placed_norm(x, policy: NormPolicy, layer: int, num_layers: int, *, reference: bool,
                affine: bool, epsilon: float, momentum: float, train: bool, mask=None,
                name: str | None = None):
  """`x` through a `Norm` where `policy.placement` puts one after hidden layer `layer` (of
  `num_layers`; `reference`: whether the reference architecture has one there), else `x`
  unchanged. `affine` is the reference's choice (`norm_affine`). Called inside a Linen
  `compact` method, the norm is a child of that module (named `name`, or numbered)."""
  if not norm_placed(policy, layer, num_layers, reference):
    return x
  return Norm(policy, epsilon=epsilon, affine=norm_affine(policy, affine), momentum=momentum,
              name=name)(x, train=train, mask=mask)


def for_recompute(policy: NormPolicy) -> NormPolicy:
  """The policy of the statistics-recomputation pass (eval_stats='recomputed'): momentum
  0 (the running statistics become the pass's statistics), every row, one group (exact
  global statistics, whatever the training-time grouping)."""
  return dataclasses.replace(policy, momentum=0.0, stats_rows="all", sync=True, groups=1)


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


_RUN_MOMENTUM = contextvars.ContextVar("ssadjax_run_momentum", default=None)
# The run hyper-parameter that carries a set `norm.momentum` (`methods.build`; a config
# path, not a field of the method's section), read by the engine for `run_momentum`.
RUN_HPARAM = "norm.momentum"


@contextlib.contextmanager
def run_momentum(momentum):
  """While tracing the block, every train-mode BatchNorm of a `Norm` moves its running
  statistics with `momentum` (a float32 scalar, traced: the run's `norm.momentum`) instead
  of its static one (unless the layer's policy fixes a momentum: `methods.build` leaves it
  unset when the run carries one). None: no effect.

  The engine opens it around each training step and stage (ssadjax/program/train.py), so
  that a momentum sweep is one compiled program whose runs carry their own value (the
  static `NormPolicy.momentum` would make each value a program of its own). The value is
  explicit run data (`extras['hparams']['norm.momentum']`); the block only routes it to the
  layers without threading it through every model's call signature. The statistics it
  blends are the batch's mean and (two-pass) variance, `group_moments`: equal to the
  layer's own to float rounding.
  """
  token = _RUN_MOMENTUM.set(momentum)
  try:
    yield
  finally:
    _RUN_MOMENTUM.reset(token)


class Norm(nn.Module):
  """BatchNorm / LayerNorm / identity chosen by the policy.

  `epsilon`, `affine` and `momentum` are the reference architecture's values. The
  policy's momentum overrides the latter when set; otherwise, while training inside the
  engine, the run's momentum does (`run_momentum`).
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
    if self.policy.groups > 1:
      batch_norm = GroupedBatchNorm(groups=self.policy.groups, use_running_average=not train,
                                    momentum=momentum, epsilon=self.epsilon,
                                    affine=self.affine, name="BatchNorm_0")
    else:
      batch_norm = nn.BatchNorm(use_running_average=not train, momentum=momentum,
                                epsilon=self.epsilon, use_bias=self.affine,
                                use_scale=self.affine, name="BatchNorm_0")
    run_value = _RUN_MOMENTUM.get()
    # A momentum the policy fixes wins: the statistics-recomputation model (momentum 0,
    # `for_recompute`) stays exact wherever it is applied.
    if (run_value is None or self.policy.momentum is not None or not train
        or self.is_initializing() or not self.is_mutable_collection("batch_stats")):
      return batch_norm(x, mask=mask)
    # The statistics before this call (arrays: the live dict changes with the call).
    before = dict(self.variables["batch_stats"]["BatchNorm_0"])
    y = batch_norm(x, mask=mask)
    # The layer's own update (static momentum) is replaced, so XLA drops it.
    group_mean, group_var = group_moments(x, self.policy.groups, mask)
    for name, value in (("mean", group_mean), ("var", group_var)):
      batch_norm.put_variable("batch_stats", name, run_value * before[name]
                              + (1 - run_value) * jnp.mean(value, axis=0))
    return y


def group_moments(x, groups: int, mask=None):
  """Per-group batch mean and variance `[groups, features]` of `x` (`[batch, ...,
  features]`) over `groups` equal, contiguous row groups, counting the rows `mask`
  selects (a group without any falls back to all of its rows)."""
  _, group_mean, group_var = _grouped_moments(x, groups, mask)
  return group_mean.reshape(groups, -1), group_var.reshape(groups, -1)


def _grouped_moments(x, groups: int, mask=None):
  """(x as `[groups, rows, ..., features]`, its per-group mean and variance with the
  reduced axes kept)."""
  batch = x.shape[0]
  if batch % groups:
    raise ValueError(f"per-device BatchNorm: batch of {batch} rows does not split into "
                     f"{groups} equal groups (norm.stat_groups / parallel.data)")
  grouped = x.reshape((groups, batch // groups) + x.shape[1:])
  axes = tuple(range(1, grouped.ndim - 1))
  where = None
  if mask is not None:
    where = jnp.broadcast_to(mask, x.shape).reshape(grouped.shape)
    # A group without any selected row falls back to all of its rows.
    has_rows = jnp.any(where, axis=tuple(range(1, grouped.ndim)), keepdims=True)
    where = jnp.where(has_rows, where, True)
  group_mean = jnp.mean(grouped, axis=axes, keepdims=True, where=where)
  group_var = jnp.mean(jnp.square(grouped - group_mean), axis=axes, keepdims=True,
                       where=where)
  return grouped, group_mean, group_var


class GroupedBatchNorm(nn.Module):
  """BatchNorm with separate statistics per contiguous group of rows (per-device BN).

  Variables have Linen BatchNorm's names and shapes ('mean', 'var', 'scale', 'bias'),
  so checkpoints move freely between synced and per-device runs.
  """
  groups: int
  use_running_average: bool
  momentum: float = 0.9
  epsilon: float = 1e-5
  affine: bool = True

  @nn.compact
  def __call__(self, x, *, mask=None):
    features = x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros(features, jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones(features, jnp.float32))
    if self.use_running_average:
      y = (x - ra_mean.value) * jax.lax.rsqrt(ra_var.value + self.epsilon)
    else:
      grouped, group_mean, group_var = _grouped_moments(x, self.groups, mask)
      axes = tuple(range(1, grouped.ndim - 1))
      if not self.is_initializing():
        ra_mean.value = (self.momentum * ra_mean.value
                         + (1 - self.momentum) * jnp.mean(group_mean, axis=axes + (0,)))
        ra_var.value = (self.momentum * ra_var.value
                        + (1 - self.momentum) * jnp.mean(group_var, axis=axes + (0,)))
      y = (grouped - group_mean) * jax.lax.rsqrt(group_var + self.epsilon)
      y = y.reshape(x.shape)
    if self.affine:
      y = y * self.param("scale", nn.initializers.ones, (features,), jnp.float32)
      y = y + self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
    return y
