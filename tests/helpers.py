"""Small shared builders for tests (tiny data and configs so that tests stay fast)."""

import numpy as np

from experiments.configs import common


def tiny_config(**overrides):
  config = common.get_config()
  config.deepsad.hidden_dims = (16, 8)
  config.deepsad.rep_dim = 4
  config.deepsad.batch_size = 32
  config.deepsad.num_epochs = 4
  config.train.chunk_epochs = 2
  for key, value in overrides.items():
    node = config
    *path, last = key.split(".")
    for p in path:
      node = node[p]
    node[last] = value
  return config


def blobs(seed=0, n=300, d=6, n_anomalies=30, n_labelled=4):
  """Normals N(0, I), anomalies N(3, I); the first `n_labelled` anomalies are labelled."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)).astype(np.float32)
  labels = np.zeros(n, np.int32)
  labels[:n_anomalies] = 1
  x[:n_anomalies] += 3.0
  semi = np.zeros(n, np.int32)
  semi[:n_labelled] = 1
  return x, labels, semi
