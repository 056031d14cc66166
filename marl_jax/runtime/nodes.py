"""The nodes of the distributed program (see program.py and DESIGN.md).

* ``Counter``: global env/learner step counts, episode statistics (it writes
  ``actor.csv``), and the program's stop flag.
* ``ReplayNode``: one replay table per population member, with Reverb's
  semantics (``replay/table.py``), built from the algorithm's ``TableSpec``.
* ``LearnerNode``: samples ``[P, B]`` batches, runs the jitted population
  update on every local device, publishes params (the variable source),
  checkpoints, writes ``learner.csv``.
* ``ActorNode``: an env loop (``runtime/actor.py``) over M environment copies;
  pulls params every ``variable_update_period`` env steps, writes sequences to
  the replay, reports episodes to the counter.
* ``EvaluatorNode``: every ``eval_every_updates`` learner steps, plays
  evaluation episodes with the newest params; writes ``evaluator.csv``.

Nodes receive handles of the nodes they talk to and call their methods; the
same classes run under the ``local`` and ``ray`` launchers. Constructors are
cheap and touch no devices; the work happens in ``run()``.
"""

from __future__ import annotations

import collections
import logging
import os
import pickle
import queue
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import ml_collections
import numpy as np

from marl_jax.replay import table as table_lib
from marl_jax.utils import config as config_lib

_POLL_S = 0.5


def _restarts() -> int:
  """How many times the launcher has restarted this node's process."""
  from marl_jax.runtime.program import RESTART_ENV  # pylint: disable=g-import-not-at-top
  return int(os.environ.get(RESTART_ENV, '0') or 0)


def _config(config_dict) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(config_dict)


def _spec_and_algorithm(config):
  from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
  env = config_lib.make_env(config)
  spec = env.spec()
  env.close()
  return spec, algorithms.make(config.algo, spec, config)


# ----------------------------------------------------------------------------
class Counter:
  """Counts steps and episodes for the whole program; owns the stop flag."""

  def __init__(self, config_dict, exp_dir: str):
    config = _config(config_dict)
    self._num_steps = int(config.num_steps)
    self._population_size = int(config.population_size)
    self._exp_dir = exp_dir
    self._lock = threading.Lock()
    self._env_steps = 0
    self._learner_steps = 0
    self._num_episodes = 0
    self._stop_requested = False
    self._recent: List[Dict[str, Any]] = []
    self._logger = None
    self._start = time.monotonic()

  def _log(self, stats: Sequence[Dict[str, Any]], env_steps: int,
           policy_lag: Optional[float]) -> None:
    from marl_jax.utils.logging import MetricLogger  # pylint: disable=g-import-not-at-top
    if self._logger is None:
      self._logger = MetricLogger(self._exp_dir, tensorboard=False)
    keys = [k for k in stats[0] if k.startswith('episode_')]
    row = {}
    for k in keys:
      row[k] = _member_means(stats, k, self._population_size)
    if policy_lag is not None:
      row['actor_policy_lag'] = float(policy_lag)
    self._logger.write('actor', env_steps, row)

  def increment(self, env_steps: int = 0, learner_steps: int = 0,
                episodes: Sequence[Dict[str, Any]] = (),
                policy_version: Optional[int] = None) -> Dict[str, Any]:
    """Adds counts and finished episodes; returns the totals and ``stop``.

    ``policy_version``: the learner step of the params an actor acted with;
    its lag behind the learner is logged with the episodes.
    """
    with self._lock:
      self._env_steps += int(env_steps)
      self._learner_steps += int(learner_steps)
      if episodes:
        self._num_episodes += len(episodes)
        self._recent.extend(episodes)
        del self._recent[:-50 * self._population_size]
        lag = (None if policy_version is None else
               self._learner_steps - int(policy_version))
        self._log(list(episodes), self._env_steps, lag)
      return self._counts()

  def _counts(self) -> Dict[str, Any]:
    return dict(env_steps=self._env_steps, learner_steps=self._learner_steps,
                num_episodes=self._num_episodes, stop=self._should_stop())

  def get(self) -> Dict[str, Any]:
    """Totals, the stop flag, and the mean recent return per member."""
    with self._lock:
      counts = self._counts()
      counts['member_returns'] = (
          _member_means(self._recent, 'episode_return', self._population_size)
          if self._recent else None)
      return counts

  def _should_stop(self) -> bool:
    return self._stop_requested or self._env_steps >= self._num_steps

  def should_stop(self) -> bool:
    with self._lock:
      return self._should_stop()

  def request_stop(self) -> None:
    with self._lock:
      self._stop_requested = True

  def get_state(self) -> Dict[str, Any]:
    with self._lock:
      return dict(env_steps=self._env_steps, learner_steps=self._learner_steps,
                  num_episodes=self._num_episodes)

  def set_state(self, state: Dict[str, Any]) -> None:
    with self._lock:
      self._env_steps = int(state['env_steps'])
      self._learner_steps = int(state['learner_steps'])
      self._num_episodes = int(state['num_episodes'])

  def close(self) -> None:
    if self._logger is not None:
      self._logger.close()


