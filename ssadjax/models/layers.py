"""Layer initialisers shared by the models: PyTorch's nn.Linear defaults, which the
PyTorch references (Deep SAD, PReNet's and FUN-AD's ports, BGAD, CLAD) start from, and
`true_fan_kernel`, which makes a kernel drawn at a padded shape start as the real shape's."""

import flax.linen as nn
import jax
import jax.numpy as jnp

# nn.Linear's weight init U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a=sqrt(5)).
torch_linear_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_linear_bias_init(fan_in: int):
  """nn.Linear's bias init U(-1/sqrt(fan_in), 1/sqrt(fan_in)); Flax bias initialisers do
  not see the fan-in, so it is bound here."""
  bound = 1.0 / float(fan_in) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def true_fan_kernel(kernel, *, mode: str, in_mask=None, out_mask=None,
                    bias=None) -> tuple:
  """A Dense kernel `[fan_in, fan_out]` drawn at padded shape -> the kernel a model of the
  real shape would start from: entries of padded inputs (`in_mask` False) or outputs
  (`out_mask` False) are zero, so they stay zero (their gradients are zero), and the
  real entries are rescaled from the padded fan to the real one.

  Every variance-scaling initializer (PyTorch's default, Glorot, He, LeCun) draws a
  unit-scale sample and multiplies it by sqrt(scale / fan), so multiplying by
  sqrt(fan_padded / fan_real) gives exactly the real shape's distribution; `mode` is the
  initializer's fan (fan_in | fan_out | fan_avg). A `bias` whose init also scales with
  the fan (PyTorch: U(+-1/sqrt(fan_in))) gets the same factor and its padded outputs
  zeroed. Nothing padded: the factor is exactly 1.
  Returns `(kernel, bias)`.
  """
  fan_in, fan_out = kernel.shape[-2], kernel.shape[-1]
  in_mask = jnp.ones(fan_in, bool) if in_mask is None else in_mask
  out_mask = jnp.ones(fan_out, bool) if out_mask is None else out_mask
  real_in = jnp.sum(in_mask).astype(kernel.dtype)
  real_out = jnp.sum(out_mask).astype(kernel.dtype)
  fans = {"fan_in": (fan_in, real_in), "fan_out": (fan_out, real_out),
          "fan_avg": ((fan_in + fan_out) / 2, (real_in + real_out) / 2)}
  if mode not in fans:
    raise ValueError(f"mode={mode!r}; expected one of {sorted(fans)}")
  padded_fan, real_fan = fans[mode]
  factor = jnp.sqrt(padded_fan / real_fan)
  keep = in_mask[:, None] & out_mask[None, :]
  kernel = jnp.where(keep, kernel * factor, 0.0)
  if bias is not None:
    bias = jnp.where(out_mask, bias * factor, 0.0)
  return kernel, bias
