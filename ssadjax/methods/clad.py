"""CLAD (Park, Moon, Ahn, Sohn, ICLR 2021 workshop): self-labelling by
clustering, a confidence classifier on the pseudo-labels, ODIN confidence as normality.

For a normal class that is a union of latent sub-classes (digits {0, 3, 8}), the
pipeline learns those sub-classes without labels and scores a test image by how
confidently the classifier puts it into one of them:

1. Convolutional autoencoder (models/clad.py `CAEEncoder`/`CAEDecoder`), MSE to the
   (standardised) input, input dropout 0.1, Adam 1e-3.                           [init]
2. K-means (k-means++ seeding, `kmeans_n_init` restarts, Lloyd iterations, all in jax)
   on the encoder features -> centres; DEC (Student-t soft assignments Q, target P per
   mini-batch, mean KL(P||Q)) fine-tunes encoder + centres with SGD(0.01, momentum 0.9)
   until fewer than `dec_tol` of the assignments change in an epoch; pseudo-label
   y* = argmax_j q_ij for every training row.                                     [init]
3. Classifier (small CNN, or ResNet-18) trained with cross-entropy on (x, y*): this is
   the stage the engine's main loop trains (checkpoints, vmap over seeds).
4. Score: ODIN. y_hat = argmax f(x); g = sign(d CE(f(x)/T, y_hat) / dx), with a zero
   gradient counted as +1 as the reference's torch.ge(grad, 0) (`odin_gradient_sign=
   'jnp_sign'`: 0); x~ = x - epsilon * scale * g; anomaly score = -max softmax(f(x~) / T).

Stages 1-2 are `lax.scan`s (epochs of steps) and a `lax.while_loop` (DEC with early
stop) inside `init`, so they run once per seed in the same vmapped program; their
products (standardisation statistics, pseudo-labels, centres, diagnostics) are the
method's `extras`. The sampler returns the rows' indices so that the loss can look the
pseudo-labels up (`extras['pseudo_labels'][index]`).

Labelled anomalies. CLAD is unsupervised. With `labelled_anomalies='exclude'` (default)
rows with semi_label 1 are left out of every stage: they are known not to belong to any
latent normal class, so clustering them and teaching the classifier to be confident on
them would work against the score (the classifier's batches are drawn from the
unlabelled rows only, so they do not reach the BatchNorm statistics either).
'ignore' treats them as unlabelled rows (the reference, which has no labels).
AnoOnly is refused: its loss would keep only the labelled-anomaly terms, i.e. train the
confidence classifier on anomalies alone (with pseudo-labels of normal sub-classes),
which inverts what the confidence score measures; and with la = 0 there is nothing to
keep. See docs/notes.md §15.

Reference-code oddities (the CLAD repository): its flip of AUROC < 0.5 to 1 - AUROC is
not reproduced: the project's metrics are never flipped. `odin_epsilon_scale` defaults to
the reference's 50 * 255 / 79 (so epsilon means what it means in the run scripts); 1.0
gives standard ODIN. Its "VAE" has no KL term: `ae_sampling=False` (default) uses the
deterministic features mu everywhere; True samples z = mu + sigma * eps (no KL, sigma
unconstrained) in pretraining, DEC, K-means features and pseudo-labelling, as the
reference; `ae_sigmoid=False` (default) gives the decoder a linear output because its
targets are standardised (can be negative), True is the reference's sigmoid. Its
train-mode training-accuracy pass does not arise: no training accuracy is computed, and
scoring always uses eval mode (or the policy's test-batch statistics).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssadjax import data as data_lib
from ssadjax import losses
from ssadjax.methods import base
from ssadjax.models import clad as models
from ssadjax.norm import NormPolicy, for_recompute, stats_mask

ODIN_REFERENCE_SCALE = 50.0 * 255.0 / 79.0  # the reference's ODIN step scale, ~161.4
LABELLED_ANOMALIES = ("exclude", "ignore")


# --------------------------------------------------------------------------------- k-means


def _sq_dists(x: jax.Array, centers: jax.Array) -> jax.Array:
  """`[n, K]` squared distances, clamped at 0."""
  xn = jnp.sum(jnp.square(x), -1)[:, None]
  cn = jnp.sum(jnp.square(centers), -1)[None, :]
  return jnp.maximum(xn + cn - 2.0 * x @ centers.T, 0.0)


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
    onehot = jax.nn.one_hot(jnp.argmin(_sq_dists(x, centers), -1), k, dtype=x.dtype)
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
    return centers, jnp.sum(jnp.min(_sq_dists(x, centers), -1))

  centers, inertia = jax.vmap(one)(jax.random.split(key, n_init))
  best = jnp.argmin(inertia)
  centers = centers[best]
  return centers, jnp.argmin(_sq_dists(x, centers), -1), inertia[best]


# ------------------------------------------------------------------------------------ ODIN


ODIN_GRADIENT_SIGNS = ("torch_ge", "jnp_sign")


def odin_direction(grad: jax.Array, gradient_sign: str = "torch_ge") -> jax.Array:
  """The sign of ODIN's step. 'torch_ge' is the reference's `(torch.ge(g, 0) - 0.5) * 2`:
  +1 where g >= 0, so a zero gradient still moves the input; 'jnp_sign' is sign(g), 0
  where g = 0 (the input stays put there)."""
  if gradient_sign == "torch_ge":
    return jnp.where(grad >= 0, 1.0, -1.0).astype(grad.dtype)
  if gradient_sign == "jnp_sign":
    return jnp.sign(grad)
  raise ValueError(f"clad.odin_gradient_sign={gradient_sign!r}; expected one of "
                   f"{ODIN_GRADIENT_SIGNS}")


def odin_perturb(logits_fn, x: jax.Array, *, temperature: float, epsilon: float,
                 gradient_sign: str = "torch_ge"):
  """ODIN's input pre-processing (Liang et al., 2018): x - epsilon * sign(grad_x CE(f(x)/T,
  argmax f(x))), the sign as `odin_direction(., gradient_sign)`. `logits_fn` must treat
  rows independently (eval-mode BatchNorm), so the gradient of the summed cross-entropy
  is each row's own gradient. Lowering the cross-entropy of the predicted class raises
  that class's softmax, i.e. the confidence."""

  def summed_ce(x_in):
    logits = logits_fn(x_in)
    y_hat = jax.lax.stop_gradient(jnp.argmax(logits, -1))
    return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits / temperature,
                                                                   y_hat))

  return x - epsilon * odin_direction(jax.grad(summed_ce)(x), gradient_sign)


