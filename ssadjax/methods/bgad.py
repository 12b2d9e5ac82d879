"""BGAD (Yao et al., CVPR 2023): flow log-likelihoods with the boundary-guided
semi-push-pull loss, on any vector features.

For vector data (ADBench tabular rows, ResNet-18 MVTec-AD embeddings: image-level
detection) the flow is unconditional over the whole feature vector; the patch pipeline
with positional conditioning lives in `ssadjax.models.bgad.PatchFlows`.

* Model: `ssadjax.models.bgad.Flow` (8 AllInOneBlock-style blocks, soft clamp 1.9,
  softplus global affine, fixed random rotations). The rotations are drawn in `init`
  from the extras key and kept in `extras['rotations']` (checkpointed, never trained).
* Batches: `batch_size - anomalies_per_batch` unlabelled rows (one permutation of the
  unlabelled pool per epoch) followed by `anomalies_per_batch` labelled anomalies drawn
  uniformly with replacement (the reference repeats its anomaly list 10x in the mixed
  loader, so anomalies are over-sampled there too).
* Loss (`losses.bgad_loss_contributions`): ML term on the unlabelled rows, explicit
  boundary b_n = beta-quantile of the unlabelled rows' per-dimension log-likelihoods / 10
  (detached), b_a = b_n - tau, semi-push-pull hinge terms, optional focal weights.
  Per-example values are the contributions (`loss_terms='sum'`): their sum is the
  reference's loss, and under AnoOnly the sum over the anomalies is lambda * L_a.
* Schedule: meta-epochs of `sub_epochs` epochs; meta-epoch 0 is maximum likelihood on
  the unlabelled rows only (run inside `init`, like Deep SAD's pretraining), the rest
  run the full loss in the engine. Adam 2e-4, cosine over meta-epochs to lr * 0.1^3,
  linear warm-up over the first `lr_warm_epochs` meta-epochs from lr/10, with the
  correct warm-up progress (the reference's overshoots: it counts loaders, not batches).
* Score: the negative per-dimension log-likelihood (higher = more anomalous), per row,
  with no test-set normalisation (the reference subtracts the test-set maximum). The last
  epoch's model is scored: no test-set model selection (the reference reports the best
  epoch's test AUROC).

AnoOnly (`insert_norm=True`): an affine-free BatchNorm flow layer is put in front of the
blocks (its log-determinant is part of the likelihood), the loss is reduced over the
labelled anomalies only, i.e. the anomaly push term lambda * L_a against the boundary
estimated from the unlabelled rows of the same batch, and the ML warm-up (a loss on
unlabelled rows) is skipped unless `bgad.anoonly_ml_warmup` (declared in
ssadjax/hparams/bgad.py). See
docs/methods/bgad.md for why this variant should be weak and what it measured.

Presets (`cfg.preset`, ssadjax/hparams/bgad.py; any field set in `cfg.bgad` wins): `adbench` and
`anoonly_paper` run 1 sub-epoch per meta-epoch without focal weighting (the defaults the
docs/methods/bgad.md table was measured with); `bgad_reference` is the authors' MVTec script
(`scripts.sh` + `config.py` of xcyao00/BGAD): 8 sub-epochs per meta-epoch and
`--focal_weighting` (normal alpha 11.7, gamma 0.5 below u = -0.2; anomaly alpha 0.53,
gamma 2 above u = -1; u = per-dimension log-likelihood / 10).
"""

import types


import jax
import jax.numpy as jnp
import optax

from ssadjax import losses, optim
from ssadjax.methods import base, samplers
from ssadjax.methods import train_data
from ssadjax.models.variables import (apply_eval, apply_train, exact_batch_stats, make_variables,
                                      split_variables)
from ssadjax.models.bgad import Flow, random_rotations
from ssadjax.norm import NormPolicy, for_recompute, stats_mask

def learning_rate_schedule(learning_rate: float, *, steps_per_meta_epoch: int,
                           meta_epochs: int, decay_rate: float = 0.1,
                           warm_epochs: int = 2, warm: bool = True):
  """BGAD's lr as a function of the global step: cosine over meta-epochs
  eta_e = eta_min + (eta - eta_min)(1 + cos(pi e / E)) / 2, eta_min = eta * rate^3,
  constant within a meta-epoch; during the first `warm_epochs` meta-epochs a linear
  warm-up from eta / 10 to eta_{warm_epochs}, progressing per step."""
  eta_min = learning_rate * decay_rate ** 3

  def cosine(e):
    return eta_min + (learning_rate - eta_min) * (1.0 + jnp.cos(jnp.pi * e / meta_epochs)) / 2

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    meta = jnp.floor(step / steps_per_meta_epoch)
    lr = cosine(meta)
    if warm and warm_epochs > 0:
      start, end = learning_rate / 10.0, cosine(jnp.float32(warm_epochs))
      progress = step / (warm_epochs * steps_per_meta_epoch)
      lr = jnp.where(meta < warm_epochs, start + progress * (end - start), lr)
    return lr

  return schedule


