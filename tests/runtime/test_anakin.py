"""The anakin runtime: trajectory layout, seed vmapping, learning, the shell."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mappo as mappo_configs
from configs import qmix as qmix_configs
from marl_jax import algorithms
from marl_jax.algorithms.base import ActorExtras, Algorithm
from marl_jax.envs.base import JaxEnvironment
from marl_jax.runtime import anakin
from marl_jax.types import ArraySpec, EnvSpec, StepType, TimeStep

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class Guess(JaxEnvironment):
  """A tiny inline game: each step both agents get 1 if their actions sum to
  the (observed) target, else 0. Episodes last a random 2-4 steps and end
  terminated (discount 0) when the target was 0, else truncated."""

  def spec(self):
    return EnvSpec(
        num_agents=2,
        observation={'FEATURES': ArraySpec((4,), np.float32),
                     'GLOBAL': ArraySpec((4,), np.float32),
                     'AGENT_ID': ArraySpec((2,), np.float32)},
        num_actions=2, max_episode_steps=4, info_keys=('hits',))

  def _ts(self, step_type, reward, discount, state):
    t, length, target = state
    x = jnp.stack([t / 4., length / 4., target == 1, target == 2]).astype(
        jnp.float32)
    obs = {'FEATURES': jnp.stack([x, x]), 'GLOBAL': jnp.stack([x, x]),
           'AGENT_ID': jnp.eye(2, dtype=jnp.float32)}
    return TimeStep(jnp.int32(step_type), reward, jnp.float32(discount), obs,
                    {'hits': reward})

  def reset(self, key):
    k1, k2 = jax.random.split(key)
    state = (jnp.int32(0), jax.random.randint(k1, (), 2, 5),
             jax.random.randint(k2, (), 0, 3))
    return state, self._ts(StepType.FIRST, jnp.zeros(2), 1., state)

  def step(self, state, actions, key):
    t, length, target = state
    hit = (jnp.sum(actions) == target).astype(jnp.float32)
    t1 = t + 1
    last = t1 >= length
    new = (t1, length, (target + 1) % 3)
    discount = jnp.where(last & (target == 0), 0., 1.)
    ts = self._ts(jnp.where(last, StepType.LAST, StepType.MID),
                  jnp.full((2,), hit), discount, new)
    was_last = t >= length
    reset_state, reset_ts = self.reset(key)
    pick = lambda a, b: jax.tree.map(lambda x, y: jnp.where(was_last, x, y),
                                     a, b)
    return pick(reset_state, new), pick(reset_ts, ts)


class FixedLength(JaxEnvironment):
  """Every episode lasts exactly ``length`` env steps (reward 1 each); as in
  Guess, the step taken on a LAST timestep only resets the game."""

  def __init__(self, length: int):
    self.length = length

  def spec(self):
    return EnvSpec(
        num_agents=2,
        observation={'FEATURES': ArraySpec((2,), np.float32),
                     'GLOBAL': ArraySpec((2,), np.float32),
                     'AGENT_ID': ArraySpec((2,), np.float32)},
        num_actions=2, max_episode_steps=self.length, info_keys=())

  def _ts(self, step_type, reward, t):
    x = jnp.stack([t / self.length, 1.]).astype(jnp.float32)
    obs = {'FEATURES': jnp.stack([x, x]), 'GLOBAL': jnp.stack([x, x]),
           'AGENT_ID': jnp.eye(2, dtype=jnp.float32)}
    return TimeStep(jnp.int32(step_type), jnp.full((2,), reward, jnp.float32),
                    jnp.float32(1.), obs, {})

  def reset(self, key):
    del key
    return jnp.int32(0), self._ts(StepType.FIRST, 0., jnp.int32(0))

  def step(self, state, actions, key):
    del actions, key
    t1 = state + 1
    ts = self._ts(jnp.where(t1 >= self.length, StepType.LAST, StepType.MID),
                  1., t1)
    was_last = state >= self.length
    reset_state, reset_ts = self.reset(None)
    pick = lambda a, b: jax.tree.map(lambda x, y: jnp.where(was_last, x, y),
                                     a, b)
    return pick(reset_state, t1), pick(reset_ts, ts)


def _ippo_config(**overrides):
  c = mappo_configs.get_config('toy')
  c.algo = 'ippo'
  c.num_envs_per_actor = 4
  c.sequence_length = 5
  c.num_minibatches = 2
  c.network.mlp_sizes = (16,)
  c.update_from_flattened_dict(overrides)  # 'network.mlp_sizes' too
  return c


def _qmix_config(**overrides):
  c = qmix_configs.get_config('toy')
  c.num_envs_per_actor = 4
  c.batch_size = 8
  c.replay_max_size = 32
  c.network.mlp_sizes = (16,)
  c.network.gru_size = 8
  for k, v in overrides.items():
    c[k] = v
  return c


def _recording(algo: Algorithm) -> Algorithm:
  """The algorithm, with an update that returns the batch it was given."""

  def update(state, batch):
    return state._replace(step=state.step + 1), {'batch': batch}

  return algo._replace(update=update)


# ---------------------------------------------------------------- layout
def test_sequences_have_the_distributed_layout():
  env = Guess()
  config = _ippo_config()
  algo = algorithms.make('ippo', env.spec(), config)
  train = anakin.make_train(config, env, _recording(algo), num_iterations=4)
  _, metrics = jax.jit(train)(jax.random.PRNGKey(0))
  b = jax.tree.map(np.asarray, metrics['batch'])
  M, N, T = 4, 2, 5
  assert b.action.shape == (4, 1, M * N, T + 1)  # [iterations, P, B, T+1]
  # Consecutive sequences overlap by one step, action and logits included.
  for field in ('action', 'behaviour_logits', 'reward', 'step_type',
                'prev_action', 'discount'):
    x = getattr(b, field)
    np.testing.assert_array_equal(x[1:, :, :, 0], x[:-1, :, :, T], field)
  np.testing.assert_array_equal(b.observation['FEATURES'][1:, :, :, 0],
                                b.observation['FEATURES'][:-1, :, :, T])
  # Rows are (copy, slot): slot = row % N.
  np.testing.assert_array_equal(
      b.observation['AGENT_ID'][..., 1], np.broadcast_to(
          (np.arange(M * N) % N)[:, None], b.action.shape))
  assert np.all(b.mask == 1.)
  st = b.step_type.reshape(-1, T + 1)
  flat = np.concatenate([st[:, :-1], st[:, -1:]], axis=1)
  # FIRST exactly after LAST; rewards 0 on FIRST; prev_action 0 after FIRST.
  for seq, pa, a, r in zip(flat, b.prev_action.reshape(-1, T + 1),
                           b.action.reshape(-1, T + 1),
                           b.reward.reshape(-1, T + 1)):
    for t in range(1, T + 1):
      assert (seq[t] == StepType.FIRST) == (seq[t - 1] == StepType.LAST)
      if seq[t] == StepType.FIRST:
        assert pa[t] == 0 and r[t] == 0.
      else:
        assert pa[t] == a[t - 1]
  assert np.any(flat == StepType.LAST)
  # Episode metrics: each ended episode's return is its number of hits.
  assert np.all(metrics['episode_hits'][~np.isnan(metrics['episode_hits'])]
                == metrics['episode_return'][~np.isnan(
                    metrics['episode_return'])])


def test_recurrent_state_and_behaviour_logits_carry_across_iterations():
  """With a zero learning rate, the learner recomputes exactly the behaviour
  logits from each sequence's stored initial core state: ratios are 1."""
  env = Guess()
  config = _ippo_config(**{'network.core': 'gru', 'network.core_size': 8,
                           'learning_rate': 0.0})
  algo = algorithms.make('ippo', env.spec(), config)
  train = anakin.make_train(config, env, algo, num_iterations=5)
  _, metrics = jax.jit(train)(jax.random.PRNGKey(1))
  np.testing.assert_allclose(metrics['approx_kl'], 0., atol=1e-6)
  np.testing.assert_allclose(metrics['clip_fraction'], 0.)


