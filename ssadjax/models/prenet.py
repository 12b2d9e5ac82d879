"""PReNet's pairwise relation network (Pang et al., KDD 2023).

    psi: x -> [Dense(h) -> ReLU] per hidden layer (20, or 1000-250-20 for the deeper
         variant) [-> Norm when AnoOnly inserts one]
    phi(x_i, x_j) = Dense(1)([psi(x_i); psi(x_j)])

The feature learner psi is shared by both sides of a pair. `init_scheme` picks the
reference's initialisation: 'torch' (ADBench / AnoOnly: U(+-1/sqrt(fan_in)) for kernels
and biases, nn.Linear's default) or 'keras' (official code: Glorot-uniform kernels, zero
biases).

BatchNorm and the two sides of a pair: the AnoOnly reference calls
psi on the left batch and then on the right batch, so each side is normalised with its own
batch statistics and the running statistics are updated twice per step, left first. Linen
reproduces this when the same `Norm` is called twice inside one `apply` with
`mutable=['batch_stats']` (the second call reads the statistics the first one wrote).
`joint_norm_pass=True` instead normalises the concatenation [left; right] in one call.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssadjax.models.layers import torch_linear_bias_init, torch_linear_init
from ssadjax.norm import NormPolicy, placed_norm

INIT_SCHEMES = ("torch", "keras")


def dense(features: int, fan_in: int, init_scheme: str, name: str | None = None) -> nn.Dense:
  """A Dense layer initialised as the chosen reference does."""
  if init_scheme == "torch":
    return nn.Dense(features, kernel_init=torch_linear_init,
                    bias_init=torch_linear_bias_init(fan_in), name=name)
  if init_scheme == "keras":
    return nn.Dense(features, kernel_init=nn.initializers.glorot_uniform(),
                    bias_init=nn.initializers.zeros, name=name)
  raise ValueError(f"prenet.init_scheme={init_scheme!r}; expected one of {INIT_SCHEMES}")


class PReNetFeatures(nn.Module):
  """The shared feature learner psi."""
  hidden_dims: Sequence[int] = (20,)
  init_scheme: str = "torch"
  insert_norm: bool = False
  norm: NormPolicy = NormPolicy()
  norm_epsilon: float = 1e-5   # PyTorch BatchNorm1d defaults
  norm_momentum: float = 0.9   # PyTorch momentum 0.1
  norm_affine: bool = True

  @nn.compact
  def __call__(self, x, *, train: bool, norm_mask=None) -> jax.Array:
    n = len(self.hidden_dims)
    for i, width in enumerate(self.hidden_dims):
      x = dense(width, x.shape[-1], self.init_scheme, name=f"dense_{i}")(x)
      x = nn.relu(x)
      # norm.placement (ssadjax/norm.py); the reference's one is AnoOnly's after the last ReLU.
      x = placed_norm(x, self.norm, i, n, reference=self.insert_norm and i == n - 1,
                      affine=self.norm_affine, epsilon=self.norm_epsilon,
                      momentum=self.norm_momentum, train=train, mask=norm_mask,
                      name="norm" if i == n - 1 else f"norm_{i}")
    return x


class PReNet(nn.Module):
  """phi(x_left, x_right) -> `[batch]` relation scores."""
  features: PReNetFeatures
  init_scheme: str = "torch"

  def setup(self):
    self.head = dense(1, 2 * self.features.hidden_dims[-1], self.init_scheme, name="head")

  def embed(self, x, *, train: bool, norm_mask=None) -> jax.Array:
    """psi(x), `[..., h]`."""
    return self.features(x, train=train, norm_mask=norm_mask)

  def relate(self, z_left, z_right) -> jax.Array:
    """The head on [z_left; z_right] (any leading shape), `[...]`."""
    return self.head(jnp.concatenate([z_left, z_right], axis=-1))[..., 0]

  def __call__(self, x_left, x_right, *, train: bool, left_mask=None, right_mask=None,
               joint_norm_pass: bool = False) -> jax.Array:
    if joint_norm_pass:
      n = x_left.shape[0]
      mask = None
      if left_mask is not None or right_mask is not None:
        ones = lambda x: jnp.ones((x.shape[0], 1), bool)
        mask = jnp.concatenate([ones(x_left) if left_mask is None else left_mask,
                                ones(x_right) if right_mask is None else right_mask])
      z = self.embed(jnp.concatenate([x_left, x_right]), train=train, norm_mask=mask)
      z_left, z_right = z[:n], z[n:]
    else:
      # Two calls, left first: two sets of batch statistics, two running-stat updates.
      z_left = self.embed(x_left, train=train, norm_mask=left_mask)
      z_right = self.embed(x_right, train=train, norm_mask=right_mask)
    return self.relate(z_left, z_right)