def _member_means(stats, key: str, population_size: int) -> np.ndarray:
  out = np.full((population_size,), np.nan)
  for m in range(population_size):
    values = [s[key] for s in stats if s['member'] == m and key in s]
    if values:
      out[m] = float(np.mean(values))
  return out


# ----------------------------------------------------------------------------
class ReplayNode:
  """The replay server: one table per member, with Reverb's semantics.

  ``insert`` takes a list of ``(member, item)``; ``sample`` returns one batch
  of every member, stacked ``[P, B, ...]``. Both block as the tables' rate
  limiters say, up to a timeout, and never lose or half-write data: an insert
  that times out reports how many items went in, so the writer retries the
  rest; a sample that times out takes nothing.

  One guard against a population deadlock: with queue tables, a writer blocked
  on member A's full queue while the learner waits for member B's batch would
  wait for ever. When that happens (an insert and a sample both blocked), the
  oldest item of A's queue is dropped to make room, and counted in
  ``info()['dropped']``.
  """

  def __init__(self, config_dict, table_spec: Optional[table_lib.TableSpec] = None,
               evicting: bool = False):
    config = _config(config_dict)
    if table_spec is None:
      _, algorithm = _spec_and_algorithm(config)
      table_spec = algorithm.replay_table
    self.spec = table_spec
    self._population_size = int(config.population_size)
    self._evicting = evicting and table_spec.sampler == 'fifo'
    self._tables = [
        table_lib.make_table(table_spec, f'member_{m}',
                             seed=int(config.seed) + m, evicting=evicting)
        for m in range(self._population_size)]
    self._sampling = 0  # samples currently waiting
    self._lock = threading.Lock()
    self._sample_lock = threading.Lock()
    self._held: List[Any] = [None] * self._population_size
    self._dropped = 0
    self._evicted_before = 0  # evictions before a resume (evicting queues)

  def insert(self, items: Sequence[Tuple[int, Any]],
             timeout: float = 5.0) -> List[int]:
    """Inserts ``(member, item)`` pairs; returns the positions not inserted.

    Each member's items go in in their order, and a member whose table is full
    does not hold up the others' (no head-of-line blocking across members).
    Whatever is not in by ``timeout`` is reported back for the writer to retry.
    """
    for member, _ in items:
      if not 0 <= member < self._population_size:
        raise ValueError(f'member {member} is not in a population of '
                         f'{self._population_size}.')
    pending: Dict[int, collections.deque] = {}
    for pos, (member, _) in enumerate(items):
      pending.setdefault(member, collections.deque()).append(pos)
    deadline = time.monotonic() + timeout
    stuck_since = None
    while True:
      progressed = False
      for member, queue_ in pending.items():
        table = self._tables[member]
        while queue_:
          try:
            table.insert(items[queue_[0]][1], timeout=0)
          except table_lib.ReplayTimeoutError:
            break
          queue_.popleft()
          progressed = True
      left = [m for m, q in pending.items() if q]
      now = time.monotonic()
      if not left or now >= deadline:
        return sorted(p for q in pending.values() for p in q)
      if progressed:
        stuck_since = None
        continue
      stuck_since = stuck_since or now
      with self._lock:
        starved = self._sampling > 0
      if (starved and now - stuck_since >= 0.1 and
          self.spec.sampler == 'fifo' and self._population_size > 1):
        # Every pending item is for a full queue while the learner waits for
        # another member's data, which this writer cannot produce until its
        # write is done: drop those queues' oldest items to make room for all
        # of it at once, rather than wait for ever.
        for member in left:
          table = self._tables[member]
          room = table.max_size - table.size()
          for _ in range(max(0, len(pending[member]) - room)):
            try:
              table.sample(1, timeout=0)
            except table_lib.ReplayTimeoutError:
              break
            with self._lock:
              self._dropped += 1
        stuck_since = None
        continue
      # Wait for room in one of the tables (briefly: others may free first).
      member = left[0]
      try:
        self._tables[member].insert(items[pending[member][0]][1],
                                    timeout=min(0.05, deadline - now))
        pending[member].popleft()
        stuck_since = None
      except table_lib.ReplayTimeoutError:
        pass

  def sample(self, timeout: float = 30.0) -> Tuple[Any, Dict[str, np.ndarray]]:
    """One batch per member, ``[P, B, ...]``, and its sampling info.

    Members' batches are taken in turn; if the timeout strikes before all are
    in, those already taken are held here for the next call (nothing is lost,
    nothing is put back out of order) and ``ReplayTimeoutError`` is raised.
    """
    with self._lock:
      self._sampling += 1
    try:
      deadline = time.monotonic() + timeout
      with self._sample_lock:
        for m, table in enumerate(self._tables):
          if self._held[m] is None:
            self._held[m] = table.sample(
                self.spec.batch_size,
                timeout=max(0., deadline - time.monotonic()))
        batches, self._held = self._held, [None] * self._population_size
    finally:
      with self._lock:
        self._sampling -= 1
    items = table_lib.stack([b.items for b in batches])
    info = dict(keys=np.stack([b.keys for b in batches]),
                probabilities=np.stack([b.probabilities for b in batches]),
                table_size=np.stack([b.table_size for b in batches]))
    return items, info

  def can_sample(self) -> bool:
    """Whether every member's table holds a batch (queue tables)."""
    return all(t.size() >= self.spec.batch_size for t in self._tables)

  def get_state(self) -> Dict[str, Any]:
    """The contents of evicting queue tables, oldest first (exact resume)."""
    if not self._evicting:
      raise NotImplementedError('Only evicting queue tables are checkpointed.')
    return dict(items=[t.items() for t in self._tables],
                evicted=[t.info().num_evicted for t in self._tables])

  def set_state(self, state: Dict[str, Any]) -> None:
    if len(state['items']) != self._population_size:
      raise ValueError(f'The saved replay has {len(state["items"])} members, '
                       f'this run has {self._population_size}.')
    for m, (table, items) in enumerate(zip(self._tables, state['items'])):
      if table.size():
        raise ValueError(f'set_state needs empty tables; member {m} has '
                         f'{table.size()} items.')
      for item in items:
        table.insert(item, timeout=0)
    self._evicted_before = sum(state['evicted'])

  def update_priorities(self, member: int, keys, priorities) -> None:
    self._tables[member].update_priorities(keys, priorities)

  def info(self) -> Dict[str, Any]:
    infos = [t.info() for t in self._tables]
    inserts = sum(i.num_inserts for i in infos)
    samples = sum(i.num_samples for i in infos)
    dropped = self._dropped
    if self._evicting:
      dropped += self._evicted_before + sum(i.num_evicted for i in infos)
    return dict(sizes=[i.size for i in infos], inserts=inserts,
                samples=samples, dropped=dropped,
                samples_per_insert=samples / inserts if inserts else 0.,
                insert_blocked_s=sum(i.insert_blocked_seconds for i in infos),
                sample_blocked_s=sum(i.sample_blocked_seconds for i in infos))

  def close(self) -> None:
    for t in self._tables:
      t.close()


