"""QMIX/VDN against numpy references, hand-worked cases and invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import qmix as qmix_configs
from marl_jax import algorithms
from marl_jax.algorithms import qmix
from marl_jax.networks import AgentInput
from marl_jax.networks.qmix import make_mixer, make_q_network
from marl_jax.types import ArraySpec, EnvSpec, EpisodeBatch, StepType

N, A, OBS, S = 3, 4, 5, 7
SPEC = EnvSpec(
    num_agents=N,
    observation={'FEATURES': ArraySpec((OBS,), np.float32),
                 'GLOBAL': ArraySpec((S,), np.float32),
                 'AGENT_ID': ArraySpec((N,), np.float32),
                 'ACTION_MASK': ArraySpec((A,), np.float32)},
    num_actions=A, max_episode_steps=10)


def _config(**overrides):
  c = qmix_configs.get_config('toy')
  c.network.observation_key = 'FEATURES'  # as algorithms.make resolves 'auto'
  c.batch_size = 4
  c.network.mlp_sizes = (16,)
  c.network.gru_size = 8
  for k, v in overrides.items():
    c[k] = v
  return c


# --------------------------------------------------------------- TD(lambda)
def random_episode_steps(rng, T, kind):
  """One stored episode: terminated or truncated at ``end``, then padding."""
  end = T - 3
  step_types = np.full(T + 1, StepType.MID, np.int32)
  step_types[0] = StepType.FIRST
  step_types[end] = StepType.LAST
  step_types[end + 1:] = 0
  discounts = np.ones(T + 1, np.float32)
  if kind == 'terminated':
    discounts[end] = 0.
  mask = np.zeros(T + 1, np.float32)
  mask[:end + 1] = 1.
  rewards = rng.normal(size=T + 1).astype(np.float32)
  rewards[0] = 0.
  return dict(rewards=rewards, discounts=discounts, step_types=step_types,
              mask=mask, next_values=rng.normal(size=T).astype(np.float32))


def numpy_lambda_return(rewards, discounts, step_types, mask, next_values,
                        gamma, lam):
  """The forward view (Sutton & Barto eq. 12.3): a (1 - lambda)-weighted mix
  of n-step returns G^(n), the last one taking the remaining weight."""
  T = len(rewards) - 1
  valid = [mask[t + 1] > 0 and step_types[t] != StepType.LAST
           for t in range(T)]
  out = np.zeros(T)
  for t in range(T):
    if not valid[t]:
      continue
    h = 0  # transitions left in the episode from t on
    while t + h < T and valid[t + h]:
      h += 1

    def n_step(n):
      g, coef = 0., 1.
      for k in range(n):
        g += coef * rewards[t + k + 1]
        coef *= gamma * discounts[t + k + 1]
      return g + coef * next_values[t + n - 1]

    total = sum((1 - lam) * lam ** (n - 1) * n_step(n) for n in range(1, h))
    out[t] = total + lam ** (h - 1) * n_step(h)
  return out, np.array(valid, np.float64)


@pytest.mark.parametrize('kind', ['terminated', 'truncated'])
@pytest.mark.parametrize('lam', [0.0, 0.6, 1.0])
def test_td_lambda_matches_numpy(kind, lam):
  rng = np.random.default_rng(0)
  for _ in range(3):
    ep = random_episode_steps(rng, 12, kind)
    ref, ref_valid = numpy_lambda_return(gamma=0.9, lam=lam, **ep)
    g, valid = qmix.td_lambda_targets(
        ep['rewards'], ep['discounts'], ep['step_types'], ep['mask'],
        ep['next_values'], discount=0.9, lambda_=lam)
    np.testing.assert_allclose(valid, ref_valid)
    np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-5)


def test_td_lambda_episode_cut_without_last_bootstraps():
  """An episode stored up to the table's limit without LAST bootstraps."""
  T = 3
  g, valid = qmix.td_lambda_targets(
      np.array([0., 1., 1., 1.]), np.ones(4), np.array([0, 1, 1, 1]),
      np.ones(4), np.array([0., 0., 10.]), discount=1.0, lambda_=1.0)
  np.testing.assert_allclose(valid, np.ones(T))
  np.testing.assert_allclose(g, [13., 12., 11.])


