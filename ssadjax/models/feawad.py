"""FEAWAD's autoencoder and score generator (Zhou et al., TNNLS 2021).

Autoencoder: x -> Dense(d) -> Dense(128) -> Dense(64) = h -> Dense(128) -> Dense(d) = x_hat,
ReLU everywhere including the reconstruction (which is therefore non-negative).
Representation: r = x - x_hat, e = ||r||, z = [r / e; h; e].
Score generator: z -> Dense(256, ReLU) -> concat e -> Dense(32, ReLU) -> concat e
-> [Norm] -> Dense(1) = phi(x).

Initialisation: the reference builds every Dense with kernel_initializer='glorot_normal'
and use_bias=True, leaving Keras' default bias_initializer='zeros': kernels
Glorot-normal, biases present but zero-initialised. Keras' glorot_normal is a normal
truncated at 2 std and rescaled so the variance is still 2 / (fan_in + fan_out):
variance_scaling(1, fan_avg, truncated_normal) in Flax.

`norm_before_head` puts a BatchNorm (Keras defaults: momentum 0.99, epsilon 1e-3,
affine) on the 33-dim [ReLU(Dense32); e] right before the score layer, where the AnoOnly
copy has one for its baseline and +AnoOnly runs alike. `norm.placement` (ssadjax/norm.py)
counts the score generator's two hidden layers: 'last_hidden' is that norm before the
score layer (baseline included), 'all_hidden' adds one after ReLU(Dense256), 'none'
removes both; the autoencoder never carries a norm (it is pretrained without one).

The normalised residual divides by max(||r||, eps) (the reference divides unguarded and
gives NaN for an exact reconstruction); with eps = 1e-8 nothing changes unless
||r|| < 1e-8.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssadjax.losses import safe_l2_norm
from ssadjax.norm import NormPolicy, placed_norm

keras_glorot_normal = nn.initializers.variance_scaling(1.0, "fan_avg", "truncated_normal")


def _dense(width, name):
  return nn.Dense(width, kernel_init=keras_glorot_normal,
                  bias_init=nn.initializers.zeros, name=name)


class FEAWADAutoencoder(nn.Module):
  """Returns `(x_hat, h)`: the reconstruction `[B, d]` and the 64-dim code `[B, 64]`."""
  input_dim: int

  @nn.compact
  def __call__(self, x):
    a = nn.relu(_dense(self.input_dim, "ain")(x))
    a = nn.relu(_dense(128, "ae1")(a))
    h = nn.relu(_dense(64, "ae2")(a))
    a = nn.relu(_dense(128, "ad1")(h))
    x_hat = nn.relu(_dense(self.input_dim, "ad2")(a))
    return x_hat, h


class FEAWADNet(nn.Module):
  """Autoencoder (shared, trainable end to end) + score generator.

  `__call__` returns `(scores [B], residuals [B, d])`; the residuals feed the loss's
  reconstruction-error term.
  """
  input_dim: int
  norm_before_head: bool = False
  norm: NormPolicy = NormPolicy()
  norm_epsilon: float = 1e-3
  norm_momentum: float = 0.99
  residual_eps: float = 1e-8

  @nn.compact
  def __call__(self, x, *, train: bool, norm_mask=None):
    x_hat, h = FEAWADAutoencoder(self.input_dim, name="autoencoder")(x)
    residual = x - x_hat
    error = safe_l2_norm(residual, eps=self.residual_eps)[:, None]
    z = jnp.concatenate([residual / error, h, error], axis=-1)
    z = nn.relu(_dense(256, "hl2")(z))
    z = placed_norm(z, self.norm, 0, 2, reference=False, affine=True,
                    epsilon=self.norm_epsilon, momentum=self.norm_momentum, train=train,
                    mask=norm_mask, name="norm_0")
    z = nn.relu(_dense(32, "hl3")(jnp.concatenate([z, error], axis=-1)))
    z = jnp.concatenate([z, error], axis=-1)
    z = placed_norm(z, self.norm, 1, 2, reference=self.norm_before_head, affine=True,
                    epsilon=self.norm_epsilon, momentum=self.norm_momentum, train=train,
                    mask=norm_mask, name="norm")
    return _dense(1, "score")(z)[..., 0], residual
