r"""Training env steps/s of our anakin runtime next to JaxMARL's own baselines.

  python benchmarks/jaxmarl_speed.py --jaxmarl_dir=/path/to/JaxMARL
  python benchmarks/jaxmarl_speed.py --jaxmarl_dir=/tmp/jaxmarl \
      --which=qmix_smax --steps=100000 --repeats=3 --qmix_rollout=episodes

Cases (``--which``):
  ippo_overcooked  JaxMARL's ``baselines/IPPO/ippo_ff_overcooked.py`` (config
                   ``baselines/IPPO/config/ippo_ff_overcooked.yaml``) against
                   our IPPO (``configs/ippo.py:overcooked``), Overcooked
                   cramped_room, horizon 400.
  qmix_smax        JaxMARL's ``baselines/QLearning/qmix_rnn.py`` (config
                   ``baselines/QLearning/config/config.yaml`` merged with
                   ``config/alg/ql_rnn_smax.yaml``, as its hydra ``+alg=``
                   does) against our QMIX (``configs/qmix.py:smax_3m``), SMAX
                   3m against the heuristic enemy, episode limit 100.

Both sides run in this process on the same machine. JaxMARL's script is
imported from the checkout by path (nothing of it is copied here); its
``make_train(config)`` gets its own config file's values with the keys below
overridden, ours ``marl_jax.runtime.anakin.make_train(config, env,
algorithm)`` with ``configs/<algo>.py`` overridden the same way. Both import
the *installed* ``jaxmarl`` package (the checkout's ``jaxmarl/`` package is
not put on ``sys.path``), so both step the same environment code. wandb is
replaced by a no-op module (their IPPO calls ``wandb.log`` from a host
callback every update, as it does with ``WANDB_MODE=disabled``); ``hydra``
and ``omegaconf``, only used by the scripts' ``main``, are stubbed when they
are not installed.

Measurement. Each side's ``train(key)`` is jitted and compiled ahead of time
(compile time reported separately), then timed (``block_until_ready``) for
two lengths, a short run of ``warmup`` iterations and a long run of
``warmup + steps / steps_per_iteration`` iterations, ``--repeats`` times each,
alternating sides. The headline is the steady-state rate, (steps of long -
steps of short) / (median time of long - median time of short): it leaves
out the fixed costs (init, and JaxMARL's QMIX not learning until its
flashbax buffer holds ``BUFFER_BATCH_SIZE`` adds, i.e. 32 iterations, where
ours learns from the second). "End to end" is the long run's steps over its
time. An env step is one joint step of one env copy.

Matched settings (printed by the script):
  IPPO: 16 env copies x 128 steps per update, 4 epochs x 4 minibatches,
  separate actor and critic MLPs of 64-64 on the flattened ``[4, 5, 26]``
  grid, shared by both agents with no agent id, Adam with grad-norm clip 0.5,
  shaped rewards annealed over 2.5M steps, one seed, one population member.
  QMIX: 16 env copies, 100-step rollouts (``NUM_STEPS`` = our episode limit),
  8 updates per iteration (``NUM_EPOCHS``) on batches of 32 sequences of 100
  steps, replay of 5000 sequences, agent network Dense(64)-ReLU-GRU(64)-Dense
  on the observation plus a one-hot agent id (no previous action), mixer with
  embedding 32 and hypernetworks of 64 hidden units, no layer norm, one-step
  double-Q targets (``td_lambda=0``), target network copied every 10 updates,
  SMAX kwargs ``see_enemy_actions``, ``walls_cause_death``, ``attack_mode``
  from their yaml. Their in-training greedy test (512 envs x 128 steps every
  5% of training, not training work) is off (``TEST_DURING_TRAINING=False``).

What is not matched (structural or fixed in one codebase):
  IPPO: our MLP torso uses ReLU, theirs tanh. They shuffle single transitions
  into minibatches, we shuffle whole sequences (the same 1,024 transitions
  per minibatch). We record behaviour logits and recompute values with one
  extra forward pass over the batch at the start of ``update``; they record
  the value and log-prob while acting. They anneal the learning rate.
  QMIX: with ``--qmix_rollout=chunks`` (the default) our copies run 100-step
  chunks on through their resets as theirs do (``joint_rollout='chunks'``),
  with one difference: our env contract (dm_env's) spends the step after
  ``LAST`` on the reset, which is a slot but not an env step, while their
  env resets inside the step that ends an episode; with 3m's ~17-step
  episodes about 1 slot in 18 is a reset. With ``--qmix_rollout=episodes``
  (our default ``joint_rollout``, PyMARL2's) each copy plays one episode
  from reset per iteration and the steps after its end are padding
  (computed, not counted, and masked in the update). Both sides compute
  16 x 100 env-step *slots* per iteration and train on 32 x 100-step
  sequences per update; we report both real env steps/s and slots/s. Our
  replay stores ``GLOBAL`` once per agent
  (``[N, S]`` per step) where theirs stores the world state once. They use
  RAdam, we Adam; our epsilon follows env steps, theirs updates.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os
import re
import statistics
import sys
import time
import types

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top
import jax
import numpy as np
import yaml
# pylint: enable=g-import-not-at-top

CASES = ('ippo_overcooked', 'qmix_smax')

_JAXMARL_DIR = flags.DEFINE_string(
    'jaxmarl_dir', None, 'Path to a JaxMARL checkout (the directory holding '
    'baselines/ and jaxmarl/).')
_WHICH = flags.DEFINE_list('which', list(CASES),
                           f'Cases to run, from {", ".join(CASES)}.')
_STEPS = flags.DEFINE_integer(
    'steps', 200_000, 'Env steps per measurement (the long run minus the '
    'short one), rounded up to whole iterations.')
_REPEATS = flags.DEFINE_integer('repeats', 3,
                                'Timed runs of each length; medians count.')
_WARMUP = flags.DEFINE_integer(
    'warmup_iterations', -1, 'Iterations of the short run (-1: 2 for IPPO, '
    '40 for QMIX, past JaxMARL QMIX\'s 32 iterations without learning).')
_SEED = flags.DEFINE_integer('seed', 0, 'Random seed of both sides.')
_QMIX_ROLLOUT = flags.DEFINE_enum(
    'qmix_rollout', 'chunks', ['chunks', 'episodes'],
    'Our QMIX joint_rollout: chunks through resets (JaxMARL\'s layout) or '
    'whole episodes padded to the limit (PyMARL2\'s).')
_NUM_ENVS = flags.DEFINE_integer('num_envs', 16, 'Env copies, both sides.')
_QMIX_HIDDEN = flags.DEFINE_integer(
    'qmix_hidden', 64, 'QMIX agent MLP and GRU width (their HIDDEN_SIZE).')
_QMIX_MIXER_EMBED = flags.DEFINE_integer(
    'qmix_mixer_embed', 32, 'QMIX mixer embedding (MIXER_EMBEDDING_DIM).')
_QMIX_HYPERNET = flags.DEFINE_integer(
    'qmix_hypernet', 64, 'QMIX hypernetwork hidden units '
    '(MIXER_HYPERNET_HIDDEN_DIM).')


class UsageError(Exception):
  pass


# -----------------------------------------------------------------------------
# JaxMARL's side: the checkout, its configs and its scripts.

_BASELINES = {
    'ippo_overcooked': ('baselines/IPPO/ippo_ff_overcooked.py',
                        ('baselines/IPPO/config/ippo_ff_overcooked.yaml',)),
    'qmix_smax': ('baselines/QLearning/qmix_rnn.py',
                  ('baselines/QLearning/config/config.yaml',
                   'baselines/QLearning/config/alg/ql_rnn_smax.yaml')),
}


def check_checkout(path: str | None) -> str:
  if not path:
    raise UsageError('--jaxmarl_dir is required: the path of a JaxMARL '
                     'checkout (git clone https://github.com/FLAIROx/JaxMARL).')
  path = os.path.abspath(os.path.expanduser(path))
  if not os.path.isdir(path):
    raise UsageError(f'--jaxmarl_dir={path} is not a directory.')
  missing = [f for script, configs in _BASELINES.values()
             for f in (script,) + configs
             if not os.path.isfile(os.path.join(path, f))]
  if missing:
    raise UsageError(f'--jaxmarl_dir={path} does not look like a JaxMARL '
                     f'checkout: missing {", ".join(missing)}.')
  return path


def checkout_commit(path: str) -> str:
  head = os.path.join(path, '.git', 'HEAD')
  try:
    with open(head) as f:
      ref = f.read().strip()
    if ref.startswith('ref: '):
      ref_path = os.path.join(path, '.git', ref[5:])
      if os.path.exists(ref_path):
        with open(ref_path) as f:
          return f.read().strip()
      with open(os.path.join(path, '.git', 'packed-refs')) as f:
        for line in f:
          if line.strip().endswith(ref[5:]):
            return line.split()[0]
    return ref
  except OSError:
    return 'unknown (not a git checkout)'


def _stub_modules():
  """A no-op wandb always; hydra and omegaconf only when not installed."""

  def _noop(*args, **kwargs):
    del args, kwargs

  wandb = types.ModuleType('wandb')
  wandb.init = wandb.log = wandb.finish = wandb.login = _noop
  sys.modules['wandb'] = wandb
  if 'hydra' not in sys.modules and importlib.util.find_spec('hydra') is None:
    hydra = types.ModuleType('hydra')
    hydra.main = lambda *a, **k: (lambda f: f)
    sys.modules['hydra'] = hydra
  if ('omegaconf' not in sys.modules and
      importlib.util.find_spec('omegaconf') is None):
    omegaconf = types.ModuleType('omegaconf')

    class OmegaConf:  # Only their ``main`` uses it.
      to_container = to_yaml = save = staticmethod(_noop)

    omegaconf.OmegaConf = OmegaConf
    sys.modules['omegaconf'] = omegaconf


def load_baseline(checkout: str, case: str):
  """Their script as a module (imported from the checkout by path)."""
  _stub_modules()
  script = os.path.join(checkout, _BASELINES[case][0])
  name = 'jaxmarl_baseline_' + os.path.splitext(os.path.basename(script))[0]
  if name in sys.modules:
    return sys.modules[name]
  spec = importlib.util.spec_from_file_location(name, script)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except ImportError as e:
    raise UsageError(f'cannot import {script}: {e}. Install the missing '
                     'package to run the JaxMARL side.') from e
  sys.modules[name] = module
  return module


_FLOAT = re.compile(r'^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$')


def _numbers(x):
  """YAML 1.1 reads ``5e6`` as a string; hydra (OmegaConf) as a float."""
  if isinstance(x, dict):
    return {k: _numbers(v) for k, v in x.items()}
  if isinstance(x, str) and _FLOAT.match(x):
    return float(x)
  return x


def their_config(checkout: str, case: str) -> dict:
  config = {}
  for f in _BASELINES[case][1]:
    with open(os.path.join(checkout, f)) as fh:
      config.update(_numbers(yaml.safe_load(fh)) or {})
  return config


# -----------------------------------------------------------------------------
# The cases: both sides' trains at matched settings.


class Side:
  """``train(key)``, its iteration size and how to count its env steps."""

  def __init__(self, name, train, steps_per_iteration, count, settings):
    self.name, self.train = name, train
    self.steps_per_iteration = steps_per_iteration
    self.count = count  # (output, iterations) -> (env steps, slots)
    self.settings = settings


def ippo_overcooked(checkout: str, iterations: int):
  M, T = _NUM_ENVS.value, 128
  # Theirs.
  module = load_baseline(checkout, 'ippo_overcooked')
  from jaxmarl.environments.overcooked import overcooked_layouts  # pylint: disable=g-import-not-at-top
  c = their_config(checkout, 'ippo_overcooked')
  c.update(NUM_ENVS=M, NUM_STEPS=T, UPDATE_EPOCHS=4, NUM_MINIBATCHES=4,
           TOTAL_TIMESTEPS=iterations * M * T, ACTIVATION='tanh',
           ENV_NAME='overcooked', NUM_SEEDS=1, WANDB_MODE='disabled')
  c['ENV_KWARGS'] = dict(c.get('ENV_KWARGS') or {}, layout='cramped_room')
  shown = {k: v for k, v in c.items() if k not in ('ENTITY', 'PROJECT')}
  c['ENV_KWARGS'] = dict(c['ENV_KWARGS'],
                         layout=overcooked_layouts['cramped_room'])
  train = module.make_train(c)

  def their_count(out, n):
    steps = int(np.asarray(out['metrics']['env_step'])[-1])
    return steps, n * M * T

  theirs = Side('JaxMARL', train, M * T, their_count, shown)

  # Ours.
  from configs import ippo as ippo_configs  # pylint: disable=g-import-not-at-top
  o = ippo_configs.get_config('overcooked')
  o.env = 'jaxmarl/overcooked_cramped_room'
  o.env_wrappers = ()
  o.env_kwargs.global_state = False  # The IPPO critic reads GRID.
  o.use_agent_id = False
  o.num_envs_per_actor = M
  o.sequence_length = T
  o.num_epochs = 4
  o.num_minibatches = 4
  o.network.mlp_sizes = (64, 64)
  o.network.core = ''
  o.population_size = 1
  o.num_steps = iterations * M * T
  ours = _our_side(o, iterations, M * T)
  return theirs, ours


def qmix_smax(checkout: str, iterations: int):
  M, T = _NUM_ENVS.value, 100
  H, E, Hh = _QMIX_HIDDEN.value, _QMIX_MIXER_EMBED.value, _QMIX_HYPERNET.value
  B, U, replay = 32, 8, 5000
  # Theirs.
  module = load_baseline(checkout, 'qmix_smax')
  c = their_config(checkout, 'qmix_smax')
  c.update(ENV_NAME='HeuristicEnemySMAX', MAP_NAME='3m', NUM_ENVS=M,
           NUM_STEPS=T, TOTAL_TIMESTEPS=iterations * M * T,
           BUFFER_SIZE=replay, BUFFER_BATCH_SIZE=B, NUM_EPOCHS=U,
           HIDDEN_SIZE=H, MIXER_EMBEDDING_DIM=E, MIXER_HYPERNET_HIDDEN_DIM=Hh,
           TARGET_UPDATE_INTERVAL=10, TAU=1.0, LEARNING_STARTS=0,
           TEST_DURING_TRAINING=False, WANDB_MODE='disabled', NUM_SEEDS=1,
           SAVE_PATH=None, HYP_TUNE=False)
  smax_kwargs = dict(c.get('ENV_KWARGS') or {})
  shown = {k: v for k, v in c.items() if k not in ('ENTITY', 'PROJECT')}
  env, _ = module.env_from_config(copy.deepcopy(c))
  train = module.make_train(c, env)

  def their_count(out, n):
    steps = int(np.asarray(out['runner_state'][0].timesteps))
    return steps, n * M * T

  theirs = Side('JaxMARL', train, M * T, their_count, shown)

  # Ours.
  from configs import qmix as qmix_configs  # pylint: disable=g-import-not-at-top
  o = qmix_configs.get_config('smax_3m')
  o.env = 'jaxmarl/smax_3m'
  o.env_wrappers = ('agent_id',)
  for k, v in smax_kwargs.items():
    o.env_kwargs[k] = v
  o.env_kwargs.horizon = T
  o.max_episode_steps = T
  o.num_envs_per_actor = M
  o.updates_per_iteration = U
  o.batch_size = B
  o.replay_max_size = replay
  o.network.mlp_sizes = (H,)
  o.network.gru_size = H
  o.network.use_prev_action = False
  o.use_agent_id = True
  o.mixer_embed = E
  o.hypernet_layers = 2
  o.hypernet_embed = Hh
  o.mixer_depth = 1
  o.mixer_layer_norm = False
  o.td_lambda = 0.
  o.double_q = True
  o.target_update = 'hard'
  o.target_update_interval = 10
  o.max_grad_norm = float(c['MAX_GRAD_NORM'])
  o.joint_rollout = _QMIX_ROLLOUT.value
  o.population_size = 1
  o.num_steps = iterations * M * T
  if 'test_episodes' in o:  # Greedy tests: ``anakin.run`` only, never here.
    o.test_episodes = 0
  ours = _our_side(o, iterations, M * T)
  return theirs, ours


def _our_side(config, iterations, slots_per_iteration) -> Side:
  from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
  from marl_jax.runtime import anakin  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
  config_lib.validate(config)
  env = anakin.make_env(config)
  algorithm = algorithms.make(config.algo, env.spec(), config)
  train = anakin.make_train(config, env, algorithm, num_iterations=iterations)

  def count(out, n):
    _, metrics = out
    return int(np.sum(np.asarray(metrics['env_steps']))), n * slots_per_iteration

  settings = {k: config[k] for k in (
      'algo', 'env', 'env_wrappers', 'num_envs_per_actor', 'population_size',
      'num_steps') if k in config}
  settings['env_kwargs'] = config.env_kwargs.to_dict()
  for k in ('sequence_length', 'num_epochs', 'num_minibatches', 'use_agent_id',
            'learning_rate', 'max_grad_norm', 'batch_size', 'replay_max_size',
            'updates_per_iteration', 'max_episode_steps', 'mixer_embed',
            'hypernet_layers', 'hypernet_embed', 'mixer_layer_norm',
            'td_lambda', 'double_q', 'target_update_interval',
            'joint_rollout'):
    if k in config:
      settings[k] = config[k]
  settings['network'] = {k: v for k, v in config.network.to_dict().items()
                         if k in ('observation_key', 'torso', 'mlp_sizes',
                                  'core', 'gru_size', 'use_prev_action')}
  return Side('ours', train, slots_per_iteration, count, settings)


_BUILDERS = {'ippo_overcooked': ippo_overcooked, 'qmix_smax': qmix_smax}
_DEFAULT_WARMUP = {'ippo_overcooked': 2, 'qmix_smax': 40}


# -----------------------------------------------------------------------------
# Timing.


def _compile(train, key):
  t0 = time.perf_counter()
  compiled = jax.jit(train).lower(key).compile()
  return compiled, time.perf_counter() - t0


def _timed(compiled, key):
  t0 = time.perf_counter()
  out = jax.block_until_ready(compiled(key))
  return out, time.perf_counter() - t0


def run_case(checkout: str, case: str):
  warmup = _WARMUP.value if _WARMUP.value >= 0 else _DEFAULT_WARMUP[case]
  warmup = max(warmup, 1)
  builder = _BUILDERS[case]
  per_iteration = _NUM_ENVS.value * (128 if case == 'ippo_overcooked' else 100)
  extra = max(1, math.ceil(_STEPS.value / per_iteration))
  lengths = {'short': warmup, 'long': warmup + extra}
  key = jax.random.PRNGKey(_SEED.value)
  sides = {}
  for label, n in lengths.items():
    theirs, ours = builder(checkout, n)
    for side in (ours, theirs):
      compiled, seconds = _compile(side.train, key)
      entry = sides.setdefault(side.name, {'compile': {}, 'count': side.count})
      entry['settings'] = side.settings  # The long run's, built last.
      entry['compile'][label] = seconds
      entry[label] = compiled
      print(f'  [{case}] compiled {side.name} {label} ({n} iterations) in '
            f'{seconds:.1f} s', flush=True)
  times = {name: {'short': [], 'long': []} for name in sides}
  counts = {name: {} for name in sides}
  for r in range(_REPEATS.value):
    for label in ('short', 'long'):
      for name in (('ours', 'JaxMARL') if r % 2 == 0 else ('JaxMARL', 'ours')):
        out, seconds = _timed(sides[name][label], key)
        times[name][label].append(seconds)
        counts[name][label] = sides[name]['count'](out, lengths[label])
        del out
    print(f'  [{case}] repeat {r}: ' + ', '.join(
        f'{name} short {times[name]["short"][-1]:.2f} s long '
        f'{times[name]["long"][-1]:.2f} s' for name in sides), flush=True)
  results = {}
  for name in sides:
    med = {k: statistics.median(v) for k, v in times[name].items()}
    (s_short, slots_short), (s_long, slots_long) = (counts[name]['short'],
                                                    counts[name]['long'])
    dt = max(med['long'] - med['short'], 1e-9)
    results[name] = dict(
        steady=(s_long - s_short) / dt,
        steady_slots=(slots_long - slots_short) / dt,
        end_to_end=s_long / med['long'],
        steps_long=s_long, steps_short=s_short, slots_long=slots_long,
        time_long=med['long'], time_short=med['short'],
        compile=sides[name]['compile']['long'],
        settings=sides[name]['settings'])
  return lengths, results


def _fmt_settings(settings) -> str:
  return '\n'.join(f'      {k}: {v}' for k, v in settings.items())


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  try:
    checkout = check_checkout(_JAXMARL_DIR.value)
    unknown = [w for w in _WHICH.value if w not in CASES]
    if unknown:
      raise UsageError(f'--which: unknown case(s) {", ".join(unknown)}; valid: '
                       f'{", ".join(CASES)}.')
    for name, flag in (('steps', _STEPS), ('repeats', _REPEATS),
                       ('num_envs', _NUM_ENVS), ('qmix_hidden', _QMIX_HIDDEN),
                       ('qmix_mixer_embed', _QMIX_MIXER_EMBED),
                       ('qmix_hypernet', _QMIX_HYPERNET)):
      if flag.value <= 0:
        raise UsageError(f'--{name} must be positive, got {flag.value}.')
  except UsageError as e:
    print(f'jaxmarl_speed.py: error: {e}', file=sys.stderr)
    sys.exit(2)

  import jaxmarl  # pylint: disable=g-import-not-at-top
  print(f'JaxMARL checkout {checkout} at commit {checkout_commit(checkout)}')
  print(f'jaxmarl package (both sides) {getattr(jaxmarl, "__version__", "?")} '
        f'from {os.path.dirname(jaxmarl.__file__)}; jax {jax.__version__}, '
        f'devices {jax.devices()}', flush=True)
  rows = []
  for case in _WHICH.value:
    print(f'\n== {case}', flush=True)
    try:
      lengths, results = run_case(checkout, case)
    except UsageError as e:
      print(f'jaxmarl_speed.py: error: {e}', file=sys.stderr)
      sys.exit(2)
    print(f'  iterations: short {lengths["short"]}, long {lengths["long"]}')
    for name, r in results.items():
      print(f'  {name}: long run {r["steps_long"]:,} env steps '
            f'({r["slots_long"]:,} slots) in {r["time_long"]:.2f} s, short '
            f'{r["steps_short"]:,} in {r["time_short"]:.2f} s; settings:')
      print(_fmt_settings(r['settings']))
    rows.append((case, results))

  print('\nEnv steps/s, steady state (long minus short run, medians of '
        f'{_REPEATS.value}); end to end = long run incl. init and warm-up; '
        'compile of the long run, excluded from both.')
  header = (f'{"case":<16} {"ours":>10} {"JaxMARL":>10} {"ratio":>6} | '
            f'{"ours e2e":>10} {"JaxMARL e2e":>11} {"ratio":>6} | '
            f'{"ours slots":>10} | {"compile ours":>12} {"JaxMARL":>8}')
  print(header)
  print('-' * len(header))
  for case, r in rows:
    o, t = r['ours'], r['JaxMARL']
    print(f'{case:<16} {o["steady"]:>10,.0f} {t["steady"]:>10,.0f} '
          f'{o["steady"] / t["steady"]:>6.2f} | {o["end_to_end"]:>10,.0f} '
          f'{t["end_to_end"]:>11,.0f} {o["end_to_end"] / t["end_to_end"]:>6.2f}'
          f' | {o["steady_slots"]:>10,.0f} | {o["compile"]:>10.1f} s '
          f'{t["compile"]:>6.1f} s')
  print('(slots: env steps computed, counting our QMIX padding after an '
        'episode ends; JaxMARL counts every computed step.)')


if __name__ == '__main__':
  app.run(main)
