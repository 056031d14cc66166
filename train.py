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

_DEFAULT_ALGO = 'impala'


def _config_files() -> list:
  """The algorithms with a config file, ``configs/<algo>.py``."""
  return sorted(f[:-3] for f in os.listdir(os.path.join(_HERE, 'configs'))
                if f.endswith('.py') and not f.startswith('_') and
                f != 'common.py')


def _peek_flag(argv, name: str):
  """The value of ``--name=value`` / ``--name value`` in ``argv`` (last wins),
  read before absl parses flags: which config file to load depends on it."""
  value = None
  for i, arg in enumerate(argv[1:], 1):
    if arg == '--':
      break
    for dashes in ('--', '-'):
      if arg.startswith(f'{dashes}{name}='):
        value = arg.split('=', 1)[1]
      elif arg == f'{dashes}{name}' and i + 1 < len(argv):
        value = argv[i + 1]
  return value


def _config_spec(argv) -> str:
  """``--config``'s value (rewritten in ``argv`` where it is given without a
  preset and ``--env`` names the env): ``configs/<algo>.py:<env>@<runtime>`` for
  ``--algo``/``--env``/``--runtime`` (the env's own defaults, or its preset
  for that runtime where one is reported), or the explicit ``--config``."""
  explicit = _peek_flag(argv, 'config')
  algo = _peek_flag(argv, 'algo')
  env = _peek_flag(argv, 'env')
  runtime = _peek_flag(argv, 'runtime') or 'distributed'
  if explicit:
    path, _, arg = explicit.partition(':')
    if not arg and env:  # a config file without preset: the env's defaults
      spec = f'{path}:{env}@{runtime}'
      for i, a in enumerate(argv):  # ml_collections reads --config from argv
        if a in ('--config', '-config') and i + 1 < len(argv):
          argv[i + 1] = spec
        elif a.startswith(('--config=', '-config=')):
          argv[i] = f'--config={spec}'
      return spec
    return explicit
  algo = algo or _DEFAULT_ALGO
  path = os.path.join(_HERE, 'configs', f'{algo}.py')
  if not os.path.exists(path):
    _exit_with(f'Unknown algorithm {algo!r} (--algo): there is no '
               f'configs/{algo}.py. Valid algorithms: '
               f'{", ".join(_config_files())}.')
  return f'{path}:{env}@{runtime}' if env else path


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
            'the algorithm\'s config file, configs/<algo>.py (--algo, default '
            'impala); python train.py --algo=<algo> --helpfull lists them.')
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
      'config', _config_spec(sys.argv),
      'Config file and its argument: a preset (configs/impala.py:overcooked) '
      'or an environment (configs/qmix.py:pettingzoo/simple_spread). Without '
      'it: configs/<--algo>.py for --env.',
      lock_config=True)
except (AttributeError, KeyError, TypeError, ValueError, flags.Error) as e:
  _exit_with(_flag_error(e))
_ENV = flags.DEFINE_string('env', None, 'Environment, e.g. overcooked/cramped_room.')
_ALGO = flags.DEFINE_string(
    'algo', None, f'Algorithm: {", ".join(_config_files())} (default '
    f'{_DEFAULT_ALGO}).')
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


def _build_config():
  try:
    config = _CONFIG.value.copy_and_resolve_references()
  except OSError as e:  # ml_collections defers a missing file to first use.
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    raise UsageError(f'--config: {lines[-1]}') from e
  config.unlock()
  if _ENV.value and _ENV.value != config.env:
    # An explicit preset and --env: the preset's keys, another env of the same
    # family (another family would need its own kwargs and network).
    if _ENV.value.split('/')[0] != config.env.split('/')[0]:
      raise UsageError(
          f'--env={_ENV.value} is of another family than the --config preset '
          f'{config.preset!r} ({config.env}); drop the preset '
          f'(--config=configs/{config.algo}.py) to get {_ENV.value}\'s defaults.')
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
    if os.path.exists(exp_dir) and not os.path.isdir(exp_dir):
      raise UsageError(f'--exp_dir={exp_dir} is a file, not a directory; '
                       'choose another --exp_dir.')
    if os.path.isdir(os.path.join(exp_dir, 'checkpoints')) and os.listdir(
        os.path.join(exp_dir, 'checkpoints')):
      raise UsageError(f'{exp_dir} already holds a run with checkpoints: pass '
                       '--resume to continue it, or choose another --exp_dir.')
  config.exp_dir = exp_dir
  config_lib.validate(config)

  # The config made concrete against its env and checked against the runtime.
  from marl_jax.runtime import build  # pylint: disable=g-import-not-at-top
  anakin_runtime = _RUNTIME.value == 'anakin'
  if _RESUME.value:
    _check_resume_runtime(exp_dir, _RUNTIME.value)
  config = build.prepare(config, _RUNTIME.value).config

  try:
    os.makedirs(exp_dir, exist_ok=True)
    _write_config(config, exp_dir)
  except OSError as e:  # e.g. a file where a directory of the path should be
    raise UsageError(f'--exp_dir={exp_dir}: cannot write the run directory: '
                     f'{e.strerror or e}.') from e
  print(f'train.py: {config.algo} on {config.env}, population '
        f'{config.population_size}, {config.num_steps:,} env steps, '
        f'{"runtime anakin" if anakin_runtime else "launcher " + config.launcher}'
        f'; run dir {exp_dir}', flush=True)

  if _RAY_ADDRESS.value and config.launcher != 'ray':
    raise UsageError('--ray_address needs --launcher=ray.')
  if anakin_runtime:
    from marl_jax.runtime import anakin  # pylint: disable=g-import-not-at-top
    result = anakin.run(config, exp_dir, resume=_RESUME.value)
  else:
    from marl_jax.runtime import launchers  # pylint: disable=g-import-not-at-top
    from marl_jax.runtime.program import ProgramError  # pylint: disable=g-import-not-at-top
    try:
      result = launchers.run(config, exp_dir, resume=_RESUME.value,
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
