"""JaxMARL's Overcooked, MPE and SMAX under the functional contract."""

import ast
import functools
import importlib.util
import os
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip('jaxmarl')

# pylint: disable=g-import-not-at-top,wrong-import-position
from marl_jax import envs
from marl_jax.envs import functional
from marl_jax.envs import jaxmarl as jm
from marl_jax.types import StepType
from marl_jax.utils.video import write_video

import jax_contract

NAMES = [f'jaxmarl/{n}' for n in jm.NAMES]


def test_names_follow_jaxmarl():
  jaxmarl = jm._jaxmarl()  # pylint: disable=protected-access
  from jaxmarl.environments.overcooked import overcooked_layouts
  from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO
  assert set(jm.OVERCOOKED_LAYOUTS) == set(overcooked_layouts)
  assert set(jm.SMAX_MAPS) == set(MAP_NAME_TO_SCENARIO)
  mpe = {e for e in jaxmarl.registered_envs
         if e.startswith('MPE_') and 'facmac' not in e}
  assert set(jm.MPE_GAMES.values()) == mpe
  assert set(NAMES) <= set(envs.list_jax_envs())
  assert set(NAMES) <= set(envs.list_envs())
  with pytest.raises(envs.UnknownEnvironmentError,
                     match='Did you mean jaxmarl/smax_3m'):
    envs.make_jax('jaxmarl/smax_3n')
  with pytest.raises(ValueError, match='horizon'):
    envs.make_jax('jaxmarl/mpe_simple_spread', horizon=0)
  with pytest.raises(ValueError, match='jaxmarl/smax_3m'):
    envs.make_jax('jaxmarl/smax_3m', no_such_argument=1)
  with pytest.raises(ValueError, match='layout'):
    jm.JaxMarlOvercooked('cramped_rom')


@pytest.mark.parametrize('name', NAMES)
def test_spec_matches_reset_and_two_steps(name):
  # Shapes only (jax.eval_shape traces, nothing compiles), for every name.
  env = envs.make_jax(name)
  rollout = jax.eval_shape(jax_contract.make_rollout(env, 2),
                           jax.random.PRNGKey(0))
  jax_contract.check_timestep_against_spec(env.spec(), rollout, leading=(3,))
  assert rollout.step_type.dtype == jnp.int32
  # The state step returns has reset's types exactly (weak types included),
  # so jitted functions of it compile once (SMAX's reset was weakly typed).
  state, _ = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
  actions = jnp.zeros((env.spec().num_agents,), jnp.int32)
  after, _ = jax.eval_shape(env.step, state, actions, jax.random.PRNGKey(1))
  assert jax.tree.structure(state) == jax.tree.structure(after)
  for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(state)[0],
                          jax.tree.leaves(after)):
    assert (a.shape, a.dtype, a.weak_type) == (b.shape, b.dtype, b.weak_type), (
        jax.tree_util.keystr(path))


@pytest.mark.parametrize('name,entry', [
    ('overcooked_cramped_room', 'GRID'),
    ('mpe_simple_speaker_listener', 'FEATURES'),
    ('smax_3m', 'FEATURES'),
])
def test_global_state_false_leaves_global_out(name, entry):
  env = envs.make_jax(f'jaxmarl/{name}', global_state=False)
  assert 'GLOBAL' not in env.spec().observation
  assert env != envs.make_jax(f'jaxmarl/{name}')
  assert env == envs.make_jax(f'jaxmarl/{name}', global_state=False)
  rollout = jax.eval_shape(jax_contract.make_rollout(env, 2),
                           jax.random.PRNGKey(0))
  jax_contract.check_timestep_against_spec(env.spec(), rollout, leading=(3,))
  assert entry in rollout.observation


@pytest.mark.parametrize('name,horizon', [
    ('overcooked_cramped_room', 6),
    ('mpe_simple_speaker_listener', 5),
    ('smax_3m', 6),
])
def test_vmap_matches_single_and_episodes_end_at_horizon(name, horizon):
  env = envs.make_jax(f'jaxmarl/{name}', horizon=horizon)
  batched = jax_contract.check_vmap_matches_single(env, 2 * horizon + 2)
  jax_contract.check_timestep_against_spec(
      env.spec(), jax.tree.map(lambda x: x[0], batched), leading=(
          2 * horizon + 3,))
  for i, step_type in enumerate(batched.step_type):
    last = np.flatnonzero(step_type == StepType.LAST)
    assert len(last) >= 2 and last[0] <= horizon
    assert step_type[0] == step_type[last[0] + 1] == StepType.FIRST
    np.testing.assert_array_equal(batched.reward[i, last + 1], 0.)
    if not name.startswith('smax'):
      # Time limits only: truncations, exactly at the horizon.
      np.testing.assert_array_equal(last, [horizon, 2 * horizon + 1])
      np.testing.assert_array_equal(batched.discount[i], 1.)


