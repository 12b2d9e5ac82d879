"""Shape buckets (Engine v2): padded rows, features and pools never change the math.

A run padded to its own shape (only the counts are set) must be bit-identical to the
unpadded run; a run padded to a bigger bucket trains an equivalent model whose padded
input weights stay zero. The runner groups the cells of a grid into few programs and
gives every cell the files of a single run.
"""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssadjax import data as data_lib
from ssadjax import methods, metrics
from experiments import grid
from experiments import runner
from ssadjax.host import engine, grouping
from ssadjax.methods import anoonly, samplers
from ssadjax.methods import train_data
from ssadjax.models.layers import true_fan_kernel
from ssadjax.norm import NormPolicy
from tests.helpers import blobs, tiny_config

# Every method that pads (Method.pad_rows and pad_features), at a few steps.
PADDING_METHODS = {
    "deepsad": {"deepsad.num_epochs": 20, "deepsad.lr_milestone_at_zero": False},
    "devnet": {"devnet.num_epochs": 3, "devnet.steps_per_epoch": 5},
    "prenet": {"prenet.num_epochs": 3, "prenet.steps_per_epoch": 5},
    "feawad": {"feawad.num_epochs": 10, "feawad.steps_per_epoch": 5,
               "feawad.pretrain_epochs": 2, "feawad.pretrain_steps_per_epoch": 5},
}


def test_masked_permutation_is_permutation_when_nothing_is_padded():
  key = jax.random.key(3)
  np.testing.assert_array_equal(samplers.masked_permutation(key, 50, 50),
                                jax.random.permutation(key, 50))
  # a traced count equal to the size follows the same sorts
  np.testing.assert_array_equal(
      jax.jit(lambda k, c: samplers.masked_permutation(k, 50, c))(key, jnp.int32(50)),
      jax.random.permutation(key, 50))


def test_masked_permutation_keeps_padded_positions_last():
  perm = np.asarray(jax.jit(lambda k, c: samplers.masked_permutation(k, 64, c))(
      jax.random.key(0), jnp.int32(37)))
  assert sorted(perm[:37]) == list(range(37))
  np.testing.assert_array_equal(perm[37:], np.arange(37, 64))
  assert not np.array_equal(perm[:37], np.arange(37))  # shuffled


def test_masked_permutation_orders_real_rows_as_the_unpadded_permutation():
  """Padding a pool to a bucket does not change which order its real rows are drawn in,
  also where the bucket needs more sort rounds than the real count (2 rounds above 1625)."""
  key = jax.random.key(5)
  shuffle = jax.jit(lambda k, c: samplers.masked_permutation(k, 4096, c))
  for count in (37, 1625, 1626, 3000):
    perm = np.asarray(shuffle(key, jnp.int32(count)))
    np.testing.assert_array_equal(perm[:count], jax.random.permutation(key, count))
    np.testing.assert_array_equal(perm[count:], np.arange(count, 4096))


def test_true_fan_kernel_zeroes_padding_and_draws_at_the_real_fan():
  init = jax.nn.initializers.lecun_normal()  # std 1/sqrt(fan_in)
  kernel = init(jax.random.key(0), (64, 4096))
  in_mask = jnp.arange(64) < 16
  fixed, _ = true_fan_kernel(kernel, mode="fan_in", in_mask=in_mask)
  fixed = np.asarray(fixed)
  assert np.all(fixed[16:] == 0)
  np.testing.assert_allclose(fixed[:16].std(), 1 / np.sqrt(16), rtol=0.02)
  same, _ = true_fan_kernel(kernel, mode="fan_avg")
  np.testing.assert_array_equal(same, kernel)  # nothing padded: factor exactly 1
  with pytest.raises(ValueError, match="fan_in"):
    true_fan_kernel(kernel, mode="fanin")


