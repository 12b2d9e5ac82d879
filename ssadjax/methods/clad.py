"""CLAD (Park, Moon, Ahn, Sohn, ICLR 2021 workshop): self-labelling by
clustering, a confidence classifier on the pseudo-labels, ODIN confidence as normality.

For a normal class that is a union of latent sub-classes (digits {0, 3, 8}), the
pipeline learns those sub-classes without labels and scores a test image by how
confidently the classifier puts it into one of them:

1. Convolutional autoencoder (models/clad.py `CAEEncoder`/`CAEDecoder`), MSE to the
   (standardised) input, input dropout 0.1, Adam 1e-3.            [stage 'autoencoder']
2. K-means (k-means++ seeding, `kmeans_n_init` restarts, Lloyd iterations, all in jax)
   on the encoder features -> centres; DEC (Student-t soft assignments Q, target P per
   mini-batch, mean KL(P||Q)) fine-tunes encoder + centres with SGD(0.01, momentum 0.9)
   until fewer than `dec_tol` of the assignments change in an epoch; pseudo-label
   y* = argmax_j q_ij for every training row.                         [stage 'cluster']
3. Classifier (small CNN, or ResNet-18) trained with cross-entropy on (x, y*): this is
   the stage the engine's main loop trains (checkpoints, vmap over seeds).
4. Score: ODIN. y_hat = argmax f(x); g = sign(d CE(f(x)/T, y_hat) / dx), with a zero
   gradient counted as +1 as the reference's torch.ge(grad, 0) (`odin_gradient_sign=
   'jnp_sign'`: 0); x~ = x - epsilon * scale * g; anomaly score = -max softmax(f(x~) / T).

Stages 1-2 are engine stages (`base.Stage`): the engine runs them epoch by epoch before
the classifier, in the same vmapped program, with checkpoints, progress and the divergence
check; DEC's early stop makes its remaining epochs no-ops. Their products (the encoder,
pseudo-labels, centres, diagnostics) and the standardisation statistics are the method's
`extras`. The sampler returns the rows' indices so that the loss can look the
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
keep. See docs/methods/clad.md.

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
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssadjax import losses, ops, optim
from ssadjax.methods import base
from ssadjax.models.variables import apply_eval, apply_train, exact_batch_stats
from ssadjax.models import clad as models
from ssadjax.norm import NormPolicy, for_recompute, stats_mask

ODIN_REFERENCE_SCALE = 50.0 * 255.0 / 79.0  # the reference's ODIN step scale, ~161.4
LABELLED_ANOMALIES = ("exclude", "ignore")


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


def odin_confidence(logits_fn, x: jax.Array, *, temperature: float, epsilon: float | None,
                    gradient_sign: str = "torch_ge"):
  """max softmax(f(x~) / T) of the perturbed input; higher = more normal. `[n]`.
  `epsilon` None or 0: no perturbation (a traced epsilon always perturbs)."""
  if epsilon is not None and (isinstance(epsilon, jax.Array) or epsilon != 0):
    x = odin_perturb(logits_fn, x, temperature=temperature, epsilon=epsilon,
                     gradient_sign=gradient_sign)
  return losses.max_softmax(logits_fn(x), temperature=temperature)


# ---------------------------------------------------------------------------- helpers


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


def _shuffled_epoch(loss_fn, carry, x, perm, step_key, *, batch_size: int, steps: int,
                    optimizer):
  """`steps` optimizer steps on consecutive batches of `perm`; `loss_fn(params, rows,
  key)`. Returns ((params, opt_state), mean loss)."""
  def step(carry, i):
    params, opt_state = carry
    rows = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size)
    loss, grads = jax.value_and_grad(loss_fn)(params, x[rows],
                                              jax.random.fold_in(step_key, i))
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  carry, step_losses = jax.lax.scan(step, carry, jnp.arange(steps))
  return carry, jnp.mean(step_losses)


def autoencoder_epoch(encoder, decoder, carry, key, x, *, batch_size: int, optimizer,
                      input_dropout: float, sampling: bool):
  """One stage-1 epoch: Adam on the mean squared reconstruction error of `x` (already
  standardised), shuffled mini-batches, input dropout. `carry` = (params, opt_state);
  returns it and the epoch's mean loss."""
  n = x.shape[0]
  batch_size = min(batch_size, n)
  steps = n // batch_size

  def loss_fn(p, xb, key):
    drop_key, z_key = jax.random.split(key)
    x_in = xb
    if input_dropout > 0:  # PyTorch Dropout: zero with prob. p, scale the rest by 1/(1-p)
      keep = jax.random.bernoulli(drop_key, 1.0 - input_dropout, xb.shape)
      x_in = jnp.where(keep, xb / (1.0 - input_dropout), 0.0)
    z = _features(encoder, p["encoder"], x_in, z_key, sampling)
    return jnp.mean(jnp.square(decoder.apply({"params": p["decoder"]}, z) - xb))

  perm_key, step_key = jax.random.split(key)
  perm = jax.random.permutation(perm_key, n)
  return _shuffled_epoch(loss_fn, carry, x, perm, step_key, batch_size=batch_size,
                         steps=steps, optimizer=optimizer)