def test_reset_after_last_and_overcooked_reward_shaping():
  env = envs.make_jax('jaxmarl/overcooked_cramped_room', horizon=3,
                      reward_shaping_factor=2., reward_shaping_horizon=100)
  step = functools.partial(jax_contract.step, env)
  state, ts = jax_contract.reset(env, jax.random.PRNGKey(0))
  # GRID is JaxMARL's [height, width, 26]; GLOBAL both agents' grids.
  assert env.spec().observation['GRID'].shape == (4, 5, 26)
  for i in range(2):
    np.testing.assert_array_equal(ts.observation['GLOBAL'][i],
                                  np.asarray(ts.observation['GRID']).ravel())
  np.testing.assert_allclose(state.shaping_weight, 2.)
  state = env.set_training_progress(state, 75)
  np.testing.assert_allclose(state.shaping_weight, 0.5)
  for t in range(3):
    state, ts = step(state, jnp.array([5, 5 if t else 0]),
                     jax.random.PRNGKey(t))
    np.testing.assert_allclose(
        ts.reward, ts.info['sparse_reward'] + 0.5 * ts.info['shaped_reward'])
  assert int(ts.step_type) == StepType.LAST and float(ts.discount) == 1.
  jax_contract.check_reset_after_last(env, ts, state, jax.random.PRNGKey(7))
  # Resets inside step keep the annealed weight.
  state, ts = step(state, jnp.array([0, 0]), jax.random.PRNGKey(8))
  assert int(ts.step_type) == StepType.FIRST
  np.testing.assert_allclose(state.shaping_weight, 0.5)
  np.testing.assert_allclose(
      env.set_training_progress(state, 1000).shaping_weight, 0.)


def test_smax_battle_end_is_a_termination_and_won_is_reported(tmp_path):
  # The configuration of the vmap test below: its compilations are reused.
  env = envs.make_jax('jaxmarl/smax_3m', horizon=6)
  state, ts = jax_contract.reset(env, jax.random.PRNGKey(0))
  n = env.spec().num_agents
  mask = np.asarray(ts.observation['ACTION_MASK'])
  assert mask.shape == (n, 8) and mask[:, :5].all()  # Moves always allowed.
  step = functools.partial(jax_contract.step, env)

  def wiped_out(state, units):
    inner = state.env_state.state
    inner = inner.replace(unit_alive=inner.unit_alive.at[units].set(False),
                          unit_health=inner.unit_health.at[units].set(0.))
    return state._replace(env_state=state.env_state.replace(state=inner))

  stay = jnp.full((n,), 4)
  for units, won in ((slice(n, None), 1.), (slice(0, n), 0.)):
    end_state, ts = step(wiped_out(state, units), stay, jax.random.PRNGKey(1))
    assert int(ts.step_type) == StepType.LAST and float(ts.discount) == 0.
    np.testing.assert_array_equal(ts.info['won'], won)
  jax_contract.check_reset_after_last(env, ts, end_state,
                                      jax.random.PRNGKey(2))
  # A short video of random play (the functional env renders its state).
  frames = [env.render(state)]
  for t in range(5):  # Horizon 6: no LAST before the last frame.
    state, ts = step(state, jax_contract.random_actions(
        jax.random.PRNGKey(10 + t), ts, 8), jax.random.PRNGKey(20 + t))
    frames.append(env.render(state))
  assert frames[0].shape == (256, 256, 3) and frames[0].dtype == np.uint8
  assert any((f != frames[0]).any() for f in frames[1:])  # Units move.
  path = write_video(frames, str(tmp_path / 'smax.gif'), fps=4)
  assert os.path.getsize(path) > 0


