"""The batch samplers methods share, and the in-graph draws they are built from: uniform
shuffled mini-batches (Deep SAD, Deep SVDD, pretraining stages), DevNet's and FEAWAD's
balanced batches, draws from a (possibly padded) index pool, and the permutation of the
real rows of padded data. A method's own sampler (BGAD's mixed batches, PReNet's pairs,
FUN-AD's, CLAD's pool) stays in its method file.
"""

import bisect

import jax
import jax.numpy as jnp
import numpy as np

from ssadjax.methods import base
from ssadjax.methods import train_data


def draw_from_pool(key, pool, count, shape) -> jax.Array:
  """Entries of `pool[:count]` drawn uniformly with replacement (`count` may be traced;
  with the static pool size it is the plain `pool[randint(0, len(pool))]`)."""
  return pool[jax.random.randint(key, shape, 0, count)]


def _permutation_rounds(size: int) -> int:
  """The sort rounds jax.random.permutation makes for `size` elements."""
  return int(np.ceil(3 * np.log(max(1, size)) / np.log(np.iinfo(np.uint32).max)))


def masked_permutation(key, size: int, count) -> jax.Array:
  """A uniformly random order of `0..count-1` followed by `count..size-1` (in order):
  jax.random.permutation's rounds of stable sorts by random 32-bit keys, with the keys
  of the padded positions pinned to the maximum so they stay last. The real positions
  come out exactly as `jax.random.permutation(key, count)` orders them, whatever the
  padded `size`: the random bits are a prefix of the same stream (threefry is
  partitionable) and only the rounds `count` needs are applied."""
  if not isinstance(count, jax.Array) and count == size:
    return jax.random.permutation(key, size)
  if not jax.config.jax_threefry_partitionable:
    raise ValueError("masked_permutation needs jax_threefry_partitionable=True (JAX's "
                     "default), so that the random bits of a padded array extend the real ones")
  num_rounds = _permutation_rounds(size)
  # The smallest count that needs each round (integers: no float rounding in the graph).
  round_starts = [1 + bisect.bisect_right(range(1, size + 1), r, key=_permutation_rounds)
                  for r in range(num_rounds)]
  real = jnp.arange(size) < count
  order = jnp.arange(size)
  for start in round_starts:
    key, subkey = jax.random.split(key)
    sort_keys = jnp.where(real, jax.random.bits(subkey, (size,), jnp.uint32),
                          jnp.uint32(np.iinfo(np.uint32).max))
    _, sorted_order = jax.lax.sort_key_val(sort_keys, order)
    order = jnp.where(count >= start, sorted_order, order)
  return order


def shuffled_sampler(batch_size: int) -> base.Sampler:
  """Uniform shuffled mini-batches, one permutation per epoch, last partial batch dropped
  (PyTorch DataLoader(shuffle=True, drop_last=True)). On padded data the permutation
  covers the real rows and the run's epoch has `rows // batch_size` steps
  (`shuffled_steps`), so padded rows are never drawn."""

  def begin_epoch(key, data):
    return masked_permutation(key, data.x.shape[0], train_data.rows(data))

  def batch(perm, i, key, data):
    del key
    rows = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size)
    return {"x": data.x[rows], "semi_labels": data.semi_labels[rows]}

  return base.Sampler(begin_epoch=begin_epoch, batch=batch, shuffled_batch_size=batch_size)


def shuffled_steps(batch_size: int):
  """`run_steps_per_epoch` of a method with `shuffled_sampler(batch_size)`."""
  return lambda data: train_data.rows(data) // batch_size


def balanced_sampler(batch_size: int) -> base.Sampler:
  """DevNet's (and FEAWAD's) batches: even positions an unlabelled row, odd positions a
  labelled anomaly, each drawn uniformly with replacement from its pool; semi_labels
  0, 1, 0, 1, ... The batch also carries the drawn training `rows`."""
  num_even, num_odd = (batch_size + 1) // 2, batch_size // 2
  positions = jnp.arange(batch_size)
  semi_labels = (positions % 2).astype(jnp.int32)

  def begin_epoch(key, data):
    del key, data
    return ()

  def batch(epoch_state, i, key, data):
    del epoch_state, i
    return draw_balanced(key, data, num_even, num_odd, semi_labels)

  return base.Sampler(begin_epoch=begin_epoch, batch=batch)


def draw_balanced(key, data, num_even, num_odd, semi_labels):
  """`num_even` unlabelled rows at the even positions and `num_odd` labelled anomalies
  at the odd ones, uniformly with replacement."""
  key_u, key_a = jax.random.split(key)
  pool_u, pool_a = jnp.asarray(data.unlabelled_index), jnp.asarray(data.anomaly_index)
  unlabelled = draw_from_pool(key_u, pool_u, train_data.unlabelled_count(data), (num_even,))
  anomalies = draw_from_pool(key_a, pool_a, train_data.anomaly_count(data), (num_odd,))
  rows = jnp.zeros(num_even + num_odd, jnp.int32).at[0::2].set(unlabelled)
  rows = rows.at[1::2].set(anomalies)
  return {"x": jnp.asarray(data.x)[rows], "semi_labels": semi_labels, "rows": rows}
