"""FUN-AD (Im, Son, Hong, WACV 2025): fully unsupervised AD on noisy training data.

The paper's method, applied to tabular rows: one row plays the role of one image patch
(the image score "max over 784 patches" becomes the row's own score). Every training step:

1. IRMB pseudo-labelling (no gradient). All training rows go through the current model;
   their scores are min-max normalised over the training set; rows below
   `candidate_threshold` are candidate normals; a uniform random `bank_ratio` of them
   (without replacement) forms the memory bank, whose entries are the rows' ADAPTED
   features. Each batch row gets the squared L2 distance to its 2 nearest bank entries;
   distances < `zero_threshold` become 0 and a zero nearest distance means "this is the
   row itself", so the second is used (`self_match='threshold'`, the reference), or the
   row's own entry is excluded by index (`self_match='index'`). Distances are min-max
   normalised over the batch; pseudo-label 1 where > `tau`.
2. Loss = balanced BCE of the pseudo-labels (on a Gaussian-perturbed copy of the rows
   whose normalised distance is in (tau, tau_noise)) + `ms_weight` x the mutual
   smoothness loss over the mutual-nearest-neighbour pairs of the batch's adapted
   features (losses.balanced_bce_terms, losses.mutual_smoothness_terms).

Engine fit (static shapes, inside the compiled program):
* The bank needs every training row and the current parameters inside the step: the
  method `needs_train_data`, so the engine hands the step the run's TrainData (never
  stored in the state: checkpoints hold no training rows). The bank is built before each
  step's loss, without gradient, by the method's `StepState.refresh`, which also puts the
  rows' adapted features and the bank mask in the batch for the loss.
* `bank_period` P (1 = the reference: rebuild before every step). With P > 1 the bank
  SELECTION (the discriminator pass over all rows + the random draw) is redone at steps
  0, P, 2P, ... of each epoch and kept in between as a 0/1 row mask, the method's step
  state (`TrainState.method_state`, checkpointed; not BatchNorm state); the bank FEATURES
  are always the current adapter's. The sampler marks the rebuild steps
  with a flag computed from the step-in-epoch, which is not batched over seeds, so the
  `lax.cond` stays a real branch under the engine's vmap (a per-seed counter would turn
  it into a select that evaluates both sides).
* Nearest neighbours are exact, in jax, over query blocks (`lax.map`), so memory is
  `knn_block x n_bank` whatever the data size; the full-set forward pass is blocked the
  same way.

Labels: with `la = 0` (the protocol then labels nothing, ceil(0) = 0) training is fully
unsupervised. With labelled anomalies and `use_labels=True` they are known positives:
pseudo-label 1 and never in the memory bank. AnoOnly has no meaningful FUN-AD variant
(no BatchNorm to carry the unlabelled rows, and with la = 0 there is nothing to keep):
ssadjax/hparams/funad.py declares it, with the reason the command line gives.

Not reproduced: test-set model selection (the reference keeps the best-test-AUROC epoch;
we score the last epoch), Perlin synthetic anomalies (image-only), the symmetric-KL
smoothness variant.
"""

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssadjax import losses, ops
from ssadjax.methods import base
from ssadjax.models.funad import Adaptor, Discriminator
from ssadjax.norm import NormPolicy

SELF_MATCH = ("threshold", "index")
SCORES = ("logit", "prob")


def minmax(v: jax.Array) -> jax.Array:
  """(v - min) / (max - min); all zeros when the values are all equal."""
  lo, hi = jnp.min(v), jnp.max(v)
  return (v - lo) / jnp.where(hi > lo, hi - lo, 1.0)


# ------------------------------------------------------------------ IRMB pseudo-labels