def _normalised_world_state(smax, inner_state):
  """JaxMARL's raw world state, rescaled here in numpy: positions by the map
  size, weapon cooldowns by the unit type's, clipped to [0, 1]; the trailing
  raw unit types dropped."""
  raw = np.asarray(smax.get_world_state(inner_state))
  units = smax.num_allies + smax.num_enemies
  per_unit = raw[:units * (4 + smax.unit_type_bits)].reshape(units, -1).copy()
  per_unit[:, 1] /= smax.map_width
  per_unit[:, 2] /= smax.map_height
  types = np.asarray(inner_state.unit_types)
  cooldown = np.asarray(smax.unit_type_weapon_cooldowns)[types]
  per_unit[:, 3] = np.clip(per_unit[:, 3] / cooldown, 0., 1.)
  teams = raw[units * (4 + smax.unit_type_bits):][:units]
  return np.concatenate([per_unit.reshape(-1), teams])


def test_smax_global_is_the_normalised_world_state():
  """JaxMARL's raw world state has map-unit positions and a weapon cooldown
  that falls by 0.5 a step without a floor (a clock, -50 after 100 idle
  steps); QMIX's mixer could not learn from it. GLOBAL is scaled into
  [0, 1], the same row for every agent."""
  env = envs.make_jax('jaxmarl/smax_3m', horizon=6)
  smax = env.jaxmarl_env._env  # pylint: disable=protected-access
  state, ts = jax_contract.reset(env, jax.random.PRNGKey(0))
  n = env.spec().num_agents
  assert env.spec().observation['GLOBAL'].shape == (2 * n * (4 + 6 + 1),)
  # A state after a long idle stretch: cooldowns far below 0, one ally and
  # one enemy dead.
  inner = state.env_state.state
  inner = inner.replace(
      unit_weapon_cooldowns=jnp.array([-40., 0.3, -0.2, -25., 2., 0.]),
      unit_alive=inner.unit_alive.at[jnp.array([1, 4])].set(False),
      unit_health=inner.unit_health.at[jnp.array([1, 4])].set(0.))
  state = state._replace(env_state=state.env_state.replace(state=inner))
  want = _normalised_world_state(smax, inner)
  got = np.asarray(env.smax_world_state(state.env_state))
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  assert got.min() >= 0. and got.max() <= 1.
  assert np.asarray(smax.get_world_state(inner)).min() <= -25.  # Raw: not.
  # Observed after a step, from the state it describes.
  state, ts = jax_contract.step(env, state, jnp.full((n,), 4),
                                jax.random.PRNGKey(1))
  g = np.asarray(ts.observation['GLOBAL'])
  np.testing.assert_allclose(
      g, np.broadcast_to(_normalised_world_state(
          smax, state.env_state.state), g.shape), rtol=1e-6, atol=1e-6)