def odin_confidence(logits_fn, x: jax.Array, *, temperature: float, epsilon: float,
                    gradient_sign: str = "torch_ge"):
  """max softmax(f(x~) / T) of the perturbed input; higher = more normal. `[n]`."""
  if epsilon:
    x = odin_perturb(logits_fn, x, temperature=temperature, epsilon=epsilon,
                     gradient_sign=gradient_sign)
  return losses.max_softmax(logits_fn(x), temperature=temperature)


# ---------------------------------------------------------------------------- helpers


def _blocked(fn, x: jax.Array, block: int):
  """`fn` over row blocks of `x` (`lax.map`), memory bounded by `block` rows."""
  n = x.shape[0]
  if n <= block:
    return fn(x)
  nb = -(-n // block)
  padded = jnp.concatenate([x, jnp.zeros((nb * block - n,) + x.shape[1:], x.dtype)])
  out = jax.lax.map(fn, padded.reshape((nb, block) + x.shape[1:]))
  return out.reshape((nb * block,) + out.shape[2:])[:n]


def channel_stats(x: jax.Array, image_shape) -> tuple[jax.Array, jax.Array]:
  """Per-channel mean and std over rows and pixels (std floored at 1e-6)."""
  images = models.as_images(x, image_shape)
  mean = jnp.mean(images, axis=(0, 1, 2))
  std = jnp.std(images, axis=(0, 1, 2))
  return mean, jnp.maximum(std, 1e-6)


def standardise(x: jax.Array, extras: dict, image_shape) -> jax.Array:
  """(x - mean_c) / std_c per channel, returned flattened `[B, h*w*c]`."""
  images = models.as_images(x, image_shape)
  return ((images - extras["mean"]) / extras["std"]).reshape((x.shape[0], -1))


def pool_sampler(batch_size: int, exclude_labelled: bool) -> base.Sampler:
  """Shuffled mini-batches over the unlabelled rows (or all rows), one permutation per
  epoch; the pool wraps around when an epoch asks for more rows than it has. The batch
  carries the rows' `index` for the pseudo-label lookup."""

  def begin_epoch(key, data):
    pool = data.unlabelled_index if exclude_labelled else jnp.arange(data.x.shape[0])
    return jax.random.permutation(key, pool)

  def batch(perm, i, key, data):
    del key
    rows = perm[(i * batch_size + jnp.arange(batch_size)) % perm.shape[0]]
    return {"x": data.x[rows], "semi_labels": data.semi_labels[rows], "index": rows}

  return base.Sampler(begin_epoch=begin_epoch, batch=batch)


# --------------------------------------------------------------------------- stages 1-2


def _features(encoder, enc_params, x, key, sampling: bool):
  mu, sigma = encoder.apply({"params": enc_params}, x)
  if sampling:
    return mu + sigma * jax.random.normal(key, mu.shape, mu.dtype)
  return mu


def pretrain_autoencoder(encoder, decoder, params, x, key, *, epochs: int, batch_size: int,
                         learning_rate: float, input_dropout: float, sampling: bool):
  """Stage 1: Adam on the mean squared reconstruction error of `x` (already standardised),
  shuffled mini-batches, input dropout. Returns (params, per-epoch mean losses)."""
  n = x.shape[0]
  batch_size = min(batch_size, n)
  steps = n // batch_size
  optimizer = optax.adam(learning_rate)

  def loss_fn(p, xb, key):
    drop_key, z_key = jax.random.split(key)
    x_in = xb
    if input_dropout > 0:  # PyTorch Dropout: zero with prob. p, scale the rest by 1/(1-p)
      keep = jax.random.bernoulli(drop_key, 1.0 - input_dropout, xb.shape)
      x_in = jnp.where(keep, xb / (1.0 - input_dropout), 0.0)
    z = _features(encoder, p["encoder"], x_in, z_key, sampling)
    return jnp.mean(jnp.square(decoder.apply({"params": p["decoder"]}, z) - xb))

  def epoch(carry, key):
    params, opt_state = carry
    perm_key, step_key = jax.random.split(key)
    perm = jax.random.permutation(perm_key, n)

    def step(carry, i):
      params, opt_state = carry
      rows = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size)
      loss, grads = jax.value_and_grad(loss_fn)(params, x[rows],
                                                jax.random.fold_in(step_key, i))
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    carry, step_losses = jax.lax.scan(step, (params, opt_state), jnp.arange(steps))
    return carry, jnp.mean(step_losses)

  (params, _), epoch_losses = jax.lax.scan(epoch, (params, optimizer.init(params)),
                                           jax.random.split(key, epochs))
  return params, epoch_losses