def _fit_and_score(name, data, x_test, seeds=(1, 2)):
  config = tiny_config(method=name, **PADDING_METHODS[name])
  n, d = data.x.shape
  method = methods.build(config, d, n)
  assert method.pad_rows and method.pad_features, name
  stacked = engine.stack_data([data] * len(seeds))
  state, _ = engine.fit(method, stacked, list(seeds), chunk_epochs=2)
  scores = engine.score(method, state, np.stack([x_test] * len(seeds)), data=stacked)
  return state, scores


@pytest.mark.parametrize("name", sorted(PADDING_METHODS))
def test_padded_to_its_own_shape_is_bit_identical(name):
  x, labels, semi = blobs(n=260, d=6)
  data = methods.make_train_data(x, semi)
  n, d = x.shape
  padded = train_data.pad_train_data(data, num_rows=n, num_features=d,
                               num_anomalies=len(data.anomaly_index),
                               num_unlabelled=len(data.unlabelled_index))
  plain_state, plain_scores = _fit_and_score(name, data, x)
  padded_state, padded_scores = _fit_and_score(name, padded, x)
  np.testing.assert_array_equal(plain_scores, padded_scores)
  for a, b in zip(jax.tree.leaves(plain_state.params), jax.tree.leaves(padded_state.params)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(PADDING_METHODS))
def test_padded_to_a_bigger_bucket_keeps_padded_inputs_dead_and_learns(name):
  x, labels, semi = blobs(n=260, d=6)
  data = methods.make_train_data(x, semi)
  padded = train_data.pad_train_data(data, num_rows=400, num_features=24, num_anomalies=40,
                               num_unlabelled=400)
  x_test = np.zeros((300, 24), np.float32)
  x_test[:260, :6] = x
  _, plain_scores = _fit_and_score(name, data, x)
  state, padded_scores = _fit_and_score(name, padded, x_test)
  # Every first-layer kernel that reads the input (no other layer has 24 inputs) has
  # zero rows for the padded features after training.
  input_kernels = [k for k in jax.tree.leaves(state.params) if k.ndim == 3 and k.shape[1] == 24]
  assert input_kernels, name
  for kernel in input_kernels:
    assert np.all(np.asarray(kernel)[:, 6:] == 0), name
  plain = np.mean([metrics.auroc(labels, s) for s in plain_scores])
  bucketed = np.mean([metrics.auroc(labels, s[:260]) for s in padded_scores])
  assert bucketed > 0.9 and abs(bucketed - plain) < 0.05, (name, plain, bucketed)


def _cell_scores(workdir):
  return np.load(workdir / "scores.npz")["scores"]


def test_exact_buckets_run_a_la_grid_as_one_program_equal_to_separate_cells(tmp_path):
  config = tiny_config(num_seeds=2, grid="la=0.1|0.05", **{"train.buckets": "exact"})
  summaries = runner.run_grid(config, tmp_path / "grid")
  assert [s["program_group"]["cells"] for s in summaries] == [2, 2]
  assert summaries[0]["program_group"]["runs"] == 4
  for summary in summaries:
    single = tiny_config(num_seeds=2, la=summary["la"], **{"train.buckets": "exact"})
    alone = runner.run_single(single, tmp_path / f"alone_{summary['la']}")
    assert alone["program_group"]["cells"] == 1
    cell = tmp_path / "grid" / "cells" / f"la={summary['la']}"
    np.testing.assert_array_equal(_cell_scores(cell), _cell_scores(tmp_path / f"alone_{summary['la']}"))
    assert summary["auroc"] == alone["auroc"]


