"""Reliability: a catalogue of bad inputs through both entry points, divergence,
interruption by SIGKILL, grid resumption and determinism."""

import dataclasses
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ssadjax import DeepSAD, methods
from experiments import runner
from ssadjax.host import engine
from ssadjax.data import DatasetError
from tests.helpers import blobs, tiny_config

REPO = pathlib.Path(__file__).resolve().parents[1]


def _good_xy(n=200, d=5, anomalies=20, seed=0):
  x, labels, _ = blobs(seed=seed, n=n, d=d, n_anomalies=anomalies)
  return x.astype(np.float64), labels


def _write(data_dir, name, **arrays):
  data_dir.mkdir(parents=True, exist_ok=True)
  np.savez(data_dir / f"{name}.npz", **arrays)


def _case_config(data_dir, dataset="bad", **overrides):
  config = tiny_config(**{"dataset": dataset, "data_dir": str(data_dir), "num_seeds": 1,
                          "data.resample": False, **overrides})
  return config


def _xy(transform):
  def make(data_dir):
    x, y = _good_xy()
    x, y = transform(x, y)
    _write(data_dir, "bad", X=x, y=y)
    return _case_config(data_dir)
  return make


def _raw(**arrays_fn):
  def make(data_dir):
    _write(data_dir, "bad", **{k: f() for k, f in arrays_fn.items()})
    return _case_config(data_dir)
  return make


def _options(**overrides):
  def make(data_dir):
    x, y = _good_xy()
    _write(data_dir, "bad", X=x, y=y)
    return _case_config(data_dir, **overrides)
  return make


