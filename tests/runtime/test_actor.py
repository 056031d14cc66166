"""The env loop writes sequences exactly as types.Trajectory documents them."""

import collections

import jax
import ml_collections
import numpy as np

from marl_jax.algorithms import impala
from marl_jax.envs.base import Environment
from marl_jax.runtime.actor import EnvLoop
from marl_jax.runtime.learner import init_population
from marl_jax.types import ArraySpec, EnvSpec, StepType, TimeStep


class CountingEnv(Environment):
  """Observation = (copy id, episode, t, agent); reward at t = 10*episode + t."""

  def __init__(self, copy_id, length):
    self.copy_id, self.length = copy_id, length
    self.episode, self.t = -1, 0

  def spec(self):
    return EnvSpec(num_agents=2,
                   observation={'FEATURES': ArraySpec((4,), np.float32)},
                   num_actions=3, max_episode_steps=self.length,
                   info_keys=('bonus',))

  def _ts(self, step_type, reward, discount):
    obs = [np.array([self.copy_id, self.episode, self.t, j], np.float32)
           for j in range(2)]
    return TimeStep(step_type=step_type,
                    reward=np.full((2,), reward, np.float32),
                    discount=np.float32(discount),
                    observation={'FEATURES': np.stack(obs)},
                    info={'bonus': np.ones((2,), np.float32)})

  def reset(self):
    self.episode += 1
    self.t = 0
    return self._ts(StepType.FIRST, 0., 1.)

  def step(self, actions):
    assert actions.shape == (2,)
    self.t += 1
    last = self.t == self.length
    return self._ts(StepType.LAST if last else StepType.MID,
                    10 * self.episode + self.t, 0. if last else 1.)


def _config(lstm=0):
  c = ml_collections.ConfigDict(dict(
      network=dict(observation_key='FEATURES', mlp_sizes=(8,), conv_channels=(),
                   conv_kernels=(), conv_strides=(), lstm_size=lstm,
                   use_prev_action=True, use_prev_reward=True),
      discount=0.99, sequence_length=4, batch_size=2, replay_max_size=8,
      optimizer='adam', learning_rate=1e-3, optimizer_eps=1e-5,
      rmsprop_decay=0.99, rmsprop_momentum=0., adam_b1=0.9, adam_b2=0.999,
      max_grad_norm=40., entropy_cost=0.01, baseline_cost=0.5,
      vtrace_lambda=1., clip_rho_threshold=1., clip_pg_rho_threshold=1.,
      popart=False, popart_step_size=1e-3, popart_scale_lb=1e-4,
      popart_scale_ub=1e6))
  return c


def run_loop(population_size, matchmaking, length=6, T=4, copies=3, steps=30,
             lstm=0):
  envs = [CountingEnv(i, length) for i in range(copies)]
  algo = impala.make(envs[0].spec(), _config(lstm))
  written = []
  loop = EnvLoop(envs, algo, population_size, matchmaking, T,
                 lambda m, s: written.append((m, s)), seed=0)
  state = init_population(algo, jax.random.PRNGKey(0), population_size)
  taken = loop.run(state.params, steps)
  return loop, written, taken