# ----------------------------------------------------------------------------
class LearnerNode:
  """Trains the population from the replay; the program's variable source.

  ``run()`` is what the ``local`` and ``ray`` launchers call: ``setup()``,
  then ``step(batch)`` for every batch a prefetching thread samples, then
  ``finish()``. The ``single`` launcher calls the same three itself.
  """

  def __init__(self, config_dict, exp_dir: str, replay, counter,
               resume: bool = False):
    self._config = _config(config_dict)
    self._exp_dir = exp_dir
    self._replay = replay
    self._counter = counter
    self._resume = resume
    self._variables: Tuple[int, Any] = (-1, None)
    self._variables_lock = threading.Lock()
    self.learner = None
    # Whether step() writes the periodic checkpoints (every
    # checkpoint_every_s). The single launcher writes them itself, between
    # iterations, where its exact-resume state is consistent.
    self.autosave = True
    # Extra state for the checkpoint: a callable returning a picklable dict
    # (the single launcher's env loops and replay, for exact resume).
    self.extra_state = None

  def get_variables(self, known_version: int = -1) -> Tuple[int, Any]:
    """``(version, params [P, ...])``; params None if not newer than known."""
    with self._variables_lock:
      version, params = self._variables
    return (version, params) if version > known_version else (version, None)

  def _weights(self, info, config) -> np.ndarray:
    """Prioritized replay's importance weights, ``[P, B]``, with the table's
    beta schedule over ``num_steps``."""
    env_steps = self._counter.get_state()['env_steps']
    beta = float(self._table.importance_exponent(env_steps / config.num_steps))
    return np.stack([
        table_lib.importance_weights(p, n, beta)
        for p, n in zip(info['probabilities'], info['table_size'])
    ]).astype(np.float32)

  def publish(self) -> None:
    """Makes the learner's current params the variable source's."""
    import jax  # pylint: disable=g-import-not-at-top
    host = jax.tree.map(np.asarray, self.learner.state.params)
    with self._variables_lock:
      self._variables = (self.version, host)

  def setup(self) -> Dict[str, Any]:
    """Builds the learner (restoring it on resume) and publishes its params.

    Returns the checkpoint's runtime state (``{}`` for a new run).
    """
    import jax  # pylint: disable=g-import-not-at-top
    from marl_jax.runtime.learner import Learner  # pylint: disable=g-import-not-at-top
    from marl_jax.runtime.learner import learner_devices  # pylint: disable=g-import-not-at-top
    from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
    from marl_jax.utils.logging import MetricLogger  # pylint: disable=g-import-not-at-top

    config = self._config
    _, algorithm = _spec_and_algorithm(config)
    self.algorithm = algorithm
    table = self._table = algorithm.replay_table
    devices = learner_devices(config)
    if table.batch_size % len(devices):
      raise config_lib.ConfigError(
          f'batch_size ({table.batch_size}) must be divisible by the number of '
          f'learner devices ({len(devices)}); set --config.num_learner_devices.')
    key = jax.random.PRNGKey(config.seed)
    learner_key, _ = jax.random.split(key)
    self.learner = Learner(algorithm, config.population_size, learner_key,
                           devices)
    ckpt_dir = os.path.join(self._exp_dir, 'checkpoints')
    self._checkpointer = checkpointing.Checkpointer(
        ckpt_dir, max_to_keep=config.max_checkpoints_to_keep)
    runtime = {}
    try:
      if self._resume:
        target = dict(learner=self.learner.state, runtime=b'')
        restored, meta = self._checkpointer.restore(target=target)
        self.learner.set_state(restored['learner'])
        try:
          runtime = (pickle.loads(restored['runtime'])
                     if restored['runtime'] else {})
        except Exception as e:  # A checkpoint of another layout or version.
          raise checkpointing.CheckpointError(
              f'The checkpoint at step {meta.get("env_steps")} in {ckpt_dir} '
              f'has a runtime state this run cannot use: {e}') from e
        if 'counter' in runtime:
          self._counter.set_state(runtime['counter'])
      self.version = self.learner.steps
      self.publish()
      self._logger = MetricLogger(self._exp_dir)
    except BaseException:
      self._checkpointer.close()
      raise
    self._prioritized = table.sampler == 'prioritized'
    self._last_ckpt = self._last_log = time.monotonic()
    return runtime

  def step(self, item, batch_wait_s: float = 0.) -> Dict[str, Any]:
    """One update on ``item = (batch [P, B, ...], sampling info)``: publishes
    the new params, counts the update, logs, checkpoints when due.
    Returns the update's metrics."""
    config = self._config
    batch, info = item
    ages = (self.version - np.asarray(batch.policy_version)
            if hasattr(batch, 'policy_version') else None)
    if self._prioritized:
      batch = batch._replace(weight=self._weights(info, config))
    metrics = dict(self.learner.update(batch))
    if 'priorities' in metrics:
      # [P, B] new priorities of the sampled items (e.g. |TD error|).
      priorities = np.asarray(metrics.pop('priorities'))
      if self._prioritized:
        for m in range(config.population_size):
          self._replay.update_priorities(m, info['keys'][m], priorities[m])
    self.version += 1
    self.publish()
    counts = self._counter.increment(learner_steps=1)
    if self.version % config.log_every_updates == 0:
      m = {k: np.asarray(v) for k, v in metrics.items()}
      if ages is not None:
        m['policy_lag'] = ages.mean(axis=1).astype(np.float64)
      info = self._replay.info()
      m['replay_samples_per_insert'] = float(info['samples_per_insert'])
      m['replay_dropped'] = float(info['dropped'])
      m['replay_size'] = float(np.mean(info['sizes']))
      m['batch_wait_s'] = float(batch_wait_s)
      now = time.monotonic()
      m['updates_per_s'] = config.log_every_updates / max(
          now - self._last_log, 1e-9)
      self._last_log = now
      self._logger.write('learner', counts['env_steps'], m)
    if self.autosave:
      self.save_if_due()
    return metrics

  def save_if_due(self) -> None:
    """Writes a checkpoint if ``checkpoint_every_s`` passed since the last."""
    if time.monotonic() - self._last_ckpt >= self._config.checkpoint_every_s:
      self.save()
      self._last_ckpt = time.monotonic()

  def save(self, force: bool = False) -> None:
    config = self._config
    counts = self._counter.get_state()
    runtime = dict(counter=counts)
    if self.extra_state is not None:
      runtime.update(self.extra_state())
    state = dict(learner=self.learner.state, runtime=pickle.dumps(runtime))
    self._checkpointer.save(
        counts['env_steps'], state,
        metadata=dict(env_steps=counts['env_steps'],
                      learner_steps=self.learner.steps, algo=config.algo,
                      env=config.env, population_size=config.population_size),
        force=force)

  def finish(self, save: bool = True) -> None:
    """Writes the final checkpoint (unless ``save`` is False, after an error:
    the latest checkpoint stays the last consistent one) and closes files."""
    try:
      if save:
        self.save(force=True)
        self._checkpointer.wait()
    finally:
      self._logger.close()
      self._checkpointer.close()

  def run(self) -> Dict[str, Any]:
    self.setup()
    ok = False
    try:
      self._train()
      ok = True
    finally:
      self.finish(save=ok)
    self._counter.request_stop()
    return dict(learner_steps=self.version)

  def _train(self) -> None:
    config = self._config
    batches: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def prefetch():
      # Overlaps sampling (and its transfer) with the update.
      waited = 0.
      while not stop.is_set():
        try:
          batch = self._replay.sample(timeout=_POLL_S * 4)
          waited = 0.
        except table_lib.ReplayTimeoutError as e:
          waited += _POLL_S * 4
          if waited >= config.get('learner_starved_warning_s', 30.):
            logging.warning('Learner starved for %.0f s: %s', waited, e)
            waited = 0.
          continue
        except Exception as e:  # pylint: disable=broad-except
          if not stop.is_set():
            batches.put(e)
          return
        while not stop.is_set():
          try:
            batches.put(batch, timeout=_POLL_S)
            break
          except queue.Full:
            continue

    thread = threading.Thread(target=prefetch, daemon=True, name='prefetch')
    thread.start()
    waited_since = time.monotonic()
    try:
      while not self._counter.should_stop():
        try:
          item = batches.get(timeout=_POLL_S)
        except queue.Empty:
          continue
        if isinstance(item, Exception):
          raise item
        self.step(item, batch_wait_s=time.monotonic() - waited_since)
        waited_since = time.monotonic()
    finally:
      stop.set()


