r"""Raw environment steps/s: the bare library next to our wrapper, one process.

  python benchmarks/env_speed.py                 # overcooked and mpe
  python benchmarks/env_speed.py --families=overcooked --steps=20000
  python benchmarks/env_speed.py --families=meltingpot
  XLA_FLAGS="--xla_force_host_platform_device_count=1 \
      --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
      taskset -c 0 python benchmarks/env_speed.py --families=jaxmarl

Overcooked: the bare package loop is what a hand-written learner would run,
``OvercookedGridworld.get_state_transition`` plus ``featurize_state`` for both
agents, with uniformly random joint actions; ours is
``make("overcooked/cramped_room")`` stepped with the same actions.
MPE (PettingZoo): ``mpe2.simple_spread_v3.parallel_env`` against our adapter
``make("pettingzoo/simple_spread")`` with and without the ``GLOBAL`` state.
Melting Pot: meltingpot's own ``substrate.build(name, roles=default roles)``
stepped with ``Substrate.step`` against ``make("meltingpot/<substrate>")``
(with and without ``GLOBAL``), same random actions; both step through ``LAST``
into the next episode (``reset()`` rebuilds the Lua level, which would swamp
the per-step cost being compared).
JaxMARL (``--families=jaxmarl``): Overcooked cramped_room, MPE simple_spread
and SMAX 3m. JaxMARL's own ``reset``/``step`` (with its auto-reset; for SMAX
the heuristic-enemy env plus ``get_avail_actions`` every step, as JaxMARL's
baselines do; also with the agents' observations stacked into one
``[N, ...]`` array, as its baselines' ``batchify`` does and as our contract
returns them) against our ``make_jax("jaxmarl/...")`` adapter (dm_env
semantics, ``GLOBAL``, ``ACTION_MASK``), and the adapter without ``GLOBAL``
(``global_state=False``). All: uniformly random actions,
``jax.vmap`` over ``--jax_copies`` copies of a ``lax.scan`` of
``--jax_steps`` steps, jitted (compiled before timing); every observation,
reward and done is summed into the scan's carry so that XLA cannot drop
work that a learner would consume. Steps/s counts one joint step of one
copy. Run it on one core (the command above).
Each is timed ``--repeats`` times alternately; medians are reported.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('SDL_VIDEODRIVER', 'dummy')  # mpe2 imports pygame
os.environ.setdefault('SDL_AUDIODRIVER', 'dummy')

# pylint: disable=g-import-not-at-top
from marl_jax import envs
from marl_jax.envs import overcooked
# pylint: enable=g-import-not-at-top

_FAMILIES = flags.DEFINE_list('families', ['overcooked', 'mpe'], 'Which.')
_STEPS = flags.DEFINE_integer('steps', 10_000, 'Steps per timing.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timings per contender.')
_LAYOUT = flags.DEFINE_string('layout', 'cramped_room', 'Overcooked layout.')
_JAX_COPIES = flags.DEFINE_integer('jax_copies', 1024,
                                   'JaxMARL: env copies (vmap).')
_JAX_STEPS = flags.DEFINE_integer('jax_steps', 100,
                                  'JaxMARL: scan steps per timing.')
_CLOCK = flags.DEFINE_enum(
    'clock', 'wall', ['wall', 'cpu'],
    'Host-loop families (overcooked, mpe, meltingpot) time with wall: elapsed '
    'time, or cpu: this process\'s CPU time (steadier when other jobs share '
    'the cores).')
_SUBSTRATE = flags.DEFINE_string('substrate', 'collaborative_cooking__cramped',
                                 'Melting Pot substrate.')


def _now() -> float:
  return time.process_time() if _CLOCK.value == 'cpu' else time.perf_counter()


def bare_overcooked(layout: str, steps: int, seed: int) -> float:
  mdp, planner, _ = overcooked._load_layout(layout)  # pylint: disable=protected-access
  from overcooked_ai_py.mdp.actions import Action  # pylint: disable=g-import-not-at-top
  joint = [[a, b] for a in Action.INDEX_TO_ACTION for b in Action.INDEX_TO_ACTION]
  rng = np.random.default_rng(seed)
  choice = rng.integers(0, len(joint), size=steps)
  state = mdp.get_standard_start_state()
  start = _now()
  for i in range(steps):
    state, _ = mdp.get_state_transition(state, joint[choice[i]])
    obs = mdp.featurize_state(state, planner)
    np.asarray(obs, np.float32)
    if state.timestep >= 400:
      state = mdp.get_standard_start_state()
  return steps / (_now() - start)


def ours(name: str, steps: int, action_seed: int, reset_on_last: bool = True,
         **kwargs) -> float:
  env = envs.make(name, **kwargs)
  spec = env.spec()
  rng = np.random.default_rng(action_seed)
  actions = rng.integers(0, spec.num_actions, size=(steps, spec.num_agents))
  env.reset()
  start = _now()
  for i in range(steps):
    ts = env.step(actions[i])
    if ts.last() and reset_on_last:
      env.reset()
  return steps / (_now() - start)


def bare_mpe(steps: int, seed: int) -> float:
  from mpe2 import simple_spread_v3  # pylint: disable=g-import-not-at-top
  env = simple_spread_v3.parallel_env(continuous_actions=False)
  env.reset(seed=seed)
  rng = np.random.default_rng(seed)
  agents = list(env.possible_agents)
  actions = rng.integers(0, 5, size=(steps, len(agents)))
  episode = 0
  start = _now()
  for i in range(steps):
    _, _, term, trunc, _ = env.step(
        {a: int(actions[i, k]) for k, a in enumerate(agents)})
    if all(term.values()) or all(trunc.values()):
      episode += 1
      env.reset(seed=seed + episode)
  return steps / (_now() - start)


def bare_meltingpot(name: str, steps: int, seed: int) -> float:
  """meltingpot's public ``substrate.build`` and ``Substrate.step``."""
  from marl_jax.envs import meltingpot  # pylint: disable=g-import-not-at-top
  meltingpot._modules()  # pylint: disable=protected-access
  from meltingpot import substrate  # pylint: disable=g-import-not-at-top
  roles = substrate.get_config(name).default_player_roles
  env = substrate.build(name, roles=roles)
  num_actions = env.action_spec()[0].num_values
  rng = np.random.default_rng(seed)
  actions = rng.integers(0, num_actions, size=(steps, len(roles)))
  env.reset()
  start = _now()
  for i in range(steps):
    env.step(actions[i])  # steps through LAST into the next episode
  rate = steps / (_now() - start)
  env.close()
  return rate


