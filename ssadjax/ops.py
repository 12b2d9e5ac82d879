"""Array operations shared by the methods: squared distances, exact nearest neighbours
and mutual nearest-neighbour pairs (FUN-AD), k-means with k-means++ restarts (CLAD), and a
row-blocked map that bounds the memory of all-pairs work on large sets.

Pure jax.numpy, jit- and vmap-friendly; k and block sizes are static.
"""

import jax
import jax.numpy as jnp


def pairwise_sq_dists(queries: jax.Array, keys: jax.Array) -> jax.Array:
  """`[m, n]` squared L2 distances via |q|^2 + |k|^2 - 2 q.k, clamped at 0."""
  qn = jnp.sum(jnp.square(queries), -1)[:, None]
  kn = jnp.sum(jnp.square(keys), -1)[None, :]
  return jnp.maximum(qn + kn - 2.0 * queries @ keys.T, 0.0)


def blocked_map(fn, x, block: int):
  """`fn` over row blocks of `x` (an array, or a pytree of arrays with the same rows) with
  `lax.map`, memory bounded by `block` rows; `fn` maps a block to a pytree of `[b, ...]`
  arrays. No blocking when the rows fit one block. Padded rows of the last block are
  zeros, and their outputs are dropped."""
  n = jax.tree.leaves(x)[0].shape[0]
  if n <= block:
    return fn(x)
  nb = -(-n // block)
  blocks = jax.tree.map(lambda a: jnp.concatenate(
      [a, jnp.zeros((nb * block - n,) + a.shape[1:], a.dtype)]).reshape(
          (nb, block) + a.shape[1:]), x)
  out = jax.lax.map(fn, blocks)
  return jax.tree.map(lambda a: a.reshape((nb * block,) + a.shape[2:])[:n], out)


def knn(queries: jax.Array, keys: jax.Array, k: int, *, key_valid: jax.Array | None = None,
        query_ids: jax.Array | None = None, key_ids: jax.Array | None = None,
        block: int = 1024) -> tuple[jax.Array, jax.Array]:
  """Exact k nearest keys of each query by squared L2 distance, over query blocks.

  Args:
    queries: `[m, d]`. keys: `[n, d]`.
    k: neighbours per query (static).
    key_valid: optional `[n]` bool; invalid keys are never returned (distance inf).
    query_ids, key_ids: optional `[m]` / `[n]` ints; a key with the query's id is
      excluded (self-exclusion).
    block: queries per block.

  Returns:
    `([m, k] distances ascending, [m, k] key indices)`; inf where fewer than k keys
    qualify. Ties go to the lower key index.
  """
  have_ids = query_ids is not None
  if have_ids:
    operand = (queries, jnp.asarray(query_ids))
  else:
    operand = (queries, jnp.zeros((queries.shape[0],), jnp.int32))

  def one_block(args):
    q, qid = args
    d = pairwise_sq_dists(q, keys)
    if key_valid is not None:
      d = jnp.where(key_valid[None, :], d, jnp.inf)
    if have_ids:
      d = jnp.where(qid[:, None] == key_ids[None, :], jnp.inf, d)
    neg, idx = jax.lax.top_k(-d, k)
    return -neg, idx

  return blocked_map(one_block, operand, block)


def mutual_nearest_neighbours(features: jax.Array, *, block: int = 1024
                              ) -> tuple[jax.Array, jax.Array]:
  """Mutual nearest-neighbour pairs of a set of vectors (self excluded).

  Returns `(partner [m], is_pair [m])`: `partner[i]` = i's nearest neighbour j, and
  `is_pair[i]` is True iff j's nearest neighbour is i and i < j (each pair listed once).
  """
  m = features.shape[0]
  ids = jnp.arange(m)
  _, idx = knn(features, features, 1, query_ids=ids, key_ids=ids, block=block)
  partner = idx[:, 0]
  return partner, (partner[partner] == ids) & (ids < partner)


def kmeans_plus_plus(key: jax.Array, x: jax.Array, k: int) -> jax.Array:
  """k-means++ seeding (Arthur & Vassilvitskii, 2007): the first centre uniform, each next
  one drawn with probability proportional to the squared distance to the nearest centre
  chosen so far (uniform if every point already coincides with a centre). `[k, d]`."""
  x = jnp.asarray(x)
  n = x.shape[0]
  keys = jax.random.split(key, k)
  first = x[jax.random.randint(keys[0], (), 0, n)]
  centers = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)
  d2 = jnp.sum(jnp.square(x - first), -1)

  def body(j, carry):
    centers, d2 = carry
    total = jnp.sum(d2)
    probs = jnp.where(total > 0, d2 / jnp.where(total > 0, total, 1.0), 1.0 / n)
    new = x[jax.random.choice(keys[j], n, p=probs)]
    return centers.at[j].set(new), jnp.minimum(d2, jnp.sum(jnp.square(x - new), -1))

  centers, _ = jax.lax.fori_loop(1, k, body, (centers, d2))
  return centers


def lloyd(x: jax.Array, centers: jax.Array, num_iters: int) -> jax.Array:
  """`num_iters` Lloyd iterations; an empty cluster keeps its previous centre."""
  x, centers = jnp.asarray(x), jnp.asarray(centers)
  k = centers.shape[0]

  def body(_, centers):
    onehot = jax.nn.one_hot(jnp.argmin(pairwise_sq_dists(x, centers), -1), k, dtype=x.dtype)
    counts = jnp.sum(onehot, 0)
    means = (onehot.T @ x) / jnp.maximum(counts, 1.0)[:, None]
    return jnp.where(counts[:, None] > 0, means, centers)

  return jax.lax.fori_loop(0, num_iters, body, centers)


def kmeans(key: jax.Array, x: jax.Array, k: int, *, n_init: int = 20, num_iters: int = 100):
  """K-means with `n_init` k-means++ restarts (vmapped), the lowest inertia kept.

  Returns (centres `[k, d]`, labels `[n]`, inertia scalar). Deterministic given `key`.
  """
  x = jnp.asarray(x)
  if x.shape[0] < k:
    raise ValueError(f"k-means needs at least k={k} points, got {x.shape[0]}")

  def one(key):
    centers = lloyd(x, kmeans_plus_plus(key, x, k), num_iters)
    return centers, jnp.sum(jnp.min(pairwise_sq_dists(x, centers), -1))

  centers, inertia = jax.vmap(one)(jax.random.split(key, n_init))
  best = jnp.argmin(inertia)
  centers = centers[best]
  return centers, jnp.argmin(pairwise_sq_dists(x, centers), -1), inertia[best]