def train_dec(encoder, enc_params, centers, x, key, *, epochs: int, batch_size: int,
              learning_rate: float, momentum: float, tol: float, alpha: float,
              sampling: bool):
  """Stage 2: DEC on encoder + centres (SGD with momentum, mean KL(P||Q) per mini-batch,
  P from the batch's own Q, detached). Stops after the first epoch after which fewer
  than `tol` of the rows changed their hard assignment (or after `epochs`).

  Returns ({'encoder', 'centers'}, epochs run, last fraction of changed assignments).
  """
  n = x.shape[0]
  batch_size = min(batch_size, n)
  steps = n // batch_size
  optimizer = optax.sgd(learning_rate, momentum=momentum if momentum else None)
  params = {"encoder": enc_params, "centers": centers}

  def assign(p, key):
    z = _features(encoder, p["encoder"], x, key, sampling)
    return jnp.argmax(losses.student_t_assignment(z, p["centers"], alpha=alpha), -1)

  def loss_fn(p, xb, key):
    q = losses.student_t_assignment(_features(encoder, p["encoder"], xb, key, sampling),
                                    p["centers"], alpha=alpha)
    target = jax.lax.stop_gradient(losses.dec_target_distribution(q))
    return jnp.mean(losses.dec_kl_terms(q, target))

  def body(carry):
    epoch, params, opt_state, previous, _ = carry
    perm_key, step_key, assign_key = jax.random.split(jax.random.fold_in(key, epoch), 3)
    perm = jax.random.permutation(perm_key, n)

    def step(carry, i):
      params, opt_state = carry
      rows = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size)
      grads = jax.grad(loss_fn)(params, x[rows], jax.random.fold_in(step_key, i))
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None

    (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), jnp.arange(steps))
    labels = assign(params, assign_key)
    changed = jnp.mean((labels != previous).astype(jnp.float32))
    return epoch + 1, params, opt_state, labels, changed

  def cond(carry):
    epoch, _, _, _, changed = carry
    return (epoch < epochs) & (changed >= tol)

  key, first_key = jax.random.split(key)
  start = (jnp.int32(0), params, optimizer.init(params), assign(params, first_key),
           jnp.float32(1.0))
  epoch, params, _, _, changed = jax.lax.while_loop(cond, body, start)
  return params, epoch, changed


