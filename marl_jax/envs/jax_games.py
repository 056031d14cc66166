"""Tiny pure-JAX games for fast learner tests: ``make_jax("jax/climbing")``.

Every game implements the functional ``JaxEnvironment`` contract (jit- and
vmap-able ``reset(key)`` / ``step(state, actions, key)``) and has a known
optimal return, ``env.optimal_return`` (team return per agent of one episode),
so that learning tests can assert e.g. "at least 80% of optimal". All games
are two-player and fully cooperative: both agents receive the same reward.
``make("jax/<name>")`` gives the same game behind the stateful ``Environment``
contract (``functional.HostEnvironment``).

Repeated matrix games (Claus & Boutilier, 1998, "The dynamics of reinforcement
learning in cooperative multiagent systems", Figs. 3 and 4), played for
``horizon`` steps (default 5). Each agent picks a row/column in {0, 1, 2} and
both receive the payoff of the joint action:

  * ``climbing``::

        [[ 11, -30,   0],
         [-30,   7,   6],
         [  0,   0,   5]]

    The optimum (0, 0) is surrounded by heavy penalties, so independent or
    additive (VDN) learners tend to settle on (1, 1) or (2, 2); a monotonic
    mixer (QMIX) can represent the argmax. Optimal return ``11 * horizon``.
  * ``penalty`` (``penalty=k``, default -10)::

        [[ 10,   0,   k],
         [  0,   2,   0],
         [  k,   0,  10]]

    Two equally good optima (0, 0) and (2, 2); miscoordination costs ``k``.
    Optimal return ``10 * horizon``.

Observation (the same for both agents, the game has no private information):
``FEATURES`` ``[horizon + 1 + 3 * 3 + 1]`` float32 = one-hot of the step
counter ``t`` in ``[0, horizon]``, then a one-hot of the previous joint action
``3 * a0 + a1`` (9 entries), then a flag that is 1 when there is no previous
joint action (on ``FIRST``). ``GLOBAL`` is the same vector (the game state).
The episode *terminates* (discount 0) after ``horizon`` steps: the horizon is
part of the game and the step counter is observed. ``info['optimal']`` is 1
when the joint action just played was optimal.

Grid game ``meet`` (``size`` x ``size`` grid, default 5, ``num_targets``
default 2, ``horizon`` default 25): two agents start on random distinct
cells; ``num_targets`` targets lie on random cells, distinct from each other
and from the agents. Actions: 0 stay, 1 up (row - 1), 2 down, 3 left
(column - 1), 4 right; moves into the wall leave the agent in place, agents
may share a cell. A target is collected when *both* agents stand on it after
a step; then each agent receives 1. The episode terminates (discount 0) when
every target is collected, and is truncated (discount 1) after ``horizon``
steps. Optimal return ``num_targets``: with full information, meeting at the
nearest target takes at most ``2 * (size - 1)`` steps and each further target
at most ``2 * (size - 1)`` more, so the optimum is always reachable when
``horizon >= 2 * num_targets * (size - 1)`` (16 <= 25 with the defaults; the
constructor refuses smaller horizons). Partial observability: each agent sees
only an egocentric window of radius ``view`` (default 1, a 3 x 3 window):
``FEATURES`` = the window's ``[2v+1, 2v+1, 3]`` channels (wall, uncollected
target, the other agent) flattened, then its own position as two one-hots
(row, column), then ``t / horizon``; so finding the targets and each other
needs search and agreeing where to meet needs coordination. ``GLOBAL`` is the
full state: ``[size, size, 3]`` (agent 0, agent 1, uncollected targets)
flattened, then ``t / horizon``. ``info['collected']`` is the number of
targets collected so far in the episode.

Stepping from a ``LAST`` step resets (with that step's key) and returns
``FIRST``, as the contract says; the actions of that step are ignored.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from marl_jax.envs import _checks
from marl_jax.envs import functional
from marl_jax.envs.functional import ConfigEquality
from marl_jax.envs.base import JaxEnvironment
from marl_jax.types import ArraySpec, EnvSpec, StepType, TimeStep

NUM_AGENTS = 2
GAMES = ('climbing', 'meet', 'penalty')

CLIMBING = ((11., -30., 0.),
            (-30., 7., 6.),
            (0., 0., 5.))


def penalty_payoffs(k: float) -> tuple:
  """The penalty game's payoff matrix for miscoordination cost ``k``."""
  return ((10., 0., k),
          (0., 2., 0.),
          (k, 0., 10.))


