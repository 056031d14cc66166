"""A run directory: what train.py writes and evaluation reads.

  <exp_dir>/config.json      the run's whole config (``utils.config.to_json``)
  <exp_dir>/checkpoints/<n>  orbax checkpoints (``utils.checkpointing``) of
                             ``dict(learner=LearnerState [P, ...],
                             runtime=bytes)``, ``n`` the env steps, with
                             metadata (``env_steps``, ``algo``, ``env``, ...)

The config alone rebuilds the environment and the algorithm, and with them
the shapes of the population's learner state, into which a checkpoint is
restored: ``load_run`` is the one way to get a trained population back.
"""

from __future__ import annotations

import os
from typing import Any, Dict, NamedTuple, Optional

import jax
import ml_collections

from marl_jax import algorithms
from marl_jax.utils import checkpointing
from marl_jax.utils import config as config_lib

CONFIG_FILE = 'config.json'
CHECKPOINT_DIR = 'checkpoints'


def config_path(exp_dir: str) -> str:
  return os.path.join(exp_dir, CONFIG_FILE)


def checkpoint_dir(exp_dir: str) -> str:
  return os.path.join(exp_dir, CHECKPOINT_DIR)


def read_config(exp_dir: str) -> ml_collections.ConfigDict:
  """The run's ``config.json``; ``checkpointing.CheckpointError`` naming the
  file when it is missing or unreadable."""
  path = config_path(exp_dir)
  try:
    with open(path) as f:
      return config_lib.from_json(f.read())
  except FileNotFoundError:
    raise checkpointing.CheckpointError(
        f'{path} does not exist: {exp_dir} is not a run directory of '
        'train.py.') from None
  except (OSError, ValueError, TypeError) as e:
    raise checkpointing.CheckpointError(
        f'{path} is not a readable train.py config ({e}).') from None


def population_shapes(algorithm, population_size: int):
  """The shapes and dtypes (``jax.ShapeDtypeStruct``) of a population's
  learner state ``[P, ...]``: ``algorithm.init`` vmapped over members, traced
  but never run (a real init compiles every op eagerly, only to be
  overwritten by the checkpoint)."""
  return jax.eval_shape(lambda: jax.vmap(algorithm.init)(
      jax.random.split(jax.random.PRNGKey(0), population_size)))


class Run(NamedTuple):
  config: ml_collections.ConfigDict
  algorithm: Any  # algorithms.base.Algorithm
  params: Any  # [P, ...]
  meta: Dict[str, Any]  # the checkpoint's metadata (env_steps, ...)


def load_run(exp_dir: str, step: Optional[int] = None) -> Run:
  """``(config, algorithm, params [P, ...], metadata)`` of the run in
  ``exp_dir``, from checkpoint ``step`` (default: the latest).

  Raises:
    checkpointing.CheckpointError: no config, or a missing or corrupt
      checkpoint (the message names the file).
  """
  config = read_config(exp_dir)
  env = algorithms.make_env(config)
  try:
    spec = env.spec()
  finally:
    env.close()
  algorithm = algorithms.make(config.algo, spec, config)
  target = dict(learner=population_shapes(algorithm, config.population_size),
                runtime=b'')
  # Read-only: the run may still be training; never write or clean up.
  checkpointer = checkpointing.Checkpointer(checkpoint_dir(exp_dir),
                                            max_to_keep=None, read_only=True)
  try:
    restored, meta = checkpointer.restore(step=step, target=target)
  finally:
    checkpointer.close()
  return Run(config, algorithm, restored['learner'].params, meta)
