"""The host-fed input path: training data stays in host memory (a numpy array or an
`np.memmap` larger than device memory) and batches stream to the device with a
prefetching thread, through the same `engine.train_step` as the fused program.

Batches are the fused program's: the same per-epoch permutation (drawn from the same key
on the device, only the indices) and the same per-step keys, so for methods with uniform
shuffled batches (Deep SAD / Deep SVDD) a host-fed run reproduces a fused run of that
seed. Every other sampler (DevNet's and FEAWAD's balanced batches, PReNet's pairs,
AnoOnly's `ensure_anomaly` swap) is refused: it gathers from device-resident pools.
"""

import queue
import threading
import time

import jax
import numpy as np

from ssadjax import methods
from ssadjax.host import engine
from ssadjax.methods.base import Method
from ssadjax.models.variables import make_variables


def _prefetch(iterator, size: int):
  """Runs `iterator` in a thread, keeping up to `size` device batches ready."""
  ready = queue.Queue(maxsize=size)
  done = object()

  def worker():
    try:
      for item in iterator:
        ready.put(item)
    except BaseException as e:  # surfaced in the consumer
      ready.put(e)
    ready.put(done)

  threading.Thread(target=worker, daemon=True).start()
  while True:
    item = ready.get()
    if item is done:
      return
    if isinstance(item, BaseException):
      raise item
    yield item


def fit_host_fed(method: Method, x, semi_labels, seed: int, *, batch_size: int,
                 init_rows: int | None = None, prefetch: int = 2):
  """Trains one seed with batches gathered on the host.

  Args:
    method: a method whose sampler draws uniform shuffled batches of `batch_size`.
    x: `[n, d]` host array (np.ndarray or np.memmap); never copied whole to the device.
    semi_labels: `[n]` 1 = labelled anomaly, 0 = unlabelled.
    seed: the run's seed (keys derived as in the fused engine).
    batch_size: the method's batch size (`n // batch_size` must be its steps per epoch).
    init_rows: rows given to `method.init` and to the stages before the main one (e.g.
      Deep SAD's centre and autoencoder pretraining); None = all rows, which must then
      fit on the device once.
    prefetch: device batches kept ready ahead of the step.

  Returns:
    (TrainState of one seed, timing dict).
  """
  n = x.shape[0]
  if method.sampler.shuffled_batch_size is None:
    raise ValueError(f"{method.name} draws its own batches (not uniform shuffled ones), "
                     "which host-fed training cannot reproduce; train it with engine.fit")
  if method.needs_train_data:
    raise ValueError(f"{method.name} reads every training row inside its steps or scoring "
                     "(Method.needs_train_data), which host-fed training does not hold on "
                     "the device; train it with engine.fit")
  if batch_size != method.sampler.shuffled_batch_size:
    raise ValueError(f"batch_size={batch_size}, but {method.name} draws uniform shuffled "
                     f"batches of {method.sampler.shuffled_batch_size}; pass that size")
  if n // batch_size != method.steps_per_epoch:
    raise ValueError(f"batch_size={batch_size} gives {n // batch_size} steps per epoch but "
                     f"{method.name} expects {method.steps_per_epoch}: host-fed training "
                     "supports methods with uniform shuffled batches of that size")
  semi_labels = np.asarray(semi_labels, np.int32)
  rows = n if init_rows is None else min(init_rows, n)
  init_data = methods.make_train_data(np.asarray(x[:rows], np.float32), semi_labels[:rows])
  init_key, extras_key, train_key = engine.seed_keys(seed)
  # Stages before the main one (e.g. pretraining) run on the device on `init_rows`.
  state = jax.jit(lambda d: engine.initialise(method, init_key, extras_key, d))(
      jax.device_put(init_data))
  step = jax.jit(lambda s, b, k: engine.train_step(method, s, b, k), donate_argnums=0)
  permutation = jax.jit(lambda k: jax.random.permutation(k, n))

  def epoch_batches(epoch):
    sampler_key, steps_key = jax.random.split(jax.random.fold_in(train_key, epoch))
    perm = np.asarray(permutation(sampler_key))
    for i in range(method.steps_per_epoch):
      idx = np.sort(perm[i * batch_size:(i + 1) * batch_size])  # sorted reads: memmap-friendly
      order = np.argsort(np.argsort(perm[i * batch_size:(i + 1) * batch_size]))
      batch = {"x": np.asarray(x[idx], np.float32)[order], "semi_labels": semi_labels[idx][order]}
      loss_key = jax.random.split(jax.random.fold_in(steps_key, i))[1]
      yield jax.device_put(batch), loss_key

  losses, t0 = [], time.perf_counter()
  for epoch in range(method.num_epochs):
    epoch_losses = []
    for batch, loss_key in _prefetch(epoch_batches(epoch), prefetch):
      state, metrics = step(state, batch, loss_key)
      epoch_losses.append(metrics["loss"])
    losses.append(float(np.mean(jax.device_get(epoch_losses))))  # bounds work in flight
  return state, {"train_seconds": time.perf_counter() - t0, "epoch_losses": losses,
                 "steps": method.num_epochs * method.steps_per_epoch}


def score_host_fed(method: Method, state, x, *, block: int = 4096) -> np.ndarray:
  """Scores host rows in blocks (eval mode, running statistics)."""
  variables = make_variables(*state.final_variables())
  fn = jax.jit(lambda v, e, xb: method.score(v, e, xb))
  return np.concatenate([np.asarray(fn(variables, state.extras,
                                       np.asarray(x[i:i + block], np.float32)))
                         for i in range(0, x.shape[0], block)])