def pretrain_autoencoder(encoder, decoder, params, x, key, *, epochs: int, batch_size: int,
                         learning_rate: float, input_dropout: float, sampling: bool):
  """Stage 1 in one call (the method runs it as an engine stage, epoch by epoch, with
  the same keys). Returns (params, per-epoch mean losses)."""
  optimizer = optax.adam(learning_rate)
  epoch = functools.partial(autoencoder_epoch, encoder, decoder, x=x, batch_size=batch_size,
                            optimizer=optimizer, input_dropout=input_dropout,
                            sampling=sampling)
  (params, _), epoch_losses = jax.lax.scan(epoch, (params, optimizer.init(params)),
                                           jax.random.split(key, epochs))
  return params, epoch_losses


def dec_optimizer(learning_rate: float, momentum: float) -> optax.GradientTransformation:
  return optax.sgd(learning_rate, momentum=momentum if momentum else None)


def dec_assign(encoder, params, x, key, *, alpha: float, sampling: bool) -> jax.Array:
  """Hard cluster assignment of every row of `x` under DEC's Student-t kernel."""
  z = _features(encoder, params["encoder"], x, key, sampling)
  return jnp.argmax(losses.student_t_assignment(z, params["centers"], alpha=alpha), -1)


def dec_epoch(encoder, params, opt_state, x, key, epoch, *, batch_size: int, optimizer,
              alpha: float, sampling: bool):
  """One stage-2 epoch over shuffled mini-batches of `x` (mean KL(P||Q) per batch, P from
  the batch's own Q, detached). Returns (params, opt_state, the rows' hard assignments
  after it, the epoch's mean loss)."""
  n = x.shape[0]
  batch_size = min(batch_size, n)
  steps = n // batch_size
  perm_key, step_key, assign_key = jax.random.split(jax.random.fold_in(key, epoch), 3)
  perm = jax.random.permutation(perm_key, n)

  def loss_fn(p, xb, key):
    q = losses.student_t_assignment(_features(encoder, p["encoder"], xb, key, sampling),
                                    p["centers"], alpha=alpha)
    target = jax.lax.stop_gradient(losses.dec_target_distribution(q))
    return jnp.mean(losses.dec_kl_terms(q, target))

  (params, opt_state), loss = _shuffled_epoch(loss_fn, (params, opt_state), x, perm,
                                              step_key, batch_size=batch_size, steps=steps,
                                              optimizer=optimizer)
  labels = dec_assign(encoder, params, x, assign_key, alpha=alpha, sampling=sampling)
  return params, opt_state, labels, loss


def train_dec(encoder, enc_params, centers, x, key, *, epochs: int, batch_size: int,
              learning_rate: float, momentum: float, tol: float, alpha: float,
              sampling: bool):
  """Stage 2 in one call: DEC on encoder + centres (SGD with momentum). Stops after the
  first epoch after which fewer than `tol` of the rows changed their hard assignment (or
  after `epochs`). The method runs it as an engine stage with the same keys.

  Returns ({'encoder', 'centers'}, epochs run, last fraction of changed assignments).
  """
  optimizer = dec_optimizer(learning_rate, momentum)
  params = {"encoder": enc_params, "centers": centers}

  def body(carry):
    epoch, params, opt_state, previous, _ = carry
    params, opt_state, labels, _ = dec_epoch(
        encoder, params, opt_state, x, key_rest, epoch, batch_size=batch_size,
        optimizer=optimizer, alpha=alpha, sampling=sampling)
    changed = jnp.mean((labels != previous).astype(jnp.float32))
    return epoch + 1, params, opt_state, labels, changed

  def cond(carry):
    epoch, _, _, _, changed = carry
    return (epoch < epochs) & (changed >= tol)

  key_rest, first_key = jax.random.split(key)
  start = (jnp.int32(0), params, optimizer.init(params),
           dec_assign(encoder, params, x, first_key, alpha=alpha, sampling=sampling),
           jnp.float32(1.0))
  epoch, params, _, _, changed = jax.lax.while_loop(cond, body, start)
  return params, epoch, changed


