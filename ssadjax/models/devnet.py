"""DevNet's scoring network (Pang et al., KDD 2019).

x -> [Dense(w, ReLU)] per hidden layer -> [Norm] -> Dense(1) = phi(x).
Depth 2 (the default, hidden_dims=(20,)) and depth 4 (hidden_dims=(1000, 250, 20)).
Keras defaults: Glorot-uniform kernels, zero biases. The L2 0.01 on the hidden kernels
is not part of the module (the method adds it as a regulariser); the hidden layers are
named `hidden_<i>` and the output layer `score` so that it can pick them out.

`insert_norm` puts a BatchNorm after the last hidden ReLU, right before the linear
score layer, as the AnoOnly copy does (Keras BatchNormalization(): momentum 0.99,
epsilon 1e-3, learnable scale and shift). `norm.placement` moves it (ssadjax/norm.py):
'last_hidden' / 'all_hidden' give the baseline the norm too (all_hidden: after every
hidden ReLU; the last one keeps the name `norm`), 'none' removes it.
"""

from typing import Sequence

import flax.linen as nn
import jax

from ssadjax.norm import NormPolicy, placed_norm

keras_glorot_uniform = nn.initializers.glorot_uniform()


class DevNetScorer(nn.Module):
  hidden_dims: Sequence[int] = (20,)
  insert_norm: bool = False
  norm: NormPolicy = NormPolicy()
  norm_epsilon: float = 1e-3   # Keras BatchNormalization default
  norm_momentum: float = 0.99  # Keras: weight of the old moving average

  @nn.compact
  def __call__(self, x, *, train: bool, norm_mask=None) -> jax.Array:
    n = len(self.hidden_dims)
    for i, width in enumerate(self.hidden_dims):
      x = nn.relu(nn.Dense(width, kernel_init=keras_glorot_uniform, name=f"hidden_{i}")(x))
      x = placed_norm(x, self.norm, i, n, reference=self.insert_norm and i == n - 1,
                      affine=True, epsilon=self.norm_epsilon, momentum=self.norm_momentum,
                      train=train, mask=norm_mask, name="norm" if i == n - 1 else f"norm_{i}")
    return nn.Dense(1, kernel_init=keras_glorot_uniform, name="score")(x)[..., 0]
