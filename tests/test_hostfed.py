"""The host-fed input path reproduces the fused program for shuffled-batch methods."""

import jax
import numpy as np
import pytest

from ssadjax import engine, hostfed, methods, metrics
from tests.helpers import blobs, tiny_config


def test_host_fed_equals_fused_training(tmp_path):
  x, labels, semi = blobs(n=300)
  method = methods.build(tiny_config(), x.shape[1], x.shape[0])
  fused, _ = engine.fit(method, engine.stack_data([methods.make_train_data(x, semi)]), [4],
                        chunk_epochs=2)
  # A memory-mapped file stands in for data larger than device memory.
  mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32,
                                 shape=x.shape)
  mm[:] = x
  mm.flush()
  hosted, timing = hostfed.fit_host_fed(method, np.load(tmp_path / "x.npy", mmap_mode="r"),
                                        semi, 4, batch_size=32)
  assert timing["steps"] == 4 * (300 // 32)
  for a, b in zip(jax.tree.leaves(fused.params), jax.tree.leaves(hosted.params)):
    np.testing.assert_allclose(a[0], b, rtol=1e-5, atol=1e-6)
  scores = hostfed.score_host_fed(method, hosted, x, block=64)
  np.testing.assert_allclose(scores, engine.score(method, fused, x[None])[0], rtol=1e-4,
                             atol=1e-6)
  assert metrics.auroc(labels, scores) > 0.8


def test_host_fed_rejects_other_samplers():
  x, _, semi = blobs(n=300)
  method = methods.build(tiny_config(), x.shape[1], x.shape[0])
  with pytest.raises(ValueError, match="uniform shuffled batches"):
    hostfed.fit_host_fed(method, x, semi, 0, batch_size=50)
