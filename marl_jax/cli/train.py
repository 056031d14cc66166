r"""Trains a population of agents (``train.py``, ``marl-jax-train``).

  python train.py                                   # IMPALA, Overcooked cramped_room
  python train.py --config=configs/impala.py:toy --num_steps=20000
  python train.py --env=overcooked/coordination_ring --population_size=4 \
      --config.matchmaking=random --exp_dir=runs/ring
  python train.py --exp_dir=runs/ring --resume --num_steps=3000000
  python train.py --runtime=anakin --env=jaxmarl/overcooked_cramped_room --algo=ippo
  python train.py --runtime=anakin --env=jaxmarl/smax_3m --algo=qmix

``marl-jax-train`` (the console script of ``pip install marl_jax``) takes the
same flags from any directory. Everything of a run (config copy, CSV and
TensorBoard logs, checkpoints, videos) lives in --exp_dir.

The config files are the ``configs`` package (``configs/<algo>.py``): the
repository's top-level ``configs/`` in a clone, the same files installed
beside ``marl_jax`` by pip. ``--config=configs/<algo>.py:...`` names them
relative to the working directory, or, where there is no such file there, in
that package.
"""

from __future__ import annotations

import datetime
import functools
import importlib
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from marl_jax import cli

# The flags defined here belong to the program that calls main() (train.py
# or the console script): its --help lists them, as absl does for flags
# defined in __main__.
flags.disclaim_key_flags()

_DEFAULT_ALGO = 'impala'
_CONFIGS = 'configs'


def _prog() -> str:
  return cli.program_name('train.py')


def _command() -> str:
  """How to run the program again: ``python train.py`` or ``marl-jax-train``."""
  prog = _prog()
  return f'python {prog}' if prog.endswith('.py') else prog


def configs_dir() -> str:
  """The directory of the config files, the ``configs`` package."""
  try:
    package = importlib.import_module(_CONFIGS)
  except ImportError as e:
    _exit_with(f'cannot import the config files, the {_CONFIGS!r} package '
               f'({e}); reinstall marl_jax.')
  directory = os.path.dirname(os.path.abspath(package.__file__ or ''))
  if not os.path.exists(os.path.join(directory, 'common.py')):
    _exit_with(f'the {_CONFIGS!r} package found first on sys.path, '
               f'{directory}, is not marl_jax\'s (it has no common.py); run '
               'from another directory.')
  return directory


def _config_files() -> list:
  """The algorithms with a config file, ``configs/<algo>.py``."""
  return sorted(f[:-3] for f in os.listdir(configs_dir())
                if f.endswith('.py') and not f.startswith('_') and
                f != 'common.py')


