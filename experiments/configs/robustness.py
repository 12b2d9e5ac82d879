"""Robustness of the baselines and their AnoOnly variants (AnoOnly paper, ADBench 1.6).

One knob per variant; each writes results.csv (with the knob as a column), report.md
and one figure of AUROC against the knob, baseline (dashed) vs AnoOnly (solid), one
panel per dataset family:

  python -m experiments.main --config=experiments/configs/robustness.py:KNOB \
    --config.data_dir=../shared/data/adbench --workdir=W
  python -m experiments.main --config=experiments/configs/robustness.py:KNOB,smoke --workdir=W

KNOB                 grid knob                           values
label_contamination  data.label_contamination            0, .05, .1, .15, .2, .25 (train labels flipped)
la                   la                                  .01, .05, .1, .25, .5, .9999 (= all: 1.0
                                                         would be ONE anomaly, ADBench's count rule)
normal_clean         data.normal_clean                   False, True (unlabelled set contaminated / clean)
duplicated           data.duplicate_times (noise_type=   1..6
                     duplicated_anomalies)
irrelevant           data.noise_ratio (noise_type=       0, .01, .05, .1, .25, .5
                     irrelevant_features)

Default variant: the four AnoOnly methods on four Classical datasets, 3 seeds, preset
anoonly_paper; `,quick` (the runs of docs/ablation.md): Deep SAD and DevNet on three
Classical datasets with shorter training; `,smoke`: synthetic data, DevNet only, 3 knob values, 2 seeds.
"""

from experiments.configs import bn_ablation, common

KNOBS = {
    "label_contamination": ("data.label_contamination", "0.0|0.05|0.1|0.15|0.2|0.25", ""),
    "la": ("la", "0.01|0.05|0.1|0.25|0.5|0.9999", ""),
    "normal_clean": ("data.normal_clean", "False|True", ""),
    "duplicated": ("data.duplicate_times", "1|2|3|4|5|6", "duplicated_anomalies"),
    "irrelevant": ("data.noise_ratio", "0.0|0.01|0.05|0.1|0.25|0.5", "irrelevant_features"),
}
DATASETS = ("6_cardio", "38_thyroid", "30_satellite", "31_satimage-2")


def get_config(arg=None):
  parts = (arg or "label_contamination").split(",")
  knob, variant = parts[0], (parts[1] if len(parts) > 1 else "full")
  if knob not in KNOBS:
    raise ValueError(f"robustness knob {knob!r}; expected one of {sorted(KNOBS)}")
  key, values, noise_type = KNOBS[knob]
  config = common.get_config()
  config.preset = "anoonly_paper"
  config.la = 0.1
  config.num_seeds = 3
  config.checkpoint.enabled = False
  config.train.chunk_epochs = 50
  config.data.noise_type = noise_type
  config.plot = f"knob:{key}"
  datasets, methods = DATASETS, bn_ablation.METHODS
  if variant == "smoke":
    datasets, methods = ("synthetic",), ("devnet",)
    values = "|".join(values.split("|")[::2]) if values.count("|") > 2 else values
    config.num_seeds = 2
    bn_ablation.shorten(config, epochs=5, steps=10)
  elif variant == "quick":
    datasets, methods = ("6_cardio", "31_satimage-2", "38_thyroid"), ("deepsad", "devnet")
    bn_ablation.shorten(config, epochs=20, steps=20)
  elif variant != "full":
    raise ValueError(f"robustness variant {variant!r}; expected full | quick | smoke")
  config.dataset = datasets[0]
  config.grid = (f"dataset={'|'.join(datasets)};method={'|'.join(methods)};"
                 f"anomaly_only=False|True;{key}={values}")
  return config