# ----------------------------------------------------------------------------
class ActorNode:
  """An env loop over M copies, writing to the replay (see runtime/actor.py).

  ``run()`` (the ``local`` and ``ray`` launchers) is ``setup()`` and then
  ``step()`` until the program stops; the ``single`` launcher calls ``step()``
  itself. Under fictitious self-play and PSRO (``single`` only) the variable
  source's params hold ``fsp_pool_size`` frozen snapshots after the
  population's members.
  """

  def __init__(self, config_dict, actor_id: int, replay, learner, counter):
    self._config = _config(config_dict)
    self._actor_id = actor_id
    self._replay = replay
    self._learner = learner
    self._counter = counter
    self.loop = None

  def setup(self) -> bool:
    """Builds the envs and the loop, and waits for the first params.

    False if the program stopped before any params were published."""
    import jax  # pylint: disable=g-import-not-at-top
    from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
    from marl_jax.runtime.actor import EnvLoop  # pylint: disable=g-import-not-at-top

    config = self._config
    self._envs = [config_lib.make_env(config)
                  for _ in range(config.num_envs_per_actor)]
    try:
      spec = self._envs[0].spec()
      algorithm = algorithms.make(config.algo, spec, config)
      table = algorithm.replay_table
      self._T = table.sequence_length
      self._pending: List[Tuple[int, Any]] = []
      seed = int(np.random.default_rng(
          [config.seed, 1, self._actor_id, _restarts()]).integers(2**31 - 1))
      snapshots = config.matchmaking in ('fsp', 'psro')
      self.loop = EnvLoop(
          self._envs, algorithm, config.population_size,
          'fsp' if config.matchmaking == 'psro' else config.matchmaking,
          self._T, lambda member, seq: self._pending.append((member, seq)),
          seed=seed,
          num_frozen=int(config.get('fsp_pool_size', 0)) if snapshots else 0,
          joint_episodes=bool(getattr(table, 'joint', False)))
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
    import jax  # pylint: disable=g-import-not-at-top
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