def select_bank(train_scores: jax.Array, eligible: jax.Array, key, *,
                candidate_threshold: float = 0.5, bank_ratio: float = 0.5) -> jax.Array:
  """The IRMB memory-bank rows: a uniform random `bank_ratio` of the candidate normals.

  Candidates are the eligible rows whose train-set min-max normalised score is below
  `candidate_threshold`; floor(bank_ratio * #candidates) of them are drawn without
  replacement (at least min(2, #candidates) so a second neighbour exists). If no eligible
  row is a candidate, all eligible rows are.

  Args:
    train_scores: `[n]` current scores of all training rows (higher = more anomalous).
    eligible: `[n]` bool, rows allowed in the bank (not labelled anomalies).
    key: PRNG key of the draw.

  Returns:
    `[n]` float32 0/1 membership mask.
  """
  norm = minmax(jnp.where(eligible, train_scores, jnp.min(train_scores)))
  candidate = eligible & (norm < candidate_threshold)
  candidate = jnp.where(jnp.any(candidate), candidate, eligible)
  count = jnp.sum(candidate)
  take = jnp.maximum(jnp.floor(bank_ratio * count), jnp.minimum(2, count))
  priority = jnp.where(candidate, jax.random.uniform(key, train_scores.shape), 2.0)
  rank = jnp.argsort(jnp.argsort(priority))  # rank 0 = lowest priority
  return ((rank < take) & candidate).astype(jnp.float32)


def bank_distances(batch_features: jax.Array, bank_features: jax.Array,
                   bank_member: jax.Array, *, batch_index: jax.Array | None = None,
                   self_match: str = "threshold", zero_threshold: float = 0.01,
                   block: int = 1024) -> jax.Array:
  """Distance of each batch row to the memory bank (FUN-AD's IRMB pseudo-labelling).

  'threshold' (reference): squared distances to the 2 nearest bank entries, values
  below `zero_threshold` set to 0; the second is used when the first is 0 (the row's own
  entry, or a near-duplicate), else the first. 'index': the row's own bank entry (by
  training-row index) is excluded and the nearest remaining distance is used.
  """
  valid = bank_member > 0
  if self_match == "threshold":
    d, _ = ops.knn(batch_features, bank_features, 2, key_valid=valid, block=block)
    d = jnp.where(d < zero_threshold, 0.0, d)
    out = jnp.where(d[:, 0] == 0.0, d[:, 1], d[:, 0])
  elif self_match == "index":
    ids = jnp.arange(bank_features.shape[0])
    d, _ = ops.knn(batch_features, bank_features, 1, key_valid=valid, query_ids=batch_index,
                   key_ids=ids, block=block)
    out = d[:, 0]
  else:
    raise ValueError(f"funad.self_match={self_match!r}; expected one of {SELF_MATCH}")
  # A bank too small to hold a second neighbour gives inf: treat it as "no evidence".
  return jnp.where(jnp.isfinite(out), out, 0.0)


def pseudo_labels(distances: jax.Array, *, tau: float = 0.5) -> tuple[jax.Array, jax.Array]:
  """Batch min-max normalised distances and the pseudo-labels `d~ > tau`."""
  dn = minmax(distances)
  return dn, (dn > tau).astype(jnp.int32)


def gaussian_perturbation(x: jax.Array, dn: jax.Array, key, *, tau: float = 0.5,
                          tau_noise: float = 0.9) -> jax.Array:
  """Adds N(0, sigma_k^2) to the rows with tau < d~ < tau_noise; sigma_k = the batch's
  (unbiased, as torch.std) standard deviation of input dimension k."""
  sigma = jnp.std(x, axis=0, ddof=1)
  noisy = (dn > tau) & (dn < tau_noise)
  return x + noisy[:, None] * sigma[None, :] * jax.random.normal(key, x.shape, x.dtype)


# ------------------------------------------------------------------ contamination (numpy)

