"""The environment loop (an actor node): M env copies, all their agents.

Every step, one jitted, vmapped ``act`` chooses the actions of every agent slot
of every copy, each slot with the params of the population member that
matchmaking assigned to it for the episode. Experience is cut into sequences of
``T + 1`` steps per (copy, slot), consecutive sequences overlapping by one step
(Acme's sequence adder for IMPALA). A sequence never crosses an episode's end:
it is zero-padded after the ``LAST`` step (``mask`` 0), so every sequence
belongs to exactly one member and is written to that member's replay.

For centralised learners (QMIX, VDN: a ``TableSpec`` whose ``item`` is
``'episode'``) the loop writes whole episodes instead: one
``EpisodeBatch`` item per episode and env copy, all agents together,
zero-padded to ``T + 1`` steps.

``ActorNode`` is the distributed program's actor around an ``EnvLoop``: it
pulls params from the learner every ``variable_update_period`` env steps,
writes the loop's sequences to the replay node and reports its episodes to
the counter.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from marl_jax.algorithms.base import Algorithm
from marl_jax.algorithms.acting import make_slot_act
from marl_jax.envs.base import Environment
from marl_jax.networks import AgentInput
from marl_jax.population import matchmaking
from marl_jax.runtime import node_process
from marl_jax.types import EpisodeBatch, TimeStep, Trajectory

Writer = Callable[[int, Trajectory], None]

_RECORD_FIELDS = ('prev_action', 'prev_reward', 'action', 'reward', 'discount',
                  'step_type', 'behaviour_logits')


def _stack_obs(timesteps: Sequence[TimeStep]) -> Dict[str, np.ndarray]:
  keys = timesteps[0].observation.keys()
  return {k: np.stack([ts.observation[k] for ts in timesteps]) for k in keys}


class EnvLoop:
  """Steps M environment copies with a population's policies.

  Args:
    envs: the M environment copies (same spec).
    algorithm: provides ``act`` and ``initial_core_state``.
    population_size: P.
    matchmaking: name in ``population.matchmaking.MATCHMAKERS``.
    sequence_length: T.
    writer: ``writer(member, sequence)`` receives each finished sequence.
    seed: seeds the matchmaking generator and the acting key.
    device: where acting runs (default: the first local device).
    num_frozen: extra, frozen policies after the population in ``params``
      (fictitious self-play snapshots): member ids ``>= population_size``
      act but are never written to the replay nor counted in episode stats.
    joint_episodes: write whole episodes of all agents (``EpisodeBatch``, at
      most ``sequence_length`` steps) rather than per-agent sequences; every
      slot of an episode must be played by the same member (self-play).
    partners: a ``runtime.partners.Pool`` of fixed training partners: in
      every episode of every copy one slot, drawn at random, is played by a
      policy drawn from the pool (acting with the pool's own algorithm and
      recurrent state); that slot is never written nor counted.
  """

  def __init__(self, envs: Sequence[Environment], algorithm: Algorithm,
               population_size: int, matchmaking_name: str,
               sequence_length: int, writer: Writer, seed: int,
               device: Optional[jax.Device] = None, num_frozen: int = 0,
               joint_episodes: bool = False, partners=None):
    if not envs:
      raise ValueError('EnvLoop needs at least one environment copy.')
    if sequence_length <= 0:
      raise ValueError(f'sequence_length must be positive, got {sequence_length}.')
    self._envs = list(envs)
    self._spec = self._envs[0].spec()
    self._algorithm = algorithm
    self._population_size = population_size
    self._matchmaker = matchmaking.get(matchmaking_name)
    self._psro = matchmaking_name == 'psro'
    self._T = sequence_length
    self._writer = writer
    self._device = device or jax.local_devices()[0]
    self._info_keys = tuple(self._spec.info_keys)

    M, N = len(self._envs), self._spec.num_agents
    self._M, self._N = M, N
    self._rng = np.random.default_rng(seed)
    self._key = jax.device_put(jax.random.PRNGKey(seed), self._device)

    self._act = make_slot_act(algorithm, population_size + num_frozen)
    self._joint = joint_episodes
    self._acting_params = None
    if algorithm.acting_params is not None:
      # E.g. QMIX's epsilon schedule: acting params depend on env steps.
      self._acting_params = jax.jit(
          jax.vmap(algorithm.acting_params, in_axes=(0, None)))
    self._partners = partners
    if partners is not None:
      if joint_episodes:
        raise ValueError('Fixed partners cannot play in joint episodes.')
      self._partner_act = make_slot_act(partners.algorithm, partners.size)
      self._partner_params = jax.device_put(partners.params, self._device)
    self.num_snapshots = 0  # how many of the frozen slots hold a policy
    # PSRO's meta-strategy over those slots, set by the PSRO loop.
    self.snapshot_weights: Optional[np.ndarray] = None

    # Counters.
    self.env_steps = 0
    self.num_episodes = 0
    self._episode_stats: List[Dict[str, Any]] = []
    self._start_all_episodes()

  @property
  def spec(self):
    """The environments' ``EnvSpec``."""
    return self._spec

  # ---------------------------------------------------------------- episodes
  def _new_members(self) -> np.ndarray:
    kwargs = {}
    if self._psro:
      kwargs['snapshot_weights'] = self.snapshot_weights
    ids = self._matchmaker(self._rng, self.num_episodes, self._N,
                           self._population_size,
                           num_snapshots=self.num_snapshots, **kwargs)
    self.num_episodes += 1
    return ids

  def _start_all_episodes(self) -> None:
    M, N = self._M, self._N
    self._timesteps = [env.reset() for env in self._envs]
    self._members = np.stack([self._new_members() for _ in range(M)])
    # The partner's slot and pool policy per copy (-1: no partner).
    self._partner_seat = np.full((M,), -1, np.int64)
    self._partner_policy = np.zeros((M,), np.int64)
    if self._partners is not None:
      for i in range(M):
        self._draw_partner(i)
      self._partner_core = jax.device_put(
          self._partners.algorithm.initial_core_state(M), self._device)
    self._core = jax.device_put(self._algorithm.initial_core_state(M * N),
                                self._device)
    self._prev_action = np.zeros((M, N), np.int32)
    self._prev_reward = np.zeros((M, N), np.float32)
    self._returns = np.zeros((M, N), np.float64)
    self._info_returns = {k: np.zeros((M, N), np.float64)
                          for k in self._info_keys}
    self._episode_length = np.zeros((M,), np.int64)
    self._buffers: List[List[Dict[str, Any]]] = [[] for _ in range(M)]
    self._seq_core: List[Any] = [None] * M
    self._seq_version = np.zeros((M,), np.int32)

  def _draw_partner(self, i: int) -> None:
    if self._partners is not None:
      self._partner_seat[i] = self._rng.integers(self._N)
      self._partner_policy[i] = self._rng.integers(self._partners.size)

  def _learns_from(self, i: int, j: int) -> bool:
    """Whether slot ``j`` of copy ``i`` is a learning member's."""
    return (self._members[i, j] < self._population_size and
            j != self._partner_seat[i])

  def pop_episode_stats(self) -> List[Dict[str, Any]]:
    """Episodes finished since the last call: member, return, length, info."""
    stats, self._episode_stats = self._episode_stats, []
    return stats

  # ------------------------------------------------------------------ acting
  def _inputs(self):
    """The flattened ``[M * N]`` policy inputs, and the stacked observations."""
    M, N = self._M, self._N
    obs = _stack_obs(self._timesteps)  # [M, N, ...]
    step_type = np.array([int(ts.step_type) for ts in self._timesteps],
                         np.int32)
    flat = lambda x: x.reshape((M * N,) + x.shape[2:])
    return AgentInput(
        observation={k: flat(v) for k, v in obs.items()},
        prev_action=flat(self._prev_action),
        prev_reward=flat(self._prev_reward),
        step_type=np.repeat(step_type, N)), obs, step_type

  def run(self, params, num_steps: int, policy_version: int = 0,
          total_env_steps: Optional[int] = None) -> int:
    """Takes ``num_steps`` steps in every copy; returns env steps taken.

    Args:
      params: the population's params, ``[P, ...]`` leaves.
      num_steps: vectorised steps (each steps all M copies once).
      policy_version: the learner step that produced ``params``.
      total_env_steps: the run's env steps so far, for env schedules
        (defaults to this loop's own count).
    """
    M, N = self._M, self._N
    taken = 0
    if self._acting_params is not None:
      params = self._acting_params(
          params, jnp.asarray(self.env_steps if total_env_steps is None
                              else total_env_steps, jnp.float32))
    for _ in range(num_steps):
      progress = self.env_steps if total_env_steps is None else (
          total_env_steps + taken)
      for env in self._envs:
        env.set_training_progress(progress)
      inputs, obs, step_type = self._inputs()
      self._key, sub = jax.random.split(self._key)
      core_in = self._core
      action, extras, self._core = self._act(
          params, jnp.asarray(self._members.reshape(-1)), inputs, core_in, sub,
          greedy=False)
      action = np.asarray(action).reshape(M, N)
      if self._partners is not None:
        action = self._partner_actions(inputs, action)
      logits = np.asarray(extras.logits).reshape(M, N, -1)
      core_in_np = None

      for i in range(M):
        ts = self._timesteps[i]
        buf = self._buffers[i]
        if not buf:
          if core_in_np is None:
            core_in_np = jax.tree.map(np.asarray, core_in)
          self._seq_core[i] = jax.tree.map(lambda x: x[i * N:(i + 1) * N],
                                           core_in_np)
          self._seq_version[i] = policy_version
        buf.append(dict(
            observation={k: v[i] for k, v in obs.items()},
            prev_action=self._prev_action[i].copy(),
            prev_reward=self._prev_reward[i].copy(),
            action=action[i],
            reward=np.asarray(ts.reward, np.float32),
            discount=np.full((N,), ts.discount, np.float32),
            step_type=np.full((N,), step_type[i], np.int32),
            behaviour_logits=logits[i]))
        if ts.last():
          if self._joint:
            self._emit_episode(i)
          elif len(buf) > 1:
            self._emit(i)
          self._buffers[i] = []
          self._end_episode(i)
          self._timesteps[i] = self._envs[i].reset()
          self._members[i] = self._new_members()
          self._draw_partner(i)
          self._prev_action[i] = 0
          self._prev_reward[i] = 0.
        else:
          if self._joint and len(buf) > self._T:
            raise ValueError(
                f'An episode ran past {self._T} steps, the length of the '
                'episode table: set sequence_length to at least the '
                "environment's max_episode_steps.")
          if not self._joint and len(buf) == self._T + 1:
            self._emit(i)
            self._buffers[i] = [buf[-1]]
            if core_in_np is None:
              core_in_np = jax.tree.map(np.asarray, core_in)
            self._seq_core[i] = jax.tree.map(lambda x: x[i * N:(i + 1) * N],
                                             core_in_np)
            self._seq_version[i] = policy_version
          new_ts = self._envs[i].step(action[i])
          self._timesteps[i] = new_ts
          self._prev_action[i] = action[i]
          self._prev_reward[i] = new_ts.reward
          self._returns[i] += new_ts.reward
          for k in self._info_keys:
            self._info_returns[k][i] += new_ts.info[k]
          self._episode_length[i] += 1
          taken += 1
    self.env_steps += taken
    return taken

  def _partner_actions(self, inputs, action: np.ndarray) -> np.ndarray:
    """``action`` with each copy's partner slot played by its pool policy."""
    M, N = self._M, self._N
    rows = np.arange(M) * N + self._partner_seat
    partner_inputs = jax.tree.map(lambda x: np.asarray(x)[rows], inputs)
    self._key, sub = jax.random.split(self._key)
    chosen, _, self._partner_core = self._partner_act(
        self._partner_params, jnp.asarray(self._partner_policy, jnp.int32),
        partner_inputs, self._partner_core, sub, greedy=False)
    action = action.copy()
    action[np.arange(M), self._partner_seat] = np.asarray(chosen)
    return action

  def _end_episode(self, i: int) -> None:
    for j in range(self._N):
      if not self._learns_from(i, j):
        continue  # a frozen snapshot or a fixed partner: not learning
      self._episode_stats.append(dict(
          member=int(self._members[i, j]),
          episode_return=float(self._returns[i, j]),
          episode_length=int(self._episode_length[i]),
          **{f'episode_{k}': float(self._info_returns[k][i, j])
             for k in self._info_keys}))
    self._returns[i] = 0.
    for k in self._info_keys:
      self._info_returns[k][i] = 0.
    self._episode_length[i] = 0

  def _emit(self, i: int) -> None:
    """Writes the buffered sequence of copy ``i``, one per agent slot."""
    buf = self._buffers[i]
    length, pad = len(buf), self._T + 1 - len(buf)

    def stacked(get):
      x = np.stack([get(r) for r in buf], axis=1)  # [N, len, ...]
      if pad:
        x = np.concatenate([x, np.zeros(x.shape[:1] + (pad,) + x.shape[2:],
                                        x.dtype)], axis=1)
      return x

    fields = {f: stacked(lambda r, f=f: r[f]) for f in _RECORD_FIELDS}
    observation = {k: stacked(lambda r, k=k: r['observation'][k])
                   for k in buf[0]['observation']}
    mask = np.zeros((self._T + 1,), np.float32)
    mask[:length] = 1.
    for j in range(self._N):
      if not self._learns_from(i, j):
        continue  # frozen snapshots and fixed partners are not learned from
      seq = Trajectory(
          observation={k: v[j] for k, v in observation.items()},
          mask=mask, core_state=jax.tree.map(lambda x: x[j], self._seq_core[i]),
          policy_version=np.int32(self._seq_version[i]),
          **{f: v[j] for f, v in fields.items()})
      self._writer(int(self._members[i, j]), seq)

  def _emit_episode(self, i: int) -> None:
    """Writes copy ``i``'s finished episode, all agents, as one item."""
    buf = self._buffers[i]
    members = self._members[i]
    if np.any(members != members[0]):
      raise ValueError(
          'Whole-episode tables (QMIX, VDN) need every agent slot of an '
          f'episode played by one member; matchmaking gave {members.tolist()}. '
          'Use matchmaking=self_play.')
    if members[0] >= self._population_size:
      return
    length, pad = len(buf), self._T + 1 - len(buf)

    def stacked(get):
      x = np.stack([get(r) for r in buf])  # [len, ...]
      if pad:
        x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
      return x

    mask = np.zeros((self._T + 1,), np.float32)
    mask[:length] = 1.
    item = EpisodeBatch(
        observation={k: stacked(lambda r, k=k: r['observation'][k])
                     for k in buf[0]['observation']},
        prev_action=stacked(lambda r: r['prev_action']),
        action=stacked(lambda r: r['action']),
        reward=stacked(lambda r: r['reward']),
        discount=stacked(lambda r: r['discount'][0]),
        step_type=stacked(lambda r: r['step_type'][0]),
        mask=mask, weight=np.float32(1.))
    self._writer(int(members[0]), item)

  # ------------------------------------------------------ exact resume state
  def get_state(self) -> Dict[str, Any]:
    env_states = [env.get_state() for env in self._envs]
    if any(s is None for s in env_states):
      env_states = None
    return dict(
        env_states=env_states,
        timesteps=copy.deepcopy(self._timesteps),
        members=self._members.copy(),
        core=jax.tree.map(np.asarray, self._core),
        prev_action=self._prev_action.copy(),
        prev_reward=self._prev_reward.copy(),
        returns=self._returns.copy(),
        info_returns={k: v.copy() for k, v in self._info_returns.items()},
        episode_length=self._episode_length.copy(),
        buffers=copy.deepcopy(self._buffers),
        seq_core=copy.deepcopy(self._seq_core),
        seq_version=self._seq_version.copy(),
        rng=self._rng.bit_generator.state,
        key=np.asarray(self._key),
        env_steps=self.env_steps,
        num_episodes=self.num_episodes,
        num_snapshots=self.num_snapshots,
        partner_seat=self._partner_seat.copy(),
        partner_policy=self._partner_policy.copy(),
        partner_core=(None if self._partners is None else
                      jax.tree.map(np.asarray, self._partner_core)),
        episode_stats=list(self._episode_stats))

  def set_state(self, state: Dict[str, Any]) -> None:
    self._rng.bit_generator.state = state['rng']
    self._key = jax.device_put(jnp.asarray(state['key']), self._device)
    self.env_steps = state['env_steps']
    self.num_episodes = state['num_episodes']
    self.num_snapshots = state.get('num_snapshots', 0)
    if state['env_states'] is None or len(state['env_states']) != self._M:
      logging.warning('The environments cannot save their state (or the number '
                      'of copies changed): the resumed run starts new episodes.')
      self._start_all_episodes()
      return
    for env, s in zip(self._envs, state['env_states']):
      env.set_state(s)
    self._timesteps = state['timesteps']
    self._members = state['members']
    self._core = jax.device_put(state['core'], self._device)
    self._prev_action = state['prev_action']
    self._prev_reward = state['prev_reward']
    self._returns = state['returns']
    self._info_returns = state['info_returns']
    self._episode_length = state['episode_length']
    self._buffers = state['buffers']
    self._seq_core = state['seq_core']
    self._seq_version = state['seq_version']
    self._episode_stats = state['episode_stats']
    if self._partners is not None and state.get('partner_core') is not None:
      self._partner_seat = state['partner_seat']
      self._partner_policy = state['partner_policy']
      self._partner_core = jax.device_put(state['partner_core'], self._device)


