"""Config checks and helpers, shared by train.py and the runtimes."""

from __future__ import annotations

import json
from typing import Any

import ml_collections


class ConfigError(ValueError):
  """A config value that cannot work; the message names the key."""


_POSITIVE_INTS = ('num_steps', 'population_size', 'num_actors',
                  'num_envs_per_actor', 'sequence_length', 'batch_size',
                  'replay_max_size', 'max_checkpoints_to_keep',
                  'log_every_updates', 'video_min_size', 'num_epochs')
_NON_NEGATIVE = ('learning_rate', 'entropy_cost', 'baseline_cost',
                 'max_grad_norm', 'checkpoint_every_s', 'progress_every_s')
LAUNCHERS = ('local', 'ray', 'single')
WANDB_MISSING = 'logger.wandb=True needs the wandb package: pip install wandb'


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ``ConfigError`` naming the first bad key."""
  for key in _POSITIVE_INTS:
    if key in config:
      value = config[key]
      if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f'{key} must be a positive integer, got {value!r}.')
  for key in _NON_NEGATIVE:
    if key in config and not (isinstance(config[key], (int, float)) and
                              config[key] >= 0):
      raise ConfigError(f'{key} must be a non-negative number, got '
                        f'{config[key]!r}.')
  if 'discount' in config and not 0. <= config.discount <= 1.:
    raise ConfigError(f'discount must be in [0, 1], got {config.discount!r}.')
  if config.launcher not in LAUNCHERS:
    raise ConfigError(f'launcher {config.launcher!r} is not available; valid '
                      f'launchers: {", ".join(LAUNCHERS)}.')
  if 'replay_max_size' in config and config.replay_max_size < config.batch_size:
    raise ConfigError(f'replay_max_size ({config.replay_max_size}) must be at '
                      f'least batch_size ({config.batch_size}).')
  if config.get('pbt_every_updates', 0):
    if config.pbt_every_updates < 0:
      raise ConfigError('pbt_every_updates must be >= 0 (0: off), got '
                        f'{config.pbt_every_updates}.')
    if config.population_size < 2:
      raise ConfigError('pbt_every_updates needs population_size >= 2, got '
                        f'{config.population_size}.')
  if config.num_learner_devices < 0:
    raise ConfigError('num_learner_devices must be >= 0 (0: all devices), got '
                      f'{config.num_learner_devices}.')
  if wandb_enabled(config):
    import_wandb()  # Here, before a run writes anything or starts a node.


def wandb_enabled(config) -> bool:
  """Whether ``config`` logs to Weights & Biases (``logger.wandb``; configs
  saved before the key existed do not)."""
  logger = config.get('logger')
  return bool(logger and logger.get('wandb', False))


def import_wandb():
  """The ``wandb`` module; ``ConfigError`` in one line if it cannot be
  imported (wandb is an optional dependency)."""
  try:
    import wandb  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ConfigError(WANDB_MISSING) from e
  return wandb


def to_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json_best_effort(indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(json.loads(text))


def env_kwargs(config) -> dict[str, Any]:
  return dict(config.env_kwargs.to_dict()) if config.env_kwargs else {}


# Observations that are never the network's main input.
_NOT_INPUTS = ('GLOBAL', 'ACTION_MASK', 'AGENT_ID')
# Which observation ``network.observation_key='auto'`` picks, in order.
_INPUT_ORDER = ('RGB', 'FEATURES', 'GRID')


def choose_observation_key(observation_spec) -> str:
  """The observation a network reads when ``observation_key='auto'``: pixels
  (``RGB``), else feature vectors, else a feature grid, else the only other
  observation there is."""
  for key in _INPUT_ORDER:
    if key in observation_spec:
      return key
  rest = [k for k in observation_spec if k not in _NOT_INPUTS]
  if len(rest) == 1:
    return rest[0]
  raise ConfigError(
      'network.observation_key=auto cannot choose among the observations '
      f'{sorted(observation_spec)}; set --config.network.observation_key.')


def derive_from_spec(config, env_spec) -> ml_collections.ConfigDict:
  """``config`` with what follows from the env spec filled in (a copy):
  ``network.observation_key='auto'`` becomes the observation to read. Pure;
  idempotent."""
  network = config.get('network')
  if network is None or network.get('observation_key') != 'auto':
    return config
  config = ml_collections.ConfigDict(config.to_dict())
  config.network.observation_key = choose_observation_key(
      env_spec.observation)
  return config


