"""Shared defaults of every experiment config; families override what they need.

The most used knobs are top-level (method, anomaly_only, dataset, data_dir, la,
num_seeds, seed); the reference hyper-parameters of each method live in a section named
after it (defined in ssadjax/hparams/<method>.py) so that every default is visible and a
typo in --config.x fails (locked config).
"""

import dataclasses

import ml_collections
from ml_collections import config_dict

from ssadjax import hparams
from ssadjax.data import protocol


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "deepsad"          # deepsad | deepsvdd | devnet | prenet | feawad | bgad | funad | clad
  c.anomaly_only = False        # AnoOnly transformation: loss on labelled anomalies only
  c.dataset = "synthetic"       # synthetic | embedded:optdigits | an ADBench name (6_cardio, Classical/6_cardio) | ...
  c.data_dir = ""               # ADBench folder; empty -> env SSADJAX_DATA_DIR
  # Declared `object` so a float stays a ratio (1.0 = every train anomaly) and an int a
  # count, on the command line (--config.la=5) and in grids (la=0.1|5), as in ADBench.
  c.la = config_dict.FieldReference(0.1, field_type=object)  # labelled anomalies: float ratio of the train anomalies | int count
  c.num_seeds = 3               # seeds seed, seed+1, ... train side by side in one program
  c.seed = 1                    # ADBench repeats with seeds 1, 2, 3
  c.preset = "adbench"          # adbench | anoonly_paper: reference settings where they disagree
  c.grid = ""                   # e.g. "dataset=6_cardio|38_thyroid;anomaly_only=False|True"
  # Named bundles of overrides for the grid: `@policy=a|b` in `grid` applies
  # grid_presets.policy.a (a string "norm.kind=layer,norm.affine=False").
  c.grid_presets = ml_collections.ConfigDict()
  c.plot = ""                   # after a grid: '' | policy_bars | knob:<grid key> (experiments/plots.py)

  c.data = ml_collections.ConfigDict()
  # The ADBench protocol's settings and defaults: ssadjax/data/protocol.py (Protocol).
  for field in dataclasses.fields(protocol.Protocol):
    c.data[field.name] = field.default
  # TFDS: tfds:adbench/<name> (data_dir is its manual dir) and image tasks tfds:mnist/<k>, sklearn:digits/<k>.
  c.data.tfds_dir = ""                 # TFDS data dir; '' -> $SSADJAX_TFDS_DIR or ~/.cache/ssadjax/tfds
  c.data.tfds_download = False         # image sets: let TFDS download + prepare (needs network)
  c.data.image_split = "train"         # split the one-vs-rest image task is built from
  c.data.image_anomaly_ratio = 0.05    # anomalies (other classes) as a share of the image task

  c.norm = ml_collections.ConfigDict()
  c.norm.kind = "batch"                # batch | layer | none
  c.norm.stats_rows = "all"            # all | unlabelled | labelled_anomalies
  c.norm.eval_stats = "running"        # running | batch (test-batch statistics) | recomputed (one pass over the unlabelled train rows after training)
  c.norm.momentum = config_dict.placeholder(float)  # None: the reference's value
  c.norm.sync = True                   # False: per-device batch statistics
  c.norm.stat_groups = config_dict.placeholder(int)  # per-device groups; None: parallel.data
  c.norm.placement = "reference"       # reference (as each reference / AnoOnly inserts it) | last_hidden | all_hidden | none
  c.norm.affine = config_dict.placeholder(bool)  # None: the reference's; True | False forces it

  # One section per method, named after it, with every default: ssadjax/hparams/<method>.py
  # (with the presets and the AnoOnly changes).
  for name, module in hparams.MODULES.items():
    c[name] = module.section()

  c.anoonly = ml_collections.ConfigDict()
  c.anoonly.empty_batch = "zero_grad"  # zero_grad (reference) | skip | ensure_anomaly

  c.train = ml_collections.ConfigDict()
  c.train.chunk_epochs = 10            # epochs per compiled dispatch; checkpoint + log between
  c.train.on_divergence = "stop"       # stop (error naming seed and step) | continue (skip the seed)
  # Shape buckets: cells whose method is exact on padded data (Deep SAD, DevNet, PReNet,
  # FEAWAD) are padded to powers of two (rows >= 1024, features >= 8) and share one
  # program per bucket; 'exact' pads nothing (one program per data shape).
  c.train.buckets = "pow2"             # pow2 | exact
  # optimized: XLA's default code generation; fast: LLVM at -O0 (xla_backend_optimization_level
  # 0), about half the compile time and slower steps where FLOPs dominate (docs/speed.md):
  # for grids of small cells. Results may differ from 'optimized' in the last float bits.
  c.train.compile = "optimized"        # optimized | fast

  c.parallel = ml_collections.ConfigDict()
  c.parallel.data = config_dict.placeholder(int)  # devices on the 'data' axis; None: all
  c.parallel.replica = 1               # devices on the 'replica' axis (seeds spread over it)
  c.parallel.cpu_devices = 0           # > 0: simulate this many CPU devices (tests, laptops)
  c.parallel.distributed = "auto"      # off | auto (SLURM/TPU/env detected) | on
  c.parallel.coordinator_address = ""  # e.g. 10.0.0.1:1234 with num_processes, process_id
  c.parallel.num_processes = config_dict.placeholder(int)
  c.parallel.process_id = config_dict.placeholder(int)

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.enabled = True
  c.checkpoint.max_to_keep = 2
  return c
