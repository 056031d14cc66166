r"""Trains a population of agents.

  python train.py                                   # IMPALA, Overcooked cramped_room
  python train.py --config=configs/impala.py:toy --num_steps=20000
  python train.py --env=overcooked/coordination_ring --population_size=4 \
      --config.matchmaking=random --exp_dir=runs/ring
  python train.py --exp_dir=runs/ring --resume --num_steps=3000000
  python train.py --runtime=anakin --env=jaxmarl/overcooked_cramped_room --algo=ippo
  python train.py --runtime=anakin --env=jaxmarl/smax_3m --algo=qmix

Everything of a run (config copy, CSV and TensorBoard logs, checkpoints,
videos) lives in --exp_dir.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_HERE = os.path.dirname(os.path.abspath(__file__))

_DEFAULT_CONFIG = os.path.join(_HERE, 'configs', 'impala.py')


def _flag_error(e: BaseException) -> str:
  """One line for a bad flag or --config override (see parse_flags)."""
  if isinstance(e, (AttributeError, KeyError)):
    # ml_collections: --config.<key> that does not exist; its message names
    # the key and suggests a close one.
    text = str(e)
    while len(text) > 1 and text[0] == text[-1] and text[0] in '"\'':
      text = text[1:-1]
    text = text.replace('\\n', ' ').replace('\n', ' ').replace("\\'", "'")
    return (f'unknown config key in --config overrides: {text}. Keys belong to '
            'the --config file (default configs/impala.py:overcooked); for '
            "another algorithm's keys pass --config=configs/<algo>.py:<preset>.")
  message = str(e)
  if 'Traceback' in message:  # A config file's own error: keep its last line.
    lines = [l for l in message.splitlines() if l.strip()]
    message = f'{lines[0].split(":")[0]}: {lines[-1]}'
  return message


def _exit_with(message: str) -> None:
  print(f'train.py: error: {message}', file=sys.stderr, flush=True)
  print('Try --helpfull for the list of flags.', file=sys.stderr, flush=True)
  sys.exit(2)


try:
  # ml_collections applies --config.<key> overrides to the default config
  # while defining the flag, so a bad key surfaces here.
  _CONFIG = config_flags.DEFINE_config_file(
      'config', _DEFAULT_CONFIG,
      'Config file and preset, e.g. configs/impala.py:overcooked. Without it: '
      'configs/<algo>.py with the preset of the --env family.',
      lock_config=True)
except (AttributeError, KeyError, TypeError, ValueError, flags.Error) as e:
  _exit_with(_flag_error(e))
_ENV = flags.DEFINE_string('env', None, 'Environment, e.g. overcooked/cramped_room.')
_ALGO = flags.DEFINE_string(
    'algo', None, 'Algorithm: impala, opre, mappo, ippo, qmix, vdn.')
_POPULATION_SIZE = flags.DEFINE_integer('population_size', None,
                                        'Number of population members.')
_NUM_STEPS = flags.DEFINE_integer('num_steps', None, 'Total environment steps.')
_LAUNCHER = flags.DEFINE_string(
    'launcher', None, 'local (a process per node, the default), ray (Ray '
    'actors; see --ray_address) or single (one process, exactly reproducible).')
_RAY_ADDRESS = flags.DEFINE_string(
    'ray_address', None, 'With --launcher=ray: the cluster to join ("auto" for '
    'the one started by `ray start` on this machine); unset starts a local Ray '
    'instance for the run.')
_NUM_ACTORS = flags.DEFINE_integer('num_actors', None, 'Actor (env-loop) nodes.')
_SEED = flags.DEFINE_integer('seed', None, 'Random seed.')
_EXP_DIR = flags.DEFINE_string('exp_dir', None,
                               'Run directory (default: runs/<env>_<algo>_<time>).')
_RUNTIME = flags.DEFINE_enum(
    'runtime', 'distributed', ['distributed', 'anakin'],
    'distributed (actors, replay and learner; any environment) or anakin '
    '(rollout and update in one jitted program; JAX-native environments: '
    'jax/..., jaxmarl/...).')
_RESUME = flags.DEFINE_bool('resume', False,
                            'Continue from the latest checkpoint in --exp_dir.')
_RECORD_VIDEO = flags.DEFINE_bool('record_video', None,
                                  'Record evaluation episodes into exp_dir/videos.')

# Flags that map one-to-one onto top-level config keys.
_OVERRIDES = {
    'env': _ENV, 'algo': _ALGO, 'population_size': _POPULATION_SIZE,
    'num_steps': _NUM_STEPS, 'launcher': _LAUNCHER, 'num_actors': _NUM_ACTORS,
    'seed': _SEED, 'record_video': _RECORD_VIDEO,
}
# What may change when resuming a run.
_RESUMABLE = ('num_steps', 'record_video')


class UsageError(Exception):
  """A user mistake, reported in one line."""


def _default_config(algo: str, env: str | None):
  """configs/<algo>.py with the preset that matches the env family."""
  from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
  if algo not in algorithms.ALGORITHMS:
    raise UsageError(f'Unknown algorithm {algo!r} (--algo). Valid algorithms: '
                     f'{", ".join(algorithms.ALGORITHMS)}.')
  path = os.path.join(_HERE, 'configs', f'{algo}.py')
  family = (env or 'overcooked/').split('/')[0]
  preset = {'overcooked': 'overcooked', 'toy': 'toy',
            'pettingzoo': 'mpe'}.get(family, 'overcooked')
  spec = importlib.util.spec_from_file_location(f'{algo}_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if env and hasattr(module, 'preset_for_env'):
    preset = module.preset_for_env(env)
  return module.get_config(preset)


def _build_config():
  explicit = flags.FLAGS['config'].present
  try:
    config = _CONFIG.value.copy_and_resolve_references()
  except OSError as e:  # ml_collections defers a missing file to first use.
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    raise UsageError(f'--config: {lines[-1]}') from e
  if not explicit and (_ALGO.value not in (None, config.algo) or (
      _ENV.value and _ENV.value.split('/')[0] != config.env.split('/')[0])):
    # The default config is IMPALA on Overcooked; another algorithm or env
    # family takes its own config file and preset.
    if any(a.startswith('--config.') for a in sys.argv[1:]):
      raise UsageError(
          '--config.<key> overrides need --config=configs/<algo>.py:<preset> '
          'when --algo or --env selects another config than the default.')
    config = _default_config(_ALGO.value or config.algo, _ENV.value)
  config.unlock()
  for key, flag in _OVERRIDES.items():
    if flag.value is not None:
      if key not in config:
        raise UsageError(f'--{key} does not apply to this config.')
      config[key] = flag.value
  if _ALGO.value is not None and config.algo != _ALGO.value:
    raise UsageError(f'--algo={_ALGO.value} contradicts --config, which is for '
                     f'{config.algo!r}.')
  return config


def _resume_config(exp_dir: str):
  """The config saved in ``exp_dir``, with the flags that may change applied."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  path = os.path.join(exp_dir, 'config.json')
  if not os.path.exists(path):
    raise UsageError(f'--resume: {path} does not exist; is --exp_dir a run '
                     'directory written by train.py?')
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError) as e:
    raise UsageError(f'--resume: cannot read {path}: {e}') from e
  config = ml_collections.ConfigDict(saved)
  for key, flag in _OVERRIDES.items():
    if flag.value is None:
      continue
    if key in _RESUMABLE:
      config[key] = flag.value
    elif config.get(key) != flag.value:
      raise UsageError(
          f'--{key}={flag.value} differs from the resumed run ({config.get(key)!r});'
          f' only {", ".join("--" + k for k in _RESUMABLE)} may change on resume.')
  return config


