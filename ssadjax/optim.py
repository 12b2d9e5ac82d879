"""Optax transformations that reproduce the references' optimisers where optax has no
exact equivalent."""

import jax
import jax.numpy as jnp
import optax


def clip_by_norm_per_tensor(max_norm: float) -> optax.GradientTransformation:
  """TF2-Keras `clipnorm`: every gradient tensor g becomes g * c / max(||g||, c) on its
  own, tf.clip_by_norm's formula (optax's clip_by_global_norm is Keras 2.2's variant,
  one norm over all tensors). DevNet's and PReNet's Keras references."""

  def clip(updates, params=None):
    del params

    def one(g):
      norm = jnp.sqrt(jnp.sum(jnp.square(g)))
      return g * (max_norm / jnp.maximum(norm, max_norm))

    return jax.tree.map(one, updates)

  return optax.stateless(clip)