# ------------------------------------------------------------------ mixers
@pytest.mark.parametrize('depth,hyper_layers,layer_norm', [
    (1, 2, False), (1, 1, False), (2, 2, True), (2, 1, False)])
def test_qmix_is_monotonic_in_every_agent_utility(depth, hyper_layers,
                                                  layer_norm):
  config = _config(mixer_depth=depth, hypernet_layers=hyper_layers,
                   mixer_layer_norm=layer_norm)
  mixer = make_mixer('qmix', N, S, config)
  rng = np.random.default_rng(depth * 10 + hyper_layers)
  for seed in range(3):
    params = mixer.init(jax.random.PRNGKey(seed))
    q = rng.normal(size=(64, N)).astype(np.float32) * 5
    s = rng.normal(size=(64, S)).astype(np.float32) * 3
    grads = jax.vmap(jax.grad(lambda qi, si: mixer.apply(params, qi, si)))(
        q, s)
    assert grads.shape == (64, N)
    assert np.all(np.asarray(grads) >= 0.)
    assert np.any(np.asarray(grads) > 0.)
    # The mixer is not additive: it depends on the state.
    q_tot = mixer.apply(params, np.tile(q[:1], (64, 1)), s)
    assert np.std(np.asarray(q_tot)) > 1e-3


def numpy_qmix(params, q, s):
  """QMIX's mixer (Rashid et al., 2018, eqs. 4-5, PyMARL2's 2-layer
  hypernetworks) in numpy, from the haiku parameters: Q_tot = |W_2(s)|^T
  elu(|W_1(s)|^T q + b_1(s)) + V(s)."""
  p = jax.tree.map(np.asarray, params)
  lin = lambda name, x: x @ p[name]['w'] + p[name]['b']
  relu = lambda x: np.maximum(x, 0.)
  elu = lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.)))
  w1 = np.abs(lin('hyper_w_1/linear_1', relu(lin('hyper_w_1/linear', s))))
  w1 = w1.reshape(N, -1)
  b1 = lin('hyper_b_1', s)
  w2 = np.abs(lin('hyper_w_final/linear_1',
                  relu(lin('hyper_w_final/linear', s))))
  v = lin('hyper_v_out', relu(lin('hyper_v_hidden', s)))[0]
  return elu(q @ w1 + b1) @ w2 + v