def test_joint_episodes_are_whole_and_padded():
  env = Guess()
  config = _qmix_config()
  algo = algorithms.make('qmix', env.spec(), config)
  anak = anakin.make_anakin(config, env, algo)
  state = jax.jit(anak.init)(jax.random.PRNGKey(0))
  state, metrics = jax.jit(anak.iteration)(state)
  buf = jax.tree.map(lambda x: np.asarray(x[0]), state.buffer)
  assert int(buf.size) == 4
  ep = jax.tree.map(lambda x: x[:4], buf.items)
  T = 4
  assert ep.action.shape == (4, T + 1, 2)
  for b in range(4):
    st, mask = ep.step_type[b], ep.mask[b]
    assert st[0] == StepType.FIRST
    last = int(np.argmax(st == StepType.LAST))
    assert st[last] == StepType.LAST
    np.testing.assert_array_equal(mask, np.arange(T + 1) <= last)
    assert np.all(ep.reward[b, last + 1:] == 0)
    # The stored length is the episode's (2-4 steps, from FEATURES[1]).
    assert last == round(ep.observation['FEATURES'][b, 0, 0, 1] * 4)
  assert float(metrics['env_steps'][0]) == float(np.sum(
      [np.argmax(s == StepType.LAST) for s in ep.step_type]))


def _chunk_rollout(iterations, T=8, M=4):
  """``iterations`` chunked QMIX iterations on Guess; each copy's chunks in
  order (``[iterations][M] EpisodeBatch``) and the metrics."""
  env = Guess()
  config = _qmix_config(joint_rollout='chunks', max_episode_steps=T,
                        num_envs_per_actor=M)
  algo = _recording(algorithms.make('qmix', env.spec(), config))
  anak = anakin.make_anakin(config, env, algo)
  state = jax.jit(anak.init)(jax.random.PRNGKey(3))
  iteration = jax.jit(anak.iteration)
  metrics = []
  for _ in range(iterations):
    state, m = iteration(state)
    metrics.append(jax.tree.map(lambda x: np.asarray(x[0]), m))
  items = jax.tree.map(lambda x: np.asarray(x[0]), state.buffer.items)
  chunks = [jax.tree.map(lambda x, i=i: x[i * M:(i + 1) * M], items)
            for i in range(iterations)]
  return algo, chunks, metrics


