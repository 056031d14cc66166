"""The learner: one jitted update for the whole population, on every device.

The algorithm's ``update`` works on one member. Here it is vmapped over the
population axis and jitted with the batch sharded along its batch axis across
the learner's devices (the learner state is replicated), so XLA computes each
member's gradient over the global batch: a data-parallel update whose gradients
are averaged across devices, equal to the one-device update up to float
summation order.

``LearnerNode`` is the distributed program's learner around it: it samples
``[P, B]`` batches from the replay node, runs the update, publishes the params
(the program's variable source), checkpoints and writes ``learner.csv``.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import threading
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from marl_jax.algorithms.base import Algorithm, LearnerState
from marl_jax.replay import table as table_lib
from marl_jax.utils import config as config_lib

# How long the learner's loops wait before looking at the stop flag again.
_POLL_S = 0.5


def make_population_update(
    update_fn: Callable[[LearnerState, Any], Tuple[LearnerState, Any]],
    devices: Sequence[jax.Device],
) -> Callable[[LearnerState, Any], Tuple[LearnerState, Any]]:
  """``(state [P, ...], batch [P, B, ...]) -> (state, metrics [P])``.

  Args:
    update_fn: one member's update.
    devices: the devices to shard the batch axis over; ``B`` must be divisible
      by their number.
  """
  devices = list(devices)
  mesh = Mesh(np.array(devices), ('batch',))
  replicated = NamedSharding(mesh, PartitionSpec())
  batch_sharding = NamedSharding(mesh, PartitionSpec(None, 'batch'))
  jitted = jax.jit(jax.vmap(update_fn),
                   in_shardings=(replicated, batch_sharding),
                   out_shardings=(replicated, replicated),
                   donate_argnums=(0,))
  num_devices = len(devices)

  def population_update(state, batch):
    batch_size = jax.tree.leaves(batch)[0].shape[1]
    if batch_size % num_devices:
      raise ValueError(
          f'batch_size ({batch_size}) must be divisible by the number of '
          f'learner devices ({num_devices}).')
    return jitted(state, batch)

  population_update.replicated = replicated
  population_update.batch_sharding = batch_sharding
  return population_update


def init_population(algorithm: Algorithm, key: jax.Array,
                    population_size: int) -> LearnerState:
  """Independent initial states for ``population_size`` members: ``[P, ...]``.

  Jitted: run eagerly, a network's init dispatches (and compiles) each of its
  few hundred small ops on its own, seconds of start-up on a CPU.
  """
  return jax.jit(jax.vmap(algorithm.init))(
      jax.random.split(key, population_size))


class Learner:
  """Holds the population's learner state and applies updates to it."""

  def __init__(self, algorithm: Algorithm, population_size: int,
               key: jax.Array, devices: Optional[Sequence[jax.Device]] = None):
    self._devices = list(devices or jax.local_devices())
    self._update = make_population_update(algorithm.update, self._devices)
    state = init_population(algorithm, key, population_size)
    self.set_state(state)
    self.population_size = population_size

  @property
  def num_devices(self) -> int:
    return len(self._devices)

  @property
  def steps(self) -> int:
    return int(np.asarray(self.state.step)[0])

  def set_state(self, state: LearnerState) -> None:
    # One buffer per leaf: the update donates the state, and an algorithm may
    # start with leaves that share a buffer (QMIX's target = its params).
    state = jax.tree.map(lambda x: np.array(x, copy=True), state)
    self.state = jax.device_put(state, self._update.replicated)

  def update(self, batch) -> dict:
    """Applies one update to every member; returns numpy metrics of shape [P]."""
    self.state, metrics = self._update(self.state, batch)
    return metrics

  def params_on(self, device: jax.Device):
    """A copy of the population's params on ``device`` (for acting)."""
    return jax.device_put(self.state.params, device)


def learner_devices(config) -> list:
  """The first ``num_learner_devices`` local devices (0: all of them)."""
  devices = jax.local_devices()
  n = config.num_learner_devices or len(devices)
  if n > len(devices):
    raise config_lib.ConfigError(
        f'num_learner_devices={n} but only {len(devices)} local devices exist.')
  return devices[:n]


def spec_and_algorithm(config):
  """The env spec of ``config`` (from a copy built and closed here) and the
  algorithm built for it."""
  from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
  env = algorithms.make_env(config)
  spec = env.spec()
  env.close()
  return spec, algorithms.make(config.algo, spec, config)