def test_grid_of_datasets_shares_programs_and_resumes_a_group(tmp_path, adbench_dir):
  """Three files with 6, 8 and 6 features fall in one pow2 bucket (8 features); an
  interruption inside the group resumes from the group's checkpoint."""
  spec = "dataset=38_thyroid|47_yeast|2_annthyroid"
  config = tiny_config(num_seeds=2, grid=spec, data_dir=str(adbench_dir),
                       **{"deepsad.num_epochs": 4, "train.chunk_epochs": 2})
  cells = [runner._Cell(c, tmp_path / "plan" / grid.cell_name(o), None)
           for o, c in grid.cells(config)]
  # thyroid (3772 rows -> 2640 train) and the others within one row class of 4x
  groups = grouping.plan_programs(cells)
  assert len(groups) < len(cells)

  reference = runner.run_grid(config, tmp_path / "reference")
  seen = []

  def interrupt(epoch, m):
    seen.append(epoch)
    if len(seen) == 2:
      raise KeyboardInterrupt
  with pytest.raises(KeyboardInterrupt):
    runner.run_grid(config, tmp_path / "resumed", on_chunk_end=interrupt)
  resumed = runner.run_grid(config, tmp_path / "resumed")
  for a, b in zip(reference, resumed):
    assert a["grid"] == b["grid"] and a["program_group"] == b["program_group"]
    np.testing.assert_allclose(a["auroc"], b["auroc"], atol=1e-6)
  again = runner.run_grid(config, tmp_path / "resumed")
  assert all(r.get("reused") for r in again)
  rows = (tmp_path / "resumed" / "results.csv").read_text().splitlines()
  assert len(rows) == 1 + 3 * 2


def test_pow2_equals_exact_when_the_cell_is_its_own_bucket(tmp_path, adbench_dir):
  """47_yeast has 8 features (a power of two) and one cell's rows are its own bucket."""
  results = {}
  for buckets in ("pow2", "exact"):
    config = tiny_config(dataset="47_yeast", data_dir=str(adbench_dir), num_seeds=2,
                         **{"train.buckets": buckets})
    results[buckets] = runner.run_single(config, tmp_path / buckets)
    assert results[buckets]["program_group"]["features"] == 8
  np.testing.assert_array_equal(_cell_scores(tmp_path / "pow2"), _cell_scores(tmp_path / "exact"))


def test_unknown_bucket_policy_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="buckets"):
    runner.run_single(tiny_config(**{"train.buckets": "fast"}), tmp_path)
  assert not (tmp_path / "results.json").exists()


def test_unknown_compile_effort_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match=re.escape("train.compile='quick'; expected optimized | fast")):
    runner.run_single(tiny_config(**{"train.compile": "quick"}), tmp_path)
  assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
def test_grid_on_eight_replica_devices_equals_one_device(tmp_path):
  """The run axis is what the 'replica' mesh axis shards: 2 cells x 3 seeds = 6 runs (the
  last repeated up to 8) on 8 simulated devices give each cell the 1-device results."""
  import os
  import pathlib
  import subprocess
  import sys
  repo = pathlib.Path(__file__).resolve().parents[1]
  aurocs = {}
  for devices in (1, 8):
    workdir = tmp_path / str(devices)
    out = subprocess.run(
        ["timeout", "-s", "KILL", "300", sys.executable, "-m", "experiments.main",
         "--config=experiments/configs/default.py", "--config.grid=la=0.1|0.05",
         "--config.num_seeds=3", "--config.deepsad.num_epochs=4",
         f"--config.parallel.cpu_devices={devices}", f"--config.parallel.replica={devices}",
         "--config.parallel.data=1", f"--workdir={workdir}"],
        cwd=repo, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(repo)})
    assert out.returncode == 0, out.stderr[-3000:]
    cells = sorted(workdir.glob("cells/*/results.json"))
    assert len(cells) == 2
    results = [json.loads(p.read_text()) for p in cells]
    assert all(r["devices"] == devices and r["program_group"]["cells"] == 2 for r in results)
    aurocs[devices] = [r["auroc"] for r in results]
  np.testing.assert_allclose(aurocs[1], aurocs[8], atol=1e-4)


