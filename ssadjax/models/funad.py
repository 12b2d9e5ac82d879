"""FUN-AD's "localnet" (Im et al., WACV 2025), applied per row instead of per image patch.

  adaptor:       Dense(d -> adaptor_dim) -> LeakyReLU(0.2)                 -> f
  discriminator: Dense(f -> 1024) -> LeakyReLU(0.2) -> Dense(1024 -> 128)
                 -> LeakyReLU(0.2) -> Dense(128 -> 1)                        -> logit

The reference ends in a sigmoid; the modules return the logit (the loss uses the
numerically stable logit form of the BCE, the score is the logit: the same ranking as the
sigmoid without float32 saturation ties). PyTorch nn.Linear init for kernels and biases,
no normalisation (the reference has none).

Two modules rather than one so that the method can run the adaptor alone over the whole
training set (memory bank features) and the discriminator on those features.
"""

from typing import Sequence

import flax.linen as nn
import jax

from ssadjax.models.layers import torch_linear_bias_init, torch_linear_init


def _dense(features: int, fan_in: int, name: str) -> nn.Dense:
  return nn.Dense(features, kernel_init=torch_linear_init, bias_init=torch_linear_bias_init(fan_in),
                  name=name)


class Adaptor(nn.Module):
  """x [n, d] -> adapted features f [n, features]."""
  features: int
  negative_slope: float = 0.2

  @nn.compact
  def __call__(self, x) -> jax.Array:
    return nn.leaky_relu(_dense(self.features, x.shape[-1], "dense")(x), self.negative_slope)


class Discriminator(nn.Module):
  """f [n, k] -> logits [n]."""
  hidden_dims: Sequence[int] = (1024, 128)
  negative_slope: float = 0.2

  @nn.compact
  def __call__(self, f) -> jax.Array:
    fan_in = f.shape[-1]
    for i, width in enumerate(self.hidden_dims):
      f = nn.leaky_relu(_dense(width, fan_in, f"dense_{i}")(f), self.negative_slope)
      fan_in = width
    return _dense(1, fan_in, "head")(f)[..., 0]