def _config_path(path: str) -> str:
  """``path`` of a config file; ``configs/<file>`` that does not exist
  relative to the working directory is the config package's file."""
  parts = os.path.normpath(path).split(os.sep)
  if os.path.exists(path) or len(parts) < 2 or parts[0] != _CONFIGS:
    return path
  installed = os.path.join(configs_dir(), *parts[1:])
  return installed if os.path.exists(installed) else path


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
  preset and ``--env`` names the env, or names a file of the config package
  from another directory): ``configs/<algo>.py:<env>@<runtime>`` for
  ``--algo``/``--env``/``--runtime`` (the env's own defaults, or its preset
  for that runtime where one is reported), or the explicit ``--config``."""
  explicit = _peek_flag(argv, 'config')
  algo = _peek_flag(argv, 'algo')
  env = _peek_flag(argv, 'env')
  runtime = _peek_flag(argv, 'runtime') or 'distributed'
  if explicit:
    path, _, arg = explicit.partition(':')
    path = _config_path(path)
    if arg:
      spec = f'{path}:{arg}'
    elif env:  # a config file without preset: the env's defaults
      spec = f'{path}:{env}@{runtime}'
    else:
      spec = path
    if spec != explicit:
      for i, a in enumerate(argv):  # ml_collections reads --config from argv
        if a in ('--config', '-config') and i + 1 < len(argv):
          argv[i + 1] = spec
        elif a.startswith(('--config=', '-config=')):
          argv[i] = f'--config={spec}'
    return spec
  algo = algo or _DEFAULT_ALGO
  path = os.path.join(configs_dir(), f'{algo}.py')
  if not os.path.exists(path):
    _exit_with(f'Unknown algorithm {algo!r} (--algo): there is no '
               f'configs/{algo}.py. Valid algorithms: '
               f'{", ".join(_config_files())}.')
  return f'{path}:{env}@{runtime}' if env else path


def _flag_error(e: BaseException) -> str:
  """One line for a bad flag or --config override (see _parse_flags)."""
  if isinstance(e, (AttributeError, KeyError)):
    # ml_collections: --config.<key> that does not exist; its message names
    # the key and suggests a close one.
    text = str(e)
    while len(text) > 1 and text[0] == text[-1] and text[0] in '"\'':
      text = text[1:-1]
    text = text.replace('\\n', ' ').replace('\n', ' ').replace("\\'", "'")
    return (f'unknown config key in --config overrides: {text}. Keys belong to '
            'the algorithm\'s config file, configs/<algo>.py (--algo, default '
            f'impala); {_command()} --algo=<algo> --helpfull lists them.')
  message = str(e)
  if 'Traceback' in message:  # A config file's own error: keep its last line.
    lines = [l for l in message.splitlines() if l.strip()]
    message = f'{lines[0].split(":")[0]}: {lines[-1]}'
  return message


def _exit_with(message: str) -> None:
  print(f'{_prog()}: error: {message}', file=sys.stderr, flush=True)
  print('Try --helpfull for the list of flags.', file=sys.stderr, flush=True)
  sys.exit(2)


class _Flags:
  """The flags, defined in absl's global ``FLAGS`` by ``main`` (once)."""

  def __init__(self, argv):
    try:
      # ml_collections applies --config.<key> overrides to the default config
      # while defining the flag, so a bad key surfaces here.
      self.config = config_flags.DEFINE_config_file(
          'config', _config_spec(argv),
          'Config file and its argument: a preset '
          '(configs/impala.py:overcooked) or an environment '
          '(configs/qmix.py:pettingzoo/simple_spread). Without it: '
          'configs/<--algo>.py for --env.',
          lock_config=True)
    except (AttributeError, KeyError, TypeError, ValueError, flags.Error) as e:
      _exit_with(_flag_error(e))
    self.env = flags.DEFINE_string(
        'env', None, 'Environment, e.g. overcooked/cramped_room.')
    self.algo = flags.DEFINE_string(
        'algo', None, f'Algorithm: {", ".join(_config_files())} (default '
        f'{_DEFAULT_ALGO}).')
    self.population_size = flags.DEFINE_integer(
        'population_size', None, 'Number of population members.')
    self.num_steps = flags.DEFINE_integer('num_steps', None,
                                          'Total environment steps.')
    self.launcher = flags.DEFINE_string(
        'launcher', None, 'local (a process per node, the default), ray (Ray '
        'actors; see --ray_address) or single (one process, exactly '
        'reproducible).')
    self.ray_address = flags.DEFINE_string(
        'ray_address', None, 'With --launcher=ray: the cluster to join ("auto" '
        'for the one started by `ray start` on this machine); unset starts a '
        'local Ray instance for the run.')
    self.num_actors = flags.DEFINE_integer('num_actors', None,
                                           'Actor (env-loop) nodes.')
    self.seed = flags.DEFINE_integer('seed', None, 'Random seed.')
    self.exp_dir = flags.DEFINE_string(
        'exp_dir', None, 'Run directory (default: runs/<env>_<algo>_<time>).')
    self.runtime = flags.DEFINE_enum(
        'runtime', 'distributed', ['distributed', 'anakin'],
        'distributed (actors, replay and learner; any environment) or anakin '
        '(rollout and update in one jitted program; JAX-native environments: '
        'jax/..., jaxmarl/...).')
    self.resume = flags.DEFINE_bool(
        'resume', False, 'Continue from the latest checkpoint in --exp_dir.')
    self.record_video = flags.DEFINE_bool(
        'record_video', None, 'Record evaluation episodes into exp_dir/videos.')
    self.config_help = flags.DEFINE_bool(
        'config_help', False, 'Print every --config.<key> of the config the '
        'other flags select (--algo, --env, --runtime, --config), with its '
        'default, type and meaning, and exit.')
    # Flags that map one-to-one onto top-level config keys.
    self.overrides = {
        'env': self.env, 'algo': self.algo,
        'population_size': self.population_size,
        'num_steps': self.num_steps, 'launcher': self.launcher,
        'num_actors': self.num_actors, 'seed': self.seed,
        'record_video': self.record_video,
    }