def test_qmix_mixer_matches_numpy_at_hand_picked_states():
  mixer = make_mixer('qmix', N, S, _config())
  params = mixer.init(jax.random.PRNGKey(3))
  q = np.array([[0.5, -1., 2.], [0., 0., 0.], [3., 1., -2.]], np.float32)
  s = np.array([np.linspace(-1., 1., S), np.zeros(S), np.eye(S)[2]],
               np.float32)
  got = np.asarray(mixer.apply(params, q, s))
  want = [numpy_qmix(params, qi, si) for qi, si in zip(q, s)]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_qmix_loss_mixes_q_t_with_state_t_and_bootstraps_with_state_t1():
  """Q_tot(s_t, a_t) uses the state of step t and the target the state of
  step t + 1 (each step's state differs here), recomputed in numpy."""
  config = _config(td_lambda=0.0, discount=0.9, target_update_interval=1000)
  algo = algorithms.make('qmix', SPEC, config)
  state = algo.init(jax.random.PRNGKey(0))
  target = algo.init(jax.random.PRNGKey(1)).params
  state = state._replace(extras={**state.extras, 'target': target})
  rng = np.random.default_rng(4)
  B, T = 3, 8
  batch = random_episodes(rng, B, T)
  _, metrics = algo.update(state, batch)

  net = make_q_network(SPEC, config.network, True)

  q_online = _agent_qs(net, state.params['agent'], batch)
  q_target = _agent_qs(net, target['agent'], batch)
  state_t = batch.observation['GLOBAL'][:, :, 0]
  taken = np.take_along_axis(q_online, batch.action[..., None], -1)[..., 0]
  greedy = np.argmax(q_online, axis=-1)
  nxt = np.take_along_axis(q_target, greedy[..., None], -1)[..., 0]
  q_tot, g, count = 0., 0., 0
  for b in range(B):
    for t in range(T):
      if batch.mask[b, t + 1] and batch.step_type[b, t] != StepType.LAST:
        q_tot += numpy_qmix(state.params['mixer'], taken[b, t],
                            state_t[b, t])
        g += (batch.reward[b, t + 1].mean() + 0.9 * batch.discount[b, t + 1]
              * numpy_qmix(target['mixer'], nxt[b, t + 1], state_t[b, t + 1]))
        count += 1
  np.testing.assert_allclose(metrics['q_taken_mean'], q_tot / count,
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(metrics['target_mean'], g / count, rtol=1e-4,
                             atol=1e-5)


def test_vdn_is_the_sum():
  mixer = make_mixer('vdn', N, S, _config())
  q = np.random.default_rng(0).normal(size=(2, 5, N)).astype(np.float32)
  np.testing.assert_allclose(mixer.apply(mixer.init(None), q, None),
                             q.sum(-1), rtol=1e-6)


# --------------------------------------------------------- acting schedule
def test_epsilon_schedule_endpoints():
  config = _config(epsilon_start=1.0, epsilon_finish=0.05,
                   epsilon_anneal_steps=1000)
  algo = algorithms.make('qmix', SPEC, config)
  params = algo.init(jax.random.PRNGKey(0)).params
  eps = lambda steps: float(algo.acting_params(params, steps)['epsilon'])
  assert eps(0) == pytest.approx(1.0)
  assert eps(500) == pytest.approx(0.525)
  assert eps(1000) == pytest.approx(0.05)
  assert eps(10 ** 7) == pytest.approx(0.05)
  # The schedule is pure: it jits on a traced step count.
  assert float(jax.jit(lambda s: algo.acting_params(params, s)['epsilon'])(
      250)) == pytest.approx(1.0 - 0.95 / 4)


def _inputs(rng, rows, mask):
  obs = {'FEATURES': rng.normal(size=(rows, OBS)).astype(np.float32),
         'GLOBAL': rng.normal(size=(rows, S)).astype(np.float32),
         'AGENT_ID': np.eye(N, dtype=np.float32)[np.arange(rows) % N],
         'ACTION_MASK': mask}
  return AgentInput(obs, jnp.zeros(rows, jnp.int32), jnp.zeros(rows),
                    jnp.ones(rows, jnp.int32))


def test_act_is_epsilon_greedy_over_available_actions():
  algo = algorithms.make('qmix', SPEC, _config())
  params = algo.init(jax.random.PRNGKey(0)).params
  rng = np.random.default_rng(0)
  rows = 300
  mask = np.tile(np.array([[1, 0, 1, 1]], np.float32), (rows, 1))
  x = _inputs(rng, rows, mask)
  core = algo.initial_core_state(rows)
  greedy, extras, _ = algo.act(params, x, core, jax.random.PRNGKey(1), True)
  q = np.asarray(extras.logits)
  np.testing.assert_array_equal(
      greedy, np.argmax(np.where(mask > 0, q, -np.inf), axis=-1))
  assert not np.any(np.asarray(greedy) == 1)
  p0 = {**params, 'epsilon': jnp.float32(0.)}
  a0, _, _ = algo.act(p0, x, core, jax.random.PRNGKey(2))
  np.testing.assert_array_equal(a0, greedy)
  p1 = {**params, 'epsilon': jnp.float32(1.)}
  a1, _, _ = algo.act(p1, x, core, jax.random.PRNGKey(3))
  counts = np.bincount(np.asarray(a1), minlength=A)
  assert counts[1] == 0 and np.all(counts[[0, 2, 3]] > 60)


# ----------------------------------------------------------------- updates
def random_episodes(rng, B, T, action_mask=None):
  eps = [random_episode_steps(rng, T, 'terminated' if b % 2 else 'truncated')
         for b in range(B)]
  stack = lambda k: np.stack([e[k] for e in eps])
  mask = stack('mask')
  if action_mask is None:
    action_mask = np.ones((B, T + 1, N, A), np.float32)
  return EpisodeBatch(
      observation={
          'FEATURES': rng.normal(size=(B, T + 1, N, OBS)).astype(np.float32),
          'GLOBAL': np.repeat(rng.normal(size=(B, T + 1, 1, S)), N,
                              axis=2).astype(np.float32),
          'AGENT_ID': np.broadcast_to(np.eye(N, dtype=np.float32),
                                      (B, T + 1, N, N)).copy(),
          'ACTION_MASK': action_mask},
      prev_action=rng.integers(0, A, size=(B, T + 1, N)).astype(np.int32),
      action=rng.integers(0, A, size=(B, T + 1, N)).astype(np.int32),
      reward=np.repeat(stack('rewards')[:, :, None], N, axis=2),
      discount=stack('discounts'), step_type=stack('step_types'), mask=mask,
      weight=np.ones((B,), np.float32))



def _agent_qs(net, params, batch):
  """Every agent's Q-values ``[B, T + 1, N, A]`` on ``batch``: the agent
  network unrolled over each episode's ``B * N`` agent rows."""
  B, T1 = batch.step_type.shape[:2]
  rows = lambda x: np.swapaxes(x, 0, 1).reshape((T1, B * N) + x.shape[3:])
  st = np.broadcast_to(batch.step_type[:, :, None], (B, T1, N))
  x = AgentInput({k: rows(v) for k, v in batch.observation.items()},
                 rows(batch.prev_action), rows(np.zeros((B, T1, N))), rows(st))
  q, _ = net.unroll(params, x, net.initial_state(B * N))
  return np.swapaxes(np.asarray(q).reshape(T1, B, N, A), 0, 1)

def _junk_in_padding(batch, rng):
  pad = batch.mask == 0
  last = batch.step_type == StepType.LAST

  def junk(x, where):
    x = np.array(x)
    noise = (rng.integers(0, A, size=x.shape).astype(x.dtype)
             if x.dtype.kind == 'i' else
             rng.normal(size=x.shape).astype(x.dtype) * 100)
    w = where.reshape(where.shape + (1,) * (x.ndim - 2))
    return np.where(w, noise, x)

  obs = dict(batch.observation)
  for k in ('FEATURES', 'GLOBAL'):
    obs[k] = junk(obs[k], pad)
  return batch._replace(observation=obs, reward=junk(batch.reward, pad),
                        discount=junk(batch.discount, pad),
                        action=junk(batch.action, pad | last),
                        prev_action=junk(batch.prev_action, pad))


@pytest.mark.parametrize('algo_name,overrides', [
    ('qmix', {}), ('vdn', {'standardise_rewards': True}),
    ('qmix', {'mixer_depth': 2, 'mixer_layer_norm': True, 'double_q': False})])
def test_padding_and_placeholders_change_nothing(algo_name, overrides):
  algo = algorithms.make(algo_name, SPEC, _config(**overrides))
  state = algo.init(jax.random.PRNGKey(0))
  rng = np.random.default_rng(1)
  batch = random_episodes(rng, 4, 10)
  update = jax.jit(algo.update)
  s1, m1 = update(state, batch)
  s2, m2 = update(state, _junk_in_padding(batch, rng))
  for k in m1:
    np.testing.assert_allclose(m1[k], m2[k], rtol=1e-5, atol=1e-6, err_msg=k)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                       atol=1e-6),
               s1.params, s2.params)
  assert m1['priorities'].shape == (4,)
  assert np.all(np.asarray(m1['priorities']) > 0)