def replay_table(config_dict) -> table_lib.TableSpec:
  """The algorithm's ``TableSpec`` for ``config_dict``: what the replay node
  is built from, in its own process."""
  _, algorithm = spec_and_algorithm(ml_collections.ConfigDict(config_dict))
  return algorithm.replay_table


class LearnerNode:
  """Trains the population from the replay; the program's variable source.

  ``run()`` is what the ``local`` and ``ray`` launchers call: ``setup()``,
  then ``step(batch)`` for every batch a prefetching thread samples, then
  ``finish()``. The ``single`` launcher calls the same three itself.
  """

  def __init__(self, config_dict, exp_dir: str, replay, counter,
               resume: bool = False):
    self._config = ml_collections.ConfigDict(config_dict)
    self._exp_dir = exp_dir
    self._replay = replay
    self._counter = counter
    self._resume = resume
    self._variables: Tuple[int, Any] = (-1, None)
    self._variables_lock = threading.Lock()
    self.learner = None
    # Whether step() writes the periodic checkpoints (every
    # checkpoint_every_s). The single launcher writes them itself, between
    # iterations, where its exact-resume state is consistent.
    self.autosave = True
    # Extra state for the checkpoint: a callable returning a picklable dict
    # (the single launcher's env loops and replay, for exact resume).
    self.extra_state = None

  def get_variables(self, known_version: int = -1) -> Tuple[int, Any]:
    """``(version, params [P, ...])``; params None if not newer than known."""
    with self._variables_lock:
      version, params = self._variables
    return (version, params) if version > known_version else (version, None)

  def _weights(self, info, config) -> np.ndarray:
    """Prioritized replay's importance weights, ``[P, B]``, with the table's
    beta schedule over ``num_steps``."""
    env_steps = self._counter.get_state()['env_steps']
    beta = float(self._table.importance_exponent(env_steps / config.num_steps))
    return np.stack([
        table_lib.importance_weights(p, n, beta)
        for p, n in zip(info['probabilities'], info['table_size'])
    ]).astype(np.float32)

  def publish(self) -> None:
    """Makes the learner's current params the variable source's."""
    host = jax.tree.map(np.asarray, self.learner.state.params)
    with self._variables_lock:
      self._variables = (self.version, host)

  def setup(self) -> Dict[str, Any]:
    """Builds the learner (restoring it on resume) and publishes its params.

    Returns the checkpoint's runtime state (``{}`` for a new run).
    """
    from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
    from marl_jax.utils.logging import MetricLogger, wandb_options  # pylint: disable=g-import-not-at-top

    config = self._config
    _, algorithm = spec_and_algorithm(config)
    self.algorithm = algorithm
    table = self._table = algorithm.replay_table
    devices = learner_devices(config)
    if table.batch_size % len(devices):
      raise config_lib.ConfigError(
          f'batch_size ({table.batch_size}) must be divisible by the number of '
          f'learner devices ({len(devices)}); set --config.num_learner_devices.')
    key = jax.random.PRNGKey(config.seed)
    learner_key, _ = jax.random.split(key)
    self.learner = Learner(algorithm, config.population_size, learner_key,
                           devices)
    ckpt_dir = os.path.join(self._exp_dir, 'checkpoints')
    self._checkpointer = checkpointing.Checkpointer(
        ckpt_dir, max_to_keep=config.max_checkpoints_to_keep)
    runtime = {}
    try:
      if self._resume:
        target = dict(learner=self.learner.state, runtime=b'')
        restored, meta = self._checkpointer.restore(target=target)
        self.learner.set_state(restored['learner'])
        try:
          runtime = (pickle.loads(restored['runtime'])
                     if restored['runtime'] else {})
        except Exception as e:  # A checkpoint of another layout or version.
          raise checkpointing.CheckpointError(
              f'The checkpoint at step {meta.get("env_steps")} in {ckpt_dir} '
              f'has a runtime state this run cannot use: {e}') from e
        if 'counter' in runtime:
          self._counter.set_state(runtime['counter'])
      self.version = self.learner.steps
      self.publish()
      self._logger = MetricLogger(self._exp_dir,
                                  wandb=wandb_options(config, 'learner'))
    except BaseException:
      self._checkpointer.close()
      raise
    self._prioritized = table.sampler == 'prioritized'
    self._last_ckpt = self._last_log = time.monotonic()
    return runtime

  def step(self, item, batch_wait_s: float = 0.) -> Dict[str, Any]:
    """One update on ``item = (batch [P, B, ...], sampling info)``: publishes
    the new params, counts the update, logs, checkpoints when due.
    Returns the update's metrics."""
    config = self._config
    batch, info = item
    ages = (self.version - np.asarray(batch.policy_version)
            if hasattr(batch, 'policy_version') else None)
    if self._prioritized:
      batch = batch._replace(weight=self._weights(info, config))
    metrics = dict(self.learner.update(batch))
    if 'priorities' in metrics:
      # [P, B] new priorities of the sampled items (e.g. |TD error|).
      priorities = np.asarray(metrics.pop('priorities'))
      if self._prioritized:
        for m in range(config.population_size):
          self._replay.update_priorities(m, info['keys'][m], priorities[m])
    self.version += 1
    self.publish()
    counts = self._counter.increment(learner_steps=1)
    if self.version % config.log_every_updates == 0:
      m = {k: np.asarray(v) for k, v in metrics.items()}
      if ages is not None:
        m['policy_lag'] = ages.mean(axis=1).astype(np.float64)
      info = self._replay.info()
      m['replay_samples_per_insert'] = float(info['samples_per_insert'])
      m['replay_dropped'] = float(info['dropped'])
      m['replay_size'] = float(np.mean(info['sizes']))
      m['batch_wait_s'] = float(batch_wait_s)
      now = time.monotonic()
      m['updates_per_s'] = config.log_every_updates / max(
          now - self._last_log, 1e-9)
      self._last_log = now
      self._logger.write('learner', counts['env_steps'], m)
    if self.autosave:
      self.save_if_due()
    return metrics

  def save_if_due(self) -> None:
    """Writes a checkpoint if ``checkpoint_every_s`` passed since the last."""
    if time.monotonic() - self._last_ckpt >= self._config.checkpoint_every_s:
      self.save()
      self._last_ckpt = time.monotonic()

  def save(self, force: bool = False) -> None:
    config = self._config
    counts = self._counter.get_state()
    runtime = dict(counter=counts)
    if self.extra_state is not None:
      runtime.update(self.extra_state())
    state = dict(learner=self.learner.state, runtime=pickle.dumps(runtime))
    self._checkpointer.save(
        counts['env_steps'], state,
        metadata=dict(env_steps=counts['env_steps'],
                      learner_steps=self.learner.steps, algo=config.algo,
                      env=config.env, population_size=config.population_size),
        force=force)

  def finish(self, save: bool = True) -> None:
    """Writes the final checkpoint (unless ``save`` is False, after an error:
    the latest checkpoint stays the last consistent one) and closes files."""
    try:
      if save:
        self.save(force=True)
        self._checkpointer.wait()
    finally:
      self._logger.close()
      self._checkpointer.close()

  def run(self) -> Dict[str, Any]:
    self.setup()
    ok = False
    try:
      self._train()
      ok = True
    finally:
      self.finish(save=ok)
    self._counter.request_stop()
    return dict(learner_steps=self.version)

  def _train(self) -> None:
    config = self._config
    batches: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def prefetch():
      # Overlaps sampling (and its transfer) with the update.
      waited = 0.
      while not stop.is_set():
        try:
          batch = self._replay.sample(timeout=_POLL_S * 4)
          waited = 0.
        except table_lib.ReplayTimeoutError as e:
          waited += _POLL_S * 4
          if waited >= config.get('learner_starved_warning_s', 30.):
            logging.warning('Learner starved for %.0f s: %s', waited, e)
            waited = 0.
          continue
        except Exception as e:  # pylint: disable=broad-except
          if not stop.is_set():
            batches.put(e)
          return
        while not stop.is_set():
          try:
            batches.put(batch, timeout=_POLL_S)
            break
          except queue.Full:
            continue

    thread = threading.Thread(target=prefetch, daemon=True, name='prefetch')
    thread.start()
    waited_since = time.monotonic()
    try:
      while not self._counter.should_stop():
        try:
          item = batches.get(timeout=_POLL_S)
        except queue.Empty:
          continue
        if isinstance(item, Exception):
          raise item
        self.step(item, batch_wait_s=time.monotonic() - waited_since)
        waited_since = time.monotonic()
    finally:
      stop.set()
