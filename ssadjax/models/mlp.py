"""The MLP encoder/decoder of Deep SAD as used by ADBench and AnoOnly.

x -> [Dense(no bias) -> Norm(eps 1e-4, no affine) -> LeakyReLU(0.01)] per hidden layer
  -> Dense(rep_dim, no bias). Bias-free layers keep Deep SVDD from collapsing onto c.
PyTorch's default Linear init (U(+-1/sqrt(fan_in)) = variance_scaling(1/3, fan_in,
uniform)) is used so that initial representations, hence the centre c, match the
reference's scale.

`norm.placement` / `norm.affine` (ssadjax/norm.py): the reference has a norm after every
hidden layer ('reference' = 'all_hidden'); 'last_hidden' keeps only the last one.
"""

from typing import Sequence

import flax.linen as nn
import jax

from ssadjax.models.layers import torch_linear_init
from ssadjax.norm import NormPolicy, placed_norm


class MLPEncoder(nn.Module):
  hidden_dims: Sequence[int] = (100, 20)
  rep_dim: int = 10
  use_bias: bool = False
  norm: NormPolicy = NormPolicy()
  norm_epsilon: float = 1e-4
  norm_affine: bool = False
  norm_momentum: float = 0.9  # PyTorch momentum 0.1
  negative_slope: float = 0.01

  @nn.compact
  def __call__(self, x, *, train: bool, norm_mask=None) -> jax.Array:
    n = len(self.hidden_dims)
    for i, width in enumerate(self.hidden_dims):
      x = nn.Dense(width, use_bias=self.use_bias, kernel_init=torch_linear_init)(x)
      x = placed_norm(x, self.norm, i, n, reference=True, affine=self.norm_affine,
                      epsilon=self.norm_epsilon, momentum=self.norm_momentum, train=train,
                      mask=norm_mask, name=f"Norm_{i}")
      x = nn.leaky_relu(x, self.negative_slope)
    return nn.Dense(self.rep_dim, use_bias=self.use_bias, kernel_init=torch_linear_init)(x)


class MLPDecoder(nn.Module):
  """Mirror of the encoder; sigmoid output because ADBench inputs are min-max scaled."""
  hidden_dims: Sequence[int] = (20, 100)
  out_dim: int = 1
  use_bias: bool = False
  norm: NormPolicy = NormPolicy()
  norm_epsilon: float = 1e-4
  norm_affine: bool = False
  norm_momentum: float = 0.9
  negative_slope: float = 0.01

  @nn.compact
  def __call__(self, z, *, train: bool, norm_mask=None) -> jax.Array:
    n = len(self.hidden_dims)
    for i, width in enumerate(self.hidden_dims):
      z = nn.Dense(width, use_bias=self.use_bias, kernel_init=torch_linear_init)(z)
      z = placed_norm(z, self.norm, i, n, reference=True, affine=self.norm_affine,
                      epsilon=self.norm_epsilon, momentum=self.norm_momentum, train=train,
                      mask=norm_mask, name=f"Norm_{i}")
      z = nn.leaky_relu(z, self.negative_slope)
    z = nn.Dense(self.out_dim, use_bias=self.use_bias, kernel_init=torch_linear_init)(z)
    return nn.sigmoid(z)


class MLPAutoencoder(nn.Module):
  """Encoder + mirrored decoder; the encoder's parameters live under 'encoder' so that
  they can be copied into a standalone MLPEncoder after pretraining."""
  encoder: MLPEncoder
  decoder: MLPDecoder

  def __call__(self, x, *, train: bool, norm_mask=None) -> jax.Array:
    z = self.encoder(x, train=train, norm_mask=norm_mask)
    return self.decoder(z, train=train, norm_mask=norm_mask)