@pytest.mark.parametrize('scale', [1.0, 10.0])
def test_targets_use_the_masked_double_q_argmax(scale):
  """VDN, lambda 0: G_t = c r + gamma d sum_i Q^-_i(o', argmax_{available}
  Q_i(o', .)), recomputed here from the agent network's own outputs, with
  the reward scale c."""
  config = _config(td_lambda=0.0, discount=0.9, target_update_interval=1000,
                   reward_scale=scale)
  algo = algorithms.make('vdn', SPEC, config)
  state = algo.init(jax.random.PRNGKey(0))
  # A different target network, as after some training.
  target = algo.init(jax.random.PRNGKey(1)).params
  state = state._replace(extras={**state.extras, 'target': target})
  rng = np.random.default_rng(2)
  B, T = 4, 10
  avail = (rng.random((B, T + 1, N, A)) < 0.5).astype(np.float32)
  avail[..., 0] = 1.
  batch = random_episodes(rng, B, T, avail)
  _, metrics = algo.update(state, batch)

  net = make_q_network(SPEC, config.network, True)

  q_online = _agent_qs(net, state.params['agent'], batch)
  q_target = _agent_qs(net, target['agent'], batch)
  chosen = np.argmax(np.where(avail > 0, q_online, -np.inf), axis=-1)
  v = np.take_along_axis(q_target, chosen[..., None], -1)[..., 0].sum(-1)
  total, count = 0., 0
  for b in range(B):
    for t in range(T):
      if batch.mask[b, t + 1] and batch.step_type[b, t] != StepType.LAST:
        total += (scale * batch.reward[b, t + 1].mean() +
                  0.9 * batch.discount[b, t + 1] * v[b, t + 1])
        count += 1
  np.testing.assert_allclose(metrics['target_mean'], total / count,
                             rtol=1e-4, atol=1e-5)


