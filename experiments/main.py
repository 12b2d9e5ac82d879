"""Entry point: parses flags, checks the config and data, hands over to experiments.runner.

  python -m experiments.main --config=experiments/configs/default.py --workdir=W
  python -m experiments.main --help

A user mistake ends in one line on stderr (`error: ...`) and exit status 2, before JAX
loads where the check needs no JAX, and with nothing written; `--debug` (or
SSADJAX_DEBUG=1) shows the traceback instead.
"""

import ast
import difflib
import importlib.util
import logging
import os
import pathlib
import re
import sys

from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", lock_config=True,
                                          help_string="experiment config file")
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for results and checkpoints")
_DEBUG = flags.DEFINE_bool("debug", False, "show the traceback of an error")

CONFIG_DIR = pathlib.Path(__file__).with_name("configs")
USER_ERROR = 2
_HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull", "-help")


class UserError(Exception):
  """A mistake the user can fix; its message is the whole report."""


# ------------------------------------------------------------------------- help


def _first_sentence(path: pathlib.Path) -> str:
  doc = ast.get_docstring(ast.parse(path.read_text())) or ""
  first = " ".join(doc.split("\n\n")[0].split())
  first = re.split(r"(?<=\.)\s", first)[0].rstrip(".")
  return first if len(first) <= 100 else first[:97].rstrip() + "..."


def _field_comments() -> dict:
  """Inline comments of the top-level fields in ssadjax/config.py (their one-line descriptions)."""
  out = {}
  pending = []
  from ssadjax import config as config_lib  # ml_collections only
  for line in pathlib.Path(config_lib.__file__).read_text().splitlines():
    stripped = line.strip()
    if stripped.startswith("#"):
      pending.append(stripped.lstrip("# "))
      continue
    m = re.match(r"  c\.(\w+) = .*?#\s*(.*)$", line)
    if m:
      out[m.group(1)] = m.group(2)
    elif re.match(r"  c\.(\w+) = ", line) and pending:
      out[re.match(r"  c\.(\w+)", line).group(1)] = " ".join(pending)
    pending = []
  return out


def help_text() -> str:
  from experiments.configs import common  # ml_collections only
  from ssadjax import runconfig
  from ssadjax.data import embedded
  configs = sorted(p for p in CONFIG_DIR.glob("*.py")
                   if p.name not in ("__init__.py", "common.py"))
  width = max(len(p.name) for p in configs) + 2
  config_lines = [f"  {p.name:<{width}}{_first_sentence(p)}" for p in configs]
  defaults = common.get_config()
  comments = _field_comments()
  fields = ("method", "anomaly_only", "dataset", "la", "num_seeds", "seed", "data_dir",
            "preset", "grid")
  field_lines = []
  for name in fields:
    value = f"{name}={defaults[name]!r}"
    field_lines.append(f"  {value:<28}{comments.get(name, '')}")
  no_anoonly = ", ".join(list(runconfig.UNSUPERVISED) + list(runconfig.NO_ANOONLY))
  return f"""\
Train and score semi-supervised anomaly detectors (one run or a grid) with ssadjax.

usage: python -m experiments.main --config=FILE --workdir=DIR [--config.FIELD=VALUE ...]

  --config=FILE       an experiment config (below); FILE:ARG passes ARG to its get_config
  --workdir=DIR       where results and checkpoints go; rerunning the same command resumes
                      or reuses it; a DIR that holds another config is refused
  --config.FIELD=V    override one field, e.g. --config.method=devnet --config.la=5
  --debug             show the Python traceback of an error (also SSADJAX_DEBUG=1)

Every run prints a table and writes results.csv, report.md, results.json and config.json
into DIR. A mistake ends with one line on stderr and exit status 2.

Config files (experiments/configs/):
{chr(10).join(config_lines)}

Methods (--config.method): {", ".join(runconfig.METHODS)}
  --config.anomaly_only=True applies AnoOnly (loss on labelled anomalies only); not
  available for {no_anoonly}.

Datasets (--config.dataset; `python -m experiments.datasets` lists what this machine has):
  {embedded.DEFAULT:<35}real data shipped in the package (default.py's default)
  synthetic                          generated Gaussian data, no files
  6_cardio  Classical/6_cardio       an ADBench .npz under --config.data_dir or
  CV_by_ResNet18/MVTec-AD_bottle       $SSADJAX_DATA_DIR (bare names are searched)
  tfds:adbench/6_cardio              the same file through TFDS
  tfds:mnist/k  tfds:cifar10/k       a TFDS image set, class k normal
                                       (--config.data.tfds_download=True fetches it)
  sklearn:digits/k                   scikit-learn's 8x8 digits, class k normal (offline)

Most used fields, with their defaults (all fields, commented: ssadjax/config.py;
each method's hyper-parameters are in the section named after it, e.g. deepsad.num_epochs):
{chr(10).join(field_lines)}

la: a float is a ratio of the training anomalies (la=1.0 labels all of them), an int a
count (la=5 labels five), as in ADBench.
grid: --config.grid='anomaly_only=False|True;la=0.1|1.0|5' runs every combination.
"""


