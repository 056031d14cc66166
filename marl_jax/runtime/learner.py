"""The learner: one jitted update for the whole population, on every device.

The algorithm's ``update`` works on one member. Here it is vmapped over the
population axis and jitted with the batch sharded along its batch axis across
the learner's devices (the learner state is replicated), so XLA computes each
member's gradient over the global batch: a data-parallel update whose gradients
are averaged across devices, equal to the one-device update up to float
summation order.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from marl_jax.algorithms.base import Algorithm, LearnerState


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
  """Independent initial states for ``population_size`` members: ``[P, ...]``."""
  return jax.vmap(algorithm.init)(jax.random.split(key, population_size))


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
    from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
    raise config_lib.ConfigError(
        f'num_learner_devices={n} but only {len(devices)} local devices exist.')
  return devices[:n]
