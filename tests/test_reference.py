"""experiments/reference.py's plumbing, with a stand-in for the reference environment.

The real worker needs the reference venv (torch, tensorflow-cpu, tf-keras, adbench; see
README.md); here a tiny script plays it: it scores each exported split with the row sum of
x_test, so the expected AUROC can be recomputed from our own splits.
"""

import csv
import stat
import sys

import numpy as np
import pytest

from experiments import reference
from ssadjax import metrics
from ssadjax import runconfig
from experiments import workdir

FAKE_WORKER = """#!{python}
import os, sys, numpy as np
args = sys.argv[1:]
assert args[:3] == ["-m", "experiments.reference", "--worker"], args
method = args[args.index("--method") + 1]
out = args[args.index("--scores_out") + 1]
files = args[args.index("--split_files") + 1:]
implementation = args[args.index("--implementation") + 1]
variant = args[args.index("--variants") + 1]
if implementation == "anoonly":
  root = args[args.index("--anoonly_root") + 1]
  assert os.path.isdir(os.path.join(root, "baselines")), root
  # Each worker runs in a fresh directory (the AnoOnly Keras baselines checkpoint there).
  assert os.listdir(".") == [], os.listdir(".")
  method += ":" + variant
with open({calls!r}, "a") as f:
  f.write(method + "\\n")
result = {{}}
for path in files:
  split = np.load(path)
  seed = int(split["seed"])
  assert split["x_train"].shape[0] == split["semi_labels"].shape[0]
  result[f"{{seed}}_seconds"] = np.float64(0.5)
  if str(seed) in os.environ.get("FAKE_FAILING_SEEDS", "").split(","):
    # What the real worker writes when the reference code raises on a seed.
    result[f"{{seed}}_error"] = np.str_("FileNotFoundError: no best weights saved")
    continue
  result[str(seed)] = split["x_test"].sum(axis=1)
np.savez(out, **result)
"""


@pytest.fixture
def toy(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 4)).astype(np.float32)
  y = (rng.random(300) < 0.1).astype(np.int64)
  x[y == 1] += 1.5  # anomalies have larger row sums, so the fake scores are informative
  (tmp_path / "data" / "Classical").mkdir(parents=True)
  np.savez(tmp_path / "data" / "Classical" / "toy.npz", X=x, y=y)
  calls = tmp_path / "calls.txt"
  worker = tmp_path / "fake_python"
  worker.write_text(FAKE_WORKER.format(python=sys.executable, calls=str(calls)))
  worker.chmod(worker.stat().st_mode | stat.S_IEXEC)
  return tmp_path, worker, calls


def test_reference_rows_are_scored_on_our_splits(toy):
  tmp_path, worker, calls = toy
  out = tmp_path / "results.csv"
  kwargs = dict(ref_python=str(worker), datasets=["Classical/toy"],
                methods=["feawad", "devnet"], seeds=[1, 2], la=0.1, out=out,
                data_dir=str(tmp_path / "data"), nice=0)
  reference.run_reference(**kwargs)
  with open(out) as f:
    reader = csv.DictReader(f)
    rows = list(reader)
    header = reader.fieldnames
  assert header == list(workdir.RESULT_FIELDS) + ["implementation", "error"]
  assert len(rows) == 4 and {r["implementation"] for r in rows} == {"reference"}
  splits = runconfig.prepare_splits(
      reference.split_config("Classical/toy", 0.1, str(tmp_path / "data")), [1, 2])
  for row in rows:
    split = splits[int(row["seed"]) - 1]
    expected = metrics.auroc(split.y_test, split.x_test.sum(axis=1))
    assert float(row["auroc"]) == pytest.approx(expected)
    assert row["dataset"] == "Classical/toy" and float(row["la"]) == 0.1
  # Different seeds, different splits: the pairing with our runner is per seed.
  assert rows[0]["auroc"] != rows[1]["auroc"]
  # A second call finds every row done and runs nothing.
  reference.run_reference(**kwargs)
  assert calls.read_text().split() == ["feawad", "devnet"]
  # A new method on the same file runs only that method.
  reference.run_reference(**{**kwargs, "methods": ["prenet", "feawad"]})
  assert calls.read_text().split() == ["feawad", "devnet", "prenet"]