def test_plan_grid_groups_by_program_identity():
  """`la` and seeds share a program; anomaly_only changes the loss, hence the program."""
  config = tiny_config(num_seeds=2, grid="anomaly_only=False|True;la=0.1|0.05")
  groups = runner.plan_grid(config)
  assert groups == [["anomaly_only=False,la=0.1", "anomaly_only=False,la=0.05"],
                    ["anomaly_only=True,la=0.1", "anomaly_only=True,la=0.05"]]


def test_data_protocol_knobs_share_a_program():
  """`data.*` only chooses data (a robustness grid's contamination, noise, scaling)."""
  config = tiny_config(num_seeds=2, grid="data.label_contamination=0.0|0.1;la=0.1|0.05")
  assert len(runner.plan_grid(config)) == 1


_BGAD_STEPS = {"bgad.num_blocks": 2, "bgad.batch_size": 32, "bgad.anomalies_per_batch": 4,
               "bgad.meta_epochs": 3}
_DEEPSAD_PRETRAINED = {"deepsad.num_epochs": 2, "deepsad.pretrain_epochs": 2,
                       "deepsad.pretrain_transfer": True}
_FEAWAD_STEPS = {"feawad.num_epochs": 2, "feawad.steps_per_epoch": 5,
                 "feawad.pretrain_epochs": 2, "feawad.pretrain_steps_per_epoch": 5}


@pytest.mark.parametrize("name,field,rates,steps,rtol", [
    ("deepsad", "learning_rate", (1e-3, 3e-3), {"deepsad.num_epochs": 4}, 1e-3),
    ("devnet", "learning_rate", (1e-3, 2e-4),
     {"devnet.num_epochs": 2, "devnet.steps_per_epoch": 5}, 1e-3),
    # FUN-AD's kNN pseudo-labels turn float rounding into small score changes
    ("funad", "learning_rate", (1e-3, 3e-3),
     {"funad.num_epochs": 2, "funad.batch_size": 32, "funad.hidden_dims": (16, 8)}, 1e-2),
    # the main stage only (the warm-up's rate: tests/test_bgad.py)
    ("bgad", "learning_rate", (2e-4, 6e-4), {**_BGAD_STEPS, "bgad.ml_warmup": False}, 1e-3),
    # scaled stage rates (optim.rate_scaled): Deep SAD's transferred pretraining, FEAWAD's
    ("deepsad", "pretrain_learning_rate", (1e-3, 1e-2), _DEEPSAD_PRETRAINED, 1e-3),
    ("feawad", "pretrain_learning_rate", (1e-4, 1e-3), _FEAWAD_STEPS, 1e-3)])
def test_learning_rate_sweep_is_one_program_equal_to_separate_cells(tmp_path, name, field,
                                                                    rates, steps, rtol):
  """Rates are run data (updates scale by rate / the program's rate): a sweep trains as
  one program; the cell at the program's own rate is bit-identical to running alone
  (BGAD's and FEAWAD's to 1 ulp of their largest score), the other equal up to float rounding of the scaled
  updates."""
  key = f"{name}.{field}"
  config = tiny_config(method=name, num_seeds=2, **steps, grid=f"{key}={rates[0]}|{rates[1]}")
  assert len(runner.plan_grid(config)) == 1
  summaries = runner.run_grid(config, tmp_path / "grid")
  assert [s["program_group"]["cells"] for s in summaries] == [2, 2]
  for rate in rates:
    runner.run_single(tiny_config(method=name, num_seeds=2, **steps, **{key: rate}),
                      tmp_path / f"alone_{rate}")
    cell = _cell_scores(tmp_path / "grid" / "cells" / f"{key}={rate}")
    alone = _cell_scores(tmp_path / f"alone_{rate}")
    if rate == rates[0] and name in ("bgad", "feawad"):
      # XLA compiles their four runs' arithmetic slightly differently from two: 1 ulp
      # (FEAWAD's margin sweep too), of the largest score where a small score is a
      # difference of larger terms
      np.testing.assert_allclose(cell, alone, rtol=5e-7,
                                 atol=np.spacing(np.abs(alone).max()))
    elif rate == rates[0]:
      np.testing.assert_array_equal(cell, alone)
    else:
      np.testing.assert_allclose(cell, alone, rtol=rtol, atol=1e-4)
  # the two rates really trained differently
  first, second = (_cell_scores(tmp_path / "grid" / "cells" / f"{key}={r}") for r in rates)
  assert not np.allclose(first, second, rtol=1e-3)


