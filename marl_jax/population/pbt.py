"""Population-based training (Jaderberg et al., 2017): exploit and explore.

On a schedule, members in the bottom ``truncation`` fraction by score copy
the params and optimiser state of a member drawn from the top fraction
(*exploit*) and multiply each hyperparameter by a random factor from
``perturb_factors``, clipped to its bounds (*explore*). Pure functions of a
numpy ``Generator`` and a population ``LearnerState`` (leading ``[P]`` axis).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, NamedTuple, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from marl_jax.algorithms.base import LearnerState


class PBTConfig(NamedTuple):
  truncation: float = 0.2
  perturb_factors: Tuple[float, ...] = (0.8, 1.2)
  bounds: Mapping[str, Tuple[float, float]] = {
      'learning_rate': (1e-5, 1e-2), 'entropy_cost': (1e-4, 0.1)}


class Exploit(NamedTuple):
  target: int
  source: int
  hyperparams: Dict[str, float]


def exploit_and_explore(rng: np.random.Generator, state: LearnerState,
                        scores: Sequence[float], config: PBTConfig = PBTConfig()
                        ) -> Tuple[LearnerState, List[Exploit]]:
  """One PBT round over the population.

  Args:
    rng: numpy generator (checkpointed by the caller).
    state: the population's learner state, leading ``[P]`` axis.
    scores: ``[P]`` evaluation scores (higher is better); NaN counts as worst.
    config: truncation fraction, perturbation factors and hyperparameter bounds.

  Returns:
    The new state and the list of (target, source, new hyperparams) events.
  """
  scores = np.asarray(scores, np.float64)
  population = int(jax.tree.leaves(state.params)[0].shape[0])
  if scores.shape != (population,):
    raise ValueError(f'scores must have shape [{population}], got '
                     f'{scores.shape}.')
  if not 0. < config.truncation <= 0.5:
    raise ValueError(f'truncation must be in (0, 0.5], got {config.truncation}.')
  num = max(1, int(round(config.truncation * population)))
  if population < 2:
    return state, []
  order = np.argsort(np.where(np.isnan(scores), -np.inf, scores),
                     kind='stable')
  bottom, top = order[:num], order[-num:]
  sources = np.arange(population)
  events = []
  hyper = {k: np.array(v, np.float64) for k, v in state.hyperparams.items()}
  for target in bottom:
    source = int(rng.choice(top))
    sources[target] = source
    new = {}
    for k in hyper:
      factor = float(rng.choice(config.perturb_factors))
      value = float(hyper[k][source]) * factor
      lo, hi = config.bounds.get(k, (-np.inf, np.inf))
      new[k] = float(np.clip(value, lo, hi))
    events.append(Exploit(int(target), source, new))
  idx = jnp.asarray(sources)
  copy = lambda x: x[idx]
  new_hyper = {k: np.array(v) for k, v in hyper.items()}
  for e in events:
    for k, v in e.hyperparams.items():
      new_hyper[k][e.target] = v
  new_state = LearnerState(
      params=jax.tree.map(copy, state.params),
      opt_state=jax.tree.map(copy, state.opt_state),
      step=state.step,
      hyperparams={k: jnp.asarray(v, state.hyperparams[k].dtype)
                   for k, v in new_hyper.items()},
      extras=jax.tree.map(copy, state.extras))
  return new_state, events
