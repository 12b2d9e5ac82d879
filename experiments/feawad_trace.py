"""FEAWAD step by step against ADBench's own code, from the same weights and batches.

Two sides, as `experiments/reference.py`:
* `--side=reference` (run with the reference venv's python): trains ADBench's FEAWAD on
  one exported split and writes a trace .npz: the autoencoder's initial weights, the
  end-to-end model's weights at the start of its training (the pretrained autoencoder +
  fresh score generator), the rows of the two replayed batches, every batch loss and
  epoch loss of both stages, and the test scores.
* `--side=ours` (this repo's python): loads that trace, starts our FEAWAD from the same
  weights with the same batch rows and prints, stage by stage, how far ours is from the
  reference (pretrained weights, epoch losses, kept epoch, test scores, AUROC).

  python -m experiments.feawad_trace --side=export --dataset=Classical/40_vowels --seed=1 \
    --split=/tmp/split.npz
  /work/refvenv/bin/python -m experiments.feawad_trace --side=reference \
    --split=/tmp/split.npz --trace=/tmp/trace.npz
  python -m experiments.feawad_trace --side=ours --split=/tmp/split.npz --trace=/tmp/trace.npz
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np


def reference_side(split_path: str, trace_path: str) -> None:
  sys.argv = sys.argv[:1]
  from experiments import reference
  os.environ.update(reference.THREAD_ENV)
  reference.install_shims()
  import tf_keras
  from adbench.baseline.FEAWAD.run import FEAWAD

  split = np.load(split_path)
  seed = int(split["seed"])
  x, y = split["x_train"], split["semi_labels"]
  tf_keras.backend.clear_session()
  model = FEAWAD(seed=seed, save_suffix=f"trace_{os.getpid()}")
  records = []
  build = model.deviation_network

  def traced_build(*args, **kwargs):
    net = build(*args, **kwargs)
    cls = type(net)
    if not getattr(cls, "_traced", False):
      fit_generator = cls.fit_generator

      def traced_fit_generator(self, generator, **kw):
        rec = {"init": [w.copy() for w in self.get_weights()],
               "names": [w.name for w in self.weights], "batch_loss": []}
        cb = tf_keras.callbacks.LambdaCallback(
            on_batch_end=lambda b, logs: rec["batch_loss"].append(float(logs["loss"])))
        kw["callbacks"] = list(kw.get("callbacks") or []) + [cb]
        history = fit_generator(self, generator, **kw)
        rec["epoch_loss"] = list(history.history["loss"])
        records.append(rec)
        return history
      cls.fit_generator = traced_fit_generator
      cls._traced = True
    return net
  model.deviation_network = traced_build
  model.fit(x, y)
  scores = np.asarray(model.predict_score(split["x_test"]), np.float64).reshape(-1)
  for path in (model.dev_model_name,
               os.path.join(model.modelpath, f"pretrained_autoencoder_{model.save_suffix}.h5")):
    if os.path.exists(path):
      os.remove(path)
  # The replayed batches' rows: the generators on a matrix whose only column is the row id.
  ids = np.arange(len(x), dtype=np.float64)[:, None]
  inliers, outliers = np.where(y == 0)[0], np.where(y == 1)[0]
  ae_rows, _ = model.AE_input_batch_generation_sup(ids, inliers, 512, None)
  e2e_rows, e2e_labels = model.input_batch_generation_sup(ids, outliers, inliers, 512, None)
  out = {"scores": scores, "ae_rows": ae_rows[:, 0].astype(np.int64),
         "e2e_rows": e2e_rows[:, 0].astype(np.int64), "e2e_labels": e2e_labels}
  for stage, rec in zip(("ae", "e2e"), records):
    out[f"{stage}_names"] = np.array(rec["names"])
    for i, w in enumerate(rec["init"]):
      out[f"{stage}_w{i}"] = w
    out[f"{stage}_batch_loss"] = np.array(rec["batch_loss"])
    out[f"{stage}_epoch_loss"] = np.array(rec["epoch_loss"])
  np.savez(trace_path, **out)


def _keras_params(trace, stage: str) -> dict:
  """{'layer': {'kernel', 'bias'}} from the Keras weights of `stage`, by layer name."""
  params = {}
  names = [str(n) for n in trace[f"{stage}_names"]]
  for i, name in enumerate(names):
    # A second model in one graph suffixes its layer names (ain_1): strip that.
    layer = re.sub(r"_\d+$", "", name.split("/")[0])
    var = name.split("/")[-1].split(":")[0]
    params.setdefault(layer, {})[var] = np.asarray(trace[f"{stage}_w{i}"], np.float32)
  return params


def export_side(dataset: str, seed: int, la: float, split_path: str) -> None:
  from experiments import reference
  import pathlib
  import tempfile
  with tempfile.TemporaryDirectory() as tmp:
    paths, splits = reference.export_splits(dataset, [seed], la, None, pathlib.Path(tmp))
    split = dict(np.load(paths[0]))
  np.savez(split_path, y_test=splits[0].y_test, **split)


def ours_side(split_path: str, trace_path: str, dataset: str, la: float,
              variants: str = "A") -> dict:
  """AUROC of our FEAWAD (pretraining + end to end) for `variants`, each a letter:
  A: the reference's pretrained autoencoder and score-generator init, its batch (stage 2
     only); B: both stages from the reference's initial weights and batches;
  C: ours as it runs (our initial weights, our batches);
  D: our initial weights, the reference's batches; E: the reference's weights, our batches.
  """
  import dataclasses
  import jax
  import jax.numpy as jnp
  import optax
  from ssadjax import hparams, metrics
  from ssadjax.host import engine
  from ssadjax.methods import feawad
  from ssadjax.methods import train_data
  from ssadjax.norm import NormPolicy
  from ssadjax.models.feawad import FEAWADAutoencoder
  from experiments import reference

  split, trace = np.load(split_path), np.load(trace_path)
  seed = int(split["seed"])
  cfg = reference.split_config(dataset, la, None)
  cfg.method = "feawad"
  x, semi = split["x_train"], split["semi_labels"]
  data = train_data.make_train_data(x, semi)
  jdata = jax.tree.map(jnp.asarray, data)
  d = x.shape[1]
  hp = hparams.feawad.resolve(cfg)
  method = feawad.make_method(hp, NormPolicy.from_config(cfg.norm), d, len(x))
  report = {"reference_auroc": metrics.auroc(split["y_test"], trace["scores"])}

  keras_ae_init = _keras_params(trace, "ae")
  keras_e2e = _keras_params(trace, "e2e")
  keras_head = {k: v for k, v in keras_e2e.items() if k not in keras_ae_init}
  keras_pretrained = {k: v for k, v in keras_e2e.items() if k in keras_ae_init}
  keras_ae_rows = jnp.asarray(trace["ae_rows"], jnp.int32)
  keras_e2e_x = jnp.asarray(x[np.asarray(trace["e2e_rows"])], jnp.float32)
  keras_e2e_labels = jnp.asarray(trace["e2e_labels"], jnp.int32)

  init_key, extras_key, _ = engine.seed_keys(seed)
  our_variables, our_extras = method.init(init_key, extras_key, jdata)
  net_params = feawad.FEAWADNet(d).init(init_key, jdata.x[:2], train=False)["params"]
  our_ae_init = net_params["autoencoder"]
  our_head = {k: v for k, v in net_params.items() if k != "autoencoder"}
  our_ae_rows = our_extras["pretrain_rows"]
  our_e2e_x, our_e2e_labels = our_extras["fixed_x"], our_extras["fixed_semi_labels"]

  def pretrain(ae_init, ae_rows):
    params, loss = feawad.pretrain_autoencoder(
        FEAWADAutoencoder(d), ae_init, jdata, jax.random.key(0),
        epochs=hp["pretrain_epochs"], steps_per_epoch=hp["pretrain_steps_per_epoch"],
        batch_size=hp["pretrain_batch_size"],
        optimizer=optax.adam(hp["pretrain_learning_rate"], eps=hp["adam_eps"]),
        fixed_batch=True, select_best=True, fixed_rows=ae_rows)
    return params, float(loss)

  def end_to_end(ae_params, head, fixed_x, fixed_labels):
    def init(init_key, extras_key, data):
      variables, extras = method.init(init_key, extras_key, data)
      params = {**head, "autoencoder": ae_params}
      extras = {**extras, "fixed_x": fixed_x, "fixed_semi_labels": fixed_labels}
      return {**variables, "params": params}, extras
    traced = dataclasses.replace(method, init=init, stages=())  # pretrained above
    losses = []
    state, _ = engine.fit(traced, engine.stack_data([data]), [seed],
                          chunk_epochs=method.num_epochs,
                          on_chunk_end=lambda e, m: losses.append(np.asarray(m["loss"][0])))
    scores = engine.score(traced, state, split["x_test"][None])[0]
    return np.concatenate(losses), scores

  # Variants B-E: (whose initial weights, whose batches); the score head follows the
  # weights, both stages' rows follow the batches.
  sides = {"B": ("keras", "keras"), "C": ("ours", "ours"), "D": ("ours", "keras"),
           "E": ("keras", "ours")}
  inits = {"keras": (keras_ae_init, keras_head), "ours": (our_ae_init, our_head)}
  batches = {"keras": (keras_ae_rows, keras_e2e_x, keras_e2e_labels),
             "ours": (our_ae_rows, our_e2e_x, our_e2e_labels)}
  for v in variants:
    if v == "A":
      ae, ae_loss = keras_pretrained, float(np.min(trace["ae_epoch_loss"]))
      head, fx, fl = keras_head, keras_e2e_x, keras_e2e_labels
    elif v in sides:
      (ae_init, head), (ae_rows, fx, fl) = inits[sides[v][0]], batches[sides[v][1]]
      ae, ae_loss = pretrain(ae_init, ae_rows)
    else:
      raise ValueError(f"unknown variant {v!r}; use letters of ABCDE")
    epoch_loss, scores = end_to_end(ae, head, fx, fl)
    report[v] = {"auroc": round(metrics.auroc(split["y_test"], scores), 4),
                 "ae_best_loss": round(ae_loss, 6),
                 "e2e_best_loss": round(float(np.min(epoch_loss)), 4),
                 "score_corr_with_reference": round(float(np.corrcoef(scores, trace["scores"])[0, 1]), 4)}
    print(v, report[v], flush=True)
  report["reference"] = {"ae_best_loss": round(float(np.min(trace["ae_epoch_loss"])), 6),
                         "e2e_best_loss": round(float(np.min(trace["e2e_epoch_loss"])), 4)}
  return report


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--side", choices=("export", "reference", "ours"), required=True)
  parser.add_argument("--dataset", default="Classical/40_vowels")
  parser.add_argument("--seed", type=int, default=1)
  parser.add_argument("--la", type=float, default=0.1)
  parser.add_argument("--split", required=True)
  parser.add_argument("--trace")
  parser.add_argument("--variants", default="ABCDE", help="see ours_side")
  args = parser.parse_args(argv)
  if args.side == "export":
    export_side(args.dataset, args.seed, args.la, args.split)
  elif args.side == "reference":
    reference_side(args.split, args.trace)
  else:
    for k, v in ours_side(args.split, args.trace, args.dataset, args.la, args.variants).items():
      print(f"{k}: {v}")


if __name__ == "__main__":
  main()