@pytest.mark.parametrize("name,field,values", [("deepsad", "eta", (1.0, 4.0)),
                                               ("deepsad", "weight_decay", (0.0, 0.05)),
                                               ("devnet", "margin", (5.0, 1.0)),
                                               ("devnet", "l2", (0.01, 0.3)),
                                               ("devnet", "clipnorm", (1.0, 0.02)),
                                               ("bgad", "pos_beta", (0.01, 0.5)),
                                               ("prenet", "target_uu", (0.0, 2.0)),
                                               ("prenet", "weight_decay", (0.01, 0.2)),
                                               ("prenet", "l2_kernel", (0.01, 0.3)),
                                               ("prenet", "clipnorm", (1.0, 0.02)),
                                               # the decay Deep SAD's pretraining inherits
                                               ("deepsad_pretrained", "weight_decay",
                                                (0.0, 0.05))])
def test_run_hparam_sweep_is_one_program_equal_to_separate_cells(tmp_path, name, field, values):
  """Method.run_hparams are data of the program (extras / the injected optimizer state):
  a sweep trains as one program, every cell bit-identical to running alone."""
  steps = {"deepsad": {"deepsad.num_epochs": 4},
           "deepsad_pretrained": _DEEPSAD_PRETRAINED,
           "devnet": {"devnet.num_epochs": 2, "devnet.steps_per_epoch": 5},
           "prenet": {"prenet.num_epochs": 2, "prenet.steps_per_epoch": 5},
           # a fast rate: a visible effect
           "bgad": {**_BGAD_STEPS, "bgad.learning_rate": 1e-2}}[name]
  method = name.split("_")[0]
  _assert_sweep_is_one_program(tmp_path, method, f"{method}.{field}", values, steps)


def _assert_sweep_is_one_program(tmp_path, method, key, values, steps):
  """`grid=key=v0|v1` plans and trains as one program, every cell bit-identical to
  running its value alone, and the two values really trained differently."""
  config = tiny_config(method=method, num_seeds=2, **steps, grid=f"{key}={values[0]}|{values[1]}")
  assert len(runner.plan_grid(config)) == 1
  summaries = runner.run_grid(config, tmp_path / "grid")
  assert [s["program_group"]["cells"] for s in summaries] == [2, 2]
  cells = [_cell_scores(tmp_path / "grid" / "cells" / f"{key}={v}") for v in values]
  for value, cell in zip(values, cells):
    runner.run_single(tiny_config(method=method, num_seeds=2, **steps, **{key: value}),
                      tmp_path / f"alone_{value}")
    np.testing.assert_array_equal(cell, _cell_scores(tmp_path / f"alone_{value}"))
  assert not np.allclose(cells[0], cells[1], rtol=1e-3)


def test_run_hparams_of_another_method_are_a_clear_error():
  config = tiny_config(method="devnet", **{"devnet.num_epochs": 1, "devnet.steps_per_epoch": 2})
  x, _, semi = blobs()
  method = methods.build(config, x.shape[1], x.shape[0])
  data = engine.stack_data([methods.make_train_data(x, semi)])
  with pytest.raises(ValueError, match="'eta'.*not run hyper-parameters.*margin"):
    engine.fit(method, data, [0], run_hparams=[{"eta": 2.0}])


