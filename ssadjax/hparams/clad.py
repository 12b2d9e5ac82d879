"""CLAD's hyper-parameters (Park et al., ICLR 2021 workshop): `config.clad` (no presets).

Conv autoencoder + DEC pseudo-labels, then the confidence classifier and its ODIN
score; image datasets only. The method is ssadjax/methods/clad.py.
"""

import ml_collections

# No AnoOnly variant, and why (the command line says it before importing JAX).
anoonly_changes = None
NO_ANOONLY = ("clad has no AnoOnly variant: AnoOnly keeps only the labelled-anomaly loss "
              "terms, which would train CLAD's confidence classifier on anomalies alone and "
              "invert its score; CLAD is unsupervised (labelled anomalies are excluded from "
              "its training). Run it with anomaly_only=False")


def section() -> ml_collections.ConfigDict:
  """`config.clad`; unsupervised, no AnoOnly."""
  s = ml_collections.ConfigDict()
  s.image_shape = ()              # () = from the dataset name; else (h, w, c)
  s.standardize = True            # per-channel mean/std of the training rows (reference: of the normal classes)
  s.labelled_anomalies = "exclude"  # exclude (left out of every stage) | ignore (used as unlabelled rows)
  s.ae_channels = (4, 8, 16)      # reference `cvae`
  s.ae_dense = 512
  s.latent_dim = 10               # h (MNIST scenarios: 10)
  s.ae_input_dropout = 0.1
  s.ae_sampling = False           # True: z = mu + sigma * eps everywhere, as the reference (no KL term)
  s.ae_sigmoid = False            # True: sigmoid decoder output as the reference (targets are standardised)
  s.ae_epochs = 100
  s.ae_batch_size = 512           # capped at the number of rows
  s.ae_learning_rate = 1e-3
  s.num_clusters = 10             # K
  s.kmeans_n_init = 20            # k-means++ restarts
  s.kmeans_iters = 100            # Lloyd iterations per restart
  s.dec_epochs = 100              # upper bound; 0 = K-means labels only
  s.dec_batch_size = 256          # not given by the reference (DEC's usual 256)
  s.dec_learning_rate = 0.01      # SGD
  s.dec_momentum = 0.9
  s.dec_tol = 0.001               # stop when < 0.1% of the assignments change in an epoch
  s.dec_alpha = 1.0               # Student-t degrees of freedom
  s.classifier = "cnn"            # cnn (small CNN) | resnet18 (the reference)
  s.cnn_channels = (32, 64, 128)
  s.batch_size = 128
  s.learning_rate = 1e-4          # Adam (MNIST scenarios)
  s.num_epochs = 100
  s.temperature = 1000.0          # ODIN T
  s.odin_epsilon = 1e-4           # ODIN epsilon (MNIST scenarios)
  s.odin_epsilon_scale = 50.0 * 255.0 / 79.0  # the reference's ~161x; 1.0 = standard ODIN
  s.odin_gradient_sign = "torch_ge"  # torch_ge (reference: gradient >= 0 -> +1, 0 included) | jnp_sign (0 -> no step)
  s.score_block = 1024            # test rows per ODIN block (memory bound)
  return s


def resolve(cfg) -> dict:
  return dict(cfg.clad)