@pytest.mark.parametrize('algo,rollout', [('ippo', None),
                                          ('qmix', 'episodes'),
                                          ('qmix', 'chunks')])
def test_counted_env_steps_are_the_real_env_steps(algo, rollout):
  """Episodes of exactly L steps, rolled out L + 1 steps per iteration (the
  step on LAST only resets): every layout counts L env steps per episode, in
  its metrics and in the member's env-step count that drives ``num_steps``,
  the reward-shaping anneal and epsilon."""
  L, M, iterations = 2, 4, 3
  env = FixedLength(L)
  if algo == 'ippo':
    config = _ippo_config(sequence_length=L + 1, num_minibatches=1)
  else:
    config = _qmix_config(joint_rollout=rollout, max_episode_steps=L + 1)
  config.num_envs_per_actor = M
  anak = anakin.make_anakin(config, env,
                            algorithms.make(algo, env.spec(), config))
  state = jax.jit(anak.init)(jax.random.PRNGKey(0))
  iteration = jax.jit(anak.iteration)
  counted = episodes = 0
  for _ in range(iterations):
    state, metrics = iteration(state)
    counted += float(np.sum(metrics['env_steps']))
    episodes += float(np.sum(metrics['episodes']))
    np.testing.assert_allclose(metrics['episode_return'], L)  # 1 per step
  assert episodes == iterations * M
  assert counted == episodes * L
  np.testing.assert_array_equal(state.env_steps, iterations * M * L)


def test_joint_chunks_run_on_through_resets():
  """Chunks are unpadded and continue each other: a copy's chunk starts
  where its previous one stopped, episodes restart inside a chunk with no
  previous action, and the per-iteration episode metrics are those of the
  episodes that ended in it (rebuilt here from the stored chunks)."""
  T, M, iterations = 8, 4, 3
  _, chunks, metrics = _chunk_rollout(iterations, T, M)
  for i, c in enumerate(chunks):
    assert c.action.shape == (M, T + 1, 2)
    np.testing.assert_array_equal(c.mask, 1.)
    for m in range(M):
      st = c.step_type[m]
      # FIRST exactly after LAST; MID steps continue an episode.
      np.testing.assert_array_equal(st[1:] == StepType.FIRST,
                                    st[:-1] == StepType.LAST)
      first = st == StepType.FIRST
      np.testing.assert_array_equal(c.prev_action[m][first], 0)
      np.testing.assert_array_equal(c.prev_action[m, 1:][~first[1:]],
                                    c.action[m, :-1][~first[1:]])
      if i:
        prev = jax.tree.map(lambda x, m=m: x[m], chunks[i - 1])
        np.testing.assert_array_equal(prev.step_type[T], st[0])
        np.testing.assert_array_equal(prev.observation['FEATURES'][T],
                                      c.observation['FEATURES'][m, 0])
        np.testing.assert_array_equal(prev.prev_action[T], c.prev_action[m, 0])
      else:
        assert st[0] == StepType.FIRST
    # Steps on LAST timesteps only reset the env and are not counted.
    assert metrics[i]['env_steps'] == np.sum(c.step_type[:, :-1] !=
                                             StepType.LAST)
  # Episode returns, rebuilt copy by copy across the chunks.
  ended = [[] for _ in range(iterations)]
  for m in range(M):
    ret = 0.
    for i, c in enumerate(chunks):
      for t in range(1, T + 1):
        st = c.step_type[m, t]
        ret = 0. if st == StepType.FIRST else ret + c.reward[m, t, 0]
        if st == StepType.LAST:
          ended[i].append(ret)
  for i in range(iterations):
    assert metrics[i]['episodes'] == len(ended[i]) > 0
    np.testing.assert_allclose(metrics[i]['episode_return'],
                               np.mean(ended[i]), rtol=1e-6)
    np.testing.assert_allclose(metrics[i]['episode_hits'], np.mean(ended[i]),
                               rtol=1e-6)


def test_a_chunk_trains_as_its_episodes_stored_whole():
  """QMIX's update on one chunk equals its update on the chunk's episodes
  cut out and padded as whole-episode items: the GRU restarts at FIRST and
  no TD(lambda) target crosses a LAST."""
  T = 8
  env = Guess()
  config = _qmix_config(max_episode_steps=T)
  algo = algorithms.make('qmix', env.spec(), config)
  _, chunks, _ = _chunk_rollout(1, T)
  chunk = jax.tree.map(lambda x: x[0], chunks[0])
  starts = list(np.flatnonzero(chunk.step_type == StepType.FIRST))
  assert len(starts) >= 2 and starts[0] == 0
  ends = [s - 1 for s in starts[1:]] + [T]
  assert np.all(chunk.step_type[ends[:-1]] == StepType.LAST)

  def cut(x, a, b):
    out = np.zeros_like(x)
    out[:b - a + 1] = x[a:b + 1]
    return out

  pieces = [jax.tree.map(lambda x, a=a, b=b: cut(x, a, b),
                         chunk._replace(weight=None))._replace(mask=(np.arange(T + 1) <= b - a).astype(np.float32),
                      weight=np.float32(1.))
            for a, b in zip(starts, ends)]
  stack = lambda items: jax.tree.map(lambda *x: np.stack(x), *items)
  learner = algo.init(jax.random.PRNGKey(0))
  update = jax.jit(algo.update)
  # A gradient step, then a second update, so the target net differs too.
  learner, _ = update(learner, stack([chunk]))
  a, ma = update(learner, stack([chunk]))
  b, mb = update(learner, stack(pieces))
  np.testing.assert_allclose(ma['loss'], mb['loss'], rtol=1e-5)
  assert ma['loss'] > 0
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5,
                                                       atol=1e-7),
               a.params, b.params)


