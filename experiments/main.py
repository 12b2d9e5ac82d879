"""Entry point: parses flags and hands over to ssadjax.experiment (intentionally short).

  python -m experiments.main --config=experiments/configs/default.py --workdir=W
"""

import os

import logging

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", lock_config=True,
                                          help_string="experiment config file")
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for results and checkpoints")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import jax  # after flag parsing, so --help stays fast
  config = _CONFIG.value
  if config.parallel.cpu_devices > 0:
    # Must happen before the first JAX operation.
    jax.config.update("jax_num_cpu_devices", config.parallel.cpu_devices)
  from ssadjax import parallel
  parallel.initialize_distributed(config.parallel)
  from ssadjax import compilation_cache
  if compilation_cache.enable():  # $SSADJAX_COMPILATION_CACHE moves it or ('off') stops it
    # Serialized executables keyed by the resolved config (ssadjax/program_cache.py) are
    # opt-in: deserialised XLA:CPU executables failed at run time here ("Function ... not
    # found") when reused by later processes, so only SSADJAX_EXECUTABLE_CACHE enables it.
    from ssadjax import program_cache
    program_cache.set_directory(os.environ.get("SSADJAX_EXECUTABLE_CACHE", "") or None)
  from ssadjax import experiment
  logging.getLogger("ssadjax").info("jax %s on %s", jax.__version__, jax.devices())
  experiment.train_and_evaluate(config, _WORKDIR.value)
  if config.get("plot", "") and config.grid.strip() and parallel.is_main_process():
    from experiments import plots  # matplotlib only when a figure is asked for
    logging.getLogger("ssadjax").info("figure: %s", plots.make(_WORKDIR.value, config.plot))


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
  _setup_logging()
  app.run(main)