def subsample_contamination(split, ratio: float, rng: np.random.Generator):
  """The training split at an anomaly-to-normal ratio `ratio` (FUN-AD's `--noise`).

  The protocol puts every training anomaly in the unlabelled set, so the contamination is
  the dataset's own. This keeps the labelled anomalies and the normals, and keeps
  round(ratio * #normals) unlabelled anomalies drawn without replacement; when the
  dataset has too few anomalies for that, it keeps all of them and draws
  round(#anomalies / ratio) normals instead. ratio = 0 drops every unlabelled anomaly.
  Test data are unchanged. Returns `(new_split, info dict)`.
  """
  import dataclasses
  if not 0.0 <= ratio < 1.0:
    raise ValueError(f"contamination ratio must be in [0, 1), got {ratio}")
  truth = split.train_labels
  labelled = split.semi_labels == 1
  normals = np.flatnonzero((truth == 0) & ~labelled)
  anomalies = np.flatnonzero((truth == 1) & ~labelled)
  want = int(round(ratio * normals.size))
  if want <= anomalies.size:
    keep_a = rng.choice(anomalies, size=want, replace=False)
    keep_n = normals
  else:
    keep_a = anomalies
    keep_n = rng.choice(normals, size=int(round(anomalies.size / ratio)), replace=False)
  keep = np.zeros(truth.shape[0], bool)
  keep[keep_a] = keep[keep_n] = True
  keep |= labelled
  keep_idx = np.flatnonzero(keep)
  new = dataclasses.replace(
      split, x_train=split.x_train[keep_idx], semi_labels=split.semi_labels[keep_idx],
      train_labels=truth[keep_idx], label_flipped=split.label_flipped[keep_idx],
      train_index=None if split.train_index is None else split.train_index[keep_idx])
  info = {"normals": int(keep_n.size), "anomalies": int(keep_a.size),
          "ratio": float(keep_a.size / max(keep_n.size, 1))}
  return new, info


# ------------------------------------------------------------------ the method