# ---------------------------------------------------------------------------------- method


def resolve_image_shape(cfg, hp, input_dim: int) -> tuple[int, int, int]:
  shape = tuple(hp.get("image_shape", ()) or ()) or data_lib.feature_shape(
      cfg.get("dataset", "") or "")
  if not shape:
    raise ValueError(
        "clad needs images: use an image dataset (tfds:mnist/<k>, sklearn:digits/<k>, "
        "latent:sklearn:digits/0+3+8, ...) or set clad.image_shape=(h, w, c)")
  if len(shape) != 3 or int(np.prod(shape)) != input_dim:
    raise ValueError(f"clad.image_shape {shape} does not match {input_dim} features")
  return tuple(int(s) for s in shape)


def make_method(cfg, input_dim: int, num_train: int, *, insert_norm: bool = False
                ) -> base.Method:
  """CLAD from `cfg.clad` (see ssadjax/config.py for every field)."""
  del insert_norm  # AnoOnly is refused in methods.build (NO_ANOONLY)
  hp = cfg.clad
  if hp.labelled_anomalies not in LABELLED_ANOMALIES:
    raise ValueError(f"clad.labelled_anomalies={hp.labelled_anomalies!r}; expected one of "
                     f"{LABELLED_ANOMALIES}")
  if hp.temperature <= 0:
    raise ValueError(f"clad.temperature={hp.temperature} must be > 0")
  if hp.num_clusters < 2:
    raise ValueError(f"clad.num_clusters={hp.num_clusters} must be >= 2")
  image_shape = resolve_image_shape(cfg, hp, input_dim)
  policy = NormPolicy.from_config(cfg.norm)
  if policy.placement != "reference":
    raise ValueError(f"norm.placement={policy.placement!r}: clad's classifiers keep their "
                     "reference norms (after every convolution); use 'reference'")
  exclude = hp.labelled_anomalies == "exclude"
  k = int(hp.num_clusters)
  encoder = models.CAEEncoder(image_shape=image_shape, channels=tuple(hp.ae_channels),
                              dense=hp.ae_dense, latent_dim=hp.latent_dim)
  decoder = models.CAEDecoder(image_shape=image_shape, channels=tuple(hp.ae_channels),
                              dense=hp.ae_dense, sigmoid=hp.ae_sigmoid)
  classifier = models.make_classifier(hp.classifier, num_classes=k, image_shape=image_shape,
                                      norm=policy, cnn_channels=tuple(hp.cnn_channels))
  batch_size = min(int(hp.batch_size), num_train)
  steps_per_epoch = num_train // batch_size
  # The same classifier with momentum-0 statistics: norm.eval_stats='recomputed'.
  stats_classifier = classifier.clone(norm=for_recompute(policy))
  prep = functools.partial(standardise, image_shape=image_shape)
  epsilon = float(hp.odin_epsilon) * float(hp.odin_epsilon_scale)
  gradient_sign = hp.get("odin_gradient_sign", "torch_ge")
  odin_direction(jnp.zeros(1), gradient_sign)  # a clear error for an unknown value now

  def init(init_key, extras_key, data):
    n = data.x.shape[0]
    pool = data.unlabelled_index if exclude else jnp.arange(n)
    if pool.shape[0] < k:
      raise ValueError(f"clad: {pool.shape[0]} training rows to cluster, fewer than "
                       f"clad.num_clusters={k}")
    x_fit = data.x[pool]
    if hp.standardize:
      mean, std = channel_stats(x_fit, image_shape)
    else:
      mean, std = jnp.zeros(image_shape[-1]), jnp.ones(image_shape[-1])
    stats = {"mean": mean, "std": std}
    x_fit = prep(x_fit, stats)
    keys = jax.random.split(extras_key, 7)
    ae_params = {"encoder": encoder.init(keys[0], x_fit[:2])["params"],
                 "decoder": decoder.init(keys[1], jnp.zeros((2, hp.latent_dim)))["params"]}
    ae_losses = jnp.zeros((0,))
    if hp.ae_epochs > 0:
      ae_params, ae_losses = pretrain_autoencoder(
          encoder, decoder, ae_params, x_fit, keys[2], epochs=hp.ae_epochs,
          batch_size=hp.ae_batch_size, learning_rate=hp.ae_learning_rate,
          input_dropout=hp.ae_input_dropout, sampling=hp.ae_sampling)
    z = _features(encoder, ae_params["encoder"], x_fit, keys[3], hp.ae_sampling)
    centers, _, inertia = kmeans(keys[4], z, k, n_init=hp.kmeans_n_init,
                                 num_iters=hp.kmeans_iters)
    dec_params = {"encoder": ae_params["encoder"], "centers": centers}
    dec_epochs, changed = jnp.int32(0), jnp.float32(1.0)
    if hp.dec_epochs > 0:
      dec_params, dec_epochs, changed = train_dec(
          encoder, ae_params["encoder"], centers, x_fit, keys[5], epochs=hp.dec_epochs,
          batch_size=hp.dec_batch_size, learning_rate=hp.dec_learning_rate,
          momentum=hp.dec_momentum, tol=hp.dec_tol, alpha=hp.dec_alpha,
          sampling=hp.ae_sampling)
    # Pseudo-labels for every row (labelled anomalies included, never drawn if excluded).
    z_all = _features(encoder, dec_params["encoder"], prep(data.x, stats), keys[6],
                      hp.ae_sampling)
    pseudo = jnp.argmax(losses.student_t_assignment(z_all, dec_params["centers"],
                                                    alpha=hp.dec_alpha), -1)
    variables = classifier.init(init_key, prep(data.x[:2], stats), train=False)
    extras = {
        **stats,
        "pseudo_labels": pseudo.astype(jnp.int32),
        "centers": dec_params["centers"],
        "cluster_sizes": jnp.bincount(pseudo[pool], length=k).astype(jnp.int32),
        "kmeans_inertia": inertia,
        "ae_loss": ae_losses[-1] if hp.ae_epochs > 0 else jnp.float32(jnp.nan),
        "dec_epochs": dec_epochs,
        "dec_changed": changed,
    }
    return variables, extras

  def per_example_loss(params, batch_stats, extras, batch, key):
    del key
    logits, new_batch_stats = base.apply_train(
        classifier, params, batch_stats, prep(batch["x"], extras),
        norm_mask=stats_mask(policy, batch["semi_labels"]))
    targets = extras["pseudo_labels"][batch["index"]]
    per_example = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    return per_example, batch["semi_labels"] == 1, new_batch_stats

  def score(variables, extras, x):
    logits_fn = lambda x_in: base.apply_eval(classifier, variables, x_in,
                                             eval_stats=policy.eval_stats)
    block = lambda xb: -odin_confidence(logits_fn, prep(xb, extras),
                                        temperature=hp.temperature, epsilon=epsilon,
                                        gradient_sign=gradient_sign)
    return _blocked(block, x, int(hp.score_block))

  return base.Method(
      name="clad",
      init=init,
      sampler=pool_sampler(batch_size, exclude),
      per_example_loss=per_example_loss,
      score=score,
      optimizer=optax.adam(hp.learning_rate),
      steps_per_epoch=steps_per_epoch,
      num_epochs=hp.num_epochs,
      batch_statistics=lambda params, batch_stats, extras, x: base.exact_batch_stats(
          stats_classifier, params, batch_stats, prep(x, extras)),
  )