def mixed_sampler(batch_size: int, anomalies_per_batch: int) -> base.Sampler:
  """Unlabelled rows first (a fresh permutation of the unlabelled pool per epoch,
  walked cyclically), then `anomalies_per_batch` labelled anomalies drawn uniformly
  with replacement. Every batch has the same composition (static shapes)."""
  num_unlabelled = batch_size - anomalies_per_batch
  semi_labels = jnp.concatenate([jnp.zeros(num_unlabelled, jnp.int32),
                                 jnp.ones(anomalies_per_batch, jnp.int32)])

  def begin_epoch(key, data):
    return jax.random.permutation(key, jnp.asarray(data.unlabelled_index))

  def batch(perm, i, key, data):
    pool_a = jnp.asarray(data.anomaly_index)
    if anomalies_per_batch and pool_a.shape[0] == 0:
      raise ValueError("bgad needs at least one labelled anomaly (data.at_least_one_labeled)")
    pos = (i * num_unlabelled + jnp.arange(num_unlabelled)) % perm.shape[0]
    rows = perm[pos]
    if anomalies_per_batch:
      anomalies = pool_a[jax.random.randint(key, (anomalies_per_batch,), 0, pool_a.shape[0])]
      rows = jnp.concatenate([rows, anomalies])
    return {"x": jnp.asarray(data.x)[rows], "semi_labels": semi_labels, "rows": rows}

  return base.Sampler(begin_epoch=begin_epoch, batch=batch)