def _timestep(step_type, reward, discount, observation, info) -> TimeStep:
  return TimeStep(step_type=jnp.asarray(step_type, jnp.int32),
                  reward=jnp.asarray(reward, jnp.float32),
                  discount=jnp.asarray(discount, jnp.float32),
                  observation=observation, info=info)


def _select(pred, on_true, on_false):
  """``where(pred, on_true, on_false)`` over two pytrees of the same shape."""
  return jax.tree.map(lambda x, y: jnp.where(pred, x, y), on_true, on_false)


# ----------------------------------------------------------------------------
# Repeated matrix games.
# ----------------------------------------------------------------------------


class MatrixState(NamedTuple):
  t: jax.Array            # int32 scalar, steps taken in this episode.
  last_action: jax.Array  # int32 scalar, 3 * a0 + a1, or -1 on FIRST.
  done: jax.Array         # bool scalar: the previous step was LAST.


class MatrixGame(ConfigEquality, JaxEnvironment):
  """A repeated two-player cooperative matrix game (module docstring)."""

  def __init__(self, payoffs, horizon: int = 5, name: str = 'matrix'):
    payoffs = np.asarray(payoffs, np.float32)
    if payoffs.ndim != 2 or payoffs.shape[0] != payoffs.shape[1]:
      raise ValueError(f'payoffs must be a square matrix, got shape '
                       f'{payoffs.shape}.')
    if not np.all(np.isfinite(payoffs)):
      raise ValueError('payoffs must be finite.')
    self._horizon = _checks.positive_int('horizon', horizon)
    self._payoffs = payoffs
    self._a = payoffs.shape[0]
    self._name = name
    self._size = self._horizon + 1 + self._a * self._a + 1
    self._config = (name, payoffs.tobytes(), payoffs.shape, self._horizon)
    self._spec = EnvSpec(
        num_agents=NUM_AGENTS,
        observation={'FEATURES': ArraySpec((self._size,), np.float32),
                     'GLOBAL': ArraySpec((self._size,), np.float32)},
        num_actions=self._a, max_episode_steps=self._horizon,
        info_keys=('optimal',))

  @property
  def payoffs(self) -> np.ndarray:
    return self._payoffs.copy()

  @property
  def horizon(self) -> int:
    return self._horizon

  @property
  def optimal_return(self) -> float:
    """The best episode return of each agent: ``horizon * max(payoffs)``."""
    return float(self._horizon * self._payoffs.max())

  def spec(self) -> EnvSpec:
    return self._spec

  def _observe(self, state: MatrixState):
    a2 = self._a * self._a
    time = jax.nn.one_hot(state.t, self._horizon + 1, dtype=jnp.float32)
    joint = jax.nn.one_hot(state.last_action, a2, dtype=jnp.float32)
    none = (state.last_action < 0).astype(jnp.float32)[None]
    x = jnp.concatenate([time, joint, none])
    x = jnp.broadcast_to(x, (NUM_AGENTS, self._size))
    return {'FEATURES': x, 'GLOBAL': x}

  def reset(self, key):
    del key  # Deterministic.
    state = MatrixState(t=jnp.int32(0), last_action=jnp.int32(-1),
                        done=jnp.bool_(False))
    zeros = jnp.zeros((NUM_AGENTS,), jnp.float32)
    return state, _timestep(StepType.FIRST, zeros, 1., self._observe(state),
                            {'optimal': zeros})

  def step(self, state: MatrixState, actions, key):
    actions = jnp.clip(jnp.asarray(actions, jnp.int32), 0, self._a - 1)
    payoffs = jnp.asarray(self._payoffs)
    payoff = payoffs[actions[0], actions[1]]
    t = state.t + 1
    last = t >= self._horizon
    nxt = MatrixState(t=t, last_action=actions[0] * self._a + actions[1],
                      done=last)
    optimal = (payoff >= payoffs.max()).astype(jnp.float32)
    ts = _timestep(jnp.where(last, StepType.LAST, StepType.MID),
                   jnp.full((NUM_AGENTS,), payoff),
                   jnp.where(last, 0., 1.), self._observe(nxt),
                   {'optimal': jnp.full((NUM_AGENTS,), optimal)})
    return _select(state.done, self.reset(key), (nxt, ts))

  def render(self, state) -> np.ndarray:
    """The payoff grid, the previous joint action lit, a time bar below."""
    state = jax.device_get(state)
    cell = 24
    a = self._a
    frame = np.full((a * cell + 12, a * cell, 3), 30, np.uint8)
    lo, hi = float(self._payoffs.min()), float(self._payoffs.max())
    for i in range(a):
      for j in range(a):
        v = (self._payoffs[i, j] - lo) / max(hi - lo, 1e-6)
        colour = (int(60 + 150 * (1 - v)), int(60 + 150 * v), 60)
        frame[i * cell + 1:(i + 1) * cell - 1,
              j * cell + 1:(j + 1) * cell - 1] = colour
    last = int(state.last_action)
    if last >= 0:
      i, j = divmod(last, a)
      frame[i * cell + 6:(i + 1) * cell - 6,
            j * cell + 6:(j + 1) * cell - 6] = (250, 250, 250)
    width = int(a * cell * int(state.t) / self._horizon)
    frame[a * cell + 4:, :width] = (90, 160, 240)
    return frame

  def __repr__(self) -> str:
    return f'MatrixGame({self._name!r}, horizon={self._horizon})'