def meltingpot_own_time(name: str, steps: int, seed: int) -> tuple:
  """Our wrapper's own time per step: its step minus the substrate's inside.

  Steadier than comparing two loops when other jobs share the cores. The
  cost of the timing itself is measured on an empty call and taken off.
  Returns ``(ours_us, substrate_us)`` per step.
  """
  clock = time.process_time if _CLOCK.value == 'cpu' else time.perf_counter
  env = envs.make(name)
  inner = env.meltingpot_env.step
  spent = [0.0]

  def timed(actions, step=inner):
    start = clock()
    timestep = step(actions)
    spent[0] += clock() - start
    return timestep

  rng = np.random.default_rng(seed)
  actions = rng.integers(0, env.spec().num_actions,
                         size=(steps, env.spec().num_agents))
  start = clock()
  for i in range(steps):
    timed(actions[i], step=len)
  timing_cost = clock() - start - spent[0]
  spent[0] = 0.0
  env.meltingpot_env.step = timed  # instance attribute: shadows the method
  env.reset()
  start = clock()
  for i in range(steps):
    env.step(actions[i])
  total = clock() - start
  env.close()
  return ((total - spent[0] - timing_cost) / steps * 1e6,
          spent[0] / steps * 1e6)


def _checksum(tree):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  return sum(jnp.sum(x.astype(jnp.float32)) for x in jax.tree.leaves(tree))


_COMPILED = {}
_CPU_RATES = {}  # rollout -> steps per second of this process's CPU time.


