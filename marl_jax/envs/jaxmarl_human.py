"""The 2019 human-human Overcooked trials as ``jaxmarl/overcooked_<layout>``
observations.

``envs/overcooked_human.py`` loads the trials (Carroll et al., NeurIPS 2019)
as recorded states; this module replays one through JaxMARL's Overcooked
(``envs/jaxmarl.py``), whose rules are the 2019 game's, from the trial's
recorded start (the players' cells and facings; the kitchen starts empty),
and returns what each player observed before each recorded action. Both
modules hold data of one game; neither imports the other's environment.

``replay(trial, env)`` runs the whole trial in one jitted ``lax.scan``
(actions padded to a multiple of ``PAD_TO`` steps, so trials of similar
length share one compilation). The trials are about 1,200 steps, longer than
an episode (``env``'s horizon, 400 by default): each step is observed as it
would be at step ``t % horizon`` of an episode (JaxMARL's urgency layer reads
the step), as ``overcooked_human.observations`` does for ``overcooked/``.
The adapter never resets in between: the kitchen carries on.
"""

from __future__ import annotations

import functools
from typing import Dict, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from marl_jax.envs import jaxmarl as jm
from marl_jax.envs import overcooked_human

PAD_TO = 256  # Replays are compiled for lengths in multiples of this.
# overcooked_human's layout names (overcooked_ai's) -> JaxMARL's.
LAYOUTS = {ai: ours for ours, ai in jm.OVERCOOKED_AI_LAYOUTS.items()}


class Replay(NamedTuple):
  """A trial replayed in ``jaxmarl/overcooked_<layout>``.

  Attributes:
    observation: ``{k: [T, 2, ...]}``, each player's observation before
      ``trial.actions[t]`` (``GRID`` ``[T, 2, H, W, 26]`` uint8, and
      ``GLOBAL`` when the env has it).
    positions: ``[T + 1, 2, 2]`` int, each player's ``(x, y)`` before step t
      (``positions[T]``: after the last action).
    directions: ``[T + 1, 2, 2]`` int, each player's facing ``(dx, dy)``.
    sparse_reward: ``[T]`` float32, the team's delivery reward of each step
      (20 per soup, as ``trial.sparse_reward``).
  """
  observation: Dict[str, np.ndarray]
  positions: np.ndarray
  directions: np.ndarray
  sparse_reward: np.ndarray


def layout_of(env_layout: str) -> str:
  """The trials' (``overcooked_human``) layout of a JaxMARL layout name."""
  if env_layout not in jm.OVERCOOKED_AI_LAYOUTS:
    raise ValueError(
        f'jaxmarl/overcooked_{env_layout} has no human data: the 2019 trials '
        f'cover {", ".join(jm.OVERCOOKED_AI_LAYOUTS)}.')
  return jm.OVERCOOKED_AI_LAYOUTS[env_layout]


def load_trials(split: str, env_layout: str):
  """``overcooked_human.load_trials`` of a JaxMARL layout name."""
  return overcooked_human.load_trials(split, layout_of(env_layout))


def start_of(trial: overcooked_human.Trial):
  """``(positions [2, 2], directions [2, 2])`` of the trial's first state,
  or ``ValueError`` if it does not start from an empty kitchen."""
  first = trial.states[0]
  if first['objects'] or any(p[2] is not None for p in first['players']):
    raise ValueError(f'Trial {trial.layout}/{trial.worker}/{trial.round} '
                     'does not start from an empty kitchen with empty hands.')
  positions = np.array([p[0] for p in first['players']], np.int32)
  directions = np.array([p[1] for p in first['players']], np.int32)
  return positions, directions


@functools.lru_cache(maxsize=16)
def _replayer(env: jm.JaxMarlOvercooked):
  """A jitted ``(positions, directions, actions [L, 2]) -> outputs``."""
  horizon = env.spec().max_episode_steps
  key = jax.random.PRNGKey(0)  # Overcooked's transitions are deterministic.

  def at_step(state, t):
    """``state`` as at step ``t % horizon`` of an episode, never ``LAST``."""
    t = (t % horizon).astype(state.t.dtype)
    env_state = state.env_state.replace(
        step=t.astype(state.env_state.step.dtype))
    return state._replace(env_state=env_state, t=t, last=jnp.bool_(False))

  def replay(positions, directions, actions):
    state, _ = env.reset_with_players(key, positions, directions)

    def step(carry, a):
      state, t = carry
      state = at_step(state, t)
      s = state.env_state
      before = (env.observation(state), s.agent_pos, s.agent_dir)
      state, ts = env.step(state, a, key)
      return (state, t + 1), before + (ts.info['sparse_reward'][0],)

    (state, _), (obs, pos, dirs, sparse) = jax.lax.scan(
        step, (state, jnp.int32(0)), actions)
    s = state.env_state
    return obs, pos, dirs, sparse, s.agent_pos, s.agent_dir

  return jax.jit(replay)


def replay(trial: overcooked_human.Trial, env: jm.JaxMarlOvercooked) -> Replay:
  """Replays ``trial`` in ``env`` (module docstring).

  Args:
    trial: a trial of ``env``'s layout.
    env: the ``JaxMarlOvercooked`` of that layout (its horizon and
      ``global_state`` decide the observation, as in training).

  Returns:
    The ``Replay``, aligned with ``trial.actions``.
  """
  if not isinstance(env, jm.JaxMarlOvercooked):
    raise TypeError(f'replay needs a JaxMarlOvercooked, got '
                    f'{type(env).__name__}.')
  if layout_of(env.layout) != trial.layout:
    raise ValueError(f'A trial of {trial.layout} cannot be replayed in '
                     f'jaxmarl/overcooked_{env.layout}.')
  positions, directions = start_of(trial)
  steps = trial.num_steps
  length = -(-steps // PAD_TO) * PAD_TO
  actions = np.full((length, 2), 4, np.int32)  # Padding: both stay.
  actions[:steps] = trial.actions
  obs, pos, dirs, sparse, last_pos, last_dir = jax.device_get(
      _replayer(env)(positions, directions, actions))
  pos = np.concatenate([pos, last_pos[None]])[:steps + 1]
  dirs = np.concatenate([dirs, last_dir[None]])[:steps + 1]
  return Replay(
      observation={k: np.asarray(v[:steps]) for k, v in obs.items()},
      positions=pos, directions=dirs,
      sparse_reward=np.asarray(sparse[:steps], np.float32))


def observations(trial: overcooked_human.Trial,
                 env: jm.JaxMarlOvercooked) -> Dict[str, np.ndarray]:
  """Each player's observation before each of ``trial.actions``:
  ``{k: [T, 2, ...]}`` (``replay(trial, env).observation``)."""
  return replay(trial, env).observation
