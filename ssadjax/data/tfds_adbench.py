"""ADBench as a TensorFlow Datasets (TFDS) dataset, without TensorFlow.

One TFDS builder, `adbench`, with one builder config per ADBench `.npz` file. The configs
are discovered from the files of a local ADBench folder (TFDS's "manual dir", in ADBench's
layout: Classical/, CV_by_ResNet18/, NLP_by_BERT/, ...). The config name is the file's stem
(`6_cardio`, `MVTec-AD_bottle`); a stem present in two folders (e.g. CIFAR10_0 under both
CV_by_ResNet18 and CV_by_ViT) is named `<folder>.<stem>` for every folder it appears in.

Every example is one row: `x` float32 [d], `y` ClassLabel(normal = 0, anomaly = 1), in one
split `train` holding all rows (the ADBench protocol makes the train/test split). Written
with `file_format='array_record'` and read with `as_data_source()` (TFDS without
TensorFlow supports only that, ../shared/spec/jax-notes.md). TFDS shuffles rows while
writing, so the read order is not the file order; `load_adbench_tfds` returns rows in TFDS's
order, the multiset of (x, y) rows equals the file's.

Where the data comes from:
* Offline: a local ADBench folder, `prepare_adbench(name, manual_dir=..., data_dir=...)`.
* Online: `download_adbench_file(relpath, manual_dir)` fetches one file from the ADBench
  repository into the manual dir first (URL pattern `ADBENCH_URL`, e.g.
  https://github.com/Minqi824/ADBench/raw/main/adbench/datasets/Classical/6_cardio.npz);
  without network access it raises a DatasetError saying where to put the file by hand.

`load_adbench_tfds` reads an already prepared config from `data_dir` without the manual dir
(`tfds.builder_from_directory`), and prepares it first when it is missing. A prepared config
is not rebuilt when the manual file changes: delete `<data_dir>/adbench/<config>` to rebuild.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import urllib.error
import urllib.request
import zipfile

import numpy as np

from ssadjax.data.adbench import DatasetError, find_dataset_file, load_npz

TFDS_NAME = "adbench"
VERSION = "1.0.0"
_VERSION = VERSION  # the class body below rebinds VERSION to a tfds Version
ENV_TFDS_DIR = "SSADJAX_TFDS_DIR"
DEFAULT_TFDS_DIR = "~/.cache/ssadjax/tfds"
ADBENCH_URL = "https://github.com/Minqi824/ADBench/raw/main/adbench/datasets/{relpath}.npz"
ADBENCH_FOLDERS = ("Classical", "CV_by_ResNet18", "CV_by_ViT", "NLP_by_BERT", "NLP_by_RoBERTa")

MANUAL_INSTRUCTIONS = f"""\
Put the ADBench .npz files in a folder with ADBench's layout (the manual dir), e.g.
  <manual_dir>/Classical/6_cardio.npz
  <manual_dir>/CV_by_ResNet18/CIFAR10_0.npz