def test_smax_presets_decay_the_learning_rate_over_the_runs_updates():
  """The SMAX presets' cosine decay spans the run's updates (chunks of
  ~95 real steps per 100 slots, 8 updates per iteration), and follows an
  overridden num_steps."""
  for preset in ('smax_3m', 'smax_2s3z'):
    c = qmix_configs.get_config(preset)
    iterations = c.num_steps / (c.num_envs_per_actor * 100 * 0.95)
    assert abs(c.lr_decay_updates - 8 * iterations) <= 8
    c.num_steps = 500_000
    assert abs(c.lr_decay_updates - 8 * 500_000 / (
        c.num_envs_per_actor * 95)) <= 8


def test_joint_rollout_is_checked():
  env = Guess()
  config = _qmix_config(joint_rollout='steps')
  with pytest.raises(ValueError, match='joint_rollout'):
    anakin.make_anakin(config, env,
                       algorithms.make('qmix', env.spec(), config))


# ----------------------------------------------------------- vmapped seeds
@pytest.mark.parametrize('name', ['ippo', 'qmix'])
def test_vmapped_seeds_equal_separate_runs(name):
  env = Guess()
  config = (_ippo_config(population_size=2) if name == 'ippo' else
            _qmix_config(population_size=2, prioritized_replay=True))
  algo = algorithms.make(name, env.spec(), config)
  train = anakin.make_train(config, env, algo, num_iterations=3)
  keys = jax.random.split(jax.random.PRNGKey(7), 2)
  together = jax.jit(jax.vmap(train))(keys)
  single = jax.jit(train)
  for i in range(2):
    alone = single(keys[i])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(
        a[i], b, rtol=1e-6, atol=1e-6), together, alone)
  # Members are independent learners: different params, [iters, P] metrics.
  p = together[0].learner.params
  assert any(not np.allclose(x[0, 0], x[0, 1]) for x in jax.tree.leaves(p))
  assert together[1]['loss'].shape == (2, 3, 2)
  if name == 'qmix':  # Prioritized replay wrote new priorities.
    prio = np.asarray(together[0].buffer.priorities)
    assert len(np.unique(prio[prio > 0])) > 2


# ---------------------------------------------------------------- learning
def _learn(name, preset_overrides, iterations):
  from marl_jax.envs import registry  # pylint: disable=g-import-not-at-top
  if 'jax/penalty' not in registry.list_jax_envs():
    pytest.skip('jax/ games not available')
  config = (mappo_configs.get_config('toy') if name in ('ippo', 'mappo') else
            qmix_configs.get_config('toy'))
  config.algo = name
  for k, v in preset_overrides.items():
    config[k] = v
  env = anakin.make_env(config)
  algo = algorithms.make(name, env.spec(), config)
  train = anakin.make_train(config, env, algo, num_iterations=iterations)
  _, metrics = jax.jit(train)(jax.random.PRNGKey(0))
  returns = np.asarray(metrics['episode_return'])[:, 0]
  optimal = env.optimal_return
  return returns, optimal


@pytest.mark.parametrize('name', ['ippo', 'mappo'])
def test_ppo_learns_to_coordinate_on_penalty(name):
  returns, optimal = _learn(name, {}, 60)
  assert np.nanmean(returns[:3]) < 0.5 * optimal  # Random play is poor.
  assert np.nanmean(returns[-5:]) >= 0.8 * optimal


@pytest.mark.parametrize('name,rollout', [('qmix', 'episodes'),
                                          ('vdn', 'episodes'),
                                          ('qmix', 'chunks')])
def test_value_decomposition_learns_penalty(name, rollout):
  returns, optimal = _learn(name, {'num_steps': 20_000,
                                   'joint_rollout': rollout}, 250)
  assert np.nanmean(returns[:3]) < 0.5 * optimal
  assert np.nanmean(returns[-10:]) >= 0.8 * optimal


# ----------------------------------------------------------- test episodes
class TwoStepGuess(Guess):
  """Guess whose episodes always last 2 steps."""

  def reset(self, key):
    state = (jnp.int32(0), jnp.int32(2), jax.random.randint(key, (), 0, 3))
    return state, self._ts(StepType.FIRST, jnp.zeros(2), 1., state)


