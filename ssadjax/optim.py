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


def injected_clip(clipnorm: float, mode: str) -> optax.GradientTransformation:
  """Gradient clipping whose norm lives in the optimizer state under the name 'clipnorm'
  (optax.inject_hyperparams), so runs of one program may clip at their own norms:
  'global' (Keras 2.2: optax.clip_by_global_norm) or 'per_tensor' (TF2 Keras:
  `clip_by_norm_per_tensor`)."""
  if mode not in ("global", "per_tensor"):
    raise ValueError(f"clipnorm mode {mode!r}; expected 'global' or 'per_tensor'")

  def clip(clipnorm):
    if mode == "global":
      return optax.clip_by_global_norm(clipnorm)
    return clip_by_norm_per_tensor(clipnorm)

  return optax.inject_hyperparams(clip)(clipnorm=clipnorm)
