"""Measures the score-sum identity (docs/ablation.md) on a trained DevNet + AnoOnly.

With a train-mode BatchNorm directly before DevNet's linear score layer, the scores of a
batch sum to B (w . beta + b) whatever the rows are, so AnoOnly's loss, which only
raises the anomalies' scores, lowers the unlabelled rows' scores by the same total.
This trains DevNet + AnoOnly (preset anoonly_paper) on one dataset, then on fresh
balanced training batches prints: the identity's residual, the mean train-mode score of
the anomalies and of the unlabelled rows, and the same for the LayerNorm control.

  PYTHONPATH=. python -m experiments.score_sum [DATASET] [DATA_DIR]
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from experiments.configs import common
from ssadjax import methods, metrics
from ssadjax import runconfig
from ssadjax.host import engine
from ssadjax.models.devnet import DevNetScorer
from ssadjax.norm import NormPolicy, stats_mask


def measure(dataset="6_cardio", data_dir="", kind="batch", stats_rows="all", seed=1):
  config = common.get_config()
  config.update({"method": "devnet", "anomaly_only": True, "preset": "anoonly_paper",
                 "dataset": dataset, "data_dir": data_dir})
  config.norm.kind, config.norm.stats_rows = kind, stats_rows
  split = runconfig.prepare_splits(config, [seed])[0]
  data = methods.make_train_data(split.x_train, split.semi_labels)
  method = methods.build(config, split.x_train.shape[1], split.x_train.shape[0])
  state, _ = engine.fit(method, engine.stack_data([data]), [seed], chunk_epochs=50)
  auroc = metrics.auroc(split.y_test, engine.score(method, state, split.x_test[None])[0])
  params, batch_stats = jax.tree.map(lambda a: a[0], state.final_variables())
  policy = NormPolicy(kind=kind, stats_rows=stats_rows)
  model = DevNetScorer(hidden_dims=(20,), insert_norm=True, norm=policy,
                       norm_epsilon=1e-3, norm_momentum=0.99)
  variables = {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}
  norm_params = params["norm"]["BatchNorm_0" if kind == "batch" else "LayerNorm_0"]
  constant = float(params["score"]["kernel"][:, 0] @ norm_params["bias"]
                   + params["score"]["bias"][0])
  residuals, mean_a, mean_u = [], [], []
  device_data = jax.device_put(data)
  for i in range(20):
    batch = method.sampler.batch((), i, jax.random.key(100 + i), device_data)
    semi = batch["semi_labels"]
    scores, _ = model.apply(variables, batch["x"], train=True, mutable=["batch_stats"],
                            norm_mask=stats_mask(policy, semi))
    scores = np.asarray(scores)
    rows = np.asarray(semi == 0) if stats_rows == "unlabelled" else np.ones(len(scores), bool)
    residuals.append(abs(scores[rows].sum() - rows.sum() * constant))
    mean_a.append(scores[np.asarray(semi) == 1].mean())
    mean_u.append(scores[np.asarray(semi) == 0].mean())
  return {"kind": kind, "stats_rows": stats_rows, "auroc": auroc,
          "w.beta+b": constant, "max |sum - B c|": float(np.max(residuals)),
          "mean score anomalies": float(np.mean(mean_a)),
          "mean score unlabelled": float(np.mean(mean_u))}


def main(argv):
  dataset = argv[1] if len(argv) > 1 else "6_cardio"
  data_dir = argv[2] if len(argv) > 2 else ""
  for kind, rows in (("batch", "all"), ("batch", "unlabelled"), ("layer", "all")):
    out = measure(dataset, data_dir, kind, rows)
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in out.items()))


if __name__ == "__main__":
  main(sys.argv)