They are in the ADBench repository (https://github.com/Minqi824/ADBench) under
adbench/datasets/<folder>/, one file per URL of the form
  {ADBENCH_URL}
(folders: {', '.join(ADBENCH_FOLDERS)});
`git clone https://github.com/Minqi824/ADBench` gets them all. With network access,
ssadjax.data.tfds_adbench.download_adbench_file('Classical/6_cardio', manual_dir)
fetches one file."""


def resolve_tfds_dir(tfds_dir: str | os.PathLike | None) -> pathlib.Path:
  """`tfds_dir`, else $SSADJAX_TFDS_DIR, else ~/.cache/ssadjax/tfds (created if missing)."""
  value = str(tfds_dir) if tfds_dir else os.environ.get(ENV_TFDS_DIR) or DEFAULT_TFDS_DIR
  path = pathlib.Path(value).expanduser()
  path.mkdir(parents=True, exist_ok=True)
  return path


def npz_shape(path: str | os.PathLike) -> tuple[int, ...]:
  """Shape of the `X` array of an .npz without loading it (reads the .npy header only)."""
  with zipfile.ZipFile(path) as zf:
    with zf.open("X.npy") as f:
      version = np.lib.format.read_magic(f)
      if version == (1, 0):
        shape, _, _ = np.lib.format.read_array_header_1_0(f)
      else:
        shape, _, _ = np.lib.format.read_array_header_2_0(f)
  return tuple(int(s) for s in shape)


def _tfds():
  import tensorflow_datasets as tfds  # a core dependency; imported late to keep imports light
  return tfds


def _builder_class():
  """The builder class, defined on first use (defining it registers `adbench` in TFDS)."""
  global _BUILDER_CLS
  if _BUILDER_CLS is not None:
    return _BUILDER_CLS
  tfds = _tfds()

  @dataclasses.dataclass(eq=False)
  class ADBenchConfig(tfds.core.BuilderConfig):
    """One ADBench file: `relpath` in ADBench's layout (Classical/6_cardio), `num_features`."""
    relpath: str = ""
    num_features: int = 0

  class ADBench(tfds.core.GeneratorBasedBuilder):
    """ADBench (Han et al., NeurIPS 2022), one config per .npz file, rows as examples."""
    name = TFDS_NAME
    VERSION = tfds.core.Version(_VERSION)
    RELEASE_NOTES = {_VERSION: "One config per ADBench .npz file; x float32 [d], y 0/1."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_INSTRUCTIONS
    BUILDER_CONFIGS = []  # discovered per manual dir: see `adbench_configs`

    # TFDS 4.9.10's default `code_path` imports `importlib_resources` (a backport that it
    # declares only for Python < 3.9) for any builder defined inside a package; the path
    # only locates an optional checksums file, so point it at this module directly.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
      from etils import epath
      return epath.Path(__file__)

    def _info(self):
      cfg = self.builder_config
      return tfds.core.DatasetInfo(
          builder=self,
          description=f"ADBench file {cfg.relpath}.npz: rows x (float32 [{cfg.num_features}]), "
                      "y (0 = normal, 1 = anomaly).",
          features=tfds.features.FeaturesDict({
              "x": tfds.features.Tensor(shape=(cfg.num_features,), dtype=np.float32),
              "y": tfds.features.ClassLabel(names=["normal", "anomaly"]),
          }),
          supervised_keys=("x", "y"),
          homepage="https://github.com/Minqi824/ADBench",
      )

    def _split_generators(self, dl_manager):
      path = pathlib.Path(dl_manager.manual_dir) / f"{self.builder_config.relpath}.npz"
      if not path.is_file():
        raise DatasetError(f"ADBench file {path} not found.\n{MANUAL_INSTRUCTIONS}")
      return {"train": self._generate_examples(path)}

    def _generate_examples(self, path):
      x, y = load_npz(path.name, path.parent)  # validated: float32 [n, d], int32 {0, 1}
      if x.shape[1] != self.builder_config.num_features:
        raise DatasetError(f"{path}: {x.shape[1]} features, the config says "
                           f"{self.builder_config.num_features}.")
      for i in range(x.shape[0]):
        yield i, {"x": x[i], "y": int(y[i])}

  _BUILDER_CLS = (ADBench, ADBenchConfig)
  return _BUILDER_CLS


_BUILDER_CLS = None


def adbench_configs(manual_dir: str | os.PathLike) -> list:
  """One `ADBenchConfig` per .npz under `manual_dir` (names: see the module docstring)."""
  _, config_cls = _builder_class()
  manual_dir = pathlib.Path(manual_dir)
  files = sorted(p for p in manual_dir.rglob("*.npz") if p.is_file())
  stems: dict[str, int] = {}
  for p in files:
    stems[p.stem] = stems.get(p.stem, 0) + 1
  configs = []
  for p in files:
    rel = p.relative_to(manual_dir).with_suffix("").as_posix()
    name = p.stem if stems[p.stem] == 1 else rel.replace("/", ".")
    shape = npz_shape(p)
    if len(shape) != 2:
      continue  # not an ADBench table; load_npz would reject it too
    configs.append(config_cls(name=name, version=VERSION, relpath=rel, num_features=shape[1],
                              description=f"ADBench {rel}.npz ({shape[0]} rows, {shape[1]} "
                                          "features)"))
  return configs


def config_name(name: str) -> str:
  """'Classical/6_cardio' or '6_cardio' (or '6_cardio.npz') -> the config-name form used in
  the data dir ('6_cardio'; folder-qualified names keep their folder as 'Folder.stem')."""
  name = name[:-4] if name.endswith(".npz") else name
  return name.replace("/", ".")


def _find_config(name: str, manual_dir: pathlib.Path):
  path = find_dataset_file(name, manual_dir)  # the library's rules and error messages
  rel = path.relative_to(manual_dir).with_suffix("").as_posix()
  for cfg in adbench_configs(manual_dir):
    if cfg.relpath == rel:
      return cfg
  raise DatasetError(f"{path} is not a 2-D ADBench table.")


def prepared_dir(name: str, data_dir: str | os.PathLike | None) -> pathlib.Path:
  """Where config `name` lives once prepared: <data_dir>/adbench/<config>/<version>."""
  return resolve_tfds_dir(data_dir) / TFDS_NAME / config_name(name) / VERSION


def _is_prepared(path: pathlib.Path) -> bool:
  return (path / "dataset_info.json").is_file()


def prepare_adbench(name: str, *, manual_dir: str | os.PathLike,
                    data_dir: str | os.PathLike | None = None):
  """Builds TFDS config `name` from the manual dir into `data_dir`; returns the builder.

  If `name` is ambiguous in the manual dir (same stem in two folders) pass the qualified
  name (`CV_by_ViT/CIFAR10_0`).
  """
  tfds = _tfds()
  builder_cls, _ = _builder_class()
  manual_dir = pathlib.Path(manual_dir).expanduser()
  if not manual_dir.is_dir():
    raise DatasetError(f"ADBench manual dir {str(manual_dir)!r} does not exist.\n"
                       f"{MANUAL_INSTRUCTIONS}")
  cfg = _find_config(name, manual_dir)  # a qualified name of a unique stem maps to the stem
  builder = builder_cls(config=cfg, data_dir=str(resolve_tfds_dir(data_dir)))
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def load_adbench_tfds(name: str, *, manual_dir: str | os.PathLike | None = None,
                      data_dir: str | os.PathLike | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
  """X float32 [n, d], y int32 [n] of ADBench config `name` read through TFDS (TFDS order).

  Reads `<data_dir>/adbench/<config>` if prepared, else prepares it from `manual_dir`.
  """
  tfds = _tfds()
  path = None
  # 'Classical/6_cardio' is stored as '6_cardio' when the stem is unique, as
  # 'Classical.6_cardio' when it is not: try both.
  stem = config_name(name.rsplit("/", 1)[-1])
  for candidate in dict.fromkeys([config_name(name), stem]):
    p = resolve_tfds_dir(data_dir) / TFDS_NAME / candidate / VERSION
    if _is_prepared(p):
      path = p
      break
  if path is not None:
    builder = tfds.builder_from_directory(str(path))
  elif manual_dir:
    builder = prepare_adbench(name, manual_dir=manual_dir, data_dir=data_dir)
  else:
    raise DatasetError(
        f"TFDS dataset adbench/{config_name(name)} is not prepared under "
        f"{resolve_tfds_dir(data_dir)} and no manual dir (--config.data_dir) was given to "
        f"prepare it from.\n{MANUAL_INSTRUCTIONS}")
  source = builder.as_data_source(split="train")
  n = len(source)
  if n == 0:
    raise DatasetError(f"TFDS dataset adbench/{builder.builder_config.name} has no rows.")
  rows = [source[i] for i in range(n)]
  x = np.stack([r["x"] for r in rows]).astype(np.float32)
  y = np.asarray([r["y"] for r in rows], dtype=np.int32)
  return x, y


def download_adbench_file(relpath: str, manual_dir: str | os.PathLike, *,
                          timeout: float = 60.0) -> pathlib.Path:
  """Downloads `<relpath>.npz` (e.g. 'Classical/6_cardio') from the ADBench repository into
  `manual_dir/<relpath>.npz`. Needs network access; offline it raises a DatasetError with
  the manual instructions."""
  relpath = relpath[:-4] if relpath.endswith(".npz") else relpath
  if "/" not in relpath or relpath.split("/")[0] not in ADBENCH_FOLDERS:
    raise DatasetError(f"relpath {relpath!r} must be <folder>/<name> with folder in "
                       f"{ADBENCH_FOLDERS}.")
  url = ADBENCH_URL.format(relpath=relpath)
  target = pathlib.Path(manual_dir).expanduser() / f"{relpath}.npz"
  target.parent.mkdir(parents=True, exist_ok=True)
  tmp = target.with_name(target.name + ".part")
  try:
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
      while chunk := response.read(1 << 20):
        out.write(chunk)
  except (urllib.error.URLError, OSError) as e:
    tmp.unlink(missing_ok=True)
    raise DatasetError(f"Cannot download {url} ({e}). Without network access, copy the file "
                       f"by hand to {target}.\n{MANUAL_INSTRUCTIONS}") from e
  os.replace(tmp, target)
  load_npz(target.name, target.parent)  # validate (an LFS pointer or an HTML page fails here)
  return target
