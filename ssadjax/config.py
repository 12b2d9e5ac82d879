"""Shared defaults of every experiment config; families override what they need.

The most used knobs are top-level (method, anomaly_only, dataset, data_dir, la,
num_seeds, seed); the reference hyper-parameters of each method live in a section named
after it so that every default is visible and a typo in --config.x fails (locked config).
"""

import ml_collections
from ml_collections import config_dict


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
  c.data.at_least_one_labeled = True   # ceil(la * n) labelled anomalies, >= 1
  c.data.test_size = 0.3               # stratified 70/30 split
  c.data.resample = True               # ADBench: up-sample < 1000 rows, down-sample > 10000
  c.data.upsample_threshold = 1000
  c.data.downsample_threshold = 10000
  c.data.minmax = True                 # min-max scaler fitted on the train split only
  c.data.normal_clean = False          # AnoOnly --normal_clean: drop unlabelled train anomalies
  c.data.label_contamination = 0.0     # fraction of train labels flipped before labelling
  # ADBench's realistic synthetic anomalies and noise (Han et al., NeurIPS 2022; docs/data.md;
  # ssadjax/data/).
  c.data.realistic_synthetic_mode = ""  # '' | local | global | cluster | dependency
  c.data.alpha = 5.0                   # local: covariances x alpha; cluster: means x alpha
  c.data.percentage = 0.1              # global: uniform on [min (1+p), max (1+p)]
  c.data.global_bounds = "adbench"     # adbench (that asymmetric formula) | symmetric (+-p range)
  c.data.noise_type = ""               # '' | duplicated_anomalies | irrelevant_features | label_contamination
  c.data.duplicate_times = 2           # duplicated_anomalies: anomalies x this, train and test
  c.data.noise_ratio = 0.05            # irrelevant_features / label_contamination ratio
  c.data.minmax_scope = "auto"         # auto (tabular: per feature, images: one global range) | feature | global
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
  c.deepsad.encoder = "auto"           # auto (LeNet for image datasets, else MLP) | mlp | lenet_mnist | lenet_cifar
  c.deepsad.lr_milestones = ()         # epochs after which the lr is x0.1 (MultiStepLR)
  c.deepsad.pretrain_lr_milestones = ()
  c.deepsad.pretrain_batch_size = config_dict.placeholder(int)  # None = batch_size
  c.deepsad.pretrain_weight_decay = config_dict.placeholder(float)  # None = weight_decay

  # Deep SVDD: Deep SAD's section without labels, unless preset=deepsvdd_official (Ruff et
  # al.'s Deep-SVDD-PyTorch) or deepsvdd_adbench (PyOD's DeepSVDD, ADBench's row); values
  # in ssadjax/methods/deepsad.py DEEPSVDD_PRESETS. Any field set here wins over both.
  c.deepsvdd = ml_collections.ConfigDict()
  for key in ("hidden_dims", "rep_dim", "batch_size", "num_epochs", "learning_rate",
              "lr_milestones", "weight_decay", "pretrain_epochs", "pretrain_learning_rate",
              "pretrain_lr_milestones"):
    c.deepsvdd[key] = config_dict.placeholder(type(c.deepsad[key]))
  c.deepsvdd.pretrain_batch_size = config_dict.placeholder(int)
  c.deepsvdd.pretrain_weight_decay = config_dict.placeholder(float)
  c.deepsvdd.lr_milestone_at_zero = config_dict.placeholder(bool)
  c.deepsvdd.pretrain_transfer = config_dict.placeholder(bool)
  c.deepsvdd.architecture = config_dict.placeholder(str)  # mlp (Deep SAD's) | pyod (d-64-32 ReLU)
  c.deepsvdd.adam_eps = config_dict.placeholder(float)    # 1e-8 (PyTorch) | 1e-7 (Keras)
  c.deepsvdd.activity_l2 = config_dict.placeholder(float)  # Keras activity L2 per layer (PyOD 0.1)
  c.deepsvdd.standardize = config_dict.placeholder(bool)   # PyOD's StandardScaler on the inputs
  c.deepsvdd.center_from_other_init = config_dict.placeholder(bool)  # PyOD: c from a discarded net

  # PReNet (Pang et al., KDD 2023). None = set by the preset (ssadjax/methods/prenet.py PRESETS);
  # the value after "adbench:" is the default preset's.
  c.prenet = ml_collections.ConfigDict()
  c.prenet.hidden_dims = (20,)         # psi; (1000, 250, 20) = the official deeper variant
  c.prenet.batch_size = 512            # pairs: 1/4 (a,a) + 1/4 mixed + 1/2 (u,u)
  c.prenet.steps_per_epoch = 20
  c.prenet.num_epochs = 50
  c.prenet.learning_rate = 1e-3
  c.prenet.target_aa = 8.0             # ordinal targets
  c.prenet.target_au = 4.0
  c.prenet.target_uu = 0.0
  c.prenet.num_references = 30         # E reference anomalies + E unlabelled rows at scoring
  c.prenet.joint_norm_pass = False     # AnoOnly BN: one pass over [left; right] (ref: two)
  c.prenet.cosine_eta_min = 1e-5       # used when lr_schedule = cosine
  c.prenet.cosine_t_max = 0            # epochs; 0 -> num_epochs
  c.prenet.clipnorm_mode = "global"    # global (Keras 2) | per_tensor (TF2 Keras)
  c.prenet.orientation = config_dict.placeholder(str)       # adbench: adbench (a,u) | official (u,a)
  c.prenet.init_scheme = config_dict.placeholder(str)       # adbench: torch | keras
  c.prenet.unlabelled_replace = config_dict.placeholder(bool)  # adbench: True; anoonly_paper: False
  c.prenet.distinct_anomaly_pairs = config_dict.placeholder(bool)  # adbench: False
  c.prenet.weight_decay = config_dict.placeholder(float)    # adbench: 1e-2, added to the grad, all params
  c.prenet.l2_kernel = config_dict.placeholder(float)       # adbench: 0; official: Keras l2 0.01 on psi kernels
  c.prenet.rms_decay = config_dict.placeholder(float)       # adbench: 0.99 (PyTorch alpha); official 0.9
  c.prenet.rms_eps = config_dict.placeholder(float)         # adbench: 1e-8; official 1e-7
  c.prenet.clipnorm = config_dict.placeholder(float)        # adbench: 0 (off); official 1
  c.prenet.lr_schedule = config_dict.placeholder(str)       # adbench: constant; anoonly_paper: cosine
  c.prenet.select_best_epoch = config_dict.placeholder(bool)  # adbench: False (last epoch)
  c.prenet.score_references = config_dict.placeholder(str)  # adbench: per_point | shared

  # DevNet (Pang et al., KDD 2019). placeholder = preset-dependent (ssadjax/methods/devnet.py
  # PRESETS: adbench | anoonly_paper); set it to override the preset.
  c.devnet = ml_collections.ConfigDict()
  c.devnet.hidden_dims = (20,)         # depth 2; (1000, 250, 20) = depth 4
  c.devnet.batch_size = config_dict.placeholder(int)       # 512 | 64
  c.devnet.learning_rate = config_dict.placeholder(float)  # 1e-3 | 2e-4
  c.devnet.clipnorm = config_dict.placeholder(float)       # 1.0 | 0.0 (= none); per tensor
  c.devnet.use_reference_normalisation = config_dict.placeholder(bool)  # True | False (dev := phi)
  c.devnet.anomaly_term = config_dict.placeholder(str)          # hinge | abs (baseline)
  c.devnet.anoonly_anomaly_term = config_dict.placeholder(str)  # linear | linear (anomaly_only; hinge collapses, see notes)
  c.devnet.margin = 5.0
  c.devnet.num_reference = 5000        # N(0, 1) draws for the reference mean/std
  c.devnet.l2 = 0.01                   # Keras l2 on the hidden kernels, added to the loss
  c.devnet.anoonly_l2_batch_mean = True  # under AnoOnly, L2 / 0.5: same objective as Keras' whole-batch mean
  c.devnet.rho = 0.9                   # Keras RMSprop
  c.devnet.rmsprop_eps = 1e-7
  c.devnet.steps_per_epoch = 20
  c.devnet.num_epochs = 50
  c.devnet.select_best_epoch = True    # Keras ModelCheckpoint(monitor='loss')
  c.devnet.norm_epsilon = 1e-3         # Keras BatchNormalization (AnoOnly)
  c.devnet.norm_momentum = 0.99

  # FEAWAD (Zhou et al., TNNLS 2021); PRESETS in ssadjax/methods/feawad.py.
  c.feawad = ml_collections.ConfigDict()
  c.feawad.norm_before_head = config_dict.placeholder(bool)  # False | True (AnoOnly copy's BN)
  c.feawad.fixed_batch = True          # ADBench/AnoOnly replay one batch (re-seeded per call); False: fresh
  # ADBench: the replayed end-to-end batch's unlabelled rows come from the replayed AE batch
  # (one re-seeded RandomState feeds both); False: drawn independently of it.
  c.feawad.replay_pretrain_rows = True
  c.feawad.reconstruction_term = "normalised_residual"  # reference (||r/||r|||| = 1) | residual
  c.feawad.margin = 5.0
  c.feawad.batch_size = 512            # 256 unlabelled + 256 labelled anomalies, alternating
  c.feawad.learning_rate = 1e-4
  c.feawad.steps_per_epoch = 20
  c.feawad.num_epochs = 30
  c.feawad.select_best_epoch = True
  c.feawad.pretrain_epochs = 100       # AE on unlabelled rows; 0 = no pretraining
  c.feawad.pretrain_steps_per_epoch = 20
  c.feawad.pretrain_batch_size = 512
  c.feawad.pretrain_learning_rate = 1e-4
  c.feawad.pretrain_select_best = True
  c.feawad.adam_eps = 1e-7             # Keras Adam
  c.feawad.residual_eps = 1e-8         # floor of ||x - x_hat|| (the reference divides unguarded)
  c.feawad.norm_epsilon = 1e-3         # Keras BatchNormalization
  c.feawad.norm_momentum = 0.99

  # FUN-AD (Im et al., WACV 2025; ssadjax/methods/funad.py), per row instead of per image patch.
  # Fully unsupervised: run with la=0 (labels, when given, are known positives).
  c.funad = ml_collections.ConfigDict()
  c.funad.adaptor_dim = 0              # 0 = input_dim (the reference: 1536 -> 1536)
  c.funad.hidden_dims = (1024, 128)    # discriminator
  c.funad.negative_slope = 0.2
  c.funad.batch_size = 32
  c.funad.num_epochs = 30              # reference 1500 (200 in code) on ~10 steps/epoch images
  c.funad.learning_rate = 1e-3         # reference 2e-5 underfits rows (notes); RMSprop, mom. 0.2
  c.funad.rms_decay = 0.99
  c.funad.rms_eps = 1e-8
  c.funad.momentum = 0.2
  c.funad.bank_period = 1              # steps between memory-bank rebuilds (1 = reference)
  c.funad.bank_ratio = 0.5             # random fraction of the candidate normals in the bank
  c.funad.candidate_threshold = 0.5    # normalised train score below this = candidate normal
  c.funad.tau = 0.5                    # pseudo-label 1 where normalised distance > tau
  c.funad.tau_noise = 0.9              # Gaussian perturbation for tau < d < tau_noise
  c.funad.zero_threshold = 0.01        # squared distances below this count as 0 (self match)
  c.funad.self_match = "threshold"     # threshold (reference) | index (exclude own row)
  c.funad.gaussian = True              # --gaussian
  c.funad.balanced = True              # --balancing
  c.funad.ms_weight = 2.5              # mutual smoothness weight (README; code default 0)
  c.funad.ms_kind = "mae"              # mae (reference oto_loss) | mse
  c.funad.use_labels = True            # labelled anomalies (la > 0): positives, never in bank
  c.funad.score = "logit"              # logit | prob (same ranking up to float saturation)
  c.funad.knn_block = 4096             # rows per block (nearest neighbours, full-set forward)

  # BGAD (Yao et al., CVPR 2023; ssadjax/methods/bgad.py). Reference: the README MVTec command.
  c.bgad = ml_collections.ConfigDict()
  c.bgad.num_blocks = 8                # AllInOneBlocks per flow
  c.bgad.clamp_alpha = 1.9             # soft clamp alpha * tanh(s)
  c.bgad.subnet_ratio = 2.0            # subnet hidden width / input width
  c.bgad.pos_beta = 0.01               # boundary quantile (README 0.01; config default 0.05)
  c.bgad.margin_tau = 0.1              # b_a = b_n - tau
  c.bgad.normalizer = 10.0             # kappa
  c.bgad.push_pull_weight = 1.0        # lambda
  # Preset-dependent (ssadjax/methods/bgad.py PRESETS): adbench / anoonly_paper: off, 1;
  # --config.preset=bgad_reference (the authors' MVTec script): on, 8.
  c.bgad.focal_weighting = config_dict.placeholder(bool)  # off by default: 1/|u| blows up for u near 0 (notes)
  c.bgad.batch_size = 128              # rows per step, labelled anomalies included
  c.bgad.anomalies_per_batch = 16      # labelled anomalies per batch (with replacement)
  c.bgad.learning_rate = 2e-4          # Adam
  c.bgad.lr_decay_rate = 0.1           # cosine to lr * rate**3
  c.bgad.lr_warm = True                # linear warm-up from lr/10 (correct progress; reference overshoots)
  c.bgad.lr_warm_epochs = 2            # meta-epochs
  c.bgad.meta_epochs = 25
  c.bgad.sub_epochs = config_dict.placeholder(int)  # epochs per meta-epoch (reference 8 over image chunks)
  c.bgad.ml_warmup = True              # meta-epoch 0: ML on unlabelled rows only (in init)
  c.bgad.anoonly_ml_warmup = False     # keep that ML phase under AnoOnly (a loss on unlabelled rows)
  c.bgad.norm_epsilon = 1e-5           # AnoOnly's inserted BatchNorm flow layer (PyTorch values)
  c.bgad.norm_momentum = 0.9

  # CLAD (Park et al., ICLR 2021 workshop; ssadjax/methods/clad.py): conv AE + DEC
  # pseudo-labels in init, the classifier in the main loop, ODIN score. Image datasets
  # only; unsupervised, no AnoOnly.
  c.clad = ml_collections.ConfigDict()
  c.clad.image_shape = ()              # () = from the dataset name; else (h, w, c)
  c.clad.standardize = True            # per-channel mean/std of the training rows (reference: of the normal classes)
  c.clad.labelled_anomalies = "exclude"  # exclude (left out of every stage) | ignore (used as unlabelled rows)
  c.clad.ae_channels = (4, 8, 16)      # reference `cvae`
  c.clad.ae_dense = 512
  c.clad.latent_dim = 10               # h (MNIST scenarios: 10)
  c.clad.ae_input_dropout = 0.1
  c.clad.ae_sampling = False           # True: z = mu + sigma * eps everywhere, as the reference (no KL term)
  c.clad.ae_sigmoid = False            # True: sigmoid decoder output as the reference (targets are standardised)
  c.clad.ae_epochs = 100
  c.clad.ae_batch_size = 512           # capped at the number of rows
  c.clad.ae_learning_rate = 1e-3
  c.clad.num_clusters = 10             # K
  c.clad.kmeans_n_init = 20            # k-means++ restarts
  c.clad.kmeans_iters = 100            # Lloyd iterations per restart
  c.clad.dec_epochs = 100              # upper bound; 0 = K-means labels only
  c.clad.dec_batch_size = 256          # not given by the reference (DEC's usual 256)
  c.clad.dec_learning_rate = 0.01      # SGD
  c.clad.dec_momentum = 0.9
  c.clad.dec_tol = 0.001               # stop when < 0.1% of the assignments change in an epoch
  c.clad.dec_alpha = 1.0               # Student-t degrees of freedom
  c.clad.classifier = "cnn"            # cnn (small CNN) | resnet18 (the reference)
  c.clad.cnn_channels = (32, 64, 128)
  c.clad.batch_size = 128
  c.clad.learning_rate = 1e-4          # Adam (MNIST scenarios)
  c.clad.num_epochs = 100
  c.clad.temperature = 1000.0          # ODIN T
  c.clad.odin_epsilon = 1e-4           # ODIN epsilon (MNIST scenarios)
  c.clad.odin_epsilon_scale = 50.0 * 255.0 / 79.0  # the reference's ~161x; 1.0 = standard ODIN
  c.clad.odin_gradient_sign = "torch_ge"  # torch_ge (reference: gradient >= 0 -> +1, 0 included) | jnp_sign (0 -> no step)
  c.clad.score_block = 1024            # test rows per ODIN block (memory bound)

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
