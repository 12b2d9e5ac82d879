"""BGAD's normalising flow (Yao et al., CVPR 2023) and its patch pipeline.

The flow is a stack of FrEIA `AllInOneBlock`-style blocks, each, for e in R^C:

1. affine coupling: x1 = e[:ceil(C/2)], x2 = e[ceil(C/2):];
   a = 0.1 * subnet([x1; p]) = (s, t) with subnet Linear(k -> 2k) -> ReLU -> Linear(-> 2 floor(C/2)),
   k = ceil(C/2) + cond_dim; x2 <- x2 * exp(alpha tanh(s)) + t;  log-det += sum alpha tanh(s)
   (soft clamp alpha = 1.9);
2. global affine ("ActNorm"): x <- x * g + o, g = 0.1 softplus_{beta=0.5}(gamma), gamma
   initialised to 2 ln(e^5 - 1) so that g = 1, o = 0;  log-det += sum ln g;
3. a fixed random rotation: x <- x W^T with W drawn from SO(C) (Haar) once at init.

The rotations are NOT parameters: they are drawn by `random_rotations` (the method keeps
them in its checkpointed `extras`) and passed to the flow at every call, so the
optimiser never sees them and checkpoints keep them.

`insert_norm=True` (AnoOnly's request) puts an affine-free BatchNorm (`ssadjax.norm.Norm`)
in front of the first block as a flow layer: y = (x - m) / sqrt(v + eps), with its
log-determinant -1/2 sum log(v + eps) added, so the model stays a normalised density
(v = the batch variance of the rows selected by the norm mask in training, the running
variance in evaluation).

Patch features (the image pipeline of the reference) go through `PatchFlows`: a
feature extractor maps images [n, h, w, c] to a list of per-location feature maps, each
level gets its own flow conditioned on a 2-D sinusoidal positional encoding
(`positional_encoding_2d`). See `FeatureExtractor` for the interface a pretrained
backbone must satisfy.
"""

import math
from typing import Protocol, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssadjax import losses
from ssadjax.models.layers import torch_linear_init
from ssadjax.norm import Norm, NormPolicy

# PyTorch nn.Linear: W and b ~ U(+-1/sqrt(fan_in)).


def global_scale_init_value(init_scale: float = 1.0) -> float:
  """gamma_0 with 0.1 * softplus_{beta=0.5}(gamma_0) = init_scale (FrEIA 'SOFTPLUS')."""
  return 2.0 * math.log(math.expm1(5.0 * init_scale))


def soft_global_scale(gamma: jax.Array) -> jax.Array:
  """g = 0.1 * softplus_{beta=0.5}(gamma) = 0.2 * log(1 + exp(gamma / 2)) > 0."""
  return 0.2 * jax.nn.softplus(0.5 * gamma)


def random_rotation(key: jax.Array, dim: int) -> jax.Array:
  """A Haar-distributed rotation in SO(dim) (QR of a Gaussian with the sign fix of
  Mezzadri 2007, then one column negated if the determinant is -1)."""
  q, r = jnp.linalg.qr(jax.random.normal(key, (dim, dim), jnp.float32))
  q = q * jnp.sign(jnp.diagonal(r))[None, :]
  sign, _ = jnp.linalg.slogdet(q)
  return q.at[:, 0].multiply(sign)


def random_rotations(key: jax.Array, num_blocks: int, dim: int) -> jax.Array:
  """`[num_blocks, dim, dim]` fixed soft permutations, one per block."""
  return jax.vmap(lambda k: random_rotation(k, dim))(jax.random.split(key, num_blocks))


class TorchDense(nn.Module):
  """Dense with PyTorch nn.Linear's default initialisation (kernel and bias)."""
  features: int

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1]
    bound = 1.0 / math.sqrt(fan_in)
    kernel = self.param("kernel", torch_linear_init, (fan_in, self.features), jnp.float32)
    bias = self.param("bias", lambda k, s, d: jax.random.uniform(k, s, d, -bound, bound),
                      (self.features,), jnp.float32)
    return x @ kernel + bias


