"""Layer initialisers shared by the models: PyTorch's nn.Linear defaults, which the
PyTorch references (Deep SAD, PReNet's and FUN-AD's ports, BGAD, CLAD) start from."""

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