# ----------------------------------------------------------------------------
# The grid game: meet on targets.
# ----------------------------------------------------------------------------

# Row and column change of actions stay, up, down, left, right.
_MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], np.int32)


class MeetState(NamedTuple):
  positions: jax.Array  # [2, 2] int32 (row, column) of each agent.
  targets: jax.Array    # [num_targets, 2] int32.
  alive: jax.Array      # [num_targets] bool, not yet collected.
  t: jax.Array          # int32 scalar.
  done: jax.Array       # bool scalar: the previous step was LAST.


class Meet(ConfigEquality, JaxEnvironment):
  """Two agents must meet on targets to collect them (module docstring)."""

  def __init__(self, size: int = 5, num_targets: int = 2, horizon: int = 25,
               view: int = 1):
    self._n = _checks.positive_int('size', size)
    if self._n < 2:
      raise ValueError(f'size must be >= 2, got {size!r}.')
    self._k = _checks.positive_int('num_targets', num_targets)
    if self._k + NUM_AGENTS > self._n * self._n:
      raise ValueError(f'num_targets={num_targets} targets and 2 agents do '
                       f'not fit on a {size}x{size} grid.')
    self._horizon = _checks.positive_int('horizon', horizon)
    needed = 2 * self._k * (self._n - 1)
    if self._horizon < needed:
      raise ValueError(
          f'horizon={horizon} is too short to always collect {num_targets} '
          f'targets on a {size}x{size} grid; it must be >= {needed} so that '
          'the documented optimal return holds.')
    self._view = _checks.non_negative_int('view', view)
    self._config = (self._n, self._k, self._horizon, self._view)
    w = 2 * self._view + 1
    self._features = w * w * 3 + 2 * self._n + 1
    self._global = self._n * self._n * 3 + 1
    self._spec = EnvSpec(
        num_agents=NUM_AGENTS,
        observation={'FEATURES': ArraySpec((self._features,), np.float32),
                     'GLOBAL': ArraySpec((self._global,), np.float32)},
        num_actions=len(_MOVES), max_episode_steps=self._horizon,
        info_keys=('collected',))

  @property
  def optimal_return(self) -> float:
    """``num_targets``: every target collected, 1 each (module docstring)."""
    return float(self._k)

  @property
  def horizon(self) -> int:
    return self._horizon

  def spec(self) -> EnvSpec:
    return self._spec

  def _layers(self, state: MeetState) -> jax.Array:
    """``[size, size, 3]``: agent 0, agent 1, uncollected targets."""
    n = self._n
    cells = jnp.zeros((n, n, 3), jnp.float32)
    cells = cells.at[state.positions[0, 0], state.positions[0, 1], 0].set(1.)
    cells = cells.at[state.positions[1, 0], state.positions[1, 1], 1].set(1.)
    cells = cells.at[state.targets[:, 0], state.targets[:, 1], 2].max(
        state.alive.astype(jnp.float32))
    return cells

  def _observe(self, state: MeetState):
    n, v = self._n, self._view
    layers = self._layers(state)
    # Pad with a wall channel so windows at the border see the wall.
    wall = jnp.pad(jnp.zeros((n, n), jnp.float32), v, constant_values=1.)
    padded = jnp.pad(layers, ((v, v), (v, v), (0, 0)))
    time = (state.t / self._horizon).astype(jnp.float32)[None]

    def agent_obs(i):
      r, c = state.positions[i, 0], state.positions[i, 1]
      w = 2 * v + 1
      win = jax.lax.dynamic_slice(padded, (r, c, 0), (w, w, 3))
      win_wall = jax.lax.dynamic_slice(wall, (r, c), (w, w))
      other = win[:, :, 1 - i]
      window = jnp.stack([win_wall, win[:, :, 2], other], axis=-1)
      return jnp.concatenate([
          window.reshape(-1),
          jax.nn.one_hot(r, n, dtype=jnp.float32),
          jax.nn.one_hot(c, n, dtype=jnp.float32), time])

    features = jnp.stack([agent_obs(0), agent_obs(1)])
    world = jnp.concatenate([layers.reshape(-1), time])
    return {'FEATURES': features,
            'GLOBAL': jnp.broadcast_to(world, (NUM_AGENTS, self._global))}

  def reset(self, key):
    cells = jax.random.choice(key, self._n * self._n,
                              (NUM_AGENTS + self._k,), replace=False)
    rc = jnp.stack([cells // self._n, cells % self._n], -1).astype(jnp.int32)
    state = MeetState(positions=rc[:NUM_AGENTS], targets=rc[NUM_AGENTS:],
                      alive=jnp.ones((self._k,), bool), t=jnp.int32(0),
                      done=jnp.bool_(False))
    zeros = jnp.zeros((NUM_AGENTS,), jnp.float32)
    return state, _timestep(StepType.FIRST, zeros, 1., self._observe(state),
                            {'collected': zeros})

  def step(self, state: MeetState, actions, key):
    actions = jnp.clip(jnp.asarray(actions, jnp.int32), 0, len(_MOVES) - 1)
    positions = jnp.clip(state.positions + jnp.asarray(_MOVES)[actions], 0,
                         self._n - 1)
    together = jnp.all(positions[0] == positions[1])
    on_target = jnp.all(state.targets == positions[0][None], axis=-1)
    hit = together & on_target & state.alive
    alive = state.alive & ~hit
    reward = jnp.sum(hit).astype(jnp.float32)
    t = state.t + 1
    terminated = ~jnp.any(alive)
    last = terminated | (t >= self._horizon)
    nxt = MeetState(positions=positions, targets=state.targets, alive=alive,
                    t=t, done=last)
    collected = jnp.sum(~alive).astype(jnp.float32)
    ts = _timestep(jnp.where(last, StepType.LAST, StepType.MID),
                   jnp.full((NUM_AGENTS,), reward),
                   jnp.where(terminated, 0., 1.), self._observe(nxt),
                   {'collected': jnp.full((NUM_AGENTS,), collected)})
    return _select(state.done, self.reset(key), (nxt, ts))

  def render(self, state, tile: int = 16) -> np.ndarray:
    """Grid tiles: targets yellow, agent 0 red, agent 1 blue (both: purple)."""
    state = jax.device_get(state)
    n = self._n
    frame = np.full((n * tile + 6, n * tile, 3), 40, np.uint8)
    for r in range(n):
      for c in range(n):
        frame[r * tile + 1:(r + 1) * tile - 1,
              c * tile + 1:(c + 1) * tile - 1] = 200
    targets, alive = np.asarray(state.targets), np.asarray(state.alive)
    for r, c in targets[alive]:
      frame[r * tile + 2:(r + 1) * tile - 2,
            c * tile + 2:(c + 1) * tile - 2] = (240, 200, 40)
    q = tile // 4
    pos = np.asarray(state.positions)
    colours = [(220, 50, 50), (50, 90, 220)]
    if (pos[0] == pos[1]).all():
      colours = [(160, 60, 200)] * 2
    for (r, c), colour in zip(pos, colours):
      frame[r * tile + q:(r + 1) * tile - q,
            c * tile + q:(c + 1) * tile - q] = colour
    width = int(n * tile * int(state.t) / self._horizon)
    frame[n * tile + 2:, :width] = (90, 160, 240)
    return frame

  def __repr__(self) -> str:
    return (f'Meet(size={self._n}, num_targets={self._k}, '
            f'horizon={self._horizon}, view={self._view})')


# ----------------------------------------------------------------------------
# Construction by name.
# ----------------------------------------------------------------------------


def make_game(name: str, **kwargs: Any) -> JaxEnvironment:
  """The functional game ``name`` (one of ``GAMES``) built with ``kwargs``."""
  _checks.one_of('game', name, GAMES)
  try:
    if name == 'climbing':
      return MatrixGame(CLIMBING, name=name, **kwargs)
    if name == 'penalty':
      k = _checks.finite_float('penalty', kwargs.pop('penalty', -10.))
      return MatrixGame(penalty_payoffs(k), name=name, **kwargs)
    return Meet(**kwargs)
  except TypeError as e:
    raise ValueError(f'Bad arguments for jax/{name}: {e}') from e


def make_host(name: str, seed: int = 0, **kwargs: Any):
  """``make("jax/<name>", seed=0, **kwargs)``: behind ``Environment``."""
  return functional.HostEnvironment(make_game(name, **kwargs), seed=seed)