# What may change when resuming a run.
_RESUMABLE = ('num_steps', 'record_video')


class UsageError(Exception):
  """A user mistake, reported in one line."""


def _build_config(f: _Flags):
  try:
    config = f.config.value.copy_and_resolve_references()
  except OSError as e:  # ml_collections defers a missing file to first use.
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    raise UsageError(f'--config: {lines[-1]}') from e
  config.unlock()
  if f.env.value and f.env.value != config.env:
    # An explicit preset and --env: the preset's keys, another env of the same
    # family (another family would need its own kwargs and network).
    if f.env.value.split('/')[0] != config.env.split('/')[0]:
      raise UsageError(
          f'--env={f.env.value} is of another family than the --config preset '
          f'{config.preset!r} ({config.env}); drop the preset '
          f'(--config=configs/{config.algo}.py) to get {f.env.value}\'s '
          'defaults.')
  for key, flag in f.overrides.items():
    if flag.value is not None:
      if key not in config:
        raise UsageError(f'--{key} does not apply to this config.')
      config[key] = flag.value
  if f.algo.value is not None and config.algo != f.algo.value:
    raise UsageError(f'--algo={f.algo.value} contradicts --config, which is '
                     f'for {config.algo!r}.')
  return config


def _resume_config(f: _Flags, exp_dir: str):
  """The config saved in ``exp_dir``, with the flags that may change applied."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  path = os.path.join(exp_dir, 'config.json')
  if not os.path.exists(path):
    raise UsageError(f'--resume: {path} does not exist; is --exp_dir a run '
                     'directory written by train.py?')
  try:
    with open(path) as fh:
      saved = json.load(fh)
  except (OSError, ValueError) as e:
    raise UsageError(f'--resume: cannot read {path}: {e}') from e
  config = ml_collections.ConfigDict(saved)
  for key, flag in f.overrides.items():
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


def _resolve_partners(config, prog: str) -> str:
  """``config.partners`` with each ``human_proxy[:split]`` replaced by the
  clone's run directory (cloned first if needed), so config.json names
  what the run really played with."""
  # pylint: disable=g-import-not-at-top
  from marl_jax.cli import human_proxies
  from marl_jax.evaluation import human_proxy
  # pylint: enable=g-import-not-at-top
  out = []
  for item in [s.strip() for s in config.partners.split(',') if s.strip()]:
    split = human_proxy.parse(item)
    if split is None:
      out.append(item)
      continue
    try:
      proxy = human_proxy.layout_of(config, 'this run',
                                    use='partners=human_proxy', trained=False)
    except ValueError as e:
      raise UsageError(str(e)) from None
    out.append(human_proxies.ensure(proxy, split, prog))
  return ','.join(out)


def _write_config(config, exp_dir: str) -> None:
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
  path = os.path.join(exp_dir, 'config.json')
  tmp = path + '.tmp'
  with open(tmp, 'w') as fh:
    fh.write(config_lib.to_json(config))
  os.replace(tmp, path)


def _main(f: _Flags, argv):
  if len(argv) > 1:
    raise UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
  prog = _prog()

  if f.resume.value:
    if not f.exp_dir.value:
      raise UsageError('--resume needs --exp_dir, the run to continue.')
    exp_dir = f.exp_dir.value
    config = _resume_config(f, exp_dir)
  else:
    config = _build_config(f)
  if f.config_help.value:  # Nothing is written or run.
    from marl_jax.utils import config_help  # pylint: disable=g-import-not-at-top
    print(config_help.format_help(config))
    return
  if not f.resume.value:
    exp_dir = f.exp_dir.value or config.get('exp_dir') or os.path.join(
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
  if config.get('partners', '') and not f.resume.value:
    config.partners = _resolve_partners(config, prog)

  # The config made concrete against its env and checked against the runtime.
  from marl_jax.runtime import build  # pylint: disable=g-import-not-at-top
  anakin_runtime = f.runtime.value == 'anakin'
  if f.resume.value:
    _check_resume_runtime(exp_dir, f.runtime.value)
  config = build.prepare(config, f.runtime.value).config

  try:
    os.makedirs(exp_dir, exist_ok=True)
    _write_config(config, exp_dir)
  except OSError as e:  # e.g. a file where a directory of the path should be
    raise UsageError(f'--exp_dir={exp_dir}: cannot write the run directory: '
                     f'{e.strerror or e}.') from e
  print(f'{prog}: {config.algo} on {config.env}, population '
        f'{config.population_size}, {config.num_steps:,} env steps, '
        f'{"runtime anakin" if anakin_runtime else "launcher " + config.launcher}'
        f'; run dir {exp_dir}', flush=True)

  if f.ray_address.value and config.launcher != 'ray':
    raise UsageError('--ray_address needs --launcher=ray.')
  if anakin_runtime:
    from marl_jax.runtime import anakin  # pylint: disable=g-import-not-at-top
    result = anakin.run(config, exp_dir, resume=f.resume.value)
  else:
    from marl_jax.runtime import launchers  # pylint: disable=g-import-not-at-top
    from marl_jax.runtime.program import ProgramError  # pylint: disable=g-import-not-at-top
    try:
      result = launchers.run(config, exp_dir, resume=f.resume.value,
                             ray_address=f.ray_address.value)
    except ProgramError as e:
      print(f'{prog}: error: {e}', file=sys.stderr, flush=True)
      sys.exit(1)
  if config.record_video:
    from marl_jax.evaluation import videos  # pylint: disable=g-import-not-at-top
    paths = videos.record_population(config, exp_dir)
    for p in paths:
      print(f'{prog}: video {p}', flush=True)
  state = 'interrupted' if result.interrupted else 'done'
  print(f'{prog}: {state} after {result.env_steps:,} env steps and '
        f'{result.learner_steps:,} updates; checkpoint in '
        f'{os.path.join(exp_dir, "checkpoints")}', flush=True)


def _run(f: _Flags, argv):
  # User mistakes become one clear line and exit status 2, never a traceback.
  from marl_jax import algorithms, envs  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import extras  # pylint: disable=g-import-not-at-top
  user_errors = (UsageError, config_lib.ConfigError,
                 envs.UnknownEnvironmentError,
                 algorithms.UnknownAlgorithmError,
                 checkpointing.CheckpointError,
                 extras.MissingExtraError)
  try:
    _main(f, argv)
  except user_errors as e:
    cli.exit_with_user_error(_prog(), e)


def _parse_flags(argv):
  """absl's flag parsing, with bad flags and config overrides as one line."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    _exit_with(_flag_error(e))


def main(argv=None) -> None:
  """Entry point of ``train.py`` and of the ``marl-jax-train`` script.

  ``argv`` defaults to ``sys.argv`` (a ``--config`` given without a preset is
  rewritten in it, see ``_config_spec``). Defines the flags, so it runs once
  per process.
  """
  argv = sys.argv if argv is None else argv
  logging.set_verbosity(logging.WARNING)
  cli.set_usage(__doc__)
  f = _Flags(argv)
  app.run(functools.partial(_run, f), argv=argv, flags_parser=_parse_flags)


if __name__ == '__main__':
  main()
