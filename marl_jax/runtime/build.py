"""A run's config made concrete against its environment, and checked against
the runtime that will run it, before anything is written or started.

``prepare(config, runtime)`` is what ``train.py`` (and the algorithm x env x
runtime matrix) calls: it builds the environment the runtime would build,
adds what the algorithm needs that the env lacks (a ``global_state``
wrapper), resolves what the config leaves to the env spec (the network's
observation), builds the algorithm, and refuses a combination the runtime
cannot run with one line that says why (``UnsupportedError``).
"""

from __future__ import annotations

from typing import NamedTuple

from marl_jax import algorithms
from marl_jax import envs
from marl_jax.utils import config as config_lib

RUNTIMES = ('distributed', 'anakin')


class UnsupportedError(config_lib.ConfigError):
  """An algorithm x environment x runtime combination that cannot run; the
  message says why."""


class Prepared(NamedTuple):
  config: object  # ml_collections.ConfigDict, resolved
  env_spec: object  # types.EnvSpec
  algorithm: algorithms.Algorithm


def _make_env(config, runtime: str):
  """The env the runtime builds: functional under anakin, host-side else."""
  if runtime == 'anakin':
    from marl_jax.runtime import anakin  # pylint: disable=g-import-not-at-top
    return anakin.make_env(config)
  return algorithms.make_env(config)


def check_population(config, runtime: str, joint: bool = False) -> None:
  """Refuses, in one line, a population option the runtime would ignore.

  Anakin's members play only themselves (no matchmaking yet); FSP, PSRO and
  PBT run under ``--launcher=single`` only; whole-episode tables (QMIX, VDN:
  ``joint``) learn from episodes that one member plays in every seat.
  """
  matchmaking = config.get('matchmaking', 'self_play')
  pbt = bool(config.get('pbt_every_updates', 0))
  if config.get('partners', ''):
    if joint:
      raise UnsupportedError(
          f'{config.algo} learns from whole episodes that one member plays in '
          'every seat, so fixed partners cannot feed it; use a learner of '
          'sequences (impala, opre, mappo, ippo).')
    if matchmaking != 'self_play' or pbt:
      raise UnsupportedError(
          'partners take the seats matchmaking would fill: use '
          'matchmaking=self_play (and no PBT) with them.')
  if runtime == 'anakin':
    if matchmaking != 'self_play' or pbt:
      option = (f'matchmaking={matchmaking!r}' if matchmaking != 'self_play'
                else 'pbt_every_updates')
      raise UnsupportedError(
          f'--runtime=anakin has no matchmaking or PBT yet (each member plays '
          f'only itself), so {option} would be ignored; use '
          '--runtime=distributed (--launcher=single for fsp, psro and PBT).')
    return
  launcher = config.get('launcher', 'single')
  if launcher != 'single' and (matchmaking in ('fsp', 'psro') or pbt):
    option = (f'matchmaking={matchmaking}' if matchmaking in ('fsp', 'psro')
              else 'pbt_every_updates')
    raise UnsupportedError(
        f'{option} runs under --launcher=single only for now (got launcher '
        f'{launcher!r}).')
  if joint and matchmaking != 'self_play':
    raise UnsupportedError(
        f'{config.algo} learns from whole episodes that one member plays in '
        f'every seat, so matchmaking={matchmaking!r} cannot feed it; use '
        'matchmaking=self_play.')


