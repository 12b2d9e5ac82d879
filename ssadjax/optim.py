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


# Rates and other scalars of a training stage's optimizer as run data (Method.run_hparams):
# the stage builds its optimizer with them in its state and sets each run's own values
# when it initialises, so runs of one program may differ in them.

def injected(factory, names: tuple[str, ...], **kwargs) -> optax.GradientTransformation:
  """`factory(**kwargs)` with the hyper-parameters `names` in its state
  (optax.inject_hyperparams) and every other argument fixed in the program (e.g. CLAD's
  DEC momentum: `injected(optax.sgd, ("momentum",), learning_rate=0.01, momentum=0.9)`)."""
  static = tuple(k for k in kwargs if k not in names)
  return optax.inject_hyperparams(factory, static_args=static)(**kwargs)


def rate_scaled(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
  """`optimizer` whose updates are then multiplied by an injected `rate_scale` (1 as
  built). For an optimizer whose every update is proportional to its rate (Adam,
  RMSprop, SGD, L2 decay, piecewise-constant or cosine-to-a-fraction schedules), a scale
  of r / r0 trains at rate r: how every stage's rate becomes run data, as the main
  stage's rate does (`Method.learning_rate`)."""
  return optax.chain(optimizer, optax.inject_hyperparams(_scale_updates)(rate_scale=1.0))


def _scale_updates(rate_scale) -> optax.GradientTransformation:
  return optax.scale(rate_scale)


def run_rate(extras, name: str, built_rate: float) -> dict:
  """{'rate_scale': the run's rate `name` (extras['hparams']) / `built_rate`}, what a
  `rate_scaled` stage sets when it starts; {} when the rate is not run data."""
  run = extras["hparams"]
  return {"rate_scale": run[name] / built_rate} if name in run else {}


def with_run_values(opt_state, values: dict):
  """`opt_state` with its injected hyper-parameters {name: value} set (a run's values;
  for `rate_scaled`, `rate_scale` = run rate / built rate)."""
  return optax.tree_utils.tree_set(opt_state, **values) if values else opt_state