def _check_resume_runtime(exp_dir: str, runtime: str) -> None:
  """--resume continues a run in the runtime that wrote its checkpoints."""
  from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
  directory = os.path.join(exp_dir, 'checkpoints')
  missing = UsageError(f'--resume: no checkpoint found in {directory}; '
                       'nothing to continue from.')
  if not os.path.isdir(directory):
    raise missing
  ckpt = checkpointing.Checkpointer(directory, max_to_keep=None, read_only=True)
  try:
    if ckpt.latest_step() is None:
      raise missing
    saved = ckpt.read_metadata().get('runtime', 'distributed')
  finally:
    ckpt.close()
  if saved != runtime:
    raise UsageError(f'--resume: {exp_dir} was trained with --runtime={saved}; '
                     f'resume it with --runtime={saved}, not {runtime}.')


def _write_config(config, exp_dir: str) -> None:
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
  path = os.path.join(exp_dir, 'config.json')
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    f.write(config_lib.to_json(config))
  os.replace(tmp, path)


def _main(argv):
  if len(argv) > 1:
    raise UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top

  if _RESUME.value:
    if not _EXP_DIR.value:
      raise UsageError('--resume needs --exp_dir, the run to continue.')
    exp_dir = _EXP_DIR.value
    config = _resume_config(exp_dir)
  else:
    config = _build_config()
    exp_dir = _EXP_DIR.value or config.get('exp_dir') or os.path.join(
        'runs', '{}_{}_{}'.format(
            config.env.replace('/', '_'), config.algo,
            datetime.datetime.now().strftime('%Y%m%d-%H%M%S')))
    if os.path.isdir(os.path.join(exp_dir, 'checkpoints')) and os.listdir(
        os.path.join(exp_dir, 'checkpoints')):
      raise UsageError(f'{exp_dir} already holds a run with checkpoints: pass '
                       '--resume to continue it, or choose another --exp_dir.')
  config.exp_dir = exp_dir
  config_lib.validate(config)

  # Checks that need the environment and algorithm registries.
  from marl_jax import algorithms, envs  # pylint: disable=g-import-not-at-top
  if config.algo not in algorithms.ALGORITHMS:
    raise algorithms.UnknownAlgorithmError(
        f'Unknown algorithm {config.algo!r}. Valid algorithms: '
        f'{", ".join(algorithms.ALGORITHMS)}.')
  anakin_runtime = _RUNTIME.value == 'anakin'
  if _RESUME.value:
    _check_resume_runtime(exp_dir, _RUNTIME.value)
  if anakin_runtime:
    if config.env not in envs.list_jax_envs():
      raise UsageError(f'--runtime=anakin needs a JAX-native environment, and '
                       f'{config.env!r} is not one; JAX environments: '
                       f'{", ".join(envs.list_jax_envs())}.')
  try:
    if anakin_runtime:
      from marl_jax.runtime import anakin  # pylint: disable=g-import-not-at-top
      env = anakin.make_env(config)
    else:
      env = config_lib.make_env(config)
  except envs.UnknownEnvironmentError:
    raise
  except (TypeError, ValueError) as e:
    raise UsageError(f'cannot build environment {config.env!r} with '
                     f'env_kwargs={config_lib.env_kwargs(config)}: {e}') from e
  try:  # Config values the algorithm rejects, before anything is written.
    algorithm = algorithms.make(config.algo, env.spec(), config)
  except (TypeError, ValueError, AttributeError, KeyError) as e:
    raise UsageError(f'{config.algo} config: {e}') from e
  finally:
    if not anakin_runtime:
      env.close()
  if (not anakin_runtime and
      config.get('joint_rollout', 'episodes') != 'episodes'):
    raise UsageError(f'joint_rollout={config.joint_rollout!r} is an anakin '
                     'option: the distributed actors store whole episodes; '
                     'use --runtime=anakin or joint_rollout=episodes.')
  if (algorithm.replay_table.joint and not anakin_runtime and
      config.launcher == 'single'):
    raise UsageError(f'{config.algo} learns from joint episodes, which the '
                     'single launcher does not collect: use --launcher=local '
                     'or ray, or --runtime=anakin.')

  os.makedirs(exp_dir, exist_ok=True)
  _write_config(config, exp_dir)
  print(f'train.py: {config.algo} on {config.env}, population '
        f'{config.population_size}, {config.num_steps:,} env steps, '
        f'{"runtime anakin" if anakin_runtime else "launcher " + config.launcher}'
        f'; run dir {exp_dir}', flush=True)

  if _RAY_ADDRESS.value and config.launcher != 'ray':
    raise UsageError('--ray_address needs --launcher=ray.')
  if anakin_runtime:
    result = anakin.run(config, exp_dir, resume=_RESUME.value)
  else:
    from marl_jax.runtime import program  # pylint: disable=g-import-not-at-top
    from marl_jax.runtime.local import ProgramError  # pylint: disable=g-import-not-at-top
    try:
      result = program.run(config, exp_dir, resume=_RESUME.value,
                           ray_address=_RAY_ADDRESS.value)
    except ProgramError as e:
      print(f'train.py: error: {e}', file=sys.stderr, flush=True)
      sys.exit(1)
  if config.record_video:
    from marl_jax.evaluation import videos  # pylint: disable=g-import-not-at-top
    paths = videos.record_population(config, exp_dir)
    for p in paths:
      print(f'train.py: video {p}', flush=True)
  state = 'interrupted' if result.interrupted else 'done'
  print(f'train.py: {state} after {result.env_steps:,} env steps and '
        f'{result.learner_steps:,} updates; checkpoint in '
        f'{os.path.join(exp_dir, "checkpoints")}', flush=True)


def main(argv):
  # User mistakes become one clear line and exit status 2, never a traceback.
  from marl_jax import algorithms, envs  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
  user_errors = (UsageError, config_lib.ConfigError,
                 envs.UnknownEnvironmentError,
                 algorithms.UnknownAlgorithmError,
                 checkpointing.CheckpointError)
  try:
    _main(argv)
  except user_errors as e:
    print(f'train.py: error: {e}', file=sys.stderr, flush=True)
    sys.exit(2)


def parse_flags(argv):
  """absl's flag parsing, with bad flags and config overrides as one line."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    _exit_with(_flag_error(e))


if __name__ == '__main__':
  logging.set_verbosity(logging.WARNING)
  app.run(main, flags_parser=parse_flags)
