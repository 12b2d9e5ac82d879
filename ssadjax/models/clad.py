"""CLAD's networks (Park et al., ICLR 2021 workshop): the convolutional autoencoder of
stage 1 and the confidence classifiers of stage 3 (a small CNN, or torchvision's ResNet-18).

Inputs arrive flattened ([B, h*w*c], the engine's 2-D convention) or as images
[B, h, w, c]; every module reshapes to its `image_shape` first.

`CAEEncoder` / `CAEDecoder` are the reference's `cvae` (MNIST), generalised to any
h, w divisible by 4 and any channel count:
  encoder: Conv3x3(c1) ELU MaxPool2 -> Conv3x3(c2) ELU MaxPool2 -> Conv3x3(c3) ELU
           -> flatten -> Dense(512) ReLU -> Dense(2 * latent)   (split into mu, sigma)
  decoder: Dense(512) ReLU -> Dense(h/4 * w/4 * c3) ReLU -> reshape
           -> ConvT4x4/2(c2) ELU -> ConvT4x4/2(c1) ELU -> Conv3x3(c) [-> sigmoid]
Conv / Dense layers use Xavier-uniform kernels and zero biases (the reference's init of
its Sequential layers); ConvTranspose keeps a PyTorch-default-like U(+-1/sqrt(fan_in)).
PyTorch's ConvTranspose2d(k=4, s=2, p=1) is Flax padding k-1-p = 2 per side (output 2h).
No normalisation layer: the reference `cvae` has none. The `cvae_large` (RGB, BatchNorm,
two convs per stage) is not reproduced (BUILD_NOTES).

Classifiers (every BatchNorm is `ssadjax.norm.Norm` following the config's NormPolicy):
  * `SmallCNN` (default): per width, Conv3x3 -> Norm -> ReLU -> MaxPool2 (while the map is
    larger than 1x1), then global average pool -> Dense(K). A cheap stand-in for ResNet-18.
  * `ResNet18`: torchvision's BasicBlock [2, 2, 2, 2] with the ImageNet stem
    (Conv7x7/2, Norm, ReLU, MaxPool3x3/2), widths 64-128-256-512, 1x1 projection
    shortcuts, global average pool, Dense(K); BatchNorm eps 1e-5, PyTorch momentum 0.1,
    Kaiming-normal (fan_out) conv init as torchvision.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssadjax.models.layers import torch_linear_bias_init, torch_linear_init
from ssadjax.norm import Norm, NormPolicy, norm_affine

xavier_uniform = nn.initializers.xavier_uniform()
kaiming_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
CLASSIFIERS = ("cnn", "resnet18")


def as_images(x: jax.Array, image_shape: Sequence[int]) -> jax.Array:
  """[B, h*w*c] or [B, h, w, c] -> [B, h, w, c] (with a clear error on a mismatch)."""
  shape = tuple(image_shape)
  if x.shape[1:] == shape:
    return x
  if int(np.prod(x.shape[1:])) != int(np.prod(shape)):
    raise ValueError(f"expected images {shape} (or {int(np.prod(shape))} flattened "
                     f"features), got inputs of shape {x.shape}")
  return x.reshape((x.shape[0],) + shape)


def _conv_mask(norm_mask):
  return None if norm_mask is None else norm_mask.reshape((norm_mask.shape[0], 1, 1, 1))


class CAEEncoder(nn.Module):
  """x -> (mu [B, latent], sigma [B, latent]); sigma is unconstrained (reference)."""
  image_shape: Sequence[int] = (28, 28, 1)
  channels: Sequence[int] = (4, 8, 16)
  dense: int = 512
  latent_dim: int = 10

  @nn.compact
  def __call__(self, x):
    x = as_images(x, self.image_shape)
    c1, c2, c3 = self.channels
    conv = lambda f: nn.Conv(f, (3, 3), padding="SAME", kernel_init=xavier_uniform)
    x = nn.max_pool(nn.elu(conv(c1)(x)), (2, 2), strides=(2, 2))
    x = nn.max_pool(nn.elu(conv(c2)(x)), (2, 2), strides=(2, 2))
    x = nn.elu(conv(c3)(x))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(self.dense, kernel_init=xavier_uniform)(x))
    out = nn.Dense(2 * self.latent_dim, kernel_init=xavier_uniform)(x)
    return out[:, :self.latent_dim], out[:, self.latent_dim:]


class CAEDecoder(nn.Module):
  """z [B, latent] -> reconstruction [B, h*w*c] (flattened, like the engine's inputs)."""
  image_shape: Sequence[int] = (28, 28, 1)
  channels: Sequence[int] = (4, 8, 16)
  dense: int = 512
  sigmoid: bool = False

  @nn.compact
  def __call__(self, z):
    h, w, c = self.image_shape
    if h % 4 or w % 4:
      raise ValueError(f"CLAD's autoencoder needs h, w divisible by 4, got {self.image_shape}")
    c1, c2, c3 = self.channels
    z = nn.relu(nn.Dense(self.dense, kernel_init=torch_linear_init)(z))
    z = nn.relu(nn.Dense((h // 4) * (w // 4) * c3, kernel_init=torch_linear_init)(z))
    z = z.reshape((z.shape[0], h // 4, w // 4, c3))
    convt = lambda f: nn.ConvTranspose(f, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                                       kernel_init=torch_linear_init)
    z = nn.elu(convt(c2)(z))
    z = nn.elu(convt(c1)(z))
    z = nn.Conv(c, (3, 3), padding="SAME", kernel_init=xavier_uniform)(z)
    if self.sigmoid:
      z = nn.sigmoid(z)
    return z.reshape((z.shape[0], -1))


class SmallCNN(nn.Module):
  num_classes: int = 10
  image_shape: Sequence[int] = (28, 28, 1)
  channels: Sequence[int] = (32, 64, 128)
  norm: NormPolicy = NormPolicy()
  norm_epsilon: float = 1e-5
  norm_momentum: float = 0.9  # PyTorch momentum 0.1

  @nn.compact
  def __call__(self, x, *, train: bool, norm_mask=None):
    x = as_images(x, self.image_shape)
    mask = _conv_mask(norm_mask)
    for width in self.channels:
      x = nn.Conv(width, (3, 3), padding="SAME", use_bias=False,
                  kernel_init=kaiming_fan_out)(x)
      x = Norm(self.norm, epsilon=self.norm_epsilon, affine=norm_affine(self.norm, True),
               momentum=self.norm_momentum)(x, train=train, mask=mask)
      x = nn.relu(x)
      if x.shape[1] > 1 and x.shape[2] > 1:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=torch_linear_init,
                    bias_init=nn.initializers.zeros)(x)


class BasicBlock(nn.Module):
  width: int
  stride: int = 1
  norm: NormPolicy = NormPolicy()

  @nn.compact
  def __call__(self, x, *, train: bool, mask=None):
    norm = lambda: Norm(self.norm, epsilon=1e-5, affine=norm_affine(self.norm, True),
                        momentum=0.9)
    conv = lambda f, k, s: nn.Conv(f, (k, k), strides=(s, s), padding=((k // 2, k // 2),) * 2,
                                   use_bias=False, kernel_init=kaiming_fan_out)
    y = nn.relu(norm()(conv(self.width, 3, self.stride)(x), train=train, mask=mask))
    y = norm()(conv(self.width, 3, 1)(y), train=train, mask=mask)
    if self.stride != 1 or x.shape[-1] != self.width:
      x = norm()(conv(self.width, 1, self.stride)(x), train=train, mask=mask)
    return nn.relu(x + y)


class ResNet18(nn.Module):
  num_classes: int = 10
  image_shape: Sequence[int] = (28, 28, 1)
  widths: Sequence[int] = (64, 128, 256, 512)
  norm: NormPolicy = NormPolicy()

  @nn.compact
  def __call__(self, x, *, train: bool, norm_mask=None):
    x = as_images(x, self.image_shape)
    mask = _conv_mask(norm_mask)
    x = nn.Conv(self.widths[0], (7, 7), strides=(2, 2), padding=((3, 3), (3, 3)),
                use_bias=False, kernel_init=kaiming_fan_out)(x)
    x = nn.relu(Norm(self.norm, epsilon=1e-5, affine=norm_affine(self.norm, True),
                     momentum=0.9)(x, train=train, mask=mask))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, width in enumerate(self.widths):
      for j in range(2):
        stride = 2 if (i > 0 and j == 0) else 1
        x = BasicBlock(width, stride, self.norm)(x, train=train, mask=mask)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, kernel_init=torch_linear_init,
                    bias_init=torch_linear_bias_init(self.widths[-1]))(x)


def make_classifier(kind: str, *, num_classes: int, image_shape: Sequence[int],
                    norm: NormPolicy, cnn_channels: Sequence[int] = (32, 64, 128)):
  if kind == "cnn":
    return SmallCNN(num_classes=num_classes, image_shape=tuple(image_shape),
                    channels=tuple(cnn_channels), norm=norm)
  if kind == "resnet18":
    return ResNet18(num_classes=num_classes, image_shape=tuple(image_shape), norm=norm)
  raise ValueError(f"clad.classifier={kind!r}; expected one of {CLASSIFIERS}")