def _hits_only_when_greedy(algo: Algorithm) -> Algorithm:
  """``act`` that always hits the target when greedy and never otherwise."""

  def act(params, inputs, core_state, key, greedy=False):
    del params, key
    x = inputs.observation['FEATURES']
    target = (x[:, 2] + 2 * x[:, 3]).astype(jnp.int32)
    first = inputs.observation['AGENT_ID'][:, 0] > 0
    hit = jnp.where(first, jnp.minimum(target, 1),
                    target - jnp.minimum(target, 1))
    miss = jnp.where(target == 0, 1, 0)  # (1, 1) for 0, (0, 0) otherwise
    action = hit if greedy else miss
    logits = jnp.zeros(x.shape[:1] + (2,))
    return action.astype(jnp.int32), ActorExtras(logits=logits), core_state

  return algo._replace(act=act)


@pytest.mark.parametrize('name', ['qmix', 'ippo'])
def test_test_episodes_are_greedy_and_end_at_last(name):
  """Each 2-step episode scores exactly 2 greedily: nothing after its LAST
  counts (the scan runs 4 steps), and exploration is off (0 otherwise)."""
  env = TwoStepGuess()
  config = _qmix_config() if name == 'qmix' else _ippo_config()
  config.test_episodes = 5  # Not an IPPO config key: the runtime's .get.
  config.population_size = 2
  algo = _hits_only_when_greedy(algorithms.make(name, env.spec(), config))
  ak = anakin.make_anakin(config, env, algo)
  state = ak.init(jax.random.PRNGKey(0))
  out = jax.jit(ak.test)(state, jax.random.PRNGKey(1))
  np.testing.assert_allclose(out['test_return'], [2., 2.])
  np.testing.assert_allclose(out['test_hits'], [2., 2.])
  assert anakin.make_anakin(_qmix_config(test_episodes=0), env,
                            algo).test is None


# ------------------------------------------------------------------- shell
def test_run_writes_logs_and_a_checkpoint(tmp_path):
  config = _qmix_config(env='jax/penalty', num_steps=2_000,
                        log_every_updates=5, test_episodes=8,
                        final_test_episodes=40)
  result = anakin.run(config, str(tmp_path))
  assert result.env_steps >= 2_000 and result.learner_steps > 0
  for name in ('actor.csv', 'learner.csv', 'test.csv'):
    assert os.path.exists(tmp_path / name)
  header = (tmp_path / 'actor.csv').read_text().splitlines()[0]
  assert 'member_0/episode_return' in header
  # Greedy test episodes at the start, every test_interval_steps, and a
  # larger final test at the end.
  import pandas as pd  # pylint: disable=g-import-not-at-top
  tests = pd.read_csv(tmp_path / 'test.csv')
  assert 'member_0/test_return' in tests.columns and len(tests) >= 2
  assert tests.step.iloc[-1] == result.env_steps
  assert list(tests.test_episodes) == [8] * (len(tests) - 1) + [40]
  assert os.listdir(tmp_path / 'checkpoints')
  # evaluate.py loads an anakin run by its run dir, as any other.
  from marl_jax import run_dir  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import config as config_lib  # pylint: disable=g-import-not-at-top
  (tmp_path / 'config.json').write_text(config_lib.to_json(config))
  _, algorithm, params, meta = run_dir.load_run(str(tmp_path))
  assert algorithm.name == 'qmix'
  assert meta['learner_steps'] == result.learner_steps
  leaves = jax.tree.leaves(params)
  assert leaves and all(x.shape[0] == config.population_size and
                        np.isfinite(x).all() for x in leaves)


def test_non_jax_env_is_an_error():
  with pytest.raises(TypeError, match='JaxEnvironment'):
    anakin.make_anakin(_ippo_config(), object(),
                       algorithms.make('ippo', Guess().spec(), _ippo_config()))


def test_train_py_refuses_a_non_jax_env_in_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(_ROOT, 'train.py'), '--runtime=anakin',
       '--env=overcooked/cramped_room', '--algo=ippo',
       f'--exp_dir={tmp_path}/run'],
      capture_output=True, text=True, cwd=str(tmp_path), timeout=300,
      check=False)
  assert proc.returncode == 2, proc.stderr
  errors = [l for l in proc.stderr.splitlines() if 'error' in l]
  assert len(errors) == 1 and '--runtime=anakin' in errors[0]
  assert 'Traceback' not in proc.stderr


def test_train_py_refuses_chunks_outside_anakin_in_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(_ROOT, 'train.py'),
       '--config=configs/qmix.py:toy', '--config.joint_rollout=chunks',
       '--launcher=local', f'--exp_dir={tmp_path}/run'],
      capture_output=True, text=True, cwd=_ROOT, timeout=300, check=False)
  assert proc.returncode == 2, proc.stderr
  errors = [l for l in proc.stderr.splitlines() if 'error' in l]
  assert len(errors) == 1 and 'joint_rollout' in errors[0], proc.stderr
  assert 'Traceback' not in proc.stderr
  assert not os.path.exists(f'{tmp_path}/run')