class ActorNode:
  """An env loop over M copies (``EnvLoop``), writing to the replay.

  ``run()`` (the ``local`` and ``ray`` launchers) is ``setup()`` and then
  ``step()`` until the program stops; the ``single`` launcher calls ``step()``
  itself. Under fictitious self-play and PSRO (``single`` only) the variable
  source's params hold ``fsp_pool_size`` frozen snapshots after the
  population's members.
  """

  def __init__(self, config_dict, actor_id: int, replay, learner, counter):
    self._config = ml_collections.ConfigDict(config_dict)
    self._actor_id = actor_id
    self._replay = replay
    self._learner = learner
    self._counter = counter
    self.loop = None

  def setup(self) -> bool:
    """Builds the envs and the loop, and waits for the first params.

    False if the program stopped before any params were published."""
    from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
    from marl_jax.runtime import partners as partners_lib  # pylint: disable=g-import-not-at-top

    config = self._config
    self._envs = [algorithms.make_env(config)
                  for _ in range(config.num_envs_per_actor)]
    # Each copy its own seed (copies built from one config would otherwise
    # play the same episodes), a function of the run's seed and the copy.
    for i, env in enumerate(self._envs):
      env.reseed(int(np.random.default_rng(
          [config.seed, 3, self._actor_id, i, node_process.restarts()]
      ).integers(2**31 - 1)))
    try:
      spec = self._envs[0].spec()
      algorithm = algorithms.make(config.algo, spec, config)
      table = algorithm.replay_table
      self._T = table.sequence_length
      self._pending: List[Tuple[int, Any]] = []
      seed = int(np.random.default_rng(
          [config.seed, 1, self._actor_id, node_process.restarts()]
      ).integers(2**31 - 1))
      snapshots = config.matchmaking in ('fsp', 'psro')
      self.loop = EnvLoop(
          self._envs, algorithm, config.population_size, config.matchmaking,
          self._T, lambda member, seq: self._pending.append((member, seq)),
          seed=seed,
          num_frozen=int(config.get('fsp_pool_size', 0)) if snapshots else 0,
          joint_episodes=bool(getattr(table, 'joint', False)),
          partners=partners_lib.load_pool(config.get('partners', ''),
                                          config.env))
      self._device = jax.local_devices()[0]
      self._period = int(config.get('variable_update_period', 1))
      self._version, self._params = -1, None
      while True:
        self._version, params = self._learner.get_variables(-1)
        if params is not None:
          break
        if self._counter.should_stop():
          return False
        time.sleep(0.1)
      self._params = jax.device_put(params, self._device)
      self._since_fetch = 0
      self._total = self._counter.get_state()['env_steps']
    except BaseException:
      self.close()
      raise
    return True

  def step(self) -> bool:
    """Plays ``T`` steps of every copy, writes what they finished to the
    replay and reports to the counter. False once the program should stop."""
    if self._since_fetch >= self._period:
      version, params = self._learner.get_variables(self._version)
      if params is not None:
        self._version = version
        self._params = jax.device_put(params, self._device)
      self._since_fetch = 0
    taken = self.loop.run(self._params, self._T, policy_version=self._version,
                          total_env_steps=self._total)
    self._since_fetch += taken
    if not self._write():
      return False
    counts = self._counter.increment(env_steps=taken,
                                     episodes=self.loop.pop_episode_stats(),
                                     policy_version=self._version)
    self._total = counts['env_steps']
    return not counts['stop']

  def run(self) -> Dict[str, Any]:
    try:
      if not self.setup():
        return dict(env_steps=0)
      while self.step():
        pass
    finally:
      self.close()
    return dict(env_steps=self.loop.env_steps)

  def close(self) -> None:
    for env in getattr(self, '_envs', ()):
      env.close()

  def _write(self) -> bool:
    """Writes every pending sequence; False if the program stopped first."""
    pending = self._pending
    while pending:
      left = self._replay.insert(pending)
      pending[:] = [pending[i] for i in left]
      if pending and self._counter.should_stop():
        return False
    return True