def make_method(hp: dict, policy: NormPolicy, input_dim: int, num_train: int, *,
                image_shape: tuple = (), insert_norm: bool = False) -> base.Method:
  """BGAD from its hyper-parameters (`ssadjax.hparams.bgad.resolve`), for `[n, input_dim]` features; `insert_norm` is AnoOnly's BatchNorm flow layer."""
  del image_shape
  hp = types.SimpleNamespace(**hp)
  model = Flow(dim=input_dim, num_blocks=hp.num_blocks, clamp_alpha=hp.clamp_alpha,
               subnet_ratio=hp.subnet_ratio, insert_norm=insert_norm, norm=policy,
               norm_epsilon=hp.norm_epsilon, norm_momentum=hp.norm_momentum)
  # norm.eval_stats='recomputed': the same flow with momentum 0 over every row.
  stats_model = model.clone(norm=for_recompute(policy))
  batch_size, n_anom = hp.batch_size, hp.anomalies_per_batch
  if not 0 < n_anom < batch_size:
    raise ValueError(f"bgad.anomalies_per_batch={n_anom} must be in (0, batch_size)")
  steps_per_epoch = max(1, num_train // batch_size)
  steps_per_meta = steps_per_epoch * hp.sub_epochs
  warmup_meta = 1 if hp.ml_warmup else 0
  if hp.meta_epochs <= warmup_meta:
    raise ValueError(f"bgad.meta_epochs={hp.meta_epochs} leaves no semi-push-pull epoch")
  schedule = learning_rate_schedule(
      hp.learning_rate, steps_per_meta_epoch=steps_per_meta, meta_epochs=hp.meta_epochs,
      decay_rate=hp.lr_decay_rate, warm_epochs=hp.lr_warm_epochs, warm=hp.lr_warm)
  warmup_steps = warmup_meta * steps_per_meta
  # The boundary quantile, margin, kappa and lambda are run data (Method.run_hparams);
  # the rate too: every term of the schedule is proportional to it, so the main stage
  # scales its updates (Method.learning_rate) and the warm-up reads the run's rate.
  run_hparams = {"pos_beta": hp.pos_beta, "margin_tau": hp.margin_tau,
                 "normalizer": hp.normalizer, "push_pull_weight": hp.push_pull_weight,
                 **({"learning_rate": hp.learning_rate}
                    if warmup_steps and hp.learning_rate > 0 else {})}

  def loglik(params, batch_stats, extras, x, semi_labels):
    (z, log_det), new_bs = apply_train(
        model, params, batch_stats, x, rotations=extras["rotations"],
        norm_mask=stats_mask(policy, semi_labels))
    return losses.flow_log_likelihood(z, log_det), new_bs

  def warmup_stage() -> base.Stage:
    """Meta-epoch 0: maximum likelihood on the unlabelled rows only, `sub_epochs` epochs
    of `steps_per_epoch` steps with its own Adam on the global lr schedule. Its batches
    run over the unlabelled pool: one permutation per pass over the pool (a pass is
    `unlabelled // batch_size` steps, so passes and epochs need not align). After every
    epoch the warmed-up flow is the run's. Its updates scale by the run's rate over the
    configured one (optim.rate_scaled)."""
    optimizer = optim.rate_scaled(optax.adam(schedule))
    sampler = samplers.shuffled_sampler(batch_size)

    def pool_of(data):
      unlabelled = jnp.asarray(data.unlabelled_index)
      return train_data.TrainData(x=jnp.asarray(data.x)[unlabelled],
                            semi_labels=jnp.asarray(data.semi_labels)[unlabelled],
                            anomaly_index=data.anomaly_index,
                            unlabelled_index=data.unlabelled_index)

    def pool_steps(data):
      rows = data.unlabelled_index.shape[0]
      if rows < batch_size:
        raise ValueError(f"bgad.batch_size={batch_size} exceeds the unlabelled rows")
      return rows // batch_size

    def init(variables, extras, extras_key, data):
      pool_steps(data)
      _, warm_key = jax.random.split(extras_key)
      params, batch_stats = split_variables(variables)
      opt_state = optim.with_run_values(
          optimizer.init(params), optim.run_rate(extras, "learning_rate", hp.learning_rate))
      return {"params": params, "batch_stats": batch_stats, "opt_state": opt_state,
              "key": jax.random.key_data(warm_key)}

    def epoch(state, index, extras, data):
      pool, steps = pool_of(data), pool_steps(data)
      passes = -(-warmup_steps // steps)
      perms = jax.vmap(lambda k: jax.random.permutation(k, pool.x.shape[0]))(
          jax.random.split(jax.random.wrap_key_data(state["key"]), passes))

      def step(carry, t):
        params, batch_stats, opt_state = carry
        batch = sampler.batch(perms[t // steps], t % steps, None, pool)

        def loss_fn(p):
          ll, new_bs = loglik(p, batch_stats, extras, batch["x"],
                              batch["semi_labels"])
          return jnp.mean(jax.nn.softplus(-ll)), new_bs

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

      (params, batch_stats, opt_state), step_losses = jax.lax.scan(
          step, (state["params"], state["batch_stats"], state["opt_state"]),
          index * steps_per_epoch + jnp.arange(steps_per_epoch))
      return {**state, "params": params, "batch_stats": batch_stats,
              "opt_state": opt_state}, jnp.mean(step_losses)

    def result(variables, extras, state):
      return make_variables(state["params"], state["batch_stats"]), extras

    return base.Stage(name="warmup", num_epochs=hp.sub_epochs,
                      steps_per_epoch=steps_per_epoch, init=init, epoch=epoch,
                      result=result)

  def init(init_key, extras_key, data):
    rot_key, _ = jax.random.split(extras_key)
    extras = {"rotations": random_rotations(rot_key, hp.num_blocks, input_dim)}
    variables = model.init(init_key, data.x[:2], extras["rotations"], train=False)
    return variables, extras

  def per_example_loss(params, batch_stats, extras, batch, key):
    del key
    semi = batch["semi_labels"]
    ll, new_bs = loglik(params, batch_stats, extras, batch["x"], semi)
    run = extras["hparams"]
    contributions = losses.bgad_loss_contributions(
        ll, semi, beta=run["pos_beta"], tau=run["margin_tau"], normalizer=run["normalizer"],
        push_pull_weight=run["push_pull_weight"], focal_weighting=hp.focal_weighting)
    return contributions, semi == 1, new_bs

  def score(variables, extras, x):
    z, log_det = apply_eval(model, variables, x, eval_stats=policy.eval_stats,
                                 rotations=extras["rotations"])
    return -losses.flow_log_likelihood(z, log_det)

  return base.Method(
      name="bgad",
      init=init,
      sampler=mixed_sampler(batch_size, n_anom),
      per_example_loss=per_example_loss,
      score=score,
      optimizer=optax.adam(lambda count: schedule(count + warmup_steps)),
      steps_per_epoch=steps_per_epoch,
      num_epochs=(hp.meta_epochs - warmup_meta) * hp.sub_epochs,
      loss_terms="sum",  # the contributions add up to the loss
      batch_statistics=lambda params, batch_stats, extras, x: exact_batch_stats(
          stats_model, params, batch_stats, x, rotations=extras["rotations"]),
      stages=(warmup_stage(),) if warmup_steps else (),
      learning_rate=hp.learning_rate,
      run_hparams=run_hparams,
  )
