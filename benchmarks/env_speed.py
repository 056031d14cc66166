r"""Raw environment steps/s: the bare library next to our wrapper, one process.

  python benchmarks/env_speed.py                 # both families
  python benchmarks/env_speed.py --families=overcooked --steps=20000

Overcooked: the bare package loop is what a hand-written learner would run,
``OvercookedGridworld.get_state_transition`` plus ``featurize_state`` for both
agents, with uniformly random joint actions; ours is
``make("overcooked/cramped_room")`` stepped with the same actions.
MPE (PettingZoo): ``mpe2.simple_spread_v3.parallel_env`` against our adapter
``make("pettingzoo/simple_spread")`` with and without the ``GLOBAL`` state.
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


def bare_overcooked(layout: str, steps: int, seed: int) -> float:
  mdp, planner, _ = overcooked._load_layout(layout)  # pylint: disable=protected-access
  from overcooked_ai_py.mdp.actions import Action  # pylint: disable=g-import-not-at-top
  joint = [[a, b] for a in Action.INDEX_TO_ACTION for b in Action.INDEX_TO_ACTION]
  rng = np.random.default_rng(seed)
  choice = rng.integers(0, len(joint), size=steps)
  state = mdp.get_standard_start_state()
  start = time.perf_counter()
  for i in range(steps):
    state, _ = mdp.get_state_transition(state, joint[choice[i]])
    obs = mdp.featurize_state(state, planner)
    np.asarray(obs, np.float32)
    if state.timestep >= 400:
      state = mdp.get_standard_start_state()
  return steps / (time.perf_counter() - start)


def ours(name: str, steps: int, action_seed: int, **kwargs) -> float:
  env = envs.make(name, **kwargs)
  spec = env.spec()
  rng = np.random.default_rng(action_seed)
  actions = rng.integers(0, spec.num_actions, size=(steps, spec.num_agents))
  env.reset()
  start = time.perf_counter()
  for i in range(steps):
    ts = env.step(actions[i])
    if ts.last():
      env.reset()
  return steps / (time.perf_counter() - start)


def bare_mpe(steps: int, seed: int) -> float:
  from mpe2 import simple_spread_v3  # pylint: disable=g-import-not-at-top
  env = simple_spread_v3.parallel_env(continuous_actions=False)
  env.reset(seed=seed)
  rng = np.random.default_rng(seed)
  agents = list(env.possible_agents)
  actions = rng.integers(0, 5, size=(steps, len(agents)))
  episode = 0
  start = time.perf_counter()
  for i in range(steps):
    _, _, term, trunc, _ = env.step(
        {a: int(actions[i, k]) for k, a in enumerate(agents)})
    if all(term.values()) or all(trunc.values()):
      episode += 1
      env.reset(seed=seed + episode)
  return steps / (time.perf_counter() - start)


def report(title, contenders):
  results = {name: [] for name in contenders}
  for r in range(_REPEATS.value):
    for name, fn in contenders.items():
      results[name].append(fn(r))
  base_name = next(iter(contenders))
  base = statistics.median(results[base_name])
  print(f'\n{title} ({_STEPS.value:,} steps, median of {_REPEATS.value})')
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


if __name__ == '__main__':
  app.run(main)