def test_a_failed_reference_seed_is_recorded_and_the_run_goes_on(toy, monkeypatch):
  tmp_path, worker, calls = toy
  out = tmp_path / "results.csv"
  kwargs = dict(ref_python=str(worker), datasets=["Classical/toy"],
                methods=["feawad", "devnet"], seeds=[1, 2], la=0.1, out=out,
                data_dir=str(tmp_path / "data"), nice=0)
  monkeypatch.setenv("FAKE_FAILING_SEEDS", "2")
  reference.run_reference(**kwargs)
  rows = {(r["method"], r["seed"]): r for r in reference.read_rows(out)}
  assert len(rows) == 4  # the second method still ran after the first one's failure
  for method in ("feawad", "devnet"):
    assert rows[method, "1"]["error"] == "" and float(rows[method, "1"]["auroc"]) > 0.5
    failed = rows[method, "2"]
    assert failed["error"].startswith("FileNotFoundError") and failed["auroc"] == ""
  # The failure counts as a result: a rerun does nothing...
  reference.run_reference(**kwargs)
  assert calls.read_text().split() == ["feawad", "devnet"]
  # ...unless asked to retry, which replaces the failed rows by scored ones.
  monkeypatch.delenv("FAKE_FAILING_SEEDS")
  reference.run_reference(**kwargs, retry_failed=True)
  assert calls.read_text().split() == ["feawad", "devnet"] * 2
  rows = reference.read_rows(out)
  assert len(rows) == 4 and all(r["error"] == "" and r["auroc"] for r in rows)


def test_worker_failure_names_the_method_and_file(toy):
  tmp_path, _, _ = toy
  broken = tmp_path / "broken_python"
  broken.write_text(f"#!{sys.executable}\nimport sys\nsys.exit('no adbench here')\n")
  broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
  with pytest.raises(RuntimeError, match="reference feawad on Classical/toy failed"):
    reference.run_reference(ref_python=str(broken), datasets=["Classical/toy"],
                            methods=["feawad"], seeds=[1], la=0.1,
                            out=tmp_path / "r.csv", data_dir=str(tmp_path / "data"), nice=0)


def test_cli_rejects_unknown_methods_and_missing_python(capsys):
  with pytest.raises(SystemExit):
    reference.main(["--ref_python=x", "--datasets=Classical/6_cardio", "--methods=bgad"])
  assert "unknown --methods ['bgad']" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    reference.main(["--ref_python=", "--datasets=Classical/6_cardio"])
  assert "--ref_python is required" in capsys.readouterr().err


def test_torchvision_stub_fails_loudly():
  modules = reference.torchvision_stub()
  with pytest.raises(RuntimeError, match="torchvision stub.*make_grid"):
    modules["torchvision.utils"].make_grid(None)
  with pytest.raises(RuntimeError, match="torchvision stub.*download_url"):
    modules["torchvision.datasets.utils"].download_url("u", "root")
  assert modules["torchvision"].datasets.utils is modules["torchvision.datasets.utils"]


def test_anoonly_repository_rows_carry_their_variant(toy):
  tmp_path, worker, calls = toy
  root = tmp_path / "AnoOnly"
  (root / "baselines").mkdir(parents=True)
  out = tmp_path / "anoonly.csv"
  kwargs = dict(ref_python=str(worker), datasets=["Classical/toy"], methods=["devnet"],
                seeds=[1, 2], la=0.1, out=out, data_dir=str(tmp_path / "data"), nice=0,
                implementation="anoonly", variants=("baseline", "anoonly"),
                anoonly_root=str(root))
  reference.run_reference(**kwargs)
  rows = reference.read_rows(out)
  assert calls.read_text().split() == ["devnet:baseline", "devnet:anoonly"]
  assert {r["implementation"] for r in rows} == {"anoonly_repo"}
  assert sorted((r["anomaly_only"], r["seed"]) for r in rows) == [
      ("False", "1"), ("False", "2"), ("True", "1"), ("True", "2")]
  # Both variants are keyed apart, and a rerun finds both done.
  reference.run_reference(**kwargs)
  assert calls.read_text().split() == ["devnet:baseline", "devnet:anoonly"]
  # The pairing with our runner keys on anomaly_only too.
  from experiments import fidelity
  pairs = fidelity.pair_rows(rows, rows)
  assert len(pairs) == 4 and {p["anomaly_only"] for p in pairs} == {False, True}


def test_anoonly_implementation_needs_a_checkout(toy, capsys):
  tmp_path, worker, _ = toy
  with pytest.raises(ValueError, match="not a checkout of github.com/cool-xuan/AnoOnly"):
    reference.run_reference(ref_python=str(worker), datasets=["Classical/toy"],
                            methods=["devnet"], seeds=[1], la=0.1, out=tmp_path / "r.csv",
                            data_dir=str(tmp_path / "data"), implementation="anoonly",
                            variants=("anoonly",), anoonly_root=str(tmp_path))
  with pytest.raises(SystemExit):
    reference.main(["--ref_python=x", "--datasets=Classical/6_cardio", "--variants=anoonly"])
  assert "needs --implementation=anoonly" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    reference.main(["--ref_python=x", "--datasets=Classical/6_cardio",
                    "--implementation=anoonly", f"--anoonly_root={tmp_path}"])
  assert "is not a checkout" in capsys.readouterr().err
