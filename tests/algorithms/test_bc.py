"""Behaviour cloning: the loss against numpy, the unstuck rule by hand, and
a clone of the 2019 human data that predicts better than the action
frequencies alone."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import bc as bc_configs
from marl_jax import algorithms
from marl_jax.algorithms import bc
from marl_jax.networks import AgentInput
from marl_jax.types import ArraySpec, EnvSpec, StepType


def test_cross_entropy_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(7, 5)).astype(np.float32)
  action = rng.integers(0, 5, size=7)
  weight = np.array([1, 1, 0, 1, 1, 0, 1], np.float32)
  loss, acc = bc.cross_entropy(jnp.asarray(logits), jnp.asarray(action),
                               jnp.asarray(weight))
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  nll = -log_p[np.arange(7), action]
  np.testing.assert_allclose(loss, (nll * weight).sum() / weight.sum(),
                             rtol=1e-5)
  correct = (logits.argmax(-1) == action) * weight
  np.testing.assert_allclose(acc, correct.sum() / weight.sum(), rtol=1e-6)


def test_unstuck_removes_the_tried_actions_only_when_stuck():
  logits = jnp.zeros((3, 4))
  same = jnp.array([[1., 2.]] * 3)
  state = bc.StuckState(
      features=jnp.array([[[1., 2.]] * 3,            # stuck
                          [[1., 2.], [1., 2.], [0., 2.]],  # moved lately
                          [[1., 2.]] * 3]),          # stuck, tried all? no
      actions=jnp.array([[0, 2, 0], [0, 2, 0], [0, 1, 3]]),
      count=jnp.array([3, 3, 2]))  # row 2: not 3 steps into the episode
  out = np.asarray(bc.unstuck_logits(logits, same, state))
  np.testing.assert_array_equal(np.isinf(out), [[1, 0, 1, 0], [0, 0, 0, 0],
                                                [0, 0, 0, 0]])
  # Stuck after trying every action: the distribution is left alone.
  everything = state._replace(actions=jnp.array([[0, 1, 2]] * 3),
                              count=jnp.array([3, 3, 3]))
  out = bc.unstuck_logits(jnp.zeros((3, 3)), same, everything)
  assert np.all(np.isfinite(np.asarray(out)))


def _algorithm(stuck_steps=3, hidden=(8,)):
  spec = EnvSpec(num_agents=2, observation={'FEATURES': ArraySpec(
      (4,), np.float32)}, num_actions=3, max_episode_steps=10)
  c = bc_configs.get_config('overcooked/cramped_room')
  c.env = 'toy/none'
  c.network.observation_key = 'FEATURES'
  c.network.mlp_sizes = hidden
  c.stuck_steps = stuck_steps
  return bc.make(spec, c)


def test_a_stuck_greedy_clone_tries_another_action():
  algo = _algorithm()
  params = algo.init(jax.random.PRNGKey(0)).params
  obs = {'FEATURES': jnp.ones((1, 4))}
  core = algo.initial_core_state(1)
  actions = []
  for t in range(5):
    inputs = AgentInput(obs, jnp.zeros((1,), jnp.int32),
                        jnp.zeros((1,)), jnp.full(
                            (1,), StepType.FIRST if t == 0 else StepType.MID))
    a, _, core = algo.act(params, inputs, core, jax.random.PRNGKey(t),
                          greedy=True)
    actions.append(int(a[0]))
  # The same observation throughout: argmax three times, then stuck.
  assert actions[:3] == [actions[0]] * 3
  assert actions[3] != actions[0]
  # A FIRST step forgets the history.
  inputs = AgentInput(obs, jnp.zeros((1,), jnp.int32), jnp.zeros((1,)),
                      jnp.full((1,), StepType.FIRST))
  a, _, _ = algo.act(params, inputs, core, jax.random.PRNGKey(9), greedy=True)
  assert int(a[0]) == actions[0]


def test_update_fits_a_labelled_rule():
  algo = _algorithm(stuck_steps=0, hidden=(64,))
  rng = np.random.default_rng(0)
  x = rng.normal(size=(256, 4)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
  batch = bc.Batch({'FEATURES': jnp.asarray(x)}, jnp.asarray(y),
                   jnp.ones((256,)))
  state = algo.init(jax.random.PRNGKey(1))
  update = jax.jit(algo.update)
  first = algo.evaluate(state.params, batch)
  for _ in range(500):
    state, metrics = update(state, batch)
  last = algo.evaluate(state.params, batch)
  assert float(last['loss']) < 0.5 * float(first['loss'])
  assert float(last['accuracy']) > 0.9
  assert int(state.step) == 500


def test_bad_stuck_features_are_named():
  spec = EnvSpec(num_agents=2, observation={'FEATURES': ArraySpec(
      (4,), np.float32)}, num_actions=3, max_episode_steps=10)
  c = bc_configs.get_config('overcooked/cramped_room')
  c.network.observation_key = 'FEATURES'
  c.stuck_features = (0, 7)
  with pytest.raises(ValueError, match='stuck_features'):
    bc.make(spec, c)


@pytest.mark.skipif(not __import__('importlib').util.find_spec(
    'overcooked_ai_py'), reason='needs overcooked-ai')
def test_clone_of_cramped_room_beats_the_action_frequencies(tmp_path):
  from marl_jax.runtime import build, offline  # pylint: disable=g-import-not-at-top
  from marl_jax import run_dir  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
  c = bc_configs.get_config('overcooked/cramped_room')
  c.num_epochs = 15
  c.population_size = 2
  config = build.prepare(c).config
  exp_dir = str(tmp_path / 'bc')
  config.exp_dir = exp_dir
  os.makedirs(exp_dir)
  with open(run_dir.config_path(exp_dir), 'w') as f:
    f.write(config_lib.to_json(config))
  offline.run(config, exp_dir)
  run = run_dir.load_run(exp_dir)
  meta = run.meta
  # The floor: clearly better than predicting the validation trials' own
  # action frequencies without looking (cross-entropy = their entropy).
  env = algorithms.make_env(config)
  data = offline.dataset_for(config, env)
  _, val = offline.split_by_group(data, config.validation_fraction,
                                  config.seed)
  p = np.bincount(val.action, minlength=6) / len(val.action)
  blind = float(-(p[p > 0] * np.log(p[p > 0])).sum())
  assert max(meta['best_loss']) < 0.8 * blind
  assert min(meta['best_accuracy']) > 0.7
  assert meta['runtime'] == 'offline' and meta['dataset'] == 'human:train'
  # Two members, cloned apart (different inits), saved as a population.
  leaves = jax.tree.leaves(run.params)
  assert leaves[0].shape[0] == 2
  assert not np.allclose(leaves[0][0], leaves[0][1])
  assert os.path.exists(os.path.join(exp_dir, 'learner.csv'))


@pytest.mark.slow  # ~40 s: the test split's pickle, jaxmarl, a replay compile
@pytest.mark.skipif(not (__import__('importlib').util.find_spec(
    'overcooked_ai_py') and __import__('importlib').util.find_spec('jaxmarl')),
                    reason='needs overcooked-ai and jaxmarl')
def test_human_data_on_jaxmarl_overcooked_is_grid_rows_a_clone_fits():
  from marl_jax.runtime import build, offline  # pylint: disable=g-import-not-at-top
  from marl_jax.envs import overcooked_human  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
  c = bc_configs.get_config('jaxmarl/overcooked_cramped_room')
  c.dataset = 'human:test'
  assert 'old_dynamics' not in c.env_kwargs  # JaxMARL plays the 2019 rules.
  config = build.prepare(c).config
  env = algorithms.make_env(config)
  data = offline.dataset_for(config, env)
  trials = overcooked_human.load_trials('test', 'cramped_room')
  rows = 2 * sum(t.num_steps for t in trials)
  assert data.observation['GRID'].shape == (rows, 4, 5, 26)
  assert data.observation['GRID'].dtype == np.uint8
  # Row 2t + i is player i before its action t, trial after trial.
  np.testing.assert_array_equal(
      data.action, np.concatenate([t.actions.reshape(-1) for t in trials]))
  assert np.unique(data.group).tolist() == list(range(len(trials)))
  # One minibatch update of the clone on the grid.
  algo = algorithms.make('bc', env.spec(), config)
  env.close()
  state = algo.init(jax.random.PRNGKey(0))
  batch = bc.Batch({'GRID': jnp.asarray(data.observation['GRID'][:64])},
                   jnp.asarray(data.action[:64]), jnp.ones((64,)))
  _, metrics = jax.jit(algo.update)(state, batch)
  assert np.isfinite(float(metrics['loss']))
  # Other jaxmarl games have no human data: one line naming the covered envs.
  other = bc_configs.get_config('jaxmarl/overcooked_cramped_room')
  other.env = 'jaxmarl/mpe_simple_spread'
  with pytest.raises(config_lib.ConfigError,
                     match='jaxmarl/overcooked_counter_circuit'):
    offline.check_dataset(other)
