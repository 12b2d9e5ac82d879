"""Data parallelism: 1 vs 8 simulated devices, per-device BatchNorm, 2 processes on
loopback, checkpoints across device counts. Multi-device runs happen in subprocesses
because the CPU device count is fixed when JAX starts; each is bounded in time."""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssadjax import norm
from ssadjax.program import parallel

REPO = pathlib.Path(__file__).resolve().parents[1]


def _run(args, timeout=300, **kwargs):
  # timeout -s KILL: after jax.distributed.initialize JAX catches SIGTERM.
  return subprocess.run(["timeout", "-s", "KILL", str(timeout), sys.executable, *args],
                        cwd=REPO, capture_output=True, text=True,
                        env={**os.environ, "PYTHONPATH": str(REPO)}, **kwargs)


def test_grouped_batch_norm_matches_numpy_per_group():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 3)).astype(np.float32) * np.array([1.0, 5.0, 0.1], np.float32)
  policy = norm.NormPolicy(sync=False, groups=4)
  module = norm.Norm(policy, epsilon=1e-5, affine=False, momentum=0.9)
  variables = module.init(jax.random.key(0), x, train=False)
  y, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
  groups = x.reshape(4, 2, 3)
  mean, var = groups.mean(axis=1, keepdims=True), groups.var(axis=1, keepdims=True)
  expected = ((groups - mean) / np.sqrt(var + 1e-5)).reshape(8, 3)
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
  stats = updates["batch_stats"]["BatchNorm_0"]
  np.testing.assert_allclose(stats["mean"], 0.1 * mean.mean(axis=0)[0], rtol=1e-5)
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * var.mean(axis=0)[0], rtol=1e-5)
  # synced statistics of the same batch differ from the per-group ones
  synced = norm.Norm(norm.NormPolicy(), epsilon=1e-5, affine=False, momentum=0.9)
  y_synced, _ = synced.apply(synced.init(jax.random.key(0), x, train=False), x, train=True,
                             mutable=["batch_stats"])
  np.testing.assert_allclose(y_synced, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5),
                             rtol=1e-5, atol=1e-5)
  assert not np.allclose(y, y_synced)


def test_grouped_batch_norm_uses_linen_variable_names():
  x = jnp.ones((4, 3))
  grouped = norm.Norm(norm.NormPolicy(sync=False, groups=2)).init(jax.random.key(0), x,
                                                                  train=False)
  synced = norm.Norm(norm.NormPolicy()).init(jax.random.key(0), x, train=False)
  assert (jax.tree.map(jnp.shape, grouped) == jax.tree.map(jnp.shape, synced))


def test_grouped_batch_norm_rejects_uneven_groups():
  module = norm.Norm(norm.NormPolicy(sync=False, groups=3))
  variables = module.init(jax.random.key(0), jnp.ones((6, 2)), train=False)
  with pytest.raises(ValueError, match="equal groups"):
    module.apply(variables, jnp.ones((8, 2)), train=True, mutable=["batch_stats"])


def test_layout_errors_are_clear():
  with pytest.raises(ValueError, match="devices"):
    parallel.make_layout(data=jax.device_count() + 1)
  with pytest.raises(ValueError, match="replica"):
    parallel.make_layout(data=1, replica=0)
  parallel.make_layout(data=1).check_seeds(3)
  with pytest.raises(ValueError, match="not divisible by the 4 devices"):
    _layout_with_data_size(4).check_batch({"x": jnp.ones((6, 2))})
  with pytest.raises(ValueError, match="spread evenly"):
    _layout_with_replica_size(2).check_seeds(3)


def _layout_with_data_size(size):
  """A 1-device layout that reports a larger 'data' axis (only the checks use it)."""
  class Fake(parallel.Layout):
    data_size = size
  return Fake(parallel.make_layout(data=1).mesh)


def _layout_with_replica_size(size):
  class Fake(parallel.Layout):
    replica_size = size
  return Fake(parallel.make_layout(data=1).mesh)


@pytest.mark.slow
def test_eight_devices_equal_one_device_with_synced_bn():
  out = _run(["tests/parallel_worker.py", "8"])
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  one, eight = result["1"], result["8"]
  for a, b in zip(one["params"] + one["batch_stats"], eight["params"] + eight["batch_stats"]):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(one["auroc"], eight["auroc"], atol=1e-3)


def _main_args(workdir, adbench_dir, *extra):
  return ["-m", "experiments.main", "--config=experiments/configs/adbench.py",
          "--config.dataset=6_cardio", f"--config.data_dir={adbench_dir}",
          "--config.deepsad.num_epochs=20", f"--workdir={workdir}", *extra]


def _results(workdir):
  return json.loads((pathlib.Path(workdir) / "results.json").read_text())


@pytest.mark.slow
def test_issue_command_gives_same_auroc_on_1_and_8_devices(tmp_path, adbench_dir):
  aurocs = {}
  for n in (1, 8):
    out = _run(_main_args(tmp_path / str(n), adbench_dir, f"--config.parallel.cpu_devices={n}",
                          f"--config.parallel.data={n}"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert _results(tmp_path / str(n))["devices"] == n
    aurocs[n] = _results(tmp_path / str(n))["auroc_mean"]
  assert abs(aurocs[1] - aurocs[8]) < 1e-3


@pytest.mark.slow
def test_two_processes_on_loopback_match_one_process(tmp_path, adbench_dir):
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  procs = [subprocess.Popen(
      ["timeout", "-s", "KILL", "300", sys.executable,
       *_main_args(tmp_path / "two", adbench_dir, "--config.parallel.cpu_devices=1",
                   "--config.parallel.distributed=on",
                   f"--config.parallel.coordinator_address=127.0.0.1:{port}",
                   "--config.parallel.num_processes=2", f"--config.parallel.process_id={i}")],
      cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  outputs = [p.communicate() for p in procs]
  assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
  two = _results(tmp_path / "two")
  assert two["processes"] == 2 and two["devices"] == 2
  out = _run(_main_args(tmp_path / "one", adbench_dir, "--config.parallel.cpu_devices=2",
                        "--config.parallel.data=2"))
  assert out.returncode == 0, out.stderr[-3000:]
  np.testing.assert_allclose(two["auroc"], _results(tmp_path / "one")["auroc"], atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("first,second", [(8, 1), (1, 8)])
def test_checkpoint_restores_across_device_counts(tmp_path, adbench_dir, first, second):
  reference = tmp_path / "reference"
  out = _run(_main_args(reference, adbench_dir, f"--config.parallel.cpu_devices={second}",
                        f"--config.parallel.data={second}"))
  assert out.returncode == 0, out.stderr[-3000:]
  work = tmp_path / "work"
  out = _run(_main_args(work, adbench_dir, f"--config.parallel.cpu_devices={first}",
                        f"--config.parallel.data={first}"))
  assert out.returncode == 0, out.stderr[-3000:]
  # Drop the final checkpoint and results: the rerun must restore epoch 10's state,
  # saved on `first` devices, onto `second` devices and train the last 10 epochs there.
  (ckpt_dir,) = (work / "checkpoints").iterdir()
  shutil.rmtree(ckpt_dir / "20")
  (work / "results.json").unlink()
  out = _run(_main_args(work, adbench_dir, f"--config.parallel.cpu_devices={second}",
                        f"--config.parallel.data={second}"))
  assert out.returncode == 0, out.stderr[-3000:]
  assert "resumed" in out.stderr and "epoch 10" in out.stderr
  np.testing.assert_allclose(_results(work)["auroc"], _results(reference)["auroc"], atol=1e-3)
