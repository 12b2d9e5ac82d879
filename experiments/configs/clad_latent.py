"""CLAD's latent multi-class scenario (Park et al., arXiv 2104.09793, MNIST setting) on scikit-learn's offline 8x8 digits.

Normal = a union of digit classes (the paper's MNIST scenarios CUR {0,3,8}, STR {1,4,7},
MIX {2,5,6,9}); anomalies = every other digit; clean training set (normal_clean: the
protocol drops the unlabelled training anomalies), test split with both.

  python -m experiments.main --config=experiments/configs/clad_latent.py \
    --config.grid="dataset=latent:sklearn:digits/cur|latent:sklearn:digits/str|latent:sklearn:digits/mix;method=clad|deepsvdd" \
    --workdir=W
  python -m experiments.main --config=experiments/configs/clad_latent.py --config.method=deepsad \
    --config.la=0.1 --config.grid="dataset=latent:sklearn:digits/cur|latent:sklearn:digits/str|latent:sklearn:digits/mix" \
    --workdir=W2

Expected (docs/methods/clad.md, 3 seeds): CLAD AUROC about 0.8-0.9, clearly above
Deep SVDD on every scenario; a few minutes per cell on 2 busy CPU cores (mostly XLA
compilation). TFDS MNIST works the same way with latent:tfds:mnist/cur once prepared.
"""

from experiments.configs import common


def get_config(arg=None):
  config = common.get_config()
  config.method = "clad"
  config.dataset = arg or "latent:sklearn:digits/cur"
  config.la = 0.0                     # CLAD / Deep SVDD: unsupervised
  config.data.normal_clean = True     # the paper's clean training set of normals
  config.checkpoint.enabled = False   # short runs
  config.train.chunk_epochs = 100
  return config
