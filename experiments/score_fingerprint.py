"""Scores of short runs of every tabular method (with and without AnoOnly) on one fixed
toy set: a fingerprint of the numerics, to check that a refactor changes nothing.

    python -m experiments.score_fingerprint --out=/tmp/after.npz [--compare=/tmp/before.npz]

Run it on two commits (e.g. the older one from a `git worktree`, with that checkout as the
working directory) and compare: every case prints `identical` or its largest difference.
CLAD is left out (it needs an image dataset).
"""

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "npz file the scores are written to", required=True)
flags.DEFINE_string("compare", "", "an earlier fingerprint to compare with")

# name -> config overrides: short runs, 2 seeds side by side (the engine's vmap).
CASES = {
    "deepsad": {"method": "deepsad", "deepsad.num_epochs": 3},
    "deepsad_anoonly": {"method": "deepsad", "anomaly_only": True, "deepsad.num_epochs": 3},
    "deepsvdd": {"method": "deepsvdd", "deepsad.num_epochs": 3},
    "devnet": {"method": "devnet", "devnet.num_epochs": 3},
    "devnet_anoonly": {"method": "devnet", "anomaly_only": True, "devnet.num_epochs": 3},
    "feawad": {"method": "feawad", "feawad.num_epochs": 2, "feawad.pretrain_epochs": 2},
    "feawad_anoonly": {"method": "feawad", "anomaly_only": True, "feawad.num_epochs": 2,
                       "feawad.pretrain_epochs": 2},
    "prenet": {"method": "prenet", "prenet.num_epochs": 2},
    "prenet_anoonly": {"method": "prenet", "anomaly_only": True, "prenet.num_epochs": 2},
    "bgad": {"method": "bgad", "bgad.meta_epochs": 3, "bgad.num_blocks": 2},
    "bgad_anoonly": {"method": "bgad", "anomaly_only": True, "bgad.meta_epochs": 3,
                     "bgad.num_blocks": 2},
    "funad": {"method": "funad", "funad.batch_size": 32, "funad.num_epochs": 2,
              "funad.hidden_dims": (16, 8)},
    "funad_bank_period_3": {"method": "funad", "funad.batch_size": 32,
                            "funad.num_epochs": 2, "funad.bank_period": 3,
                            "funad.hidden_dims": (16, 8)},
}


def _toy_set():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 6)).astype(np.float32)
  x[:30] += 3.0
  semi = np.zeros(300, np.int32)
  semi[:6] = 1
  x_test = rng.normal(size=(80, 6)).astype(np.float32)
  x_test[:10] += 3.0
  return x, semi, x_test


def fingerprint() -> dict:
  from ssadjax import config as config_lib
  from ssadjax import methods
  from ssadjax.host import engine
  x, semi, x_test = _toy_set()
  data = engine.stack_data([methods.make_train_data(x, semi)] * 2)
  out = {}
  for name, fields in CASES.items():
    cfg = config_lib.get_config()
    for dotted, value in fields.items():
      *parents, leaf = dotted.split(".")
      node = cfg
      for parent in parents:
        node = node[parent]
      node[leaf] = value
    method = methods.build(cfg, x.shape[1], x.shape[0])
    _, scores, _ = engine.fit_and_score(method, data, [1, 2], np.stack([x_test] * 2))
    out[name] = np.asarray(scores)
    print(f"{name}: mean score {float(np.mean(out[name])):.6g}", flush=True)
  return out


def main(argv):
  del argv
  scores = fingerprint()
  np.savez(FLAGS.out, **scores)
  if FLAGS.compare:
    with np.load(FLAGS.compare) as before:
      for name, now in scores.items():
        if name not in before.files:
          print(f"{name}: not in {FLAGS.compare}")
        elif np.array_equal(before[name], now):
          print(f"{name}: identical")
        else:
          print(f"{name}: largest difference {np.max(np.abs(before[name] - now)):.3g}")


if __name__ == "__main__":
  app.run(main)
