"""The AnoOnly table (Zhou et al., arXiv 2305.18798, and its README table): Deep SAD, FEAWAD, PReNet, DevNet x
{baseline, +AnoOnly} on every CV and NLP ADBench file under data_dir, AnoOnly's protocol
(la = 0.1, at least one labelled anomaly, contaminated unlabelled set, one run per
sub-task with seed 42, the `anoonly_paper` preset).

  python -m experiments.main --config=experiments/configs/anoonly_table.py \
    --config.data_dir=../shared/data/adbench --workdir=runs/anoonly_table
  python -m experiments.report --table=anoonly runs/anoonly_table

Variants: `:quick` (one file per family present: CIFAR10_0, MVTec-AD_bottle, 20news_3 ...
whatever sorts first), `:seeds3` (seeds 1-3 instead of AnoOnly's single seed 42).
The report averages per family, then over families (unweighted), as the AnoOnly code.
Finished cells are reused and an interrupted cell resumes from its checkpoint.
"""

from experiments.configs import common

METHODS = "deepsad|feawad|prenet|devnet"
# AnoOnly's `--backbone small`: ResNet-18 image and BERT text embeddings.
FILES = "CV_by_ResNet18/*|NLP_by_BERT/*"


def get_config(arg=None):
  options = set(filter(None, (arg or "").split(",")))
  unknown = options - {"quick", "seeds3"}
  if unknown:
    raise ValueError(f"anoonly_table.py: unknown variant(s) {sorted(unknown)}; "
                     "use quick and/or seeds3")
  config = common.get_config()
  config.preset = "anoonly_paper"
  config.la = 0.1
  config.seed, config.num_seeds = (1, 3) if "seeds3" in options else (42, 1)
  files = FILES
  if "quick" in options:
    files = "CV_by_ResNet18/CIFAR10_0|CV_by_ResNet18/MVTec-AD_bottle|NLP_by_BERT/20news_3"
  config.grid = f"method={METHODS};anomaly_only=False|True;dataset={files}"
  config.plot = ""
  return config
