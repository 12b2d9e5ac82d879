"""Applying a Linen model with its variables as explicit values: params and BatchNorm
statistics in, outputs and new statistics out (train mode), eval-mode and batch-statistics
scoring, and the exact statistics of a set of rows. Models without BatchNorm (LayerNorm /
no-norm controls, flows) have no 'batch_stats' collection; every helper accepts both."""


def replace_param(variables, path: tuple, fn) -> dict:
  """Linen variables with `params[path] = fn(params[path])` (nested dicts copied)."""
  def go(tree, path):
    tree = dict(tree)
    tree[path[0]] = fn(tree[path[0]]) if len(path) == 1 else go(tree[path[0]], path[1:])
    return tree
  return {**variables, "params": go(variables["params"], path)}


def make_variables(params, batch_stats) -> dict:
  """Linen variables; models without BatchNorm (LayerNorm / no-norm controls, flows) have
  no 'batch_stats' collection."""
  return {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}


def apply_train(model, params, batch_stats, x, **kwargs):
  """Train-mode forward that returns (output, new_batch_stats); works with or without
  BatchNorm in the model (LayerNorm / no-norm controls have no batch_stats)."""
  out, updates = model.apply(make_variables(params, batch_stats), x, train=True,
                             mutable=["batch_stats"], **kwargs)
  return out, updates.get("batch_stats", batch_stats)


def apply_eval(model, variables, x, *, eval_stats: str = "running", **kwargs):
  """Evaluation forward: running statistics (eval mode) or the scored batch's own
  statistics ('batch'); the statistics are never updated here."""
  if eval_stats == "batch" and variables.get("batch_stats"):
    out, _ = model.apply(variables, x, train=True, mutable=["batch_stats"], **kwargs)
    return out
  return model.apply(variables, x, train=False, **kwargs)


def exact_batch_stats(stats_model, params, batch_stats, x, **kwargs):
  """The BatchNorm statistics of all rows of `x`: a train-mode forward of `stats_model`,
  the method's model built with `norm.for_recompute(policy)` (momentum 0, so every
  running statistic becomes the statistic of this pass; earlier layers are normalised
  with this pass's statistics, which are the recomputed ones). No BatchNorm: unchanged."""
  if not batch_stats:
    return batch_stats
  _, new_batch_stats = apply_train(stats_model, params, batch_stats, x, **kwargs)
  return new_batch_stats


def split_variables(variables):
  """Linen variables -> (params, batch_stats) with an empty dict when there is no BN."""
  return variables["params"], variables.get("batch_stats", {})
