"""Compiled-program reuse: one program initialises and trains every chunk (and scores,
with `fit_and_score`), no recompilation for a refit, a config-keyed program shared between Method objects, the on-disk executable
cache, and float32 throughout."""

import re

import jax
import numpy as np
import pytest

from ssadjax import methods
from ssadjax.host import engine, grouping, program_cache
from tests.helpers import blobs, tiny_config


def _fit(config, x, semi, seeds=(0,), chunk_epochs=2, key=None):
  method = methods.build(config, x.shape[1], x.shape[0])
  data = engine.stack_data([methods.make_train_data(x, semi)] * len(seeds))
  state, timing = engine.fit(method, data, list(seeds), chunk_epochs=chunk_epochs,
                             program_key=key)
  return method, state, timing


def test_partial_last_chunk_reuses_the_chunk_program_and_matches_one_chunk():
  x, _, semi = blobs()
  config = tiny_config(**{"deepsad.num_epochs": 5})
  before = engine.program_stats["compiles"]
  chunks = []
  method = methods.build(config, x.shape[1], x.shape[0])
  data = engine.stack_data([methods.make_train_data(x, semi)])
  chunked, _ = engine.fit(method, data, [0], chunk_epochs=2,
                          on_chunk_end=lambda e, m: chunks.append((e, m["loss"].shape)))
  # one program (initialise in its first call + 2 epoch slots) for the chunks 2, 2, 1
  # (the last skips a slot)
  assert engine.program_stats["compiles"] - before == 1
  assert chunks == [(2, (1, 2)), (4, (1, 2)), (5, (1, 1))]
  assert int(chunked.step[0]) == 5 * method.steps_per_epoch
  _, whole, _ = _fit(config, x, semi, chunk_epochs=5)
  for a, b in zip(jax.tree.leaves(chunked.params), jax.tree.leaves(whole.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_refit_and_new_method_objects_with_one_key_do_not_recompile():
  x, _, semi = blobs()
  config = tiny_config()
  key = grouping.program_key(config, x.shape[1], x.shape[0])
  _, first, t1 = _fit(config, x, semi, seeds=(1, 2), key=key)
  before = engine.program_stats["compiles"]
  # other seeds, a freshly built Method: same programs
  _, second, t2 = _fit(config, x, semi, seeds=(3, 4), key=key)
  assert engine.program_stats["compiles"] == before and t2["compile_seconds"] == 0.0
  assert not np.allclose(jax.tree.leaves(first.params)[0], jax.tree.leaves(second.params)[0])


def test_program_key_ignores_seed_and_files_but_not_hyperparameters():
  config = tiny_config()
  key = grouping.program_key(config, 6, 300)
  other = tiny_config(seed=7, num_seeds=5, data_dir="/elsewhere",
                      **{"train.chunk_epochs": 3})
  assert grouping.program_key(other, 6, 300) == key
  assert grouping.program_key(tiny_config(**{"deepsad.eta": 2.0}), 6, 300) != key
  assert grouping.program_key(config, 7, 300) != key


def test_executable_cache_skips_compiling_and_gives_identical_models(tmp_path, without_jax_cache):
  x, labels, semi = blobs()
  config = tiny_config()
  key = grouping.program_key(config, x.shape[1], x.shape[0])
  program_cache.set_directory(str(tmp_path))
  try:
    engine.clear_program_cache()
    method, first, _ = _fit(config, x, semi, key=key)
    scores_first = engine.score(method, first, x[None], program_key=key)
    assert len(list(tmp_path.iterdir())) == 2  # train (initialises too), score
    engine.clear_program_cache()  # as a new process would be
    loads = engine.program_stats["loads"]
    compiles = engine.program_stats["compiles"]
    method, second, _ = _fit(config, x, semi, key=key)
    scores_second = engine.score(method, second, x[None], program_key=key)
    assert engine.program_stats["loads"] - loads == 2
    assert engine.program_stats["compiles"] == compiles
    np.testing.assert_array_equal(scores_first, scores_second)
  finally:
    program_cache.set_directory(None)
    engine.clear_program_cache()


def test_stored_executables_are_keyed_by_every_source_file_of_the_package():
  """A stored executable is invalid once any library file changes (a method's loss, a
  model, the program), not only the host loop's own folder."""
  names = {str(p.relative_to(program_cache._PACKAGE_ROOT)) for p in program_cache._source_files()}
  assert {"methods/deepsad.py", "models/mlp.py", "losses.py", "program/train.py",
          "host/engine.py"} <= names


def test_float64_inputs_train_and_score_in_float32():
  x, _, semi = blobs()
  config = tiny_config()
  method = methods.build(config, x.shape[1], x.shape[0])
  data = engine.stack_data([methods.make_train_data(x, semi)])
  data = data._replace(x=data.x.astype(np.float64))
  state, _ = engine.fit(method, data, [0], chunk_epochs=2)
  dtypes = {a.dtype for a in jax.tree.leaves(state) if np.issubdtype(a.dtype, np.floating)}
  assert dtypes == {np.dtype(np.float32)}
  scores = engine.score(method, state, x[None].astype(np.float64))
  assert scores.dtype == np.float32


@pytest.mark.parametrize("eval_stats", ["running", "recomputed"])
def test_fit_and_score_is_one_program_equal_to_fit_then_score(eval_stats):
  x, _, semi = blobs()
  config = tiny_config(**{"deepsad.num_epochs": 3, "norm.eval_stats": eval_stats})
  method = methods.build(config, x.shape[1], x.shape[0])
  data = engine.stack_data([methods.make_train_data(x, semi)] * 2)
  state, _ = engine.fit(method, data, [0, 1], chunk_epochs=2)
  if eval_stats == "recomputed":
    state = engine.recompute_batch_stats(method, state, data)
  separate = engine.score(method, state, np.stack([x, x[::-1]]))
  before = engine.program_stats["compiles"]
  fused_state, fused, _ = engine.fit_and_score(
      method, data, [0, 1], np.stack([x, x[::-1]]), chunk_epochs=2,
      recompute_stats=eval_stats == "recomputed")
  assert engine.program_stats["compiles"] - before == 1
  np.testing.assert_allclose(fused, separate, rtol=1e-5, atol=1e-6)
  assert int(fused_state.step[0]) == 3 * method.steps_per_epoch


def test_fit_and_score_resumed_at_the_last_epoch_scores_without_training(tmp_path):
  x, _, semi = blobs()
  config = tiny_config(**{"deepsad.num_epochs": 2})
  method = methods.build(config, x.shape[1], x.shape[0])
  data = engine.stack_data([methods.make_train_data(x, semi)])
  _, first, _ = engine.fit_and_score(method, data, [0], x[None], chunk_epochs=2,
                                     checkpoint_dir=tmp_path / "ckpt")
  chunks = []
  state, again, timing = engine.fit_and_score(
      method, data, [0], x[None], chunk_epochs=2, checkpoint_dir=tmp_path / "ckpt",
      on_chunk_end=lambda e, m: chunks.append(e))
  assert timing["resumed_from_epoch"] == 2 and chunks == []
  np.testing.assert_array_equal(again, first)


def test_fast_compile_is_its_own_program_and_trains_the_same_model():
  """compile_effort='fast' (LLVM -O0) is keyed apart from the default program; on this
  small MLP the scores agree to float rounding."""
  x, _, semi = blobs()
  config = tiny_config(**{"deepsad.num_epochs": 2})
  method = methods.build(config, x.shape[1], x.shape[0])
  data = engine.stack_data([methods.make_train_data(x, semi)])
  _, optimized, _ = engine.fit_and_score(method, data, [0], x[None], chunk_epochs=2)
  before = engine.program_stats["compiles"]
  _, fast, _ = engine.fit_and_score(method, data, [0], x[None], chunk_epochs=2,
                                    compile_effort="fast")
  assert engine.program_stats["compiles"] - before == 1
  np.testing.assert_allclose(fast, optimized, rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match=re.escape("compile_effort='slow'; expected one of optimized | fast")):
    engine.fit(method, data, [0], compile_effort="slow")


@pytest.mark.skipif(program_cache.mapping_count() is None, reason="needs /proc (Linux)")
def test_kept_programs_are_dropped_before_the_process_runs_out_of_memory_mappings(monkeypatch):
  """Past the kernel's cap on mapped regions XLA:CPU segfaults in its next compile (a
  pytest worker died so after ~300 tests): near the cap the kept programs go, and the
  regions they held are unmapped."""
  x, _, semi = blobs()
  config = tiny_config()
  key = grouping.program_key(config, x.shape[1], x.shape[0])
  _fit(config, x, semi, key=key)
  assert program_cache._PROGRAMS
  monkeypatch.setattr(program_cache, "_mapping_limit", lambda: 10**9)
  assert not program_cache.release_if_near_mapping_limit()
  assert program_cache._PROGRAMS
  before = program_cache.mapping_count()
  monkeypatch.setattr(program_cache, "_mapping_limit", lambda: 2 * before // 3)
  assert program_cache.release_if_near_mapping_limit()
  assert not program_cache._PROGRAMS
  assert program_cache.mapping_count() < before
  # the next compile of the engine checks too, and keeps only what it just compiled
  monkeypatch.setattr(program_cache, "_mapping_limit", lambda: 1)
  _, state, _ = _fit(config, x, semi, seeds=(1,), key=key)
  assert len(program_cache._PROGRAMS) == 1 and np.isfinite(jax.tree.leaves(state.params)[0]).all()