def test_functional_wrappers_add_agent_id_and_global_state():
  from marl_jax.envs import wrappers  # pylint: disable=g-import-not-at-top

  class NoIds(Guess):

    def spec(self):
      spec = super().spec()
      return spec._replace(observation={'FEATURES': spec.observation[
          'FEATURES']})

    def _ts(self, *args):
      ts = super()._ts(*args)
      return ts._replace(observation={'FEATURES': ts.observation['FEATURES']})

    optimal_return = 3.0

  env = wrappers.JaxGlobalState(wrappers.JaxAgentId(NoIds()))
  spec = env.spec()
  assert spec.observation['AGENT_ID'].shape == (2,)
  assert spec.observation['GLOBAL'].shape == (8,)
  _, ts = jax.jit(env.reset)(jax.random.PRNGKey(0))
  _, ts = jax.jit(env.step)(_, jnp.zeros(2, jnp.int32), jax.random.PRNGKey(1))
  np.testing.assert_array_equal(ts.observation['AGENT_ID'], np.eye(2))
  feats = np.asarray(ts.observation['FEATURES'])
  np.testing.assert_array_equal(ts.observation['GLOBAL'],
                                np.stack([feats.reshape(-1)] * 2))
  assert env.optimal_return == 3.0  # Other attributes are forwarded.
  with pytest.raises(ValueError, match='already has'):
    wrappers.JaxAgentId(Guess())


# --------------------------------------------------------------------- OPRE
def _opre_config(**overrides):
  """OPRE's ``jax`` preset on ``jax/penalty``, small and fast."""
  from configs import opre as opre_configs  # pylint: disable=g-import-not-at-top
  c = opre_configs.get_config('jax')
  c.env = 'jax/penalty'
  c.num_envs_per_actor = 16
  c.sequence_length = 10
  c.learning_rate = 1e-2
  c.network.mlp_sizes = (32,)
  c.update_from_flattened_dict(overrides)  # 'network.mlp_sizes' too
  return c


def test_opre_sequences_and_updates_match_the_contract():
  """OPRE under anakin, with options and an LSTM, on ``Guess`` (which has a
  ``GLOBAL`` of its own): trajectories have the ``[P, M * N, T + 1]`` layout
  with the privileged observation the posterior reads; acting mixed the
  options by the meta-policy ``p``, so the learner's unroll of each sequence
  from its stored core state (learning rate 0: params fixed) recomputes the
  behaviour logits exactly, across iterations and episode resets; the update
  returns finite per-member metrics."""
  from marl_jax.algorithms import common, opre  # pylint: disable=g-import-not-at-top
  from marl_jax.networks.opre import make_opre_network  # pylint: disable=g-import-not-at-top
  env = Guess()
  spec = env.spec()
  K, M, N, T, P, iters, lstm = 3, 4, 2, 5, 2, 4, 8
  config = _opre_config(num_options=K, num_envs_per_actor=M, sequence_length=T,
                        population_size=P, learning_rate=0.0,
                        **{'network.lstm_size': lstm,
                           'network.mlp_sizes': (16,),
                           # Built directly below, where 'auto' (resolved
                           # from the spec by algorithms.make) is not.
                           'network.observation_key': 'FEATURES'})
  algo = algorithms.make('opre', spec, config)
  network = make_opre_network(spec, config.network, K, 'GLOBAL')

  def update(state, batch):
    out, _ = network.unroll(state.params, common.time_major_inputs(batch),
                            batch.core_state)
    mixture = opre.mixture_log_probs(out.option_logits, out.prior_logits)
    posterior = network.posterior(state.params, batch.observation['GLOBAL'])
    state, metrics = algo.update(state, batch)
    return state, dict(metrics, batch=batch, posterior=posterior,
                       mixture=jnp.swapaxes(mixture, 0, 1))

  train = anakin.make_train(config, env, algo._replace(update=update),
                            num_iterations=iters)
  final, metrics = jax.jit(train)(jax.random.PRNGKey(3))
  metrics = jax.tree.map(np.asarray, metrics)
  b = metrics.pop('batch')
  lead = (iters, P, M * N, T + 1)  # [iterations, members, rows, time]
  assert b.action.shape == lead and b.reward.shape == lead
  assert b.behaviour_logits.shape == lead + (spec.num_actions,)
  assert b.observation['GLOBAL'].shape == lead + spec.observation[
      'GLOBAL'].shape
  assert b.core_state.hidden.shape == (iters, P, M * N, lstm)
  assert metrics['posterior'].shape == lead + (K,)
  assert np.any(b.step_type == StepType.FIRST)  # the LSTM was reset inside
  np.testing.assert_allclose(np.exp(metrics['mixture']),
                             np.exp(b.behaviour_logits), atol=1e-5)
  for k in ('loss', 'pg_loss', 'baseline_loss', 'kl_posterior_prior',
            'options_in_use', 'importance_ratio'):
    assert metrics[k].shape == (iters, P), k
    assert np.all(np.isfinite(metrics[k])), k
  assert np.all((metrics['options_in_use'] >= 1.) &
                (metrics['options_in_use'] <= K + 1e-4))
  np.testing.assert_array_equal(final.learner.step, [iters] * P)


@pytest.mark.parametrize('env_name', ['jax/meet', 'jax/climbing',
                                      'jaxmarl/overcooked_cramped_room'])