def make_method(hp: dict, policy: NormPolicy | None, input_dim: int, num_train: int, *,
                image_shape: tuple = (), insert_norm: bool = False) -> base.Method:
  """FUN-AD from its hyper-parameters (`cfg.funad`, ssadjax/hparams/funad.py; see the
  module docstring). It has no
  norm, hence no use for the norm policy, and no AnoOnly variant."""
  del policy, image_shape, insert_norm
  hp = types.SimpleNamespace(**hp)
  if hp.self_match not in SELF_MATCH:
    raise ValueError(f"funad.self_match={hp.self_match!r}; expected one of {SELF_MATCH}")
  if hp.score not in SCORES:
    raise ValueError(f"funad.score={hp.score!r}; expected one of {SCORES}")
  if hp.ms_kind not in ("mae", "mse"):
    raise ValueError(f"funad.ms_kind={hp.ms_kind!r}; expected 'mae' or 'mse'")
  if hp.bank_period < 1:
    raise ValueError(f"funad.bank_period={hp.bank_period} must be >= 1")
  batch_size = hp.batch_size
  if num_train < batch_size:
    raise ValueError(f"funad.batch_size={batch_size} exceeds the {num_train} training rows")
  steps_per_epoch = num_train // batch_size  # shuffled, drop_last, as the reference
  adaptor = Adaptor(features=hp.adaptor_dim or input_dim, negative_slope=hp.negative_slope)
  disc = Discriminator(hidden_dims=tuple(hp.hidden_dims), negative_slope=hp.negative_slope)
  block = hp.knn_block
  period = hp.bank_period

  def adapt(params, x):
    return adaptor.apply({"params": params["adaptor"]}, x)

  def logits_of(params, x):
    return disc.apply({"params": params["discriminator"]}, adapt(params, x))

  def all_features(params, x_all):
    return ops.blocked_map(lambda xb: adapt(params, xb), x_all, block)

  def new_bank(params, feats_all, semi_all, key):
    z = ops.blocked_map(lambda fb: disc.apply({"params": params["discriminator"]}, fb),
                        feats_all, block)
    eligible = (semi_all == 0) if hp.use_labels else jnp.ones_like(semi_all, bool)
    return select_bank(z, eligible, key, candidate_threshold=hp.candidate_threshold,
                       bank_ratio=hp.bank_ratio)

  def init(init_key, extras_key, data):
    del extras_key
    ka, kd = jax.random.split(init_key)
    f0 = adaptor.init(ka, data.x[:2])["params"]
    params = {"adaptor": f0,
              "discriminator": disc.init(kd, adaptor.apply({"params": f0}, data.x[:2]))
              ["params"]}
    return {"params": params}, {}

  def init_bank(data):
    # Step 0 of every epoch rebuilds the bank, so this value is never read.
    return {"bank_member": jnp.zeros(data.x.shape[0], jnp.float32)} if period > 1 else {}

  def refresh_bank(params, state, batch, key, *, data):
    bank_key, _ = jax.random.split(key)
    x_all, semi_all = jnp.asarray(data.x), jnp.asarray(data.semi_labels)
    feats_all = all_features(params, x_all)
    if period == 1:
      member = new_bank(params, feats_all, semi_all, bank_key)
    else:
      member = jax.lax.cond(
          batch["rebuild"][0],
          lambda: new_bank(params, feats_all, semi_all, bank_key),
          lambda: state["bank_member"])
      state = {"bank_member": member}
    return state, {**batch, "bank_features": feats_all, "bank_member": member}

  def batch_fn(perm, i, key, data):
    del key
    rows = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size)
    # Per-row copy of a flag that depends on the step only (the engine's layout wants
    # every batch field to have the batch's leading axis).
    rebuild = jnp.full((batch_size,), i % period == 0)
    return {"x": data.x[rows], "semi_labels": data.semi_labels[rows], "index": rows,
            "rebuild": rebuild}

  def begin_epoch(key, data):
    return jax.random.permutation(key, data.x.shape[0])

  def per_example_loss(params, batch_stats, extras, batch, key, *, data):
    del extras, data  # the bank comes with the batch (refresh_bank)
    _, noise_key = jax.random.split(key)
    feats_all, member = batch["bank_features"], batch["bank_member"]
    x, semi = batch["x"], batch["semi_labels"]
    f = adapt(params, x)
    logits = disc.apply({"params": params["discriminator"]}, f)
    f_sg = jax.lax.stop_gradient(f)
    dist = bank_distances(f_sg, feats_all, member, batch_index=batch["index"],
                          self_match=hp.self_match, zero_threshold=hp.zero_threshold,
                          block=block)
    dn, targets = pseudo_labels(dist, tau=hp.tau)
    if hp.use_labels:
      targets = jnp.where(semi == 1, 1, targets)
    targets = jax.lax.stop_gradient(targets)
    if hp.gaussian:
      x_noisy = gaussian_perturbation(x, dn, noise_key, tau=hp.tau, tau_noise=hp.tau_noise)
      cls_logits = logits_of(params, x_noisy)
    else:
      cls_logits = logits
    terms = losses.balanced_bce_terms(cls_logits, targets, balanced=hp.balanced)
    if hp.ms_weight:
      partner, is_pair = ops.mutual_nearest_neighbours(f_sg, block=block)
      terms = terms + hp.ms_weight * losses.mutual_smoothness_terms(
          jax.nn.sigmoid(logits), partner, is_pair, kind=hp.ms_kind)
    return terms, semi == 1, batch_stats

  def score(variables, extras, x, *, data):
    del extras, data
    z = ops.blocked_map(lambda xb: logits_of(variables["params"], xb), x, block)
    return z if hp.score == "logit" else jax.nn.sigmoid(z)

  optimizer = optax.rmsprop(hp.learning_rate, decay=hp.rms_decay, eps=hp.rms_eps,
                            eps_in_sqrt=False, momentum=hp.momentum or None)
  return base.Method(
      name="funad",
      init=init,
      sampler=base.Sampler(begin_epoch=begin_epoch, batch=batch_fn),
      per_example_loss=per_example_loss,
      score=score,
      optimizer=optimizer,
      steps_per_epoch=steps_per_epoch,
      num_epochs=hp.num_epochs,
      loss_terms="sum",  # balanced BCE terms are summands of the loss
      learning_rate=hp.learning_rate,  # RMSprop (with or without momentum): linear in it
      needs_train_data=True,
      step_state=base.StepState(init=init_bank, refresh=refresh_bank),
  )


__all__ = ["make_method", "select_bank",
           "bank_distances", "pseudo_labels", "gaussian_perturbation",
           "subsample_contamination"]