class CouplingBlock(nn.Module):
  """One AllInOneBlock: affine coupling, global affine, fixed rotation.

  `__call__(x [B, C], rotation [C, C], cond [B, P] | None) -> (y [B, C], log_det [B])`;
  `inverse(y, rotation, cond) -> x` (used by the tests; training never needs it).
  The subnet's hidden width is `subnet_ratio` x its input width (2 in the reference).
  """
  dim: int
  clamp_alpha: float = 1.9
  subnet_ratio: float = 2.0
  cond_dim: int = 0

  def setup(self):
    if self.dim < 2:
      raise ValueError(f"a coupling flow needs at least 2 feature dimensions, got {self.dim}")
    d1, d2 = self.dim - self.dim // 2, self.dim // 2
    hidden = int(round(self.subnet_ratio * (d1 + self.cond_dim)))
    self.subnet_0 = TorchDense(hidden)
    self.subnet_1 = TorchDense(2 * d2)
    self.global_scale = self.param(
        "global_scale", nn.initializers.constant(global_scale_init_value()),
        (self.dim,), jnp.float32)
    self.global_offset = self.param("global_offset", nn.initializers.zeros, (self.dim,),
                                    jnp.float32)

  def _coupling(self, x1, cond):
    """(s, t): log-scale alpha tanh(a_s) and shift a_t, a = 0.1 subnet([x1; p])."""
    x1c = x1 if cond is None else jnp.concatenate([x1, cond], axis=-1)
    a = 0.1 * self.subnet_1(nn.relu(self.subnet_0(x1c)))
    d2 = self.dim // 2
    return self.clamp_alpha * jnp.tanh(a[..., :d2]), a[..., d2:]

  def __call__(self, x, rotation, cond=None):
    if x.shape[-1] != self.dim:
      raise ValueError(f"block of dim {self.dim} got features of dim {x.shape[-1]}")
    d1 = self.dim - self.dim // 2
    x1, x2 = x[..., :d1], x[..., d1:]
    s, t = self._coupling(x1, cond)
    g = soft_global_scale(self.global_scale)
    y = jnp.concatenate([x1, x2 * jnp.exp(s) + t], axis=-1) * g + self.global_offset
    log_det = jnp.sum(s, axis=-1) + jnp.sum(jnp.log(g))
    return y @ rotation.T, log_det

  def inverse(self, y, rotation, cond=None):
    d1 = self.dim - self.dim // 2
    u = (y @ rotation - self.global_offset) / soft_global_scale(self.global_scale)
    x1, x2 = u[..., :d1], u[..., d1:]
    s, t = self._coupling(x1, cond)
    return jnp.concatenate([x1, (x2 - t) * jnp.exp(-s)], axis=-1)


class FlowNorm(nn.Module):
  """An affine-free BatchNorm used as a flow layer: returns (y, log_det [B]).

  Only BatchNorm with one statistics group is a bijection whose Jacobian is known here;
  LayerNorm is not invertible (it removes each row's mean and scale) and per-device
  groups would give rows of one batch different Jacobians, so both are refused.
  """
  policy: NormPolicy
  epsilon: float = 1e-5
  momentum: float = 0.9

  @nn.compact
  def __call__(self, x, *, train: bool, mask=None):
    if self.policy.kind == "none":
      return x, jnp.zeros(x.shape[:-1], x.dtype)
    if self.policy.kind != "batch" or self.policy.groups != 1:
      raise ValueError("bgad: the flow's inserted norm must be a synced BatchNorm "
                       f"(norm.kind='batch', norm.sync=True); got {self.policy}")
    norm = Norm(self.policy, epsilon=self.epsilon, affine=False, momentum=self.momentum,
                name="norm")
    y = norm(x, train=train, mask=mask)
    if train:
      where = None if mask is None else jnp.broadcast_to(mask, x.shape)
      mean = jnp.mean(x, axis=0, where=where)
      var = jnp.mean(jnp.square(x - mean), axis=0, where=where)
    else:
      var = norm.variables["batch_stats"]["BatchNorm_0"]["var"]
    log_det = -0.5 * jnp.sum(jnp.log(var + self.epsilon))
    return y, jnp.broadcast_to(log_det, x.shape[:-1])


class Flow(nn.Module):
  """`num_blocks` coupling blocks (optionally after a BatchNorm flow layer).

  `__call__(x [B, C], rotations [K, C, C], cond [B, P] | None, *, train, norm_mask)
  -> (z [B, C], log_det [B])`.
  """
  dim: int
  num_blocks: int = 8
  clamp_alpha: float = 1.9
  subnet_ratio: float = 2.0
  cond_dim: int = 0
  insert_norm: bool = False
  norm: NormPolicy = NormPolicy()
  norm_epsilon: float = 1e-5
  norm_momentum: float = 0.9

  def setup(self):
    self.blocks = [CouplingBlock(self.dim, self.clamp_alpha, self.subnet_ratio,
                                 self.cond_dim, name=f"block_{i}")
                   for i in range(self.num_blocks)]
    if self.insert_norm:
      self.flow_norm = FlowNorm(self.norm, self.norm_epsilon, self.norm_momentum)

  def __call__(self, x, rotations, cond=None, *, train: bool = False, norm_mask=None):
    if rotations.shape[0] != self.num_blocks:
      raise ValueError(f"{rotations.shape[0]} rotations for {self.num_blocks} blocks")
    log_det = jnp.zeros(x.shape[:-1], x.dtype)
    if self.insert_norm:
      x, log_det = self.flow_norm(x, train=train, mask=norm_mask)
    for block, rotation in zip(self.blocks, rotations):
      x, ld = block(x, rotation, cond)
      log_det = log_det + ld
    return x, log_det

  def inverse(self, z, rotations, cond=None):
    """x from z (without the inserted norm; for tests of the coupling stack)."""
    for block, rotation in zip(reversed(self.blocks), rotations[::-1]):
      z = block.inverse(z, rotation, cond)
    return z


