"""Raw-image tasks (TFDS through mock_data, scikit-learn digits), images through the
protocol, the LeNet encoders and their selection for Deep SAD."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

import ssadjax.data as data
from experiments.configs import common
from ssadjax import methods
from ssadjax import runconfig
from experiments import runner
from ssadjax.data import DatasetError, adbench_splits, images
from ssadjax.models import lenet
from ssadjax.norm import NormPolicy
from tests.helpers import tiny_config


@pytest.fixture(autouse=True)
def _fresh_cache():
  images._tfds_split_arrays.cache_clear()  # mock data must not leak between tests
  yield
  images._tfds_split_arrays.cache_clear()


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name, task", [
    ("tfds:mnist/0", ("tfds", "mnist", None, 0)),
    ("tfds:cifar10/9", ("tfds", "cifar10", None, 9)),
    ("tfds:mnist_corrupted/shot_noise/4", ("tfds", "mnist_corrupted", "shot_noise", 4)),
    ("sklearn:digits/7", ("sklearn", "digits", None, 7)),
])
def test_parse_image_names(name, task):
  t = images.parse_image_name(name)
  assert (t.source, t.dataset, t.config, t.normal_class) == task


@pytest.mark.parametrize("name, match", [
    ("tfds:mnist/10", "outside"), ("tfds:imagenet/0", "Unknown"),
    ("tfds:mnist_corrupted/0", "corruption"), ("tfds:mnist/fog/0", "no config"),
    ("tfds:mnist", "not understood"),
])
def test_bad_image_names(name, match):
  with pytest.raises(DatasetError, match=match):
    images.parse_image_name(name)


def test_feature_shapes_from_names():
  assert data.feature_shape("tfds:cifar10/1") == (32, 32, 3)
  assert data.feature_shape("tfds:svhn_cropped/1") == (32, 32, 3)
  assert data.feature_shape("sklearn:digits/1") == (8, 8, 1)
  assert data.feature_shape("6_cardio") is None
  assert data.feature_shape("tfds:adbench/6_cardio") is None


# --------------------------------------------------------------------------- one vs rest


def test_one_vs_rest_ratio_and_labels():
  labels = np.repeat(np.arange(10), 100)
  imgs = labels[:, None, None, None] * np.ones((1, 2, 2, 1))  # pixel value = class
  x, y = images.one_vs_rest(imgs, labels, 3, anomaly_ratio=0.05)
  assert y.sum() == 5 and (y == 0).sum() == 100  # round(100 * 0.05 / 0.95)
  assert np.all(x[y == 0] == 3) and not np.any(x[y == 1] == 3)
  x2, y2 = images.one_vs_rest(imgs, labels, 3, anomaly_ratio=0.05)  # fixed construction seed
  np.testing.assert_array_equal(x, x2)
  _, y3 = images.one_vs_rest(imgs, labels, 3, anomaly_ratio=0.2)
  assert y3.sum() == 25


def test_digits_task_is_real_and_offline():
  pytest.importorskip("sklearn")
  x, y = data.load_dataset("sklearn:digits/0")
  assert x.shape[1:] == (8, 8, 1) and x.dtype == np.float32
  assert (y == 0).sum() == 178 and y.sum() == 9
  assert 0 <= x.min() and x.max() == 16


# --------------------------------------------------------------------------- TFDS (mocked)


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3)),
                                         ("fashion_mnist", (28, 28, 1)),
                                         ("svhn_cropped", (32, 32, 3)),
                                         ("mnist_corrupted/shot_noise", (28, 28, 1))])
def test_tfds_images_load_through_data_source(name, shape, tmp_path):
  with tfds.testing.mock_data(num_examples=300):
    imgs, labels = images.load_tfds_images(name, tfds_dir=tmp_path)
    source = tfds.data_source(name, split="train")
    first = source[0]
  assert imgs.shape == (300,) + shape and imgs.dtype == np.uint8
  np.testing.assert_array_equal(imgs[0], first["image"])
  assert labels[0] == first["label"] and set(np.unique(labels)) <= set(range(10))


def test_tfds_task_through_load_dataset(tmp_path):
  with tfds.testing.mock_data(num_examples=400):
    raw, labels = images.load_tfds_images("mnist", tfds_dir=tmp_path)
    x, y = data.load_dataset("tfds:mnist/3", tfds_dir=str(tmp_path))
  n3 = int((labels == 3).sum())
  assert (y == 0).sum() == n3 and y.sum() == round(n3 * 0.05 / 0.95)
  normals = {r.tobytes() for r in raw[labels == 3]}
  assert all(r.tobytes() in normals for r in x[y == 0])
  assert not any(r.tobytes() in normals for r in x[y == 1])


def test_unprepared_tfds_set_is_a_clear_error(tmp_path):
  with pytest.raises(DatasetError, match="(?s)cannot be read.*download=True"):
    data.load_dataset("tfds:mnist/0", tfds_dir=str(tmp_path / "empty"))


# --------------------------------------------------------------------------- protocol


def _image_task(n=400, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, size=(n, 6, 6, 1)).astype(np.uint8)
  y = (np.arange(n) % 10 == 0).astype(np.int32)
  return x, y


def test_images_keep_their_shape_and_scale_globally_by_default():
  x, y = _image_task()
  s = adbench_splits(x, y, rng=np.random.default_rng(0), la=0.1, resample=False)
  assert s.x_train.shape[1:] == (6, 6, 1) and s.summary()["dim"] == 36
  lo, hi = x[s.train_index].min(), x[s.train_index].max()
  np.testing.assert_allclose(s.x_train, (x[s.train_index] - lo) / (hi - lo), rtol=1e-6)
  per_pixel = adbench_splits(x, y, rng=np.random.default_rng(0), la=0.1, resample=False,
                             minmax_scope="feature")
  np.testing.assert_array_equal(per_pixel.x_train.min(axis=0), 0.0)
  np.testing.assert_array_equal(per_pixel.x_train.max(axis=0), 1.0)
  assert not np.allclose(per_pixel.x_train, s.x_train)


def test_prepare_splits_flattens_images():
  pytest.importorskip("sklearn")
  config = tiny_config(dataset="sklearn:digits/0")
  splits = runconfig.prepare_splits(config, [1, 2])
  assert splits[0].x_train.shape == (700, 64) and splits[0].x_test.shape == (300, 64)
  assert splits[0].x_train.min() == 0.0 and splits[0].x_train.max() == 1.0


# --------------------------------------------------------------------------- LeNet


def _shapes(tree):
  return {"/".join(str(getattr(k, "key", k)) for k in path): v.shape
          for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.mark.parametrize("kind, image_shape, expected", [
    ("lenet_mnist", (28, 28, 1), {"Conv_0/kernel": (5, 5, 1, 8), "Conv_1/kernel": (5, 5, 8, 4),
                                  "Dense_0/kernel": (4 * 7 * 7, 32)}),
    ("lenet_cifar", (32, 32, 3), {"Conv_0/kernel": (5, 5, 3, 32),
                                  "Conv_1/kernel": (5, 5, 32, 64),
                                  "Conv_2/kernel": (5, 5, 64, 128),
                                  "Dense_0/kernel": (128 * 4 * 4, 128)}),
    ("lenet_mnist", (8, 8, 1), {"Conv_0/kernel": (5, 5, 1, 8), "Conv_1/kernel": (5, 5, 8, 4),
                                "Dense_0/kernel": (4 * 2 * 2, 32)}),
])
def test_lenet_architecture(kind, image_shape, expected):
  dim = int(np.prod(image_shape))
  enc = lenet.make_encoder(kind, input_dim=dim, image_shape=image_shape, norm=NormPolicy(),
                           mlp_hidden_dims=(4,), mlp_rep_dim=2)
  x = jax.random.uniform(jax.random.key(0), (5, dim))
  variables = enc.init(jax.random.key(1), x, train=False)
  assert _shapes(variables["params"]) == expected  # no biases, no BN scale/offset
  stats = _shapes(variables["batch_stats"])
  assert len(stats) == 2 * (len(expected) - 1)  # mean + var per conv block
  z = enc.apply(variables, x, train=False)
  assert z.shape == (5, expected["Dense_0/kernel"][1])
  # Flattened and image-shaped inputs are the same computation.
  z_img = enc.apply(variables, x.reshape((5,) + image_shape), train=False)
  np.testing.assert_allclose(z, z_img, rtol=1e-6)
  # PyTorch's default init: U(+-1/sqrt(fan_in)).
  k = variables["params"]["Conv_0"]["kernel"]
  assert float(jnp.abs(k).max()) <= 1 / np.sqrt(25 * image_shape[-1]) + 1e-7


def test_lenet_norm_mask_selects_the_statistics_rows():
  enc = lenet.LeNetEncoder(image_shape=(8, 8, 1), channels=(3,), rep_dim=4)
  x = jax.random.normal(jax.random.key(0), (6, 64))
  variables = enc.init(jax.random.key(1), x, train=False)
  mask = jnp.array([1, 1, 0, 0, 1, 0], bool)[:, None]
  _, masked = enc.apply(variables, x, train=True, norm_mask=mask, mutable=["batch_stats"])
  _, subset = enc.apply(variables, x[np.asarray(mask[:, 0])], train=True,
                        mutable=["batch_stats"])
  _, all_rows = enc.apply(variables, x, train=True, mutable=["batch_stats"])
  m = lambda v: v["batch_stats"]["Norm_0"]["BatchNorm_0"]["mean"]
  np.testing.assert_allclose(m(masked), m(subset), rtol=1e-5, atol=1e-7)
  assert not np.allclose(m(masked), m(all_rows))


def test_encoder_resolution():
  assert lenet.resolve_encoder("auto", None) == lenet.resolve_encoder("auto", ()) == "mlp"
  assert lenet.resolve_encoder("auto", (28, 28, 1)) == "lenet_mnist"
  assert lenet.resolve_encoder("auto", (32, 32, 3)) == "lenet_cifar"
  with pytest.raises(ValueError, match="tabular"):
    lenet.resolve_encoder("lenet_mnist", None)
  with pytest.raises(ValueError, match="encoder"):
    lenet.resolve_encoder("resnet", None)
  with pytest.raises(ValueError, match="does not match"):
    lenet.make_encoder("lenet_mnist", input_dim=10, image_shape=(8, 8, 1), norm=NormPolicy(),
                       mlp_hidden_dims=(4,), mlp_rep_dim=2)


def _deepsad_params(**overrides):
  cfg = tiny_config(**overrides)
  data_ = methods.make_train_data(np.random.default_rng(0).uniform(size=(64, 64)),
                                  np.r_[np.ones(4), np.zeros(60)])
  method = methods.build(cfg, 64, 64)
  variables, extras = method.init(jax.random.key(0), jax.random.key(1), data_)
  return variables, extras


def test_deepsad_picks_lenet_for_images_and_mlp_for_tables():
  variables, extras = _deepsad_params(dataset="sklearn:digits/0")
  assert "Conv_0" in variables["params"] and extras["center"].shape == (32,)
  variables, extras = _deepsad_params(dataset="sklearn:digits/0", **{"deepsad.encoder": "mlp"})
  assert "Conv_0" not in variables["params"] and extras["center"].shape == (4,)
  with pytest.raises(ValueError, match="tabular"):
    _deepsad_params(dataset="synthetic", **{"deepsad.encoder": "lenet_mnist"})
  with pytest.raises(ValueError, match="pretrain"):
    _deepsad_params(dataset="sklearn:digits/0", **{"deepsad.pretrain_epochs": 1})


def test_config_has_the_new_fields():
  c = common.get_config()
  assert c.data.alpha == 5.0 and c.data.percentage == 0.1
  assert c.data.duplicate_times == 2 and c.data.noise_ratio == 0.05
  assert c.data.realistic_synthetic_mode == "" and c.data.noise_type == ""
  assert c.deepsad.encoder == "auto"


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_deepsad_and_anoonly_run_on_digits(tmp_path):
  pytest.importorskip("sklearn")
  for anomaly_only in (False, True):
    config = tiny_config(dataset="sklearn:digits/1", num_seeds=1, anomaly_only=anomaly_only,
                         **{"deepsad.num_epochs": 2})
    config.checkpoint.enabled = False
    result = runner.run_single(config, tmp_path / str(anomaly_only))
    assert result["num_train"] == 700 and len(result["auroc"]) == 1
    assert result["name"] == ("deepsad+anoonly" if anomaly_only else "deepsad")
    assert all(0.0 <= a <= 1.0 for a in result["auroc"])


@pytest.mark.slow
def test_deepsad_runs_on_a_mocked_tfds_image_set(tmp_path):
  # MNIST-sized LeNet: the CIFAR LeNet trains ~10x slower on CPU (its shapes are checked in
  # test_lenet_architecture).
  config = tiny_config(dataset="tfds:fashion_mnist/2", num_seeds=1)
  config.data.tfds_dir = str(tmp_path / "tfds")
  config.checkpoint.enabled = False
  with tfds.testing.mock_data(num_examples=500):
    result = runner.run_single(config, tmp_path / "run")
  assert result["num_train"] == 700  # up-sampled to 1000 rows, 70 % train
  assert 0.0 <= result["auroc"][0] <= 1.0
