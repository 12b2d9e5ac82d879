"""The LeNet-type image encoders of Deep SAD (Ruff et al., ICLR 2020).

Per block: Conv 5x5 (padding 2, no bias) -> Norm (eps 1e-4, no affine) -> LeakyReLU(0.01)
-> 2x2 max-pool; then flatten -> Dense(rep_dim, no bias).
  * MNIST / Fashion-MNIST: channels (8, 4), rep_dim 32   (28x28x1 -> 7x7x4 -> 32)
  * CIFAR-10:              channels (32, 64, 128), rep_dim 128 (32x32x3 -> 4x4x128 -> 128)
Bias-free throughout (Deep SVDD's collapse argument). The Norm follows the config's
NormPolicy like the MLP (`placement`: the reference and `all_hidden` put one after every
conv block, `last_hidden` after the last block only, `none` nowhere); a BatchNorm over a conv map keeps per-channel statistics over
(batch, height, width), as PyTorch's BatchNorm2d; LayerNorm (the control) normalises over
the channels of each pixel. Weights use PyTorch's default Conv2d/Linear init
(U(+-1/sqrt(fan_in))), as the MLP does.

The engine keeps every input 2-D ([batch, features]); the encoder therefore accepts a
flattened batch [B, h*w*c] (or an image batch [B, h, w, c]) and reshapes it to `image_shape`.
Maps of odd size are floored by the pool (e.g. 7x7 -> 3x3), as PyTorch's MaxPool2d.
"""

from typing import Sequence

import flax.linen as nn
import jax
import numpy as np

from ssadjax.models.layers import torch_linear_init
from ssadjax.models.mlp import MLPEncoder
from ssadjax.norm import NormPolicy, placed_norm

ENCODERS = ("auto", "mlp", "lenet_mnist", "lenet_cifar")
LENET_MNIST = dict(channels=(8, 4), rep_dim=32)
LENET_CIFAR = dict(channels=(32, 64, 128), rep_dim=128)


class LeNetEncoder(nn.Module):
  image_shape: Sequence[int] = (28, 28, 1)
  channels: Sequence[int] = (8, 4)
  rep_dim: int = 32
  kernel_size: int = 5
  norm: NormPolicy = NormPolicy()
  norm_epsilon: float = 1e-4
  norm_affine: bool = False
  norm_momentum: float = 0.9  # PyTorch momentum 0.1
  negative_slope: float = 0.01

  @nn.compact
  def __call__(self, x, *, train: bool, norm_mask=None) -> jax.Array:
    shape = tuple(self.image_shape)
    if x.shape[1:] != shape:
      if int(np.prod(x.shape[1:])) != int(np.prod(shape)):
        raise ValueError(f"LeNetEncoder expects images {shape} (or {int(np.prod(shape))} "
                         f"flattened features), got inputs of shape {x.shape}")
      x = x.reshape((x.shape[0],) + shape)
    mask = None if norm_mask is None else norm_mask.reshape((norm_mask.shape[0], 1, 1, 1))
    pad = self.kernel_size // 2
    for i, width in enumerate(self.channels):
      x = nn.Conv(width, (self.kernel_size, self.kernel_size), padding=((pad, pad), (pad, pad)),
                  use_bias=False, kernel_init=torch_linear_init)(x)
      # The reference has a norm after every conv block ('reference' = 'all_hidden').
      x = placed_norm(x, self.norm, i, len(self.channels), reference=True,
                      affine=self.norm_affine, epsilon=self.norm_epsilon,
                      momentum=self.norm_momentum, train=train, mask=mask)
      x = nn.leaky_relu(x, self.negative_slope)
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    return nn.Dense(self.rep_dim, use_bias=False, kernel_init=torch_linear_init)(x)


def resolve_encoder(kind: str, image_shape: Sequence[int] | None) -> str:
  """'auto' -> 'lenet_mnist' for 1-channel images, 'lenet_cifar' for 3-channel images,
  'mlp' for tabular data (image_shape None or (), the factories' default); explicit kinds
  are checked against the data."""
  if kind not in ENCODERS:
    raise ValueError(f"encoder={kind!r}; expected one of {ENCODERS}")
  if kind == "auto":
    if not image_shape:
      return "mlp"
    return "lenet_mnist" if image_shape[-1] == 1 else "lenet_cifar"
  if kind != "mlp" and not image_shape:
    raise ValueError(f"encoder={kind!r} needs an image dataset (tfds:<set>/<k>, "
                     "sklearn:digits/<k>); this dataset is tabular: use 'mlp' or 'auto'")
  return kind


def make_encoder(kind: str, *, input_dim: int, image_shape: Sequence[int] | None,
                 norm: NormPolicy, mlp_hidden_dims: Sequence[int], mlp_rep_dim: int
                 ) -> nn.Module:
  """Deep SAD's encoder by config: the MLP (hidden dims, rep_dim from the config) or a LeNet
  with the reference widths and representation size of Deep SAD's image networks."""
  kind = resolve_encoder(kind, image_shape)
  if kind == "mlp":
    return MLPEncoder(hidden_dims=tuple(mlp_hidden_dims), rep_dim=mlp_rep_dim, norm=norm)
  if int(np.prod(image_shape)) != input_dim:
    raise ValueError(f"image shape {tuple(image_shape)} does not match {input_dim} features")
  arch = LENET_MNIST if kind == "lenet_mnist" else LENET_CIFAR
  return LeNetEncoder(image_shape=tuple(image_shape), norm=norm, **arch)