def positional_encoding_2d(dim: int, height: int, width: int) -> jax.Array:
  """`[height, width, dim]` sinusoidal encoding: the first dim/2 channels encode the
  column, the last dim/2 the row, as (sin, cos) pairs with frequencies
  10^(-4 * 2k / (dim/2)) (BGAD / CFlow-AD's `positionalencoding2d`)."""
  if dim % 4:
    raise ValueError(f"positional encoding dim={dim} must be a multiple of 4")
  half = dim // 2
  freq = jnp.exp(jnp.arange(0, half, 2, dtype=jnp.float32) * -(math.log(1e4) / half))
  cols = jnp.arange(width, dtype=jnp.float32)[:, None] * freq[None, :]   # [w, half/2]
  rows = jnp.arange(height, dtype=jnp.float32)[:, None] * freq[None, :]  # [h, half/2]
  col_enc = jnp.stack([jnp.sin(cols), jnp.cos(cols)], axis=-1).reshape(width, half)
  row_enc = jnp.stack([jnp.sin(rows), jnp.cos(rows)], axis=-1).reshape(height, half)
  return jnp.concatenate([
      jnp.broadcast_to(col_enc[None, :, :], (height, width, half)),
      jnp.broadcast_to(row_enc[:, None, :], (height, width, half))], axis=-1)


class FeatureExtractor(Protocol):
  """What `PatchFlows` needs from a backbone.

  A callable `images [n, h, w, c] float32 -> sequence of feature maps [n, h_l, w_l, C_l]`
  (channels last, one per level, any strides). It is treated as frozen: wrap a
  pretrained network (e.g. an EfficientNet / WideResNet from a Flax or converted
  checkpoint, with its ImageNet normalisation inside) as
  `lambda images: model.apply(pretrained_variables, images, ...)`, or pass a Linen
  module's bound `apply`. Gradients are stopped at its output.
  """

  def __call__(self, images: jax.Array) -> Sequence[jax.Array]:
    ...


class RandomConvExtractor(nn.Module):
  """A small conv net with 2 feature levels (strides 2 and 4): a stand-in backbone for
  tests and examples; pretrained features are what the reference uses."""
  channels: Sequence[int] = (8, 16)

  @nn.compact
  def __call__(self, images):
    x, levels = images, []
    for width in self.channels:
      x = nn.relu(nn.Conv(width, (3, 3), strides=(2, 2))(x))
      levels.append(x)
    return levels


class PatchFlows(nn.Module):
  """One conditional flow per feature level on per-location features.

  `__call__(features, rotations, *, train) -> list of [n, h_l, w_l] per-dimension
  log-likelihoods`, where `features` is the extractor's output and `rotations[l]` the
  `[K, C_l, C_l]` rotations of level l. Each flow is conditioned on the
  `pos_dim`-channel positional encoding of the location.
  """
  num_blocks: int = 8
  clamp_alpha: float = 1.9
  pos_dim: int = 128

  @nn.compact
  def __call__(self, features, rotations, *, train: bool = False):
    out = []
    for level, (feat, rot) in enumerate(zip(features, rotations)):
      feat = jax.lax.stop_gradient(feat)
      n, h, w, c = feat.shape
      pos = positional_encoding_2d(self.pos_dim, h, w)
      cond = jnp.broadcast_to(pos[None], (n, h, w, self.pos_dim)).reshape(-1, self.pos_dim)
      flow = Flow(c, self.num_blocks, self.clamp_alpha, cond_dim=self.pos_dim,
                  name=f"flow_{level}")
      z, log_det = flow(feat.reshape(-1, c), rot, cond, train=train)
      loglik = losses.flow_log_likelihood(z, log_det)
      out.append(loglik.reshape(n, h, w))
    return out


def patch_rotations(key, feature_dims: Sequence[int], num_blocks: int):
  """The fixed rotations of every level's flow (keep them with the model's constants)."""
  keys = jax.random.split(key, len(feature_dims))
  return [random_rotations(k, num_blocks, c) for k, c in zip(keys, feature_dims)]


def anomaly_map(logliks: Sequence[jax.Array], out_hw: tuple[int, int]) -> jax.Array:
  """`[n, H, W]` anomaly map: the per-level negative log-likelihoods, bilinearly
  resized to `out_hw` and summed. Unlike the reference (which subtracts the test-set
  maximum) no test-set statistic enters, so one image can be scored on its own; an
  image's score is the maximum of its map."""
  n = logliks[0].shape[0]
  total = jnp.zeros((n,) + tuple(out_hw), jnp.float32)
  for ll in logliks:
    total = total + jax.image.resize(-ll, (n,) + tuple(out_hw), method="bilinear")
  return total
