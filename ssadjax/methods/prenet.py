"""PReNet (Pang et al., "Deep Weakly-supervised Anomaly Detection", KDD 2023).

A pairwise relation network phi(x_i, x_j) regresses ordinal targets: (a, a) -> 8,
(a, u) -> 4, (u, u) -> 0. Three references disagree; the presets pick:

* 'adbench' (default; ADBench's PyTorch port): (a, u) orientation, anomaly on the left;
  every draw with replacement; RMSprop (alpha 0.99, eps 1e-8) lr 1e-3 with PyTorch
  weight decay 1e-2 on all parameters added to the gradient; constant lr; last epoch;
  30 + 30 references drawn per test point.
* 'anoonly_paper' (the AnoOnly copy, both variants): as 'adbench', plus cosine
  annealing per epoch (T_max 50 epochs, eta_min 1e-5) and unlabelled rows drawn without
  replacement within each draw (needs >= 256 unlabelled rows).
* 'official' (mala-lab/PReNet, Keras 2): (u, a) orientation, Glorot-uniform kernels and
  zero biases, L2 0.01 on psi's kernels in the loss (no weight decay), RMSprop (rho 0.9,
  eps 1e-7) with clipnorm 1 (Keras 2 clips the global norm), distinct anomalies in an
  (a, a) pair, unlabelled rows without replacement within each draw, best-training-loss
  epoch, one shared set of references for all test points.

Every preset-dependent field is a placeholder in `cfg.prenet` and wins when set (values,
defaults and the AnoOnly changes in ssadjax/hparams/prenet.py).

Scoring with reference pairs: the references are drawn from the training pools, which
the engine passes to `score` (`Method.needs_train_data`; they are never stored in the
state), with a scoring key kept as raw key data in `extras` (typed keys cannot be
checkpointed). Because the head is linear, the x-dependent part of
the score is (w_left + w_right) . psi(x) in every formula; the references only add a
per-test-point offset (pure noise for the ranking when drawn per point, a constant when
shared). See docs/methods/prenet.md.
"""

import math

import jax
import jax.numpy as jnp
import optax

from ssadjax import losses, optim
from ssadjax.methods import base
from ssadjax.methods import train_data
from ssadjax.models.variables import apply_eval, apply_train, exact_batch_stats, replace_param
from ssadjax.models.layers import true_fan_kernel
from ssadjax.models.prenet import INIT_SCHEMES, PReNet, PReNetFeatures
from ssadjax.norm import NormPolicy, for_recompute, stats_mask

ORIENTATIONS = ("adbench", "official")
SCORE_REFERENCES = ("per_point", "shared")
LR_SCHEDULES = ("constant", "cosine")
CLIPNORM_MODES = ("global", "per_tensor")

def _check_choice(name, value, allowed):
  if value not in allowed:
    raise ValueError(f"prenet.{name}={value!r}; expected one of {allowed}")


# ----------------------------------------------------------------------------- sampler