def _time_jax_rollout(rollout, seed: int) -> float:
  """Steps/s of ``jit(vmap(rollout))`` over the copies, compiled first."""
  import jax  # pylint: disable=g-import-not-at-top
  copies = _JAX_COPIES.value
  if rollout not in _COMPILED:
    run = jax.jit(jax.vmap(rollout))
    jax.block_until_ready(run(jax.random.split(jax.random.PRNGKey(99),
                                               copies)))
    _COMPILED[rollout] = run
  run = _COMPILED[rollout]
  keys = jax.random.split(jax.random.PRNGKey(seed), copies)
  start, start_cpu = time.perf_counter(), time.process_time()
  jax.block_until_ready(run(keys))
  steps = copies * _JAX_STEPS.value
  _CPU_RATES.setdefault(rollout, []).append(
      steps / (time.process_time() - start_cpu))
  return steps / (time.perf_counter() - start)


def _raw_jaxmarl_env(name: str):
  """JaxMARL's own env for our ``jaxmarl/<name>``, and its agents."""
  from marl_jax.envs import jaxmarl as jm  # pylint: disable=g-import-not-at-top
  jaxmarl = jm._jaxmarl()  # pylint: disable=protected-access
  if name.startswith('overcooked_'):
    # pylint: disable-next=g-import-not-at-top
    from jaxmarl.environments.overcooked import overcooked_layouts
    layout = overcooked_layouts[name[len('overcooked_'):]]
    return jaxmarl.make('overcooked', layout=layout), False
  if name.startswith('mpe_'):
    return jaxmarl.make(jm.MPE_GAMES[name[len('mpe_'):]],
                        action_type='Discrete'), False
  # pylint: disable-next=g-import-not-at-top
  from jaxmarl.environments.smax import map_name_to_scenario
  return jaxmarl.make('HeuristicEnemySMAX', scenario=map_name_to_scenario(
      name[len('smax_'):])), True


def make_raw_jaxmarl_rollout(name: str, num_actions: int,
                             batchify: bool = False):
  """Per copy: JaxMARL's reset, then ``--jax_steps`` of its auto-reset step.

  ``batchify``: stack the agents' observations into one ``[N, ...]`` array
  before consuming them, as JaxMARL's baselines do (``batchify``).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  env, avail = _raw_jaxmarl_env(name)
  agents = list(env.agents)

  def rollout(key):
    key, sub = jax.random.split(key)
    _, state = env.reset(sub)

    def body(carry, key):
      state, acc = carry
      action_key, step_key = jax.random.split(key)
      acts = jax.random.randint(action_key, (len(agents),), 0, num_actions)
      obs, state, rewards, dones, infos = env.step(
          step_key, state, {a: acts[i] for i, a in enumerate(agents)})
      if batchify:
        obs = {**{k: v for k, v in obs.items() if k not in agents},
               'agents': jnp.stack([obs[a] for a in agents])}
      acc = acc + _checksum((obs, rewards, dones, infos))
      if avail:
        acc = acc + _checksum(env.get_avail_actions(state))
      return (state, acc), None

    (_, acc), _ = jax.lax.scan(body, (state, 0.),
                               jax.random.split(key, _JAX_STEPS.value))
    return acc

  return rollout


def make_our_jax_rollout(env):
  """Per copy: our adapter's reset, then ``--jax_steps`` of its step."""
  import jax  # pylint: disable=g-import-not-at-top
  spec = env.spec()

  def rollout(key):
    key, sub = jax.random.split(key)
    state, _ = env.reset(sub)

    def body(carry, key):
      state, acc = carry
      action_key, step_key = jax.random.split(key)
      acts = jax.random.randint(action_key, (spec.num_agents,), 0,
                                spec.num_actions)
      state, ts = env.step(state, acts, step_key)
      return (state, acc + _checksum(ts)), None

    (_, acc), _ = jax.lax.scan(body, (state, 0.),
                               jax.random.split(key, _JAX_STEPS.value))
    return acc

  return rollout


def report(title, contenders, steps_label=None):
  results = {name: [] for name in contenders}
  for r in range(_REPEATS.value):
    for name, fn in contenders.items():
      results[name].append(fn(r))
  base_name = next(iter(contenders))
  base = statistics.median(results[base_name])
  steps_label = steps_label or f'{_STEPS.value:,} steps'
  print(f'\n{title} ({steps_label}, median of {_REPEATS.value})')
  for name, values in results.items():
    med = statistics.median(values)
    runs = ', '.join(f'{v:,.0f}' for v in values)
    print(f'  {name:44s} {med:8,.0f} steps/s  ({med / base:.3f} of '
          f'{base_name}; runs {runs})')


