"""Run in a subprocess with simulated CPU devices (the device count is fixed at JAX start):
trains Deep SAD with SGD on 1 device and on N devices (synced BN) and prints JSON."""

import dataclasses
import json
import sys

import jax

jax.config.update("jax_num_cpu_devices", int(sys.argv[1]))

import numpy as np  # noqa: E402
import optax  # noqa: E402

from ssadjax import methods, metrics  # noqa: E402
from ssadjax.program import parallel  # noqa: E402
from ssadjax.host import engine
from tests.helpers import blobs, tiny_config  # noqa: E402


def main():
  x, labels, semi = blobs(n=320)
  out = {}
  for data_size in (1, int(sys.argv[1])):
    config = tiny_config(**{"deepsad.num_epochs": 4})
    method = methods.build(config, x.shape[1], x.shape[0])
    # SGD: Adam would magnify 1e-7 reduction-order differences where a gradient is ~0.
    method = dataclasses.replace(method, optimizer=optax.sgd(0.05))
    layout = parallel.make_layout(data=data_size)
    data = engine.stack_data([methods.make_train_data(x, semi)] * 2)
    state, _ = engine.fit(method, data, [1, 2], chunk_epochs=2, layout=layout)
    scores = engine.score(method, state, np.stack([x, x]), layout=layout)
    out[data_size] = {
        "params": [np.asarray(a).tolist() for a in jax.tree.leaves(state.params)],
        "batch_stats": [np.asarray(a).tolist() for a in jax.tree.leaves(state.batch_stats)],
        "auroc": [metrics.auroc(labels, s) for s in scores],
    }
  print(json.dumps(out))


if __name__ == "__main__":
  main()