def pair_sampler(*, batch_size: int = 512, orientation: str = "adbench",
                 unlabelled_replace: bool = True,
                 distinct_anomaly_pairs: bool = False) -> base.Sampler:
  """PReNet's pair batches, in-graph with static shapes.

  With q = batch_size / 4, a batch holds q (a, a) pairs, q mixed pairs and 2q (u, u)
  pairs, built from six draws as ADBench does: three draws of q labelled anomalies
  (with replacement), one draw of q and two of 2q unlabelled rows (with replacement, or
  without replacement within each draw). Mixed pairs are (a, u) with
  `orientation='adbench'` and (u, a) with 'official'. The pairs are kept in block order
  (ADBench shuffles them, which changes neither the mean loss nor the batch statistics).

  The batch dict holds `x_left`, `x_right` `[B, d]`, `semi_labels_left`,
  `semi_labels_right` `[B]` (the ordinal targets follow from them:
  `losses.pair_relation_targets`), and the Sampler interface's `x` / `semi_labels`
  (`[2B, ...]`: left rows then right rows, as one joint pass sees them).
  """
  _check_choice("orientation", orientation, ORIENTATIONS)
  if batch_size % 4 or batch_size < 4:
    raise ValueError(f"prenet.batch_size={batch_size} must be a positive multiple of 4")
  q = batch_size // 4

  def begin_epoch(key, data):
    del key, data
    return ()

  def batch(epoch_state, i, key, data):
    del epoch_state, i
    data = jax.tree.map(jnp.asarray, data)  # host arrays work too (tests)
    # Padded data (shape buckets): the counts are traced and the host checked them.
    num_anomalies = train_data.anomaly_count(data)
    num_unlabelled = train_data.unlabelled_count(data)
    if not train_data.is_padded(data) and num_anomalies < 1:
      raise ValueError("PReNet needs at least one labelled anomaly")
    if not train_data.is_padded(data) and distinct_anomaly_pairs and num_anomalies < 2:
      raise ValueError("prenet.distinct_anomaly_pairs=True needs >= 2 labelled anomalies, "
                       f"the training set has {num_anomalies}")
    if not train_data.is_padded(data) and not unlabelled_replace and num_unlabelled < 2 * q:
      raise ValueError(
          f"prenet.unlabelled_replace=False draws {2 * q} distinct unlabelled rows per "
          f"draw, but the training set has only {num_unlabelled}; use "
          "--config.prenet.unlabelled_replace=True")
    keys = jax.random.split(key, 6)

    def anomalies(k, n):
      return data.anomaly_index[jax.random.randint(k, (n,), 0, num_anomalies)]

    def unlabelled(k, n):
      if unlabelled_replace:
        return data.unlabelled_index[jax.random.randint(k, (n,), 0, num_unlabelled)]
      # A uniformly random n-subset in random order: the positions of the n largest of
      # iid uniforms (top_k is ~20x faster on CPU than random.choice(replace=False),
      # which permutes the whole pool).
      size = data.unlabelled_index.shape[0]
      uniforms = jax.random.uniform(k, (size,))
      if train_data.is_padded(data):  # padded pool entries are never among the n largest
        uniforms = jnp.where(jnp.arange(size) < num_unlabelled, uniforms, -1.0)
      _, positions = jax.lax.top_k(uniforms, n)
      return data.unlabelled_index[positions]

    a_first = jax.random.randint(keys[0], (q,), 0, num_anomalies)
    if distinct_anomaly_pairs:
      # Uniform over the other anomalies: an offset in [1, m) modulo m.
      a_second = (a_first + jax.random.randint(keys[1], (q,), 1, num_anomalies)) % num_anomalies
    else:
      a_second = jax.random.randint(keys[1], (q,), 0, num_anomalies)
    aa_left, aa_right = data.anomaly_index[a_first], data.anomaly_index[a_second]
    mixed_a = anomalies(keys[2], q)
    mixed_u = unlabelled(keys[3], q)
    uu_left, uu_right = unlabelled(keys[4], 2 * q), unlabelled(keys[5], 2 * q)

    ones, zeros = jnp.ones((q,), jnp.int32), jnp.zeros((q,), jnp.int32)
    zeros2 = jnp.zeros((2 * q,), jnp.int32)
    if orientation == "adbench":
      left = jnp.concatenate([aa_left, mixed_a, uu_left])
      right = jnp.concatenate([aa_right, mixed_u, uu_right])
      semi_left = jnp.concatenate([ones, ones, zeros2])
      semi_right = jnp.concatenate([ones, zeros, zeros2])
    else:
      left = jnp.concatenate([aa_left, mixed_u, uu_left])
      right = jnp.concatenate([aa_right, mixed_a, uu_right])
      semi_left = jnp.concatenate([ones, zeros, zeros2])
      semi_right = jnp.concatenate([ones, ones, zeros2])
    x_left, x_right = data.x[left], data.x[right]
    return {
        "x_left": x_left, "x_right": x_right,
        "semi_labels_left": semi_left, "semi_labels_right": semi_right,
        "x": jnp.concatenate([x_left, x_right]),
        "semi_labels": jnp.concatenate([semi_left, semi_right]),
    }

  return base.Sampler(begin_epoch=begin_epoch, batch=batch)


# --------------------------------------------------------------------------- optimiser