def main(argv):
  del argv
  n = _STEPS.value
  if 'overcooked' in _FAMILIES.value:
    report(f'Overcooked {_LAYOUT.value}, featurized, random actions', {
        'bare overcooked_ai_py (transition+featurize)':
            lambda r: bare_overcooked(_LAYOUT.value, n, r),
        'marl_jax overcooked wrapper':
            lambda r: ours(f'overcooked/{_LAYOUT.value}', n, r),
    })
  if 'mpe' in _FAMILIES.value:
    report('MPE simple_spread (N=3), random actions', {
        'bare mpe2 parallel_env': lambda r: bare_mpe(n, r),
        'marl_jax pettingzoo adapter, GLOBAL':
            lambda r: ours('pettingzoo/simple_spread', n, r, seed=r),
        'marl_jax pettingzoo adapter, no GLOBAL':
            lambda r: ours('pettingzoo/simple_spread', n, r, seed=r,
                           global_state=False),
    })
  if 'meltingpot' in _FAMILIES.value:
    sub = _SUBSTRATE.value
    report(f'Melting Pot {sub}, random actions', {
        'bare meltingpot substrate.build': lambda r: bare_meltingpot(sub, n, r),
        'marl_jax meltingpot wrapper, GLOBAL':
            lambda r: ours(f'meltingpot/{sub}', n, r, reset_on_last=False),
        'marl_jax meltingpot wrapper, no GLOBAL':
            lambda r: ours(f'meltingpot/{sub}', n, r, reset_on_last=False,
                           global_state='none'),
    })
    own = [meltingpot_own_time(f'meltingpot/{sub}', n, r)
           for r in range(_REPEATS.value)]
    ours_us = statistics.median(o for o, _ in own)
    inner_us = statistics.median(i for _, i in own)
    print(f'  marl_jax wrapper\'s own time (GLOBAL): {ours_us:.2f} us/step = '
          f'{100 * ours_us / inner_us:.1f}% of the substrate step inside it '
          f'({inner_us:.1f} us; medians of {_REPEATS.value})')

  if 'jaxmarl' in _FAMILIES.value:
    import jax  # pylint: disable=g-import-not-at-top
    label = (f'{_JAX_COPIES.value:,} copies x {_JAX_STEPS.value} steps, '
             f'{len(jax.devices())} device(s), CPU affinity '
             f'{sorted(os.sched_getaffinity(0))}')
    for name in ('overcooked_cramped_room', 'mpe_simple_spread', 'smax_3m'):
      env = envs.make_jax(f'jaxmarl/{name}')
      contenders = {
          'raw JaxMARL reset/step (auto-reset)':
              make_raw_jaxmarl_rollout(name, env.spec().num_actions),
          'raw JaxMARL, observations stacked [N, ...]':
              make_raw_jaxmarl_rollout(name, env.spec().num_actions,
                                       batchify=True),
          'marl_jax make_jax adapter (dm_env semantics)':
              make_our_jax_rollout(env),
          'marl_jax make_jax adapter, global_state=False':
              make_our_jax_rollout(
                  envs.make_jax(f'jaxmarl/{name}', global_state=False)),
      }
      report(f'JaxMARL {name}, random actions, jit(vmap(scan))', {
          k: (lambda r, f=f: _time_jax_rollout(f, r))
          for k, f in contenders.items()}, steps_label=label)
      # Wall clock suffers from other processes on the machine; CPU time of
      # this (single-threaded, pinned) process much less.
      base = statistics.median(_CPU_RATES[next(iter(contenders.values()))])
      print('  per CPU second of this process (median):')
      for k, f in contenders.items():
        med = statistics.median(_CPU_RATES[f])
        print(f'    {k:44s} {med:8,.0f} steps/s  ({med / base:.3f})')


if __name__ == '__main__':
  app.run(main)
