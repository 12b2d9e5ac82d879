"""The host-fed input path reproduces the fused program for shuffled-batch methods."""

import dataclasses

import jax
import numpy as np
import pytest

from ssadjax import methods, metrics
from ssadjax.host import engine, hostfed
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


def test_host_fed_rejects_a_wrong_batch_size():
  x, _, semi = blobs(n=300)
  method = methods.build(tiny_config(), x.shape[1], x.shape[0])
  with pytest.raises(ValueError, match="batches of 32; pass that size"):
    hostfed.fit_host_fed(method, x, semi, 0, batch_size=50)


@pytest.mark.parametrize("overrides", [
    {"method": "devnet"}, {"method": "prenet"}, {"method": "feawad"},
    {"anomaly_only": True, "anoonly.empty_batch": "ensure_anomaly"}])
def test_host_fed_refuses_every_sampler_it_cannot_reproduce(overrides):
  x, _, semi = blobs(n=300)
  method = methods.build(tiny_config(**overrides), x.shape[1], x.shape[0])
  with pytest.raises(ValueError, match="draws its own batches"):
    hostfed.fit_host_fed(method, x, semi, 0, batch_size=32)


def test_host_fed_refuses_a_method_that_reads_its_training_rows():
  x, _, semi = blobs(n=300)
  method = methods.build(tiny_config(), x.shape[1], x.shape[0])
  method = dataclasses.replace(method, needs_train_data=True)
  with pytest.raises(ValueError, match="reads every training row"):
    hostfed.fit_host_fed(method, x, semi, 0, batch_size=32)


def test_host_fed_takes_anoonly_with_plain_shuffled_batches():
  """AnoOnly's default (zero_grad) changes only the loss reduction, which train_step
  applies on both paths."""
  x, _, semi = blobs(n=300)
  method = methods.build(tiny_config(anomaly_only=True), x.shape[1], x.shape[0])
  state, timing = hostfed.fit_host_fed(method, x, semi, 0, batch_size=32)
  assert timing["steps"] == 4 * (300 // 32)