# ----------------------------------------------------------------------------
class EvaluatorNode:
  """Plays evaluation episodes with the newest params, per member.

  Every ``eval_every_updates`` learner updates: ``eval_episodes`` self-play
  episodes per member (``eval_greedy``: argmax actions), their mean return
  (and info sums) per member written to ``evaluator.csv``. ``run()`` polls;
  the ``single`` launcher calls ``step()`` after its updates.
  """

  def __init__(self, config_dict, exp_dir: str, learner, counter):
    self._config = _config(config_dict)
    self._exp_dir = exp_dir
    self._learner = learner
    self._counter = counter
    self._env = self._logger = None

  def setup(self) -> None:
    from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
    from marl_jax.utils.logging import MetricLogger  # pylint: disable=g-import-not-at-top
    config = self._config
    self._env = config_lib.make_env(config)
    self._spec = self._env.spec()
    self._algorithm = algorithms.make(config.algo, self._spec, config)
    self._every = int(config.eval_every_updates)
    self._last = -self._every
    self.rounds = 0
    self._logger = MetricLogger(self._exp_dir, tensorboard=False)

  def step(self) -> bool:
    """Evaluates the newest params if ``eval_every_updates`` have passed
    since the last evaluation; returns whether it did."""
    import jax  # pylint: disable=g-import-not-at-top
    from marl_jax.evaluation.policies import PopulationPolicy, play_episode  # pylint: disable=g-import-not-at-top
    config = self._config
    version, params = self._learner.get_variables(self._last + self._every - 1)
    if params is None:
      return False
    env_steps = self._counter.get_state()['env_steps']
    seed = int(np.random.default_rng(
        [config.seed, 2, self.rounds, _restarts()]).integers(2**31 - 1))
    # Only the population's members (FSP snapshots may follow them).
    params = jax.tree.map(lambda x: x[:config.population_size], params)
    policy = PopulationPolicy(self._algorithm, params, self._spec.num_agents,
                              greedy=bool(config.get('eval_greedy', False)),
                              seed=seed)
    episodes = int(config.get('eval_episodes', 2))
    rows: Dict[str, List[np.ndarray]] = {}
    for member in range(config.population_size):
      members = np.full((self._spec.num_agents,), member, np.int32)
      results = [play_episode(self._env, policy, members)[0]
                 for _ in range(episodes)]
      for k in results[0]:
        rows.setdefault(k, []).append(
            np.mean([np.mean(r[k]) for r in results]))
    self._logger.write('evaluator', env_steps,
                       {k: np.asarray(v, np.float64) for k, v in rows.items()}
                       | {'learner_steps': float(version)})
    self._last = version
    self.rounds += 1
    return True

  def run(self) -> Dict[str, Any]:
    self.setup()
    try:
      while not self._counter.should_stop():
        if not self.step():
          time.sleep(_POLL_S)
    finally:
      self.close()
    return dict(rounds=self.rounds)

  def close(self) -> None:
    if self._logger is not None:
      self._logger.close()
    if self._env is not None:
      self._env.close()