def test_importance_weights_scale_the_loss():
  algo = algorithms.make('qmix', SPEC, _config())
  state = algo.init(jax.random.PRNGKey(0))
  batch = random_episodes(np.random.default_rng(3), 4, 10)
  _, m1 = algo.update(state, batch)
  _, m_half = algo.update(state, batch._replace(
      weight=np.full((4,), 0.5, np.float32)))
  np.testing.assert_allclose(m_half['loss'], 0.5 * m1['loss'], rtol=1e-5)
  np.testing.assert_allclose(m_half['priorities'], m1['priorities'],
                             rtol=1e-5)


def test_hard_and_soft_target_updates():
  batch = random_episodes(np.random.default_rng(4), 4, 10)
  algo = algorithms.make('qmix', SPEC, _config(target_update='hard',
                                               target_update_interval=3))
  update = jax.jit(algo.update)
  state = algo.init(jax.random.PRNGKey(0))
  initial = state.params
  for k in range(1, 4):
    state, _ = update(state, batch)
    target = state.extras['target']
    if k < 3:
      jax.tree.map(np.testing.assert_array_equal, target, initial)
    else:
      jax.tree.map(np.testing.assert_array_equal, target, state.params)

  tau = 0.25
  algo = algorithms.make('qmix', SPEC, _config(target_update='soft',
                                               target_tau=tau))
  state = algo.init(jax.random.PRNGKey(0))
  old_target = state.extras['target']
  new, _ = jax.jit(algo.update)(state, batch)
  jax.tree.map(lambda t, p, o: np.testing.assert_allclose(
      t, tau * p + (1 - tau) * o, rtol=1e-6, atol=1e-7),
               new.extras['target'], new.params, old_target)


def test_cosine_learning_rate_schedule():
  algo = algorithms.make('qmix', SPEC, _config(
      lr_schedule='cosine', lr_decay_updates=4, lr_min_ratio=0.0,
      learning_rate=1e-3))
  state = algo.init(jax.random.PRNGKey(0))
  batch = random_episodes(np.random.default_rng(5), 4, 10)
  lrs = []
  update = jax.jit(algo.update)
  for _ in range(5):
    state, m = update(state, batch)
    lrs.append(float(m['learning_rate']))
  np.testing.assert_allclose(
      lrs, [1e-3 * 0.5 * (1 + np.cos(np.pi * k / 4)) for k in range(5)],
      rtol=1e-5, atol=1e-9)