def prepare(config, runtime: str = 'distributed') -> Prepared:
  """``config`` resolved against its env for ``runtime`` (a copy).

  Raises:
    UnsupportedError: the runtime cannot run this algorithm on this env.
    envs.UnknownEnvironmentError: ``config.env`` is not registered.
    config_lib.ConfigError: the env or the algorithm rejects a config value
      (the message names it).
  """
  if runtime not in RUNTIMES:
    raise config_lib.ConfigError(f'Unknown runtime {runtime!r}; valid: '
                                 f'{", ".join(RUNTIMES)}.')
  if config.algo not in algorithms.ALGORITHMS:
    raise algorithms.UnknownAlgorithmError(
        f'Unknown algorithm {config.algo!r}. Valid algorithms: '
        f'{", ".join(algorithms.ALGORITHMS)}.')
  if runtime == 'anakin' and config.env not in envs.list_jax_envs():
    if config.env not in envs.list_envs():
      envs.make(config.env)  # raises UnknownEnvironmentError, naming near ones
    raise UnsupportedError(
        f'--runtime=anakin needs a JAX-native environment, and {config.env!r} '
        'is not one (JAX environments: jax/..., jaxmarl/...); use '
        '--runtime=distributed.')
  try:
    env = _make_env(config, runtime)
  except envs.UnknownEnvironmentError:
    raise
  except (TypeError, ValueError) as e:
    raise config_lib.ConfigError(
        f'cannot build environment {config.env!r} with '
        f'env_kwargs={config_lib.env_kwargs(config)}: {e}') from e
  try:
    spec = env.spec()
  finally:
    if runtime != 'anakin':
      env.close()
  if getattr(spec, 'zero_sum', False) and algorithms.learns_team_reward(
      config.algo):
    others = [n for n in algorithms.names()
              if not algorithms.learns_team_reward(n)]
    raise UnsupportedError(
        f'{config.algo} learns from the team\'s summed reward, which is 0 in '
        f'every step of the zero-sum game {config.env}; use '
        f'{", ".join(others)}.')
  # What the env spec decides: a GLOBAL where the algorithm needs one (the
  # host env above already has the wrapper; the JAX envs all have GLOBAL).
  config = algorithms.with_global_state(config, spec.observation)
  global_key = algorithms.global_state_key(config)
  if global_key and global_key not in spec.observation:
    if runtime == 'anakin':
      raise UnsupportedError(
          f'{config.algo} reads {global_key!r}, which {config.env} does not '
          'provide under --runtime=anakin.')
  config = config_lib.derive_from_spec(config, spec)
  try:
    algorithm = algorithms.make(config.algo, spec, config)
  except (TypeError, ValueError, AttributeError, KeyError) as e:
    raise config_lib.ConfigError(f'{config.algo} config: {e}') from e
  if algorithms.is_offline(config.algo):
    return _prepare_offline(config, runtime, spec, algorithm)
  table = algorithm.replay_table
  check_population(config, runtime, joint=table.joint)
  if config.get('partners', ''):  # Every partner loads, before anything runs.
    from marl_jax.runtime import partners  # pylint: disable=g-import-not-at-top
    partners.load_pool(config.partners, config.env)
  if runtime == 'distributed' and table.item == 'chunk':
    raise UnsupportedError(
        f'{config.algo} with joint_rollout={config.joint_rollout!r} learns '
        'from chunks that run on through episode ends, an anakin layout: the '
        'distributed actors write whole episodes; use --runtime=anakin or '
        '--config.joint_rollout=episodes.')
  return Prepared(config, spec, algorithm)


def _prepare_offline(config, runtime: str, spec, algorithm) -> Prepared:
  """An offline learner (behaviour cloning) trains on its dataset
  (``runtime/offline.py``), whatever the launcher; it has no actors, so
  anakin's on-device rollouts and population matchmaking do not apply."""
  from marl_jax.runtime import offline  # pylint: disable=g-import-not-at-top
  if runtime == 'anakin':
    raise UnsupportedError(
        f'{config.algo} learns offline from a dataset, without acting: it has '
        'no anakin runtime; leave out --runtime=anakin.')
  if config.matchmaking != 'self_play' or config.pbt_every_updates:
    raise UnsupportedError(
        f'{config.algo} learns offline from a dataset: population methods '
        '(matchmaking, PBT) do not apply; its members are independent clones.')
  try:
    offline.check_dataset(config)
  except offline.DatasetError as e:
    raise UnsupportedError(str(e)) from None
  return Prepared(config, spec, algorithm)
