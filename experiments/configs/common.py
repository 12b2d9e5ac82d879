"""Shared defaults of every experiment config; families override what they need.

The most used knobs are top-level (method, anomaly_only, dataset, data_dir, la,
num_seeds, seed); the reference hyper-parameters of each method live in a section named
after it so that every default is visible and a typo in --config.x fails (locked config).
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = "deepsad"          # deepsad | deepsvdd
  c.anomaly_only = False        # AnoOnly transformation: loss on labelled anomalies only
  c.dataset = "synthetic"       # embedded default, or an ADBench name: 6_cardio, Classical/6_cardio, ...
  c.data_dir = ""               # ADBench folder; empty -> env SSADJAX_DATA_DIR
  c.la = 0.1                    # labelled anomalies: ratio of train anomalies (float < 1) or a count (int)
  c.num_seeds = 3               # seeds seed, seed+1, ... train side by side in one program
  c.seed = 1                    # ADBench repeats with seeds 1, 2, 3
  c.preset = "adbench"          # adbench | anoonly_paper: reference settings where they disagree
  c.grid = ""                   # e.g. "dataset=6_cardio|38_thyroid;anomaly_only=False|True"

  c.data = ml_collections.ConfigDict()
  c.data.at_least_one_labeled = True   # ceil(la * n) labelled anomalies, >= 1
  c.data.test_size = 0.3               # stratified 70/30 split
  c.data.resample = True               # ADBench: up-sample < 1000 rows, down-sample > 10000
  c.data.upsample_threshold = 1000
  c.data.downsample_threshold = 10000
  c.data.minmax = True                 # min-max scaler fitted on the train split only
  c.data.normal_clean = False          # AnoOnly --normal_clean: drop unlabelled train anomalies
  c.data.label_contamination = 0.0     # fraction of train labels flipped before labelling

  c.norm = ml_collections.ConfigDict()
  c.norm.kind = "batch"                # batch | layer | none
  c.norm.stats_rows = "all"            # all | unlabelled | labelled_anomalies
  c.norm.eval_stats = "running"        # running | batch (test-batch statistics)
  c.norm.momentum = config_dict.placeholder(float)  # None: the reference's value

  c.deepsad = ml_collections.ConfigDict()
  c.deepsad.hidden_dims = (100, 20)    # ADBench MLP d-100-20-10, no bias
  c.deepsad.rep_dim = 10
  c.deepsad.batch_size = 128
  c.deepsad.num_epochs = 50
  c.deepsad.learning_rate = 1e-3       # nominal (ADBench); see lr_milestone_at_zero
  c.deepsad.lr_milestone_at_zero = True  # ADBench's MultiStepLR([0]) bug: effective lr x0.1
  c.deepsad.weight_decay = 1e-6        # L2 added to the gradient (PyTorch Adam)
  c.deepsad.eta = 1.0
  c.deepsad.eps = 1e-6
  c.deepsad.center_eps = 0.1           # |c_k| < 0.1 -> +-0.1
  c.deepsad.pretrain_epochs = 0        # AE pretraining epochs (ADBench: 100, but discarded)
  c.deepsad.pretrain_transfer = True   # False: train the AE and discard it, as the reference
  c.deepsad.pretrain_learning_rate = 1e-3

  c.anoonly = ml_collections.ConfigDict()
  c.anoonly.empty_batch = "zero_grad"  # zero_grad (reference) | skip | ensure_anomaly

  c.train = ml_collections.ConfigDict()
  c.train.chunk_epochs = 10            # epochs per compiled dispatch; checkpoint + log between

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.enabled = True
  c.checkpoint.max_to_keep = 2
  return c