def test_opre_builds_on_jax_envs_from_the_preset_train_py_picks(env_name):
  """``train.py --algo=opre --env=<jax env>`` starts from
  ``configs/opre.py:<env>@anakin``: these envs have their own GLOBAL, so the
  config adds no ``global_state`` wrapper (which refuses an env that has one, saying so),
  and the env builds for both runtimes."""
  from configs import opre as opre_configs  # pylint: disable=g-import-not-at-top
  from marl_jax.envs import registry  # pylint: disable=g-import-not-at-top
  if env_name not in registry.list_jax_envs():
    pytest.skip(f'{env_name} not available')
  config = opre_configs.get_config(f'{env_name}@anakin')
  assert config.env == env_name
  env = anakin.make_env(config)
  assert 'GLOBAL' in env.spec().observation
  algo = algorithms.make('opre', env.spec(), config)
  anak = anakin.make_anakin(config, env, algo)
  state = jax.eval_shape(anak.init, jax.random.PRNGKey(0))
  _, metrics = jax.eval_shape(anak.iteration, state)
  assert metrics['kl_posterior_prior'].shape == (1,)
  algorithms.make_env(config).close()  # the distributed runtime's env
  config.env_wrappers = ('global_state',)
  with pytest.raises(ValueError, match="leave 'global_state' out"):
    anakin.make_env(config)


def _random_return(env: JaxEnvironment, episodes: int, key) -> float:
  """Mean episode return per agent of uniformly random joint actions."""
  spec = env.spec()

  def episode(key):
    k_reset, key = jax.random.split(key)
    state, _ = env.reset(k_reset)

    def step(carry, key):
      state, total, alive = carry
      k_act, k_env = jax.random.split(key)
      actions = jax.random.randint(k_act, (spec.num_agents,), 0,
                                   spec.num_actions)
      state, ts = env.step(state, actions, k_env)
      total += alive * jnp.mean(ts.reward)
      alive *= (ts.step_type != StepType.LAST)
      return (state, total, alive), None

    (_, total, _), _ = jax.lax.scan(step, (state, 0., 1.),
                                    jax.random.split(key,
                                                     spec.max_episode_steps))
    return total

  return float(jnp.mean(jax.jit(jax.vmap(episode))(
      jax.random.split(key, episodes))))


def test_opre_learns_to_coordinate_on_penalty():
  """jax/penalty (5 steps, payoffs [[10, 0, -10], [0, 2, 0], [-10, 0, 10]]):
  optimal 50 per episode; random play gets 5 * 2/9 ~ 1.1 (measured here by
  playing random actions); the one other pure equilibrium, (1, 1), gets 10.
  At least 0.8 * 50 = 40 needs coordinating on a 10-payoff optimum on most
  steps. OPRE reaches ~50 within 40 iterations (6,400 steps) on seeds 0-3."""
  from marl_jax.envs import registry  # pylint: disable=g-import-not-at-top
  if 'jax/penalty' not in registry.list_jax_envs():
    pytest.skip('jax/ games not available')
  config = _opre_config()
  env = anakin.make_env(config)
  optimal = env.optimal_return
  random_return = _random_return(env, 2_000, jax.random.PRNGKey(1))
  assert abs(random_return - 5 * 2 / 9) < 1.5  # the independent baseline
  algo = algorithms.make('opre', env.spec(), config)
  train = anakin.make_train(config, env, algo, num_iterations=40)
  _, metrics = jax.jit(train)(jax.random.PRNGKey(0))
  returns = np.asarray(metrics['episode_return'])[:, 0]
  assert np.nanmean(returns[:3]) < random_return + 0.2 * optimal
  assert np.nanmean(returns[-5:]) >= 0.8 * optimal, returns


def _restore_latest(exp_dir):
  from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
  with checkpointing.Checkpointer(os.path.join(exp_dir, 'checkpoints'),
                                  max_to_keep=None) as ckpt:
    return ckpt.restore()


@pytest.mark.parametrize('name', ['qmix', 'ippo'])
def test_a_resumed_run_goes_on_as_the_uninterrupted_run(tmp_path, name):
  import pickle  # pylint: disable=g-import-not-at-top
  make_config = _qmix_config if name == 'qmix' else _ippo_config
  config = make_config(env='jax/penalty', num_steps=10**9, log_every_updates=2,
                       test_episodes=4, test_interval_steps=1)
  straight, cut = str(tmp_path / 'straight'), str(tmp_path / 'cut')
  a = anakin.run(config, straight, max_iterations=8)
  half = anakin.run(config, cut, max_iterations=4)
  assert half.env_steps < a.env_steps
  b = anakin.run(config, cut, max_iterations=8, resume=True)
  assert (b.env_steps, b.learner_steps) == (a.env_steps, a.learner_steps)
  (sa, ma), (sb, mb) = _restore_latest(straight), _restore_latest(cut)
  assert ma['env_steps'] == mb['env_steps'] == a.env_steps
  # The same learner (params, optimiser, step) and the same runner state
  # (env states, replay, recurrent states, keys), bit for bit.
  for x, y in zip(jax.tree.leaves(sa['learner']),
                  jax.tree.leaves(sb['learner']), strict=True):
    np.testing.assert_array_equal(x, y)
  ra, rb = pickle.loads(sa['runtime']), pickle.loads(sb['runtime'])
  assert ra['counters'] == rb['counters']
  for x, y in zip(ra['leaves'], rb['leaves'], strict=True):
    np.testing.assert_array_equal(x, y)
  # Tests at the same env steps draw the same episodes: the resumed run's
  # regular tests are the straight run's (the cut adds a final test).
  import pandas as pd  # pylint: disable=g-import-not-at-top
  ta, tb = pd.read_csv(f'{straight}/test.csv'), pd.read_csv(f'{cut}/test.csv')
  ta, tb = ta[ta.test_episodes == 4], tb[tb.test_episodes == 4]
  assert len(ta) >= 3
  col = 'member_0/test_return'
  np.testing.assert_array_equal(ta.step, tb.step)
  np.testing.assert_array_equal(ta[col], tb[col])