def test_mpe_heterogeneous_padding_mask_and_global():
  # The configuration of the vmap test below: its compilations are reused.
  env = envs.make_jax('jaxmarl/mpe_simple_speaker_listener', horizon=5)
  assert env.observation_sizes == ((3,), (11,))
  np.testing.assert_array_equal(env.num_valid_actions, [3, 5])
  state, ts = jax_contract.reset(env, jax.random.PRNGKey(0))
  raw_obs = env.jaxmarl_env.get_obs(state.env_state)
  speaker, listener = raw_obs['speaker_0'], raw_obs['listener_0']
  np.testing.assert_array_equal(ts.observation['FEATURES'][0, :3], speaker)
  np.testing.assert_array_equal(ts.observation['FEATURES'][0, 3:], 0.)
  np.testing.assert_array_equal(ts.observation['FEATURES'][1], listener)
  np.testing.assert_array_equal(
      ts.observation['GLOBAL'][1], np.concatenate([speaker, listener]))
  np.testing.assert_array_equal(ts.observation['ACTION_MASK'],
                                [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
  # An action beyond the speaker's own 3 is replaced by 0.
  key = jax.random.PRNGKey(1)
  _, a = jax_contract.step(env, state, jnp.array([4, 2]), key)
  _, b = jax_contract.step(env, state, jnp.array([0, 2]), key)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize('name,kwargs', [
    ('jaxmarl/overcooked_cramped_room', dict(horizon=8)),
    ('jaxmarl/mpe_simple_speaker_listener', dict(horizon=8)),
])
def test_host_environment_parallel_api_resume_and_video(name, kwargs,
                                                         tmp_path):
  pytest.importorskip('pettingzoo')
  from pettingzoo.test import parallel_api_test
  from marl_jax.envs import pettingzoo_export as pz
  host = envs.make(name, seed=3, **kwargs)
  assert isinstance(host, functional.HostEnvironment)
  parallel_api_test(pz.to_parallel_env(host), num_cycles=20)
  jax_contract.check_host_resume(lambda: envs.make(name, seed=3, **kwargs),
                                 num_after=12)
  ts = host.reset()
  jax_contract.check_timestep_against_spec(host.spec(), ts)
  frames = [host.render()]
  rng = np.random.default_rng(0)
  spec = host.spec()
  for _ in range(6):
    host.step(rng.integers(0, spec.num_actions, spec.num_agents))
    frames.append(host.render())
  assert frames[0].dtype == np.uint8 and frames[0].shape[-1] == 3
  path = write_video(frames, str(tmp_path / 'episode.gif'), fps=4)
  assert os.path.getsize(path) > 0


# ----------------------------------------------------------------------------
# Overcooked: overcooked_ai's kitchens, and the 2019 human-human trials.
# ----------------------------------------------------------------------------

# JaxMARL's object codes (jaxmarl.environments.overcooked.common).
_EMPTY, _WALL, _ONION, _ONION_PILE, _PLATE, _PLATE_PILE = 1, 2, 3, 4, 5, 6
_GOAL, _POT, _DISH, _AGENT = 7, 8, 9, 10
# overcooked_ai's terrain -> the object JaxMARL's reset puts there.
_TERRAIN = {'X': _WALL, 'P': _POT, 'O': _ONION_PILE, 'D': _PLATE_PILE,
            'S': _GOAL, ' ': _EMPTY}


def _kitchen(env, env_state):
  """JaxMARL's ``[H, W, 3]`` map without its padding, as numpy."""
  pad = (env_state.maze_map.shape[0] - env.jaxmarl_env.height) // 2
  return np.asarray(env_state.maze_map)[pad:-pad, pad:-pad]


@pytest.mark.parametrize('layout', jm.OVERCOOKED_LAYOUTS)
def test_overcooked_kitchens_and_starts_are_overcooked_ais(layout):
  pytest.importorskip('overcooked_ai_py')
  from marl_jax.envs import overcooked
  # pylint: disable-next=protected-access
  mdp = overcooked._load_layout(jm.OVERCOOKED_AI_LAYOUTS[layout])[0]
  terrain = np.array(mdp.terrain_mtx)

  def cells(symbol):  # (x, y), sorted.
    return sorted(zip(*np.nonzero(terrain.T == symbol)))

  starts = np.array(mdp.start_player_positions)
  env = jm.JaxMarlOvercooked(layout, global_state=False)
  for seed in range(2):
    s = jax.device_get(jax_contract.reset(env, jax.random.PRNGKey(seed))[0]
                       .env_state)
    np.testing.assert_array_equal(s.agent_pos, starts)  # Agent 0 is '1'.
    want = np.vectorize(_TERRAIN.get)(terrain)
    want[starts[:, 1], starts[:, 0]] = _AGENT
    np.testing.assert_array_equal(_kitchen(env, s)[..., 0], want)
    np.testing.assert_array_equal(s.wall_map, terrain != ' ')
    np.testing.assert_array_equal(sorted(map(tuple, s.pot_pos)), cells('P'))
    np.testing.assert_array_equal(sorted(map(tuple, s.goal_pos)), cells('S'))
    np.testing.assert_array_equal(s.agent_inv, _EMPTY)
    np.testing.assert_array_equal(_kitchen(env, s)[terrain == 'P', 2], 23)


def test_overcooked_random_reset_keeps_the_kitchen():
  env = jm.JaxMarlOvercooked('counter_circuit', random_reset=True,
                             global_state=False)
  terrain = np.array([list(r) for r in jm.OVERCOOKED_GRIDS['counter_circuit']])
  floor = np.isin(terrain, [' ', '1', '2'])
  seen = set()
  for seed in range(6):
    s = jax.device_get(jax_contract.reset(env, jax.random.PRNGKey(seed))[0]
                       .env_state)
    np.testing.assert_array_equal(s.wall_map, ~floor)
    (x0, y0), (x1, y1) = s.agent_pos
    assert floor[y0, x0] and floor[y1, x1] and (x0, y0) != (x1, y1)
    seen.add((int(x0), int(y0)))
  assert len(seen) > 1  # Not the fixed start.


def test_overcooked_layout_from_a_grid():
  layout = jm.overcooked_layout(['XPX', 'O1D', 'X2S', 'XXX'])
  assert (layout['height'], layout['width']) == (4, 3)
  expected = dict(wall_idx=[0, 1, 2, 3, 5, 6, 8, 9, 10, 11], agent_idx=[4, 7],
                  goal_idx=[8], plate_pile_idx=[5], onion_pile_idx=[3],
                  pot_idx=[1])
  for key, value in expected.items():
    np.testing.assert_array_equal(layout[key], value)
    assert layout[key].dtype == jnp.int32
  for grid, match in ((['XPX', 'O1'], 'one length'),
                      (['X1X', 'X2Y'], "unknown symbol 'Y'"),
                      (['X1X', 'X1X'], "two starts '1'"),
                      (['X1X', 'X X'], "'1' and '2'")):
    with pytest.raises(ValueError, match=match):
      jm.overcooked_layout(grid)


# The 2019 human-human trials (Carroll et al., "On the Utility of Learning
# about Humans for Human-AI Coordination"), as overcooked_ai 1.1.0 ships them,
# recorded under the rules JaxMARL's Overcooked implements: the third onion
# starts the cook, 20 steps to cook. Their layout names -> ours.
_TRIAL_LAYOUTS = {'cramped_room': 'cramped_room',
                  'asymmetric_advantages': 'asymm_advantages',
                  'coordination_ring': 'coord_ring',
                  'random0': 'forced_coord', 'random3': 'counter_circuit'}
# Recorded moves [dx, dy] -> our actions (up, down, right, left, stay, ...).
_MOVES = {(0, -1): 0, (0, 1): 1, (1, 0): 2, (-1, 0): 3, (0, 0): 4}
_INTERACT = 5
# What a recorded player holds -> our inventory: the trials' 'dish' is an
# empty plate, their held 'soup' a plated soup (JaxMARL's 'dish').
_HELD = {None: _EMPTY, 'onion': _ONION, 'dish': _PLATE, 'soup': _DISH}


@functools.lru_cache(maxsize=None)
def _human_trials():
  """The train split's rows, or a skip without overcooked_ai or pandas."""
  spec = importlib.util.find_spec('overcooked_ai_py')
  if spec is None:
    pytest.skip('overcooked_ai is not installed')
  pd = pytest.importorskip('pandas')
  path = os.path.join(os.path.dirname(spec.origin), 'data', 'human_data',
                      'clean_train_trials.pickle')
  if not os.path.exists(path):
    pytest.skip(f'{path} is missing')
  # Pickled by pandas 1.x, whose numeric index classes pandas 2 folded
  # into Index.
  if 'pandas.core.indexes.numeric' not in sys.modules:
    numeric = types.ModuleType('pandas.core.indexes.numeric')
    for name in ('Int64Index', 'Float64Index', 'UInt64Index', 'NumericIndex'):
      setattr(numeric, name, pd.Index)
    sys.modules['pandas.core.indexes.numeric'] = numeric
  return pd.read_pickle(path)


def _first_trial(layout_name):
  """The rows of the layout's trial with the lowest worker id, in order."""
  trials = _human_trials()
  rows = trials[trials.layout_name == layout_name]
  worker = rows.workerid_num.min()
  return rows[rows.workerid_num == worker].sort_values('cur_gameloop')


def _recorded(state, pots):
  """A recorded state in our terms (the dict ``_ours`` gives)."""
  players = state['players']
  objects = state['objects']
  objects = objects.values() if isinstance(objects, dict) else objects
  pot_status, counters = {}, {}
  for obj in objects:
    cell = tuple(obj['position'])
    if cell in pots:  # A soup: ['onion', onions, ticks cooked].
      _, onions, ticks = obj['state']
      # JaxMARL: 23 - onions until full, then 20 - ticks down to 0 (ready);
      # the recorded ticks are 1 in the step of the third onion and go on
      # counting past 20.
      pot_status[cell] = 23 - onions if onions < 3 else max(20 - ticks, 0)
    else:
      counters[cell] = {'onion': _ONION, 'dish': _PLATE, 'soup': _DISH}[
          obj['name']]
  return dict(
      positions=[tuple(p['position']) for p in players],
      orientations=[tuple(p['orientation']) for p in players],
      held=[_HELD[(p.get('held_object') or {}).get('name')] for p in players],
      pots=pot_status, counters=counters)


def _ours(kitchen, agent_pos, agent_dir, agent_inv, pots):
  """Our state in the terms of ``_recorded``."""
  counters = {}
  for y, x in zip(*np.nonzero(np.isin(kitchen[..., 0],
                                      (_ONION, _PLATE, _DISH)))):
    counters[(int(x), int(y))] = int(kitchen[y, x, 0])
  return dict(
      positions=[tuple(map(int, p)) for p in agent_pos],
      orientations=[tuple(map(int, d)) for d in agent_dir],
      held=[int(i) for i in agent_inv],
      pots={cell: int(kitchen[cell[1], cell[0], 2]) for cell in pots
            if kitchen[cell[1], cell[0], 2] != 23},
      counters=counters)


def _replay_trial(layout_name, num_steps=None):
  """Replays a recorded trial through ``jaxmarl/overcooked_<layout>`` from
  its first recorded state and compares, after every step, both players'
  cells, orientations and held objects, the pots, the objects on counters and
  the soups delivered so far. Returns (steps compared, soups delivered)."""
  rows = _first_trial(layout_name)[:num_steps]
  grid = ast.literal_eval(rows.layout.iloc[0])
  layout = _TRIAL_LAYOUTS[layout_name]
  # The kitchen is ours; only the starts may differ (random3's do).
  def no_starts(g):
    return [r.replace('1', ' ').replace('2', ' ') for r in g]
  assert no_starts(grid) == no_starts(jm.OVERCOOKED_GRIDS[layout])
  pots = {(x, y) for y, row in enumerate(grid) for x, c in enumerate(row)
          if c == 'P'}
  start = ast.literal_eval(rows.state.iloc[0])
  assert rows.cur_gameloop.iloc[0] == 0 and not start['objects']
  actions = np.array([[_INTERACT if a == 'INTERACT' else _MOVES[tuple(a)]
                       for a in ast.literal_eval(joint)]
                      for joint in rows.joint_action], np.int32)
  env = jm.JaxMarlOvercooked(layout, horizon=len(rows) + 1,
                             global_state=False)
  state, _ = jax_contract.reset(env, jax.random.PRNGKey(0))
  state = env.with_players(state,
                           [p['position'] for p in start['players']],
                           [p['orientation'] for p in start['players']])

  def step(state, a):
    state, ts = env.step(state, a, jax.random.PRNGKey(0))
    s = state.env_state
    return state, (s.maze_map, s.agent_pos, s.agent_dir, s.agent_inv,
                   ts.info['sparse_reward'][0])

  _, (maze, pos, dirs, inv, sparse) = jax.device_get(
      jax.jit(lambda s, a: jax.lax.scan(step, s, a))(state, actions))
  pad = (maze.shape[1] - env.jaxmarl_env.height) // 2
  soups = np.cumsum(sparse) / 20  # JaxMARL: 20 per delivery.
  recorded_soups = np.cumsum(rows.reward.to_numpy()) / 5  # The trials: 5.
  for t, after in enumerate(rows.next_state):
    want = _recorded(ast.literal_eval(after), pots)
    got = _ours(maze[t, pad:-pad, pad:-pad], pos[t], dirs[t], inv[t], pots)
    want['soups'], got['soups'] = recorded_soups[t], soups[t]
    assert got == want, (
        f'{layout_name}: step {t} (actions {rows.joint_action.iloc[t]}) '
        f'differs: ' + ', '.join(f'{k} recorded {want[k]} ours {got[k]}'
                                 for k in want if want[k] != got[k]))
  return len(rows), soups[-1]


def test_overcooked_replays_a_human_trial_prefix():
  # Worker 1's cramped_room trial: two soups in its first 150 steps.
  steps, soups = _replay_trial('cramped_room', num_steps=150)
  assert (steps, soups) == (150, 2)


@pytest.mark.slow
@pytest.mark.parametrize('layout_name', sorted(_TRIAL_LAYOUTS))
def test_overcooked_replays_whole_human_trials(layout_name):
  """A whole trial per layout (~1,200 steps, 9 to 38 soups), every step.

  All 39 train and 37 test trials replay exactly (checked once, 2026-12).
  """
  steps, soups = _replay_trial(layout_name)
  assert steps > 1100 and soups > 0
