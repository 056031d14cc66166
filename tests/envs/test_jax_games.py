"""The pure-JAX games: contract, documented optima, host adapter, video."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marl_jax import envs
from marl_jax.envs import functional
from marl_jax.envs import jax_games
from marl_jax.types import StepType
from marl_jax.utils.video import write_video

import jax_contract

NAMES = [f'jax/{g}' for g in jax_games.GAMES]


def test_names_are_registered_both_ways():
  assert set(NAMES) <= set(envs.list_jax_envs())
  assert set(NAMES) <= set(envs.list_envs())
  assert isinstance(envs.make('jax/climbing'), functional.HostEnvironment)
  assert isinstance(envs.make_jax('jax/climbing'), envs.JaxEnvironment)
  with pytest.raises(envs.UnknownEnvironmentError,
                     match='Did you mean jax/climbing'):
    envs.make_jax('jax/climbin')
  with pytest.raises(envs.UnknownEnvironmentError, match='Valid JAX'):
    envs.make_jax('overcooked/cramped_room')


@pytest.mark.parametrize('name', NAMES)
def test_spec_vmap_and_reset_after_last(name):
  env = envs.make_jax(name)
  jax_contract.check_spec_and_two_steps(env)
  horizon = env.spec().max_episode_steps
  batched = jax_contract.check_vmap_matches_single(env, horizon + 3)
  # Random play: every copy has a LAST by the horizon, then FIRST.
  for step_types in batched.step_type:
    last = np.flatnonzero(step_types == StepType.LAST)
    assert len(last) and last[0] <= horizon
    assert step_types[last[0] + 1] == StepType.FIRST


@pytest.mark.parametrize('game,best', [('climbing', 11.), ('penalty', 10.)])
def test_matrix_games_optimum_and_termination(game, best):
  env = envs.make_jax(f'jax/{game}', horizon=3)
  assert env.optimal_return == 3 * best
  state, ts = env.reset(jax.random.PRNGKey(0))
  np.testing.assert_array_equal(ts.observation['FEATURES'][0, -1], 1.)
  total = np.zeros(2)
  key = jax.random.PRNGKey(1)
  for t in range(3):
    state, ts = env.step(state, jnp.array([0, 0]), key)
    total += np.asarray(ts.reward)
    assert ts.info['optimal'][0] == 1.
    # The step counter and the previous joint action are observed.
    assert ts.observation['FEATURES'][0, t + 1] == 1.
    assert ts.observation['FEATURES'][1, 4 + 0] == 1.
  assert int(ts.step_type) == StepType.LAST and float(ts.discount) == 0.
  np.testing.assert_array_equal(total, env.optimal_return)
  jax_contract.check_reset_after_last(env, ts, state, key)


def test_payoffs_and_penalty_kwarg():
  climbing = envs.make_jax('jax/climbing', horizon=1)
  state, _ = climbing.reset(None)
  rewards = [float(climbing.step(state, jnp.array([i, j]), None)[1].reward[0])
             for i in range(3) for j in range(3)]
  assert rewards == [11, -30, 0, -30, 7, 6, 0, 0, 5]
  penalty = envs.make_jax('jax/penalty', penalty=-100.)
  np.testing.assert_array_equal(penalty.payoffs[0, 2], -100.)
  with pytest.raises(ValueError, match='penalty'):
    envs.make_jax('jax/penalty', penalty=float('nan'))
  with pytest.raises(ValueError, match='horizon'):
    envs.make_jax('jax/climbing', horizon=0)
  with pytest.raises(ValueError, match='jax/climbing'):
    envs.make_jax('jax/climbing', size=3)


def _oracle(state):
  """Both agents walk to the first uncollected target (full information)."""
  target = state.targets[jnp.argmax(state.alive)]
  delta = target[None] - state.positions  # [2, 2]
  vertical = jnp.where(delta[:, 0] < 0, 1, 2)
  horizontal = jnp.where(delta[:, 1] < 0, 3, 4)
  return jnp.where(delta[:, 0] != 0, vertical,
                   jnp.where(delta[:, 1] != 0, horizontal, 0)).astype(
                       jnp.int32)


def test_meet_oracle_reaches_the_documented_optimum():
  env = envs.make_jax('jax/meet')
  horizon = env.spec().max_episode_steps

  def episode(key):
    state, ts = env.reset(key)

    def body(carry, _):
      state, ts, ret, ended, discount = carry
      state, ts = env.step(state, _oracle(state), key)
      live = ~ended
      ret = ret + jnp.where(live, ts.reward[0], 0.)
      discount = jnp.where(live & (ts.step_type == StepType.LAST),
                           ts.discount, discount)
      ended = ended | (ts.step_type == StepType.LAST)
      return (state, ts, ret, ended, discount), None

    init = (state, ts, 0., jnp.bool_(False), jnp.float32(-1.))
    (_, _, ret, ended, discount), _ = jax.lax.scan(body, init, None, horizon)
    return ret, ended, discount

  ret, ended, discount = jax.jit(jax.vmap(episode))(
      jax.random.split(jax.random.PRNGKey(0), 512))
  np.testing.assert_array_equal(ret, env.optimal_return)
  assert ended.all()
  np.testing.assert_array_equal(discount, 0.)  # All collected: termination.


def test_meet_truncates_at_horizon_and_is_partially_observed():
  env = envs.make_jax('jax/meet', size=6, horizon=20, view=1)
  state, ts = env.reset(jax.random.PRNGKey(3))
  spec = env.spec()
  assert spec.observation['FEATURES'].shape == (9 * 3 + 2 * 6 + 1,)
  assert spec.observation['GLOBAL'].shape == (6 * 6 * 3 + 1,)
  step = jax.jit(env.step)
  for t in range(20):
    # Staying apart never collects anything.
    state, ts = step(state, jnp.zeros(2, jnp.int32), jax.random.PRNGKey(t))
    assert int(ts.step_type) == (StepType.LAST if t == 19 else StepType.MID)
  assert float(ts.discount) == 1.
  np.testing.assert_array_equal(ts.info['collected'], 0.)
  jax_contract.check_reset_after_last(env, ts, state, jax.random.PRNGKey(9))
  # The window of an agent in a corner shows the walls around it.
  corner = state._replace(positions=jnp.array([[0, 0], [5, 5]]))
  window = np.asarray(env._observe(corner)['FEATURES'][0, :27]).reshape(
      3, 3, 3)
  np.testing.assert_array_equal(window[:, :, 0],
                                [[1, 1, 1], [1, 0, 0], [1, 0, 0]])
  with pytest.raises(ValueError, match='horizon'):
    envs.make_jax('jax/meet', horizon=10)


@pytest.mark.parametrize('name', NAMES)
def test_host_adapter_parallel_api_and_resume(name):
  pytest.importorskip('pettingzoo')
  # pylint: disable=g-import-not-at-top
  from pettingzoo.test import parallel_api_test
  from marl_jax.envs import pettingzoo_export as pz
  # pylint: enable=g-import-not-at-top
  host = envs.make(name, seed=5)
  parallel_api_test(pz.to_parallel_env(host), num_cycles=30)
  jax_contract.check_host_resume(lambda: envs.make(name, seed=5),
                                 num_after=30)
  ts = host.reset()
  jax_contract.check_timestep_against_spec(host.spec(), ts)
  with pytest.raises(ValueError, match='actions'):
    host.step(np.array([0, 99]))
  with pytest.raises(ValueError, match='get_state'):
    host.set_state({'key': 0})


def test_host_matches_functional_and_renders_video(tmp_path):
  host = envs.make('jax/meet', seed=2)
  env = envs.make_jax('jax/meet')
  key = jax.random.PRNGKey(2)
  key, sub = jax.random.split(key)
  state, ts = env.reset(sub)
  np.testing.assert_array_equal(host.reset().observation['FEATURES'],
                                ts.observation['FEATURES'])
  frames = [host.render()]
  for t in range(6):
    a = np.array([t % 5, (t + 2) % 5])
    key, sub = jax.random.split(key)
    state, ts = env.step(state, jnp.asarray(a), sub)
    # Jitted and eager division may differ in the last bit.
    np.testing.assert_allclose(host.step(a).observation['GLOBAL'],
                               ts.observation['GLOBAL'], rtol=1e-6)
    frames.append(host.render())
  path = write_video(frames, str(tmp_path / 'meet.gif'), fps=4)
  assert os.path.getsize(path) > 0
  frame = envs.make('jax/climbing').render()
  assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