# ---------------------------------------------------------------------------------- method


def resolve_image_shape(hp, dataset_shape: tuple, input_dim: int) -> tuple[int, int, int]:
  """`clad.image_shape` when set, else the image dataset's shape."""
  shape = tuple(hp.get("image_shape", ()) or ()) or tuple(dataset_shape or ())
  if not shape:
    raise ValueError(
        "clad needs images: use an image dataset (tfds:mnist/<k>, sklearn:digits/<k>, "
        "latent:sklearn:digits/0+3+8, ...) or set clad.image_shape=(h, w, c)")
  if len(shape) != 3 or int(np.prod(shape)) != input_dim:
    raise ValueError(f"clad.image_shape {shape} does not match {input_dim} features")
  return tuple(int(s) for s in shape)


def make_method(hp: dict, policy: NormPolicy, input_dim: int, num_train: int, *,
                image_shape: tuple = (), insert_norm: bool = False) -> base.Method:
  """CLAD from its hyper-parameters (`cfg.clad`; ssadjax/hparams/clad.py lists every field) for
  images of `clad.image_shape` or else of the dataset's `image_shape`."""
  del insert_norm  # no AnoOnly variant
  image_shape = resolve_image_shape(hp, image_shape, input_dim)
  hp = types.SimpleNamespace(**hp)
  if hp.labelled_anomalies not in LABELLED_ANOMALIES:
    raise ValueError(f"clad.labelled_anomalies={hp.labelled_anomalies!r}; expected one of "
                     f"{LABELLED_ANOMALIES}")
  if hp.temperature <= 0:
    raise ValueError(f"clad.temperature={hp.temperature} must be > 0")
  for field in ("learning_rate", "ae_learning_rate", "dec_learning_rate"):
    if not getattr(hp, field) > 0:
      raise ValueError(f"clad.{field}={getattr(hp, field)} must be > 0")
  if hp.num_clusters < 2:
    raise ValueError(f"clad.num_clusters={hp.num_clusters} must be >= 2")
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
  gradient_sign = hp.odin_gradient_sign
  odin_direction(jnp.zeros(1), gradient_sign)  # a clear error for an unknown value now

  def fit_pool(data):
    """Indices of the rows the autoencoder and the clustering fit (static shape)."""
    return data.unlabelled_index if exclude else jnp.arange(data.x.shape[0])

  def init(init_key, extras_key, data):
    n = data.x.shape[0]
    pool = fit_pool(data)
    if pool.shape[0] < k:
      raise ValueError(f"clad: {pool.shape[0]} training rows to cluster, fewer than "
                       f"clad.num_clusters={k}")
    x_fit = data.x[pool]
    if hp.standardize:
      mean, std = channel_stats(x_fit, image_shape)
    else:
      mean, std = jnp.zeros(image_shape[-1]), jnp.ones(image_shape[-1])
    stats = {"mean": mean, "std": std}
    keys = jax.random.split(extras_key, 7)
    variables = classifier.init(init_key, prep(data.x[:2], stats), train=False)
    # The stages fill these in: the autoencoder stage the encoder and its loss, the
    # clustering stage the centres, pseudo-labels and its diagnostics.
    extras = {
        **stats,
        "encoder": encoder.init(keys[0], prep(x_fit[:2], stats))["params"],
        "pseudo_labels": jnp.zeros(n, jnp.int32),
        "centers": jnp.zeros((k, hp.latent_dim), jnp.float32),
        "cluster_sizes": jnp.zeros(k, jnp.int32),
        "kmeans_inertia": jnp.float32(jnp.nan),
        "ae_loss": jnp.float32(jnp.nan),
        "dec_epochs": jnp.int32(0),
        "dec_changed": jnp.float32(1.0),
    }
    return variables, extras

  def fit_rows(extras, data):
    return prep(jnp.asarray(data.x)[fit_pool(data)], extras)

  def autoencoder_stage() -> base.Stage:
    """Stage 1: the convolutional autoencoder on the pool's rows; after every epoch its
    encoder is `extras['encoder']` and its epoch loss `extras['ae_loss']`. Its rate is
    run data (`ae_learning_rate`: updates scale by the run's rate over this one)."""
    optimizer = optim.rate_scaled(optax.adam(hp.ae_learning_rate))

    def run_values(extras):
      return optim.run_rate(extras, "ae_learning_rate", hp.ae_learning_rate)

    def init(variables, extras, extras_key, data):
      keys = jax.random.split(extras_key, 7)
      params = {"encoder": extras["encoder"],
                "decoder": decoder.init(keys[1], jnp.zeros((2, hp.latent_dim)))["params"]}
      opt_state = optim.with_run_values(optimizer.init(params), run_values(extras))
      return {"params": params, "opt_state": opt_state,
              "keys": jax.random.key_data(jax.random.split(keys[2], hp.ae_epochs)),
              "loss": jnp.float32(jnp.nan)}

    def epoch(state, index, extras, data):
      (params, opt_state), loss = autoencoder_epoch(
          encoder, decoder, (state["params"], state["opt_state"]),
          jax.random.wrap_key_data(state["keys"][index]), fit_rows(extras, data),
          batch_size=hp.ae_batch_size, optimizer=optimizer,
          input_dropout=hp.ae_input_dropout, sampling=hp.ae_sampling)
      return {**state, "params": params, "opt_state": opt_state, "loss": loss}, loss

    def result(variables, extras, state):
      return variables, {**extras, "encoder": state["params"]["encoder"],
                         "ae_loss": state["loss"]}

    return base.Stage(name="autoencoder", num_epochs=hp.ae_epochs,
                      steps_per_epoch=num_train // min(hp.ae_batch_size, num_train),
                      init=init, epoch=epoch, result=result)

  def cluster_stage() -> base.Stage:
    """K-means on the encoder's features (epoch 1, reported loss: inertia per row), then
    up to `dec_epochs` DEC epochs that stop once fewer than `dec_tol` of the rows change
    cluster (the remaining epochs are no-ops). After every epoch the centres, the
    pseudo-labels of every row (the classifier's targets; labelled anomalies included,
    never drawn if excluded) and the cluster sizes are in `extras`. DEC's rate and
    momentum (when > 0) are run data."""
    # The rate scales the updates (SGD's are proportional to it); the momentum is
    # injected. Momentum 0 is no momentum trace at all (another optimizer state): program.
    momentum = ("momentum",) if hp.dec_momentum else ()
    optimizer = optim.rate_scaled(optim.injected(
        optax.sgd, momentum, learning_rate=hp.dec_learning_rate,
        momentum=hp.dec_momentum or None))

    def run_values(extras):
      run = extras["hparams"]
      return {**optim.run_rate(extras, "dec_learning_rate", hp.dec_learning_rate),
              **({"momentum": run["dec_momentum"]} if momentum else {})}
    dec = functools.partial(dec_epoch, encoder, batch_size=hp.dec_batch_size,
                            optimizer=optimizer, sampling=hp.ae_sampling)

    def init(variables, extras, extras_key, data):
      params = {"encoder": extras["encoder"], "centers": extras["centers"]}
      opt_state = optim.with_run_values(optimizer.init(params), run_values(extras))
      return {"params": params, "opt_state": opt_state,
              "previous": jnp.zeros(fit_pool(data).shape[0], jnp.int32),
              "keys": jax.random.key_data(jax.random.split(extras_key, 7)),
              "dec_epochs": jnp.int32(0), "changed": jnp.float32(1.0),
              "inertia": jnp.float32(jnp.nan), "pseudo": jnp.zeros(data.x.shape[0], jnp.int32),
              "sizes": jnp.zeros(k, jnp.int32)}

    def epoch(state, index, extras, data):
      # Run data (Method.run_hparams): the Student-t degrees and the stopping tolerance.
      alpha, tol = extras["hparams"]["dec_alpha"], extras["hparams"]["dec_tol"]
      keys = jax.random.wrap_key_data(state["keys"])
      x_fit = fit_rows(extras, data)
      rest_key, first_key = jax.random.split(keys[5])

      def cluster(state):
        z = _features(encoder, extras["encoder"], x_fit, keys[3], hp.ae_sampling)
        centers, _, inertia = ops.kmeans(keys[4], z, k, n_init=hp.kmeans_n_init,
                                         num_iters=hp.kmeans_iters)
        params = {"encoder": extras["encoder"], "centers": centers}
        previous = dec_assign(encoder, params, x_fit, first_key, alpha=alpha,
                              sampling=hp.ae_sampling)
        # DEC starts afresh from the k-means centres, at this run's rate and momentum
        opt_state = optim.with_run_values(optimizer.init(params), run_values(extras))
        return ({**state, "params": params, "opt_state": opt_state,
                 "previous": previous, "inertia": inertia},
                inertia / x_fit.shape[0])

      def train(state):
        params, opt_state, labels, loss = dec(state["params"], state["opt_state"], x_fit,
                                              rest_key, state["dec_epochs"], alpha=alpha)
        changed = jnp.mean((labels != state["previous"]).astype(jnp.float32))
        return ({**state, "params": params, "opt_state": opt_state, "previous": labels,
                 "dec_epochs": state["dec_epochs"] + 1, "changed": changed}, loss)

      def converged(state):
        return state, jnp.float32(0.0)

      state, loss = jax.lax.switch(
          jnp.where(index == 0, 0, jnp.where(state["changed"] >= tol, 1, 2)),
          [cluster, train, converged], state)
      z_all = _features(encoder, state["params"]["encoder"], prep(data.x, extras), keys[6],
                        hp.ae_sampling)
      pseudo = jnp.argmax(losses.student_t_assignment(z_all, state["params"]["centers"],
                                                      alpha=alpha), -1)
      pseudo = pseudo.astype(jnp.int32)
      sizes = jnp.bincount(pseudo[fit_pool(data)], length=k).astype(jnp.int32)
      return {**state, "pseudo": pseudo, "sizes": sizes}, loss

    def result(variables, extras, state):
      pseudo = state["pseudo"]
      return variables, {
          **extras, "encoder": state["params"]["encoder"],
          "centers": state["params"]["centers"], "pseudo_labels": pseudo,
          "cluster_sizes": state["sizes"],
          "kmeans_inertia": state["inertia"], "dec_epochs": state["dec_epochs"],
          "dec_changed": state["changed"]}

    return base.Stage(name="cluster", num_epochs=1 + hp.dec_epochs,
                      steps_per_epoch=num_train // min(hp.dec_batch_size, num_train),
                      init=init, epoch=epoch, result=result)

  def per_example_loss(params, batch_stats, extras, batch, key):
    del key
    logits, new_batch_stats = apply_train(
        classifier, params, batch_stats, prep(batch["x"], extras),
        norm_mask=stats_mask(policy, batch["semi_labels"]))
    targets = extras["pseudo_labels"][batch["index"]]
    per_example = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    return per_example, batch["semi_labels"] == 1, new_batch_stats

  def score(variables, extras, x):
    logits_fn = lambda x_in: apply_eval(classifier, variables, x_in,
                                             eval_stats=policy.eval_stats)
    run = extras["hparams"]
    # ODIN's T and epsilon are run data; epsilon 0 (no perturbation) is program.
    epsilon = (run["odin_epsilon"] * float(hp.odin_epsilon_scale) if hp.odin_epsilon
               else None)
    block = lambda xb: -odin_confidence(logits_fn, prep(xb, extras),
                                        temperature=run["temperature"], epsilon=epsilon,
                                        gradient_sign=gradient_sign)
    return ops.blocked_map(block, x, int(hp.score_block))

  return base.Method(
      name="clad",
      init=init,
      sampler=pool_sampler(batch_size, exclude),
      per_example_loss=per_example_loss,
      score=score,
      optimizer=optax.adam(hp.learning_rate),
      steps_per_epoch=steps_per_epoch,
      num_epochs=hp.num_epochs,
      batch_statistics=lambda params, batch_stats, extras, x: exact_batch_stats(
          stats_classifier, params, batch_stats, prep(x, extras)),
      stages=((autoencoder_stage(),) if hp.ae_epochs > 0 else ()) + (cluster_stage(),),
      # Adam's updates are proportional to the rate: a learning-rate sweep is one program.
      learning_rate=hp.learning_rate,
      # ODIN's temperature and epsilon (when > 0), the stages' rates, DEC's momentum
      # (when > 0), Student-t degrees and stopping tolerance are run data; sizes and
      # lengths stay program.
      run_hparams={"temperature": hp.temperature, "dec_alpha": hp.dec_alpha,
                   "dec_tol": hp.dec_tol, "ae_learning_rate": hp.ae_learning_rate,
                   "dec_learning_rate": hp.dec_learning_rate,
                   **({"dec_momentum": hp.dec_momentum} if hp.dec_momentum else {}),
                   **({"odin_epsilon": hp.odin_epsilon} if hp.odin_epsilon else {})},
  )