def cosine_per_epoch(learning_rate: float, *, steps_per_epoch: int, t_max: int,
                     eta_min: float):
  """PyTorch CosineAnnealingLR(T_max, eta_min) stepped once per epoch, as a function of
  the optimiser step: lr_e = eta_min + (lr - eta_min)(1 + cos(pi e / T_max)) / 2."""

  def schedule(step):
    epoch = (step // steps_per_epoch).astype(jnp.float32)
    return eta_min + 0.5 * (learning_rate - eta_min) * (1.0 + jnp.cos(math.pi * epoch / t_max))

  return schedule


def make_optimizer(hp: dict, steps_per_epoch: int) -> optax.GradientTransformation:
  """RMSprop with the reference's regularisation and clipping.

  Order: clip the gradient (Keras clips the gradient of the regulariser-inclusive loss),
  add PyTorch's weight decay wd * theta, scale by the root of the running mean square
  (eps outside the root, accumulator starting at 0, both frameworks), scale by the lr.
  """
  _check_choice("lr_schedule", hp["lr_schedule"], LR_SCHEDULES)
  _check_choice("clipnorm_mode", hp["clipnorm_mode"], CLIPNORM_MODES)
  if hp["lr_schedule"] == "cosine":
    learning_rate = cosine_per_epoch(
        hp["learning_rate"], steps_per_epoch=steps_per_epoch,
        t_max=hp["cosine_t_max"] or hp["num_epochs"], eta_min=hp["cosine_eta_min"])
  else:
    learning_rate = hp["learning_rate"]
  chain = []
  if hp["clipnorm"] > 0:
    # Injected, as the weight decay: runs of one program may clip at their own norms.
    chain.append(optim.injected_clip(hp["clipnorm"], hp["clipnorm_mode"]))
  if hp["weight_decay"] > 0:
    # Injected (it lives in the optimizer state): runs of one program may decay at their
    # own rates (Method.run_hparams).
    chain.append(optax.inject_hyperparams(optax.add_decayed_weights)(hp["weight_decay"]))
  chain += [optax.scale_by_rms(decay=hp["rms_decay"], eps=hp["rms_eps"], eps_in_sqrt=False),
            optax.scale_by_learning_rate(learning_rate)]
  return optax.chain(*chain)


def kernel_l2(params, weight: float):
  """Keras l2(weight) on every kernel of psi: weight * sum W^2."""
  leaves = jax.tree_util.tree_leaves_with_path(params["features"])
  return weight * sum(jnp.sum(jnp.square(v)) for path, v in leaves
                      if getattr(path[-1], "key", None) == "kernel")


# ----------------------------------------------------------------------------- scoring


def reference_pair_scores(model: PReNet, variables, x, x_anomaly, x_unlabelled, key, *,
                          num_references: int, per_point: bool, orientation: str,
                          eval_stats: str = "running", num_anomalies=None,
                          num_unlabelled=None) -> jax.Array:
  """Mean relation to E reference anomalies and E reference unlabelled rows, `[N]`.

  adbench:  s(x) = 1/E sum_k [phi(a_k, x) + phi(x, u_k)]
  official: s(x) = 1/2 [1/E sum_k phi(u_k, x) + 1/E sum_k phi(x, a_k)]

  References are drawn with replacement, per test point (`per_point=True`, ADBench's
  loop, vectorised) or once for all test points. psi of every row is computed once
  (eval mode: it does not depend on the other rows), then pairs are gathered.
  """
  embed = lambda rows: apply_eval(model, variables, rows, eval_stats=eval_stats,
                                       method=PReNet.embed)
  z_x, z_a, z_u = embed(x), embed(x_anomaly), embed(x_unlabelled)
  n = x.shape[0]
  key_a, key_u = jax.random.split(key)
  shape = (n, num_references) if per_point else (num_references,)
  # Padded pools (shape buckets) draw from their first num_* entries only.
  ref_a = z_a[jax.random.randint(key_a, shape, 0, z_a.shape[0] if num_anomalies is None
                                 else num_anomalies)]
  ref_u = z_u[jax.random.randint(key_u, shape, 0, z_u.shape[0] if num_unlabelled is None
                                 else num_unlabelled)]
  ref_a = jnp.broadcast_to(ref_a, (n, num_references, z_x.shape[-1]))
  ref_u = jnp.broadcast_to(ref_u, (n, num_references, z_x.shape[-1]))
  z_x = jnp.broadcast_to(z_x[:, None, :], ref_a.shape)
  relate = lambda left, right: model.apply(variables, left, right, method=PReNet.relate)
  if orientation == "adbench":
    return jnp.mean(relate(ref_a, z_x) + relate(z_x, ref_u), axis=1)
  return 0.5 * (jnp.mean(relate(ref_u, z_x), axis=1) + jnp.mean(relate(z_x, ref_a), axis=1))


# ------------------------------------------------------------------------------ method


def make_method(hp: dict, policy: NormPolicy, input_dim: int, num_train: int, *,
                image_shape: tuple = (), insert_norm: bool = False) -> base.Method:
  """Builds PReNet from its hyper-parameters (`ssadjax.hparams.prenet.resolve`).

  `insert_norm=True` (AnoOnly) puts BatchNorm1d(20) after psi's ReLU, as the AnoOnly
  copy does; its statistics come from each side of the pair batch separately unless
  `prenet.joint_norm_pass`.
  """
  del input_dim, num_train, image_shape
  for name, allowed in (("orientation", ORIENTATIONS), ("init_scheme", INIT_SCHEMES),
                        ("score_references", SCORE_REFERENCES)):
    _check_choice(name, hp[name], allowed)
  model = PReNet(
      features=PReNetFeatures(hidden_dims=tuple(hp["hidden_dims"]),
                              init_scheme=hp["init_scheme"], insert_norm=insert_norm,
                              norm=policy),
      init_scheme=hp["init_scheme"])
  # psi with momentum-0 statistics: norm.eval_stats='recomputed' (one pass, one side).
  stats_model = PReNet(
      features=PReNetFeatures(hidden_dims=tuple(hp["hidden_dims"]),
                              init_scheme=hp["init_scheme"], insert_norm=insert_norm,
                              norm=for_recompute(policy)),
      init_scheme=hp["init_scheme"])
  sampler = pair_sampler(batch_size=hp["batch_size"], orientation=hp["orientation"],
                         unlabelled_replace=hp["unlabelled_replace"],
                         distinct_anomaly_pairs=hp["distinct_anomaly_pairs"])
  # The ordinal targets, and the weight decay, L2 weight and clipping norm where they are
  # on (0 = off is program), are run data (Method.run_hparams).
  run_hparams = {name: hp[name] for name in ("target_aa", "target_au", "target_uu")}
  for name in ("weight_decay", "l2_kernel", "clipnorm"):
    if hp[name] > 0:
      run_hparams[name] = hp[name]
  steps_per_epoch = hp["steps_per_epoch"]

  def init(init_key, extras_key, data):
    variables = model.init(init_key, data.x[:2], data.x[:2], train=False)
    if train_data.is_padded(data):  # shape buckets: see true_fan_kernel
      def first_layer(layer):
        kernel, bias = true_fan_kernel(
            layer["kernel"], mode="fan_in" if hp["init_scheme"] == "torch" else "fan_avg",
            in_mask=train_data.feature_mask(data), bias=layer["bias"])
        return {**layer, "kernel": kernel, "bias": bias}
      variables = replace_param(variables, ("features", "dense_0"), first_layer)
    # Raw uint32 key data: typed keys cannot be checkpointed.
    return variables, {"score_key": jax.random.key_data(extras_key)}

  def per_example_loss(params, batch_stats, extras, batch, key, *, data=None):
    del key, data  # the pools matter to scoring only
    targets = {name: extras["hparams"][name] for name in ("target_aa", "target_au",
                                                          "target_uu")}
    phi, new_batch_stats = apply_train(
        model, params, batch_stats, batch["x_left"], x_right=batch["x_right"],
        left_mask=stats_mask(policy, batch["semi_labels_left"]),
        right_mask=stats_mask(policy, batch["semi_labels_right"]),
        joint_norm_pass=hp["joint_norm_pass"])
    per_pair = losses.pairwise_relation_loss(phi, batch["semi_labels_left"],
                                             batch["semi_labels_right"], **targets)
    has_anomaly = (batch["semi_labels_left"] == 1) | (batch["semi_labels_right"] == 1)
    return per_pair, has_anomaly, new_batch_stats

  def score(variables, extras, x, *, data):
    # The scoring rule pairs x with reference rows drawn from the training pools.
    key = jax.random.wrap_key_data(extras["score_key"])
    x_train = jnp.asarray(data.x)
    padded = train_data.is_padded(data)
    return reference_pair_scores(
        model, variables, x, x_train[jnp.asarray(data.anomaly_index)],
        x_train[jnp.asarray(data.unlabelled_index)], key,
        num_references=hp["num_references"],
        per_point=hp["score_references"] == "per_point",
        orientation=hp["orientation"], eval_stats=policy.eval_stats,
        num_anomalies=train_data.anomaly_count(data) if padded else None,
        num_unlabelled=train_data.unlabelled_count(data) if padded else None)

  regularizer = None
  if hp["l2_kernel"] > 0:
    regularizer = lambda params, extras: kernel_l2(params, extras["hparams"]["l2_kernel"])

  return base.Method(
      name="prenet",
      init=init,
      sampler=sampler,
      per_example_loss=per_example_loss,
      score=score,
      optimizer=make_optimizer(hp, steps_per_epoch),
      steps_per_epoch=steps_per_epoch,
      num_epochs=hp["num_epochs"],
      regularizer=regularizer,
      select_best_epoch=hp["select_best_epoch"],
      batch_statistics=lambda params, batch_stats, extras, x: exact_batch_stats(
          stats_model, params, batch_stats, x, method=PReNet.embed),
      pad_rows=True, pad_features=len(hp["hidden_dims"]) > 0,
      # Cosine annealing to a floor is affine, not proportional, in the rate.
      learning_rate=(hp["learning_rate"] if hp["lr_schedule"] != "cosine"
                     or hp["cosine_eta_min"] == 0 else None),
      needs_train_data=True,  # the scoring rule's reference pools
      run_hparams=run_hparams,
  )