def test_learning_rate_of_a_non_proportional_schedule_stays_in_the_program():
  """PReNet's cosine annealing to a floor is affine in the rate: no sharing."""
  config = tiny_config(method="prenet", num_seeds=1,
                       grid="prenet.learning_rate=0.001|0.002",
                       **{"prenet.lr_schedule": "cosine", "prenet.cosine_eta_min": 1e-5})
  assert len(runner.plan_grid(config)) == 2


@pytest.mark.parametrize("name,steps", [
    ("deepsad", {"deepsad.num_epochs": 4}),
    # AnoOnly's PReNet normalises both sides of a pair with one norm: two updates per step.
    ("prenet", {"anomaly_only": True, "prenet.num_epochs": 2, "prenet.steps_per_epoch": 5}),
    # per-device statistics (two row groups): the grouped layer takes the run's momentum too
    ("devnet", {"anomaly_only": True, "devnet.num_epochs": 2, "devnet.steps_per_epoch": 5,
                "norm.sync": False, "norm.stat_groups": 2})])
def test_batchnorm_momentum_sweep_is_one_program_equal_to_separate_cells(tmp_path, name,
                                                                         steps):
  """norm.momentum is run data (norm.run_momentum): a sweep trains as one program, every
  cell bit-identical to running alone, and the momenta really differ in effect."""
  _assert_sweep_is_one_program(tmp_path, name, "norm.momentum", (0.5, 0.0), steps)

@pytest.mark.parametrize("name,steps", [
    ("deepsad", {"deepsad.num_epochs": 3}),
    ("prenet", {"anomaly_only": True, "prenet.num_epochs": 2, "prenet.steps_per_epoch": 5}),
    ("devnet", {"anomaly_only": True, "devnet.num_epochs": 2, "devnet.steps_per_epoch": 5,
                "norm.sync": False, "norm.stat_groups": 2})])
def test_run_momentum_matches_the_static_momentum_of_the_layers(name, steps):
  """A set momentum is run data and moves the running statistics as layers built with that
  static momentum do (equal up to float rounding: the blended statistics are two-pass);
  unset, the method is built exactly as before, each layer with its own momentum."""
  x, _, semi = blobs()
  data = engine.stack_data([methods.make_train_data(x, semi)])

  def fit(config, static: bool):
    if not static:
      method = methods.build(config, x.shape[1], x.shape[0])
    else:  # the factory with the policy as configured: momentum baked into the layers
      entry = methods.REGISTRY[name]
      factory = entry.make
      if config.anomaly_only:
        factory = anoonly.anomaly_only(factory, entry.anoonly_changes,
                                       empty_batch=config.anoonly.empty_batch)
      method = factory(entry.hparams(config), NormPolicy.from_config(config.norm),
                       x.shape[1], x.shape[0], image_shape=data_lib.feature_shape(config.dataset))
    state, scores, _ = engine.fit_and_score(method, data, [1], x[None])
    return method, jax.tree.leaves(state.batch_stats), scores

  reference = tiny_config(method=name, **steps)
  method, stats_unset, _ = fit(reference, static=False)
  assert "norm.momentum" not in method.run_hparams and stats_unset

  half = tiny_config(method=name, **steps, **{"norm.momentum": 0.5})
  _, stats_static, scores_static = fit(half, static=True)
  method, stats_run, scores_run = fit(half, static=False)
  assert method.run_hparams["norm.momentum"] == 0.5
  for a, b in zip(stats_static, stats_run):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(scores_static, scores_run, rtol=1e-4, atol=1e-5)
  # the momentum matters: 0.5 is not the reference's
  assert not all(np.allclose(a, b, rtol=1e-3) for a, b in zip(stats_unset, stats_run))
  # unset and set momenta are separate programs; set ones share one
  assert len(runner.plan_grid(tiny_config(method=name, **steps,
                                          grid="norm.momentum=None|0.5|0.0"))) == 2