def test_resume_refuses_a_checkpoint_of_another_layout(tmp_path):
  from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
  config = _qmix_config(env='jax/penalty', num_steps=10**9, log_every_updates=2,
                        test_episodes=0)
  anakin.run(config, str(tmp_path), max_iterations=2)
  bigger = _qmix_config(env='jax/penalty', num_steps=10**9, log_every_updates=2,
                        test_episodes=0, replay_max_size=64)
  with pytest.raises(checkpointing.CheckpointError,
                     match=r'does not fit this config.*buffer'):
    anakin.run(bigger, str(tmp_path), max_iterations=4, resume=True)


# ---------------------------------------------------------- fixed partners
def _constant_pool(actions):
  """A pool of policies that each always play one action (``actions[k]``)."""
  from marl_jax.runtime import partners  # pylint: disable=g-import-not-at-top

  def act(params, inputs, core, key, greedy):
    del key, greedy
    b = inputs.step_type.shape[0]
    return (jnp.full((b,), params['action'], jnp.int32),
            ActorExtras(logits=jnp.zeros((b, 2))), core)

  const = Algorithm(name='const', init=None, act=act,
                    initial_core_state=lambda b: (), update=None,
                    replay_table=None)
  return partners.Pool(const, {'action': jnp.asarray(actions, jnp.int32)},
                       tuple(f'const{a}' for a in actions))


def test_a_fixed_partner_plays_one_slot_per_episode_and_is_masked():
  env = Guess()
  config = _ippo_config(num_envs_per_actor=8)
  algo = algorithms.make('ippo', env.spec(), config)
  pool = _constant_pool([1, 1, 1])
  anak = anakin.make_anakin(config, env, _recording(algo), partners=pool)
  state = jax.jit(anak.init)(jax.random.PRNGKey(0))
  iteration = jax.jit(anak.iteration)
  seats, policies = [], []
  batches = []
  for _ in range(12):
    state, metrics = iteration(state)
    batches.append(jax.tree.map(lambda x: np.asarray(x)[0], metrics['batch']))
    seats.append(np.asarray(state.partner.seat[0]))
    policies.append(np.asarray(state.partner.policy[0]))
  M, N, T = 8, 2, 5
  for b in batches:
    mask = b.mask.reshape(M, N, T + 1)
    # Exactly one slot of every copy is the partner's, at every step.
    np.testing.assert_array_equal(mask.sum(1), N - 1)
    action = b.action.reshape(M, N, T + 1)
    # The partner's slot plays its policy's action (always 1)...
    assert np.all(action[mask == 0] == 1)
    # ... while the learner's (a near-uniform new policy) plays both.
    assert set(np.unique(action[mask == 1])) == {0, 1}
    # The seat changes only where an episode starts.
    step = b.step_type.reshape(M, N, T + 1)[:, 0]
    seat = np.argmin(mask, axis=1)  # [M, T+1]
    changed = seat[:, 1:] != seat[:, :-1]
    assert np.all(step[:, 1:][changed] == StepType.FIRST)
  # Over the episodes both seats and every policy of the pool take turns.
  assert set(np.concatenate(seats)) == {0, 1}
  assert set(np.concatenate(policies)) == {0, 1, 2}
  # A learner of joint episodes cannot take partners.
  qconfig = _qmix_config()
  qalgo = algorithms.make('qmix', env.spec(), qconfig)
  with pytest.raises(ValueError, match='fixed partners'):
    anakin.make_anakin(qconfig, env, qalgo, partners=pool)


def test_a_learner_with_fixed_partners_learns_their_convention():
  """On Guess, a hit needs the two actions to sum to the target: with a
  partner that always plays 1 the learner's best reply is fixed (target 1:
  play 0; target 2: play 1), and it learns it; its self-play return is not
  what it is trained on."""
  env = Guess()
  config = _ippo_config(num_envs_per_actor=16, learning_rate=3e-3)
  algo = algorithms.make('ippo', env.spec(), config)
  train = anakin.make_train(config, env, algo, num_iterations=150,
                            partners=_constant_pool([1]))
  _, metrics = jax.jit(train)(jax.random.PRNGKey(1))
  hits = np.asarray(metrics['episode_hits'])[:, 0]
  hits = hits[np.isfinite(hits)]
  # Targets cycle 0, 1, 2 through episodes of 2-4 steps (3 on average):
  # with the partner on 1, target 0 is never hit, so the best reply scores
  # about 2 hits per episode; a uniform learner about 1.25.
  assert np.mean(hits[:10]) < 1.5
  assert np.mean(hits[-10:]) > 1.8
