"""FUN-AD's hyper-parameters (Im, Son, Hong, WACV 2025): `config.funad` (no presets).

The method is ssadjax/methods/funad.py, per row instead of per image patch.
"""

import ml_collections

# No AnoOnly variant, and why (the command line says it before importing JAX).
anoonly_changes = None
NO_ANOONLY = ("funad is fully unsupervised and has no AnoOnly variant: AnoOnly keeps only "
              "the loss terms of labelled anomalies and relies on BatchNorm statistics of "
              "the unlabelled rows, while FUN-AD has no BatchNorm and (at la = 0) no "
              "labelled anomaly; run it with anomaly_only=False")


def section() -> ml_collections.ConfigDict:
  """`config.funad`. Fully unsupervised: run with la=0 (labels, when given, are known
  positives)."""
  s = ml_collections.ConfigDict()
  s.adaptor_dim = 0              # 0 = input_dim (the reference: 1536 -> 1536)
  s.hidden_dims = (1024, 128)    # discriminator
  s.negative_slope = 0.2
  s.batch_size = 32
  s.num_epochs = 30              # reference 1500 (200 in code) on ~10 steps/epoch images
  s.learning_rate = 1e-3         # reference 2e-5 underfits rows (docs/methods/funad.md); RMSprop, mom. 0.2
  s.rms_decay = 0.99
  s.rms_eps = 1e-8
  s.momentum = 0.2
  s.bank_period = 1              # steps between memory-bank rebuilds (1 = reference)
  s.bank_ratio = 0.5             # random fraction of the candidate normals in the bank
  s.candidate_threshold = 0.5    # normalised train score below this = candidate normal
  s.tau = 0.5                    # pseudo-label 1 where normalised distance > tau
  s.tau_noise = 0.9              # Gaussian perturbation for tau < d < tau_noise
  s.zero_threshold = 0.01        # squared distances below this count as 0 (self match)
  s.self_match = "threshold"     # threshold (reference) | index (exclude own row)
  s.gaussian = True              # --gaussian
  s.balanced = True              # --balancing
  s.ms_weight = 2.5              # mutual smoothness weight (README; code default 0)
  s.ms_kind = "mae"              # mae (reference oto_loss) | mse
  s.use_labels = True            # labelled anomalies (la > 0): positives, never in bank
  s.score = "logit"              # logit | prob (same ranking up to float saturation)
  s.knn_block = 4096             # rows per block (nearest neighbours, full-set forward)
  return s


def resolve(cfg) -> dict:
  return dict(cfg.funad)