def test_config_errors_are_named():
  with pytest.raises(ValueError, match='target_update'):
    algorithms.make('qmix', SPEC, _config(target_update='sometimes'))
  no_global = SPEC._replace(observation={
      k: v for k, v in SPEC.observation.items() if k != 'GLOBAL'})
  with pytest.raises(ValueError, match='global_state'):
    algorithms.make('qmix', no_global, _config())
  algorithms.make('vdn', no_global, _config())  # VDN needs no state.
  with pytest.raises(ValueError, match='max_episode_steps'):
    algorithms.make('qmix', SPEC._replace(max_episode_steps=None), _config())
  table = algorithms.make('qmix', SPEC, _config()).replay_table
  assert table.joint and table.item == 'episode'
  assert table.sequence_length == 10


# ------------------------------------------------------------ loss scale
def test_td_loss_and_gradient_are_pymarl2s_half_squared_error():
  """L = sum valid w 0.5 delta^2 / sum valid (PyMARL2's NQLearner), so
  dL/dQ_tot = valid w delta / sum valid: numpy, by hand."""
  rng = np.random.default_rng(7)
  B, T = 3, 6
  q_tot = rng.normal(size=(B, T)).astype(np.float32)
  targets = rng.normal(size=(B, T)).astype(np.float32)
  valid = (rng.random((B, T)) < 0.7).astype(np.float32)
  weight = rng.uniform(0.2, 1., size=B).astype(np.float32)
  delta = (q_tot - targets).astype(np.float64)
  n = valid.sum()
  loss = lambda q: qmix.td_loss(q, targets, valid, weight).loss
  np.testing.assert_allclose(
      loss(q_tot), np.sum(valid * weight[:, None] * 0.5 * delta ** 2) / n,
      rtol=1e-5)
  np.testing.assert_allclose(jax.grad(loss)(q_tot),
                             valid * weight[:, None] * delta / n, rtol=1e-5,
                             atol=1e-7)
  # No gradient flows into the targets.
  np.testing.assert_allclose(jax.grad(lambda g: qmix.td_loss(
      q_tot, g, valid, weight).loss)(targets), 0.)


def test_update_loss_is_half_the_weighted_mean_squared_td_error():
  """VDN, lambda 0: the update's loss is 0.5 sum_b w_b sum_t (Q_tot - G)^2
  over valid transitions / their number, with Q_tot and G recomputed here."""
  config = _config(td_lambda=0.0, discount=0.9, target_update_interval=1000)
  algo = algorithms.make('vdn', SPEC, config)
  state = algo.init(jax.random.PRNGKey(0))
  target = algo.init(jax.random.PRNGKey(1)).params
  state = state._replace(extras={**state.extras, 'target': target})
  rng = np.random.default_rng(8)
  B, T = 4, 10
  batch = random_episodes(rng, B, T)
  batch = batch._replace(weight=rng.uniform(0.2, 1., size=B).astype(
      np.float32))
  _, metrics = jax.jit(algo.update)(state, batch)

  net = make_q_network(SPEC, config.network, True)
  q_online = _agent_qs(net, state.params['agent'], batch)
  q_target = _agent_qs(net, target['agent'], batch)
  q_tot = np.take_along_axis(q_online, batch.action[..., None],
                             -1)[..., 0].sum(-1)
  chosen = np.argmax(q_online, axis=-1)
  v = np.take_along_axis(q_target, chosen[..., None], -1)[..., 0].sum(-1)
  total, count = 0., 0
  for b in range(B):
    for t in range(T):
      if batch.mask[b, t + 1] and batch.step_type[b, t] != StepType.LAST:
        g = (batch.reward[b, t + 1].mean() +
             0.9 * batch.discount[b, t + 1] * v[b, t + 1])
        total += batch.weight[b] * 0.5 * (q_tot[b, t] - g) ** 2
        count += 1
  np.testing.assert_allclose(metrics['loss'], total / count, rtol=1e-4)
