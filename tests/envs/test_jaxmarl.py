"""JaxMARL's Overcooked, MPE and SMAX under the functional contract."""

import functools
import os

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