def test_sequences_overlap_pad_and_never_cross_episodes():
  length, T = 6, 4
  loop, written, taken = run_loop(1, 'self_play', length=length, T=T)
  assert taken == loop.env_steps == 3 * 30 - 3 * (30 // (length + 1))
  by_stream = collections.defaultdict(list)
  for member, seq in written:
    assert member == 0
    assert seq.action.shape == (T + 1,)
    obs = seq.observation['FEATURES']
    real = seq.mask > 0
    # One copy and one episode per sequence.
    assert len(set(obs[real, 0])) == 1 and len(set(obs[real, 1])) == 1
    # Padding only at the end, right after a LAST step, all zeros.
    n = int(real.sum())
    assert real[:n].all() and not real[n:].any()
    if n < T + 1:
      assert seq.step_type[n - 1] == StepType.LAST
      assert (seq.reward[n:] == 0).all() and (obs[n:] == 0).all()
    # reward[t] arrived with observation[t]: 10*episode + t (0 on FIRST).
    ep, t = obs[real, 1], obs[real, 2]
    expected = np.where(t == 0, 0., 10 * ep + t)
    np.testing.assert_array_equal(seq.reward[real], expected)
    # prev_reward is the reward of the previous step (0 after FIRST).
    np.testing.assert_array_equal(seq.prev_reward[real], expected)
    by_stream[(obs[0, 0], obs[0, 1], obs[0, 3])].append(seq)
  for seqs in by_stream.values():
    # Within an episode, sequence k+1 starts where sequence k ended.
    for a, b in zip(seqs, seqs[1:]):
      np.testing.assert_array_equal(a.observation['FEATURES'][-1],
                                    b.observation['FEATURES'][0])
      assert a.action[-1] == b.action[0]
    # Every step of a finished episode (FIRST..LAST) was written.
    steps = sorted({int(x[2]) for s in seqs
                    for x, m in zip(s.observation['FEATURES'], s.mask) if m})
    if seqs[-1].mask[-1] == 0 or seqs[-1].step_type[-1] == StepType.LAST:
      assert steps == list(range(length + 1))


def test_episode_stats_and_info_returns():
  length = 5
  loop, _, _ = run_loop(1, 'self_play', length=length, T=3, copies=2, steps=12)
  stats = loop.pop_episode_stats()
  # 12 steps with resets: each copy finished 2 episodes, 2 agents each.
  assert len(stats) == 2 * 2 * 2
  for s in stats:
    assert s['episode_length'] == length
    assert s['episode_bonus'] == length
  returns = sorted({s['episode_return'] for s in stats})
  # Episode e of a copy returns sum_t (10 e + t) = 50 e + 15.
  assert returns == [15., 65.]
  assert loop.pop_episode_stats() == []


def test_random_pairing_writes_to_each_slots_member():
  loop, written, _ = run_loop(3, 'random', length=4, T=2, copies=4, steps=40)
  members = collections.Counter(m for m, _ in written)
  assert set(members) == {0, 1, 2}
  # Self-play round-robin gives every member the same share.
  _, written_sp, _ = run_loop(2, 'self_play', length=4, T=2, copies=4, steps=40)
  counts = collections.Counter(m for m, _ in written_sp)
  assert counts[0] == counts[1]


def test_recurrent_state_saved_at_sequence_start():
  loop, written, _ = run_loop(1, 'self_play', length=6, T=4, copies=2,
                              steps=14, lstm=4)
  for _, seq in written:
    assert seq.core_state.hidden.shape == (4,)
  # Sequences that start mid-episode carry the state the actor had there.
  mids = [s for _, s in written if s.step_type[0] == StepType.MID]
  assert mids and any(np.abs(s.core_state.hidden).sum() > 0 for s in mids)


def test_get_state_set_state_round_trip():
  loop, _, _ = run_loop(2, 'random', length=5, T=3, copies=2, steps=7)
  state = loop.get_state()
  envs = [CountingEnv(i, 5) for i in range(2)]
  assert all(e.get_state() is None for e in envs)  # no env snapshot support
  algo = impala.make(envs[0].spec(), _config())
  other = EnvLoop(envs, algo, 2, 'random', 3, lambda m, s: None, seed=1)
  other.set_state(state)  # falls back to fresh episodes, keeps counters
  assert other.env_steps == loop.env_steps
  assert other.num_episodes >= loop.num_episodes


def test_learner_unroll_reproduces_behaviour_logits():
  """With the same params, unrolling a written sequence from its stored core
  state gives back the logits the actor acted with (LSTM, prev action/reward,
  resets at FIRST), so V-trace's importance ratios are exactly 1 on-policy."""
  from marl_jax.networks import AgentInput, make_actor_critic  # pylint: disable=g-import-not-at-top
  envs = [CountingEnv(i, 5) for i in range(2)]
  config = _config(lstm=4)
  algo = impala.make(envs[0].spec(), config)
  written = []
  loop = EnvLoop(envs, algo, 1, 'self_play', 4,
                 lambda m, s: written.append(s), seed=0)
  state = init_population(algo, jax.random.PRNGKey(0), 1)
  loop.run(state.params, 17)
  net = make_actor_critic(envs[0].spec(), config.network)
  params = jax.tree.map(lambda x: x[0], state.params)
  assert len(written) > 8
  for seq in written:
    add_b = lambda x: np.asarray(x)[:, None]
    inputs = AgentInput({'FEATURES': add_b(seq.observation['FEATURES'])},
                        add_b(seq.prev_action), add_b(seq.prev_reward),
                        add_b(seq.step_type))
    core = jax.tree.map(lambda x: np.asarray(x)[None], seq.core_state)
    (logits, _), _ = net.unroll(params, inputs, core)
    real = seq.mask > 0
    np.testing.assert_allclose(np.asarray(logits)[:, 0][real],
                               seq.behaviour_logits[real], rtol=1e-5, atol=1e-6)


def test_joint_episodes_hold_every_agent_of_a_whole_episode():
  import pytest  # pylint: disable=g-import-not-at-top
  from marl_jax.types import EpisodeBatch  # pylint: disable=g-import-not-at-top
  length, T = 5, 7
  envs = [CountingEnv(i, length) for i in range(2)]
  algo = impala.make(envs[0].spec(), _config())
  written = []
  loop = EnvLoop(envs, algo, 1, 'self_play', T,
                 lambda m, s: written.append((m, s)), seed=0,
                 joint_episodes=True)
  state = init_population(algo, jax.random.PRNGKey(0), 1)
  loop.run(state.params, 3 * (length + 1))
  assert len(written) == 2 * 3  # 3 whole episodes per copy
  for member, ep in written:
    assert member == 0 and isinstance(ep, EpisodeBatch)
    obs = ep.observation['FEATURES']
    assert obs.shape == (T + 1, 2, 4) and ep.action.shape == (T + 1, 2)
    assert ep.discount.shape == ep.step_type.shape == ep.mask.shape == (T + 1,)
    n = length + 1  # FIRST, then `length` steps ending with LAST
    np.testing.assert_array_equal(ep.mask, [1.] * n + [0.] * (T + 1 - n))
    assert ep.step_type[0] == StepType.FIRST
    assert ep.step_type[n - 1] == StepType.LAST and ep.discount[n - 1] == 0
    # Agent j's observation is row j; one copy and one episode per item.
    np.testing.assert_array_equal(obs[:n, :, 3], [[0, 1]] * n)
    assert len(set(obs[:n, :, 0].ravel())) == 1
    assert len(set(obs[:n, :, 1].ravel())) == 1
    t = obs[:n, 0, 2]
    expected = np.where(t == 0, 0., 10 * obs[:n, 0, 1] + t)
    np.testing.assert_array_equal(ep.reward[:n, 0], expected)
    np.testing.assert_array_equal(ep.prev_action[1:n], ep.action[:n - 1])
    assert not obs[n:].any() and not ep.reward[n:].any()
  # An episode longer than the table's T is an error, not a silent cut.
  envs = [CountingEnv(0, 9)]
  loop = EnvLoop(envs, algo, 1, 'self_play', T, lambda m, s: None, seed=0,
                 joint_episodes=True)
  with pytest.raises(ValueError, match='sequence_length'):
    loop.run(state.params, 12)


def test_actor_seeds_each_env_copy_apart():
  """Copies built from one config play different episodes (a JAX game with
  random starts: before, every copy of every actor drew from key 0), and the
  seeds are a function of the run's seed, actor and copy."""
  from configs import impala as impala_configs  # pylint: disable=g-import-not-at-top
  from marl_jax.runtime.actor import ActorNode  # pylint: disable=g-import-not-at-top

  class Source:
    def get_variables(self, known_version=-1):
      del known_version
      return 0, {}

  class Counter:
    def get_state(self):
      return dict(env_steps=0)

    def should_stop(self):
      return False

  def first_observations(actor_id, seed=0):
    config = impala_configs.get_config('jax')  # jax/meet: random positions
    config.num_envs_per_actor = 4
    config.seed = seed
    actor = ActorNode(config.to_dict(), actor_id, None, Source(), Counter())
    assert actor.setup()
    try:
      return [ts.observation for ts in actor.loop._timesteps]  # pylint: disable=protected-access
    finally:
      actor.close()

  def same(a, b):
    return all(np.array_equal(a[k], b[k]) for k in a)

  copies = first_observations(0)
  assert not any(same(copies[i], copies[j])
                 for i in range(4) for j in range(i + 1, 4))
  assert not any(same(a, b) for a, b in zip(copies, first_observations(1)))
  assert not any(same(a, b) for a, b in zip(copies, first_observations(0, 1)))
  assert all(same(a, b) for a, b in zip(copies, first_observations(0)))