# ------------------------------------------------------------------------- errors


def _one_line(message: str) -> str:
  return " ".join(str(message).split())


def _config_argument(argv) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _load_config_file(argument: str):
  path, _, arg = argument.partition(":")
  spec = importlib.util.spec_from_file_location("_ssadjax_user_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def _dotted_fields(config, prefix="") -> list[str]:
  out = []
  for key, value in config.items():
    out.append(prefix + key)
    if hasattr(value, "items"):
      out += _dotted_fields(value, prefix + key + ".")
  return out


def _unknown_field(argv) -> str | None:
  """The message for the first `--config.x` that names no config field, else None."""
  argument = _config_argument(argv)
  if not argument:
    return None
  try:
    config = _load_config_file(argument)
  except Exception:  # the file itself is broken: reported by the caller
    return None
  known = _dotted_fields(config)
  for arg in argv:
    m = re.match(r"--config\.([\w.]+)", arg)
    if not m or m.group(1) in known:
      continue
    field = m.group(1)
    close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
    hint = f"did you mean --config.{close[0]}? " if close else ""
    return (f"--config.{field} is not a config field; {hint}`python -m experiments.main "
            "--help` lists the common ones, ssadjax/config.py all of them")
  return None


def _parse_error(e: Exception, argv) -> str:
  unknown = _unknown_field(argv)
  if unknown:
    return unknown
  text = _one_line(e)
  argument = _config_argument(argv)
  if argument and not pathlib.Path(argument.partition(":")[0]).is_file():
    return (f"config file {argument.partition(':')[0]!r} does not exist; pass one of "
            f"experiments/configs/*.py (e.g. --config=experiments/configs/default.py)")
  if "Unknown command line flag" in text:
    return f"{text}; `python -m experiments.main --help` lists the flags"
  if isinstance(e, flags.IllegalFlagValueError):
    return f"{text}; give a value of the field's type (defaults: ssadjax/config.py)"
  return text


def _data_hint(message: str) -> str:
  if "not found under" in message:
    return message + " `python -m experiments.datasets --data_dir=DIR` lists the names."
  return message


# ------------------------------------------------------------------------- run


def _parse(argv):
  """Flags and config, or UserError. Imports no JAX."""
  try:
    rest = flags.FLAGS(argv)
    config = _CONFIG.value
    if config is not None:
      config.keys()  # a config file that failed to load raises on first use
  except Exception as e:  # absl/ml_collections raise many types for a bad flag
    raise UserError(_parse_error(e, argv)) from e
  if len(rest) > 1:
    raise UserError(f"unexpected arguments {rest[1:]}; flags are written --name=value "
                    "(see --help)")
  if config is None:
    raise UserError("missing --config=FILE; e.g. --config=experiments/configs/default.py "
                    "(--help lists the config files)")
  if not _WORKDIR.value:
    raise UserError("missing --workdir=DIR, the folder for results and checkpoints; "
                    "e.g. --workdir=/tmp/ssadjax")
  return config, pathlib.Path(_WORKDIR.value).expanduser()


def _run(config, workdir: pathlib.Path):
  from experiments import grid
  try:
    splits = grid.preflight(config, workdir)
  except ValueError as e:  # DatasetError is a ValueError
    raise UserError(_data_hint(_one_line(e))) from e

  import jax  # only now: the checks above need none of it
  if config.parallel.cpu_devices > 0:
    # Must happen before the first JAX operation.
    jax.config.update("jax_num_cpu_devices", config.parallel.cpu_devices)
  from ssadjax.program import parallel
  parallel.initialize_distributed(config.parallel)
  from ssadjax.host import compilation_cache
  if compilation_cache.enable():  # $SSADJAX_COMPILATION_CACHE moves it or ('off') stops it
    # Serialized executables keyed by the resolved config (ssadjax/host/program_cache.py) are
    # opt-in: deserialised XLA:CPU executables failed at run time here ("Function ... not
    # found") when reused by later processes, so only SSADJAX_EXECUTABLE_CACHE enables it.
    from ssadjax.host import program_cache
    program_cache.set_directory(os.environ.get("SSADJAX_EXECUTABLE_CACHE", "") or None)
  from experiments import runner
  from ssadjax.host import grouping
  from experiments import workdir as workdir_files
  logging.getLogger("ssadjax").info("jax %s on %s", jax.__version__, jax.devices())
  before = grouping.program_counts()
  try:
    results = runner.train_and_evaluate(config, workdir, splits=splits)
  except ValueError as e:  # checks that need JAX (device layouts, method builders)
    raise UserError(_one_line(e)) from e
  if not parallel.is_main_process():
    return
  summaries = results if isinstance(results, list) else [results]
  print(workdir_files.format_table(summaries), end="")
  if config.get("plot", "") and grid.is_grid(config):
    from experiments import plots  # matplotlib only when a figure is asked for
    figure = plots.make(workdir, config.plot)  # None: nothing drawn (it says why)
    if figure:
      print(f"figure: {figure}")
  programs = grouping.program_delta(before, grouping.program_counts())
  seconds = sum(s["compile_seconds"] for s in summaries if not s.get("reused"))
  print(_compile_summary(programs, seconds, sum(bool(s.get("reused")) for s in summaries)))
  print(f"results: {workdir / 'results.csv'} (one row per seed), "
        f"{workdir / 'report.md'} (this table); per run: results.json, metrics.jsonl")


def _compile_summary(programs: dict, seconds: float, reused_runs: int) -> str:
  """One line: programs this process compiled, took from caches, and the seconds it took."""
  origins = [f"{programs[k]} {what}" for k, what in
             (("from_jax_cache", "from the persistent compilation cache"),
              ("reused", "reused in memory"), ("loaded", "loaded from disk"))
             if programs.get(k)]
  line = (f"programs: {programs['compiled']} compiled"
          f"{', ' + ', '.join(origins) if origins else ''}; {seconds:.1f} s compiling or loading")
  if reused_runs:
    line += f" ({reused_runs} finished run(s) reused, not rerun)"
  return line


def main(argv=None) -> int:
  argv = list(sys.argv if argv is None else argv)
  if any(a in _HELP_FLAGS for a in argv[1:]):
    print(help_text(), end="")
    return 0
  debug = "--debug" in argv or os.environ.get("SSADJAX_DEBUG", "") not in ("", "0")
  _setup_logging()
  try:
    config, workdir = _parse(argv)
    _run(config, workdir)
  except UserError as e:
    if debug:
      raise
    print(f"error: {e}", file=sys.stderr)
    return USER_ERROR
  except KeyboardInterrupt:
    if debug:
      raise
    print("interrupted; rerun the same command to resume from the last checkpoint",
          file=sys.stderr)
    return 130
  return 0


def _setup_logging():
  """ssadjax's progress at INFO on stderr; libraries (orbax is chatty) at WARNING."""
  absl_logging.set_verbosity(absl_logging.WARNING)
  handler = logging.StreamHandler()
  handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
  logger = logging.getLogger("ssadjax")
  logger.addHandler(handler)
  logger.setLevel(logging.INFO)
  logger.propagate = False


if __name__ == "__main__":
  sys.exit(main())