def _corrupt(data_dir):
  data_dir.mkdir(parents=True, exist_ok=True)
  (data_dir / "bad.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
  return _case_config(data_dir)


def _nan(x, y):
  x[3, 1] = np.nan
  return x, y


def _inf(x, y):
  x[0, 0] = -np.inf
  return x, y


def _huge(x, y):
  x[5, 2] = 1e30
  return x, y


BAD_EXPERIMENTS = {
    "nan in X": (_xy(_nan), "non-finite"),
    "inf in X": (_xy(_inf), "non-finite"),
    "empty X": (_xy(lambda x, y: (x[:0], y[:0])), "X is empty"),
    "one row": (_xy(lambda x, y: (x[:1], y[:1])), "only 1 rows"),
    "one class only": (_xy(lambda x, y: (x, np.zeros_like(y))), "no anomalies"),
    "all anomalies": (_xy(lambda x, y: (x, np.ones_like(y))), "no normal"),
    # One anomaly: stratification leaves one split without any.
    "a split without anomalies": (
        _xy(lambda x, y: (x, np.r_[1, np.zeros(len(y) - 1, y.dtype)])),
        "split has no anomalies"),
    "y not binary": (_xy(lambda x, y: (x, y * 2)), "binary"),
    "y of the wrong length": (_xy(lambda x, y: (x, y[:-3])), "200 rows but y has 197"),
    "X 1-D": (_xy(lambda x, y: (x[:, 0], y)), "2-D"),
    "object dtype": (_raw(X=lambda: np.array([["a", 1]] * 20, dtype=object),
                          y=lambda: np.r_[np.ones(2), np.zeros(18)]), "object arrays"),
    "constant features": (_xy(lambda x, y: (np.ones_like(x), y)), "constant"),
    "huge values": (_xy(_huge), "overflow"),
    "npz without X": (_raw(features=lambda: _good_xy()[0], y=lambda: _good_xy()[1]), r"missing key\(s\) \['X'\]"),
    "npz without y": (_raw(X=lambda: _good_xy()[0]), r"missing key\(s\) \['y'\]"),
    "corrupt npz": (_corrupt, "not an .npz archive"),
    "missing file": (lambda d: (d.mkdir(parents=True, exist_ok=True),
                                _case_config(d, dataset="nope"))[1], "not found"),
    "la labels more than exist": (_options(la=500), "500 labelled anomalies requested"),
    "la labels none with AnoOnly": (
        _options(la=0.0, anomaly_only=True, **{"data.at_least_one_labeled": False}),
        "labelled anomalies"),
    "la negative": (_options(la=-0.1), r"must be in \[0, 1\]"),
    "unknown method": (_options(method="deepsadd"), "available"),
    "negative learning rate": (_options(**{"deepsad.learning_rate": -1e-3}), "must be > 0"),
    "batch larger than the data": (_options(**{"deepsad.batch_size": 1000}), "exceeds"),
    "zero seeds": (_options(num_seeds=0), "num_seeds"),
    "bad divergence policy": (_options(**{"train.on_divergence": "ignore"}), "on_divergence"),
}


@pytest.mark.parametrize("case", sorted(BAD_EXPERIMENTS))
def test_bad_experiment_input_fails_clearly_and_writes_nothing(case, tmp_path):
  make, match = BAD_EXPERIMENTS[case]
  config = make(tmp_path / "data")
  workdir = tmp_path / "work"
  with pytest.raises((ValueError, DatasetError), match=match):
    runner.train_and_evaluate(config, workdir)
  assert not workdir.exists()  # not even an empty folder


def test_unwritable_workdir(tmp_path):
  x, y = _good_xy()
  _write(tmp_path / "data", "good", X=x, y=y)
  blocker = tmp_path / "a-file"
  blocker.write_text("")
  with pytest.raises(ValueError, match="not writable|not a directory"):
    runner.train_and_evaluate(_case_config(tmp_path / "data", dataset="good"),
                                  blocker / "work")


def test_batch_not_divisible_by_devices_fails_before_writing(tmp_path):
  x, y = _good_xy()
  _write(tmp_path / "data", "good", X=x, y=y)
  out = subprocess.run(
      [sys.executable, "-m", "experiments.main", "--config=experiments/configs/adbench.py",
       "--config.dataset=good", f"--config.data_dir={tmp_path / 'data'}",
       "--config.parallel.cpu_devices=2", "--config.parallel.data=2",
       "--config.deepsad.batch_size=33", "--config.data.resample=False",
       f"--workdir={tmp_path / 'work'}"], cwd=REPO, capture_output=True, text=True,
      timeout=300)
  assert out.returncode != 0
  assert "not divisible by the 2 devices" in out.stderr
  assert not (tmp_path / "work" / "config.json").exists()


BAD_FITS = {
    "nan in X": (lambda x, y: (_nan(x, y)), "non-finite"),
    "inf in X": (lambda x, y: (_inf(x, y)), "non-finite"),
    "empty X": (lambda x, y: (x[:0], y[:0]), "empty"),
    "X 1-D": (lambda x, y: (x[:, 0], y), "2-D"),
    "X 3-D": (lambda x, y: (x[:, :, None], y), "2-D"),
    # Object arrays of numbers are converted, as scikit-learn does; of strings, refused.
    "object dtype": (lambda x, y: (np.full(x.shape, "a", dtype=object), y), "numeric"),
    "y not binary": (lambda x, y: (x, y * 2), "labelled anomaly"),
    "y of the wrong length": (lambda x, y: (x, y[:-1]), "one label per row"),
    "huge values": (lambda x, y: _huge(x, y), "overflow"),
    "constant features": (lambda x, y: (np.ones_like(x), y), "constant"),
}


@pytest.mark.parametrize("case", sorted(BAD_FITS))
def test_bad_estimator_input_fails_clearly(case):
  x, y = _good_xy()
  x, y = BAD_FITS[case][0](x, y)
  with pytest.raises(DatasetError, match=BAD_FITS[case][1]):
    DeepSAD(num_epochs=1, batch_size=32).fit(x, y)


@pytest.mark.parametrize("kwargs,match", [
    ({"learning_rate": -1.0}, "must be > 0"),
    ({"num_epochs": 0}, "must be >= 1"),  # (a batch larger than the data shrinks, warning)
    ({"hparams": {"no_such": 1}}, "not a deepsad hyper-parameter"),
])
def test_bad_estimator_hyperparameters(kwargs, match):
  x, y = _good_xy()
  with pytest.raises(ValueError, match=match):
    DeepSAD(**{"num_epochs": 1, **kwargs}).fit(x, y)


def _exploding_method(x, semi, *, explode_at_step):
  method = methods.build(tiny_config(**{"deepsad.num_epochs": 6}), x.shape[1], x.shape[0])
  schedule = lambda step: jnp.where(step < explode_at_step, 1e-3, 1e30)
  return dataclasses.replace(method, optimizer=optax.sgd(schedule))


def test_divergence_stops_naming_seed_and_step_and_keeps_last_good_checkpoint(tmp_path):
  x, _, semi = blobs()  # 300 rows, batch 32 -> 9 steps per epoch
  method = _exploding_method(x, semi, explode_at_step=30)
  data = engine.stack_data([methods.make_train_data(x, semi)] * 2)
  with pytest.raises(engine.DivergenceError,
                     match=r"seed 5: non-finite training loss at step 3\d .*epoch 3 in"):
    engine.fit(method, data, [5, 6], chunk_epochs=1, checkpoint_dir=tmp_path / "ckpt")
  manager = engine.ckpt.make_manager(tmp_path / "ckpt")
  assert manager.latest_step() == 3  # epochs 1-3 were finite; epoch 4 was never saved


def test_checkpoint_of_another_state_layout_fails_with_one_clear_line(tmp_path):
  """A checkpoint written by a version whose training state had other fields (e.g. the
  training rows PReNet once kept in its extras) is refused by name, not by orbax's tree
  dump, and nothing is overwritten."""
  x, _, semi = blobs()
  cfg = tiny_config()
  method = methods.build(cfg, x.shape[1], x.shape[0])
  data = engine.stack_data([methods.make_train_data(x, semi)])
  state, _ = engine.fit(method, data, [1], chunk_epochs=1)
  older = state.replace(extras={**state.extras, "x_anomaly": jnp.ones((1, 6, 2))})
  manager = engine.ckpt.make_manager(tmp_path / "ckpt")
  engine.ckpt.save(manager, 1, older)
  manager.wait_until_finished()
  with pytest.raises(ValueError, match=r"checkpoint at .*ckpt/1 does not match this run's "
                     r"training state .*another ssadjax version.*delete"):
    engine.fit(method, data, [1], chunk_epochs=1, checkpoint_dir=tmp_path / "ckpt")
  assert engine.ckpt.make_manager(tmp_path / "ckpt").all_steps() == [1]


def test_divergence_continue_skips_only_the_diverging_seed():
  x, _, semi = blobs()
  bad = x.copy()
  bad[semi == 0] = np.float32(3e38)  # squares overflow: seed 2's loss is inf at once
  method = methods.build(tiny_config(), x.shape[1], x.shape[0])
  data = engine.stack_data([methods.make_train_data(x, semi),
                            methods.make_train_data(bad, semi)])
  state, timing = engine.fit(method, data, [1, 2], chunk_epochs=2, on_divergence="continue")
  assert list(timing["diverged"]) == [2] and timing["diverged"][2] == 0
  scores = engine.score(method, state, np.stack([x, x]))
  assert np.all(np.isfinite(scores[0]))


def _main_cmd(workdir, *extra):
  return [sys.executable, "-m", "experiments.main", "--config=experiments/configs/adbench.py",
          "--config.dataset=synthetic", "--config.num_seeds=2",
          f"--config.deepsad.num_epochs={_KILL_TEST_EPOCHS}", "--config.train.chunk_epochs=1",
          "--config.deepsad.hidden_dims=(32,16)", f"--workdir={workdir}", *extra]


_KILL_TEST_EPOCHS = 60


def _latest_checkpoint_step(workdir):
  return max((int(d.name) for d in workdir.glob("checkpoints/*/*[0-9]") if d.name.isdigit()),
             default=0)


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_equals_uninterrupted(tmp_path):
  env = {**os.environ, "PYTHONPATH": str(REPO)}
  reference = tmp_path / "reference"
  out = subprocess.run(_main_cmd(reference), cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  work = tmp_path / "work"
  rng = random.Random(0)
  kills = 0
  # An epoch with its checkpoint takes about 30 ms here, so a wall-clock delay cannot aim at
  # the middle of training; kill instead just after a random epoch's checkpoint appears
  # (mid-save or mid-chunk), one random epoch in each third of the run.
  third = _KILL_TEST_EPOCHS // 3
  for target in sorted(rng.randrange(i * third + 2, (i + 1) * third - 2) for i in range(3)):
    proc = subprocess.Popen(_main_cmd(work), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    target = max(target, _latest_checkpoint_step(work) + 1)
    deadline = time.time() + 300
    while (proc.poll() is None and time.time() < deadline
           and _latest_checkpoint_step(work) < target):
      time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.05))
    if proc.poll() is None:
      proc.send_signal(signal.SIGKILL)
      kills += 1
    proc.wait()
  assert kills >= 2, "the run finished before it could be interrupted"
  out = subprocess.run(_main_cmd(work), cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  a = json.loads((reference / "results.json").read_text())
  b = json.loads((work / "results.json").read_text())
  assert a["auroc"] == b["auroc"] and a["auprc"] == b["auprc"]
  np.testing.assert_array_equal(np.load(reference / "scores.npz")["scores"],
                                np.load(work / "scores.npz")["scores"])


def test_grid_resumes_without_recomputing_finished_cells(tmp_path):
  config = tiny_config(dataset="synthetic", num_seeds=1, grid="anomaly_only=False|True")
  chunks = []

  def interrupt_in_second_cell(epoch, metrics):
    chunks.append(epoch)
    if len(chunks) > 2:
      raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    runner.train_and_evaluate(config, tmp_path, on_chunk_end=interrupt_in_second_cell)
  first = tmp_path / "cells" / "anomaly_only=False" / "results.json"
  before = first.read_text()
  chunks.clear()
  summaries = runner.train_and_evaluate(config, tmp_path,
                                            on_chunk_end=lambda e, m: chunks.append(e))
  assert first.read_text() == before
  assert chunks == [4]  # only the second cell's remaining chunk (epochs 3-4) ran
  assert len(summaries) == 2 and (tmp_path / "report.md").exists()


def test_same_config_twice_gives_identical_results(tmp_path):
  config = tiny_config(dataset="synthetic", num_seeds=2)
  a = runner.run_single(config, tmp_path / "a")
  b = runner.run_single(config, tmp_path / "b")
  assert a["auroc"] == b["auroc"] and a["auprc"] == b["auprc"]
  np.testing.assert_array_equal(np.load(tmp_path / "a" / "scores.npz")["scores"],
                                np.load(tmp_path / "b" / "scores.npz")["scores"])
