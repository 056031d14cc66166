"""The evaluator node: evaluation episodes with the newest params, per member.

``EvaluatorNode`` is the distributed program's evaluator: every
``eval_every_updates`` learner updates it plays ``eval_episodes`` self-play
episodes per member with the learner's newest params (the evaluation
package's ``PopulationPolicy`` and ``play_episode``) and writes their means
to ``evaluator.csv``.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List

import jax
import ml_collections
import numpy as np

from marl_jax.runtime import node_process

# How long ``run()`` waits for new params before looking again.
_POLL_S = 0.5


class EvaluatorNode:
  """Plays evaluation episodes with the newest params, per member.

  Every ``eval_every_updates`` learner updates: ``eval_episodes`` self-play
  episodes per member (``eval_greedy``: argmax actions), their mean return
  (and info sums) per member written to ``evaluator.csv``. ``run()`` polls;
  the ``single`` launcher calls ``step()`` after its updates.
  """

  def __init__(self, config_dict, exp_dir: str, learner, counter):
    self._config = ml_collections.ConfigDict(config_dict)
    self._exp_dir = exp_dir
    self._learner = learner
    self._counter = counter
    self._env = self._logger = None

  def setup(self) -> None:
    from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
    from marl_jax.utils.logging import MetricLogger, wandb_options  # pylint: disable=g-import-not-at-top
    config = self._config
    self._env = algorithms.make_env(config)
    self._spec = self._env.spec()
    self._algorithm = algorithms.make(config.algo, self._spec, config)
    self._every = int(config.eval_every_updates)
    self._last = -self._every
    self.rounds = 0
    self._logger = MetricLogger(self._exp_dir, tensorboard=False,
                                wandb=wandb_options(config, 'evaluator'))

  def step(self) -> bool:
    """Evaluates the newest params if ``eval_every_updates`` have passed
    since the last evaluation; returns whether it did."""
    from marl_jax.evaluation.policies import PopulationPolicy, play_episode  # pylint: disable=g-import-not-at-top
    config = self._config
    version, params = self._learner.get_variables(self._last + self._every - 1)
    if params is None:
      return False
    env_steps = self._counter.get_state()['env_steps']
    seed = int(np.random.default_rng(
        [config.seed, 2, self.rounds, node_process.restarts()]).integers(2**31 - 1))
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
