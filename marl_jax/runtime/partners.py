"""Fixed training partners: frozen policies that play beside the learner.

``config.partners`` names a pool of frozen policies, comma-separated:

  ``<run dir>``         every member of the run's latest checkpoint
  ``<run dir>@<step>``  every member of checkpoint ``<step>``
  ``<run dir>@all``     every member of every checkpoint the run kept (the
                        partner pool of Fictitious Co-Play, Strouse et al.
                        2021: each self-play seed at several stages)
  ``human_proxy:train`` Overcooked's clone of the 2019 human train trials on
                        the run's layout (PPO_BC of Carroll et al. 2019;
                        ``train.py`` resolves it to the clone's run dir)

In every episode of every env copy one agent slot, drawn uniformly, is played
by a policy drawn uniformly from the pool, and the learner plays the others;
the learner learns only from its own slots (the partner's rows are masked).
Every policy of a pool must come from one algorithm with one network (their
params are stacked, ``[K, ...]``); a pool of different kinds is refused.
The runs' logged episode returns are those of these mixed episodes (the mean
over agents, the partner's included); anakin's greedy test episodes and the
evaluator node still play the learner with itself.
"""

from __future__ import annotations

import os
from typing import Any, List, NamedTuple, Optional, Tuple

import jax
import numpy as np

from marl_jax.utils import config as config_lib


class Pool(NamedTuple):
  """A pool of ``K`` frozen policies of one algorithm.

  Attributes:
    algorithm: their ``algorithms.Algorithm`` (its ``act`` plays them).
    params: ``[K, ...]`` stacked params.
    names: ``K`` names, ``<run>[<member>]@<step>``.
  """
  algorithm: Any
  params: Any
  names: Tuple[str, ...]

  @property
  def size(self) -> int:
    return len(self.names)


def parse(spec: str) -> List[Tuple[str, Optional[str]]]:
  """``'a,b@all,c@300'`` -> ``[('a', None), ('b', 'all'), ('c', '300')]``."""
  out = []
  for item in [s.strip() for s in str(spec or '').split(',') if s.strip()]:
    path, sep, step = item.rpartition('@')
    if not sep:
      path, step = item, None
    elif step != 'all' and not step.isdigit():
      raise config_lib.ConfigError(
          f'partners: {item!r}: a step is @<env steps> or @all.')
    out.append((path, step))
  return out


def _steps(path: str, step: Optional[str]) -> List[Optional[int]]:
  if step is None:
    return [None]
  if step != 'all':
    return [int(step)]
  from marl_jax import run_dir  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
  ckpt = checkpointing.Checkpointer(run_dir.checkpoint_dir(path),
                                    max_to_keep=None, read_only=True)
  try:
    steps = ckpt.all_steps()
  finally:
    ckpt.close()
  if not steps:
    raise config_lib.ConfigError(f'partners: {path} has no checkpoints.')
  return list(steps)


def load_pool(spec: str, env: str) -> Optional[Pool]:
  """The pool ``spec`` names (None for an empty spec), for a run on
  ``env``; ``ConfigError`` (one line) for a partner that is not a run dir,
  was trained on another env, or is of another kind than the others."""
  from marl_jax import run_dir  # pylint: disable=g-import-not-at-top
  items = parse(spec)
  if not items:
    return None
  algorithm, params, names, first = None, [], [], None
  for path, step in items:
    if path.startswith('human_proxy'):
      raise config_lib.ConfigError(
          f'partners: {path!r} is resolved by train.py; pass a run dir here.')
    if not os.path.isdir(path):
      raise config_lib.ConfigError(
          f'partners: {path} is not a run directory of train.py.')
    for s in _steps(path, step):
      run = run_dir.load_run(path, s)
      if run.config.env != env:
        raise config_lib.ConfigError(
            f'partners: {path} was trained on {run.config.env}, not {env}.')
      structure = jax.tree.map(lambda x: (x.shape[1:], x.dtype), run.params)
      if first is None:
        first, algorithm = (run.config.algo, structure), run.algorithm
      elif (run.config.algo, structure) != first:
        raise config_lib.ConfigError(
            f'partners: {path} ({run.config.algo}) has another algorithm or '
            f'network than {items[0][0]} ({first[0]}): a pool is of one kind.')
      members = jax.tree.leaves(run.params)[0].shape[0]
      params.append(run.params)
      at = run.meta.get('env_steps', s)
      base = os.path.basename(os.path.normpath(path))
      names += [f'{base}[{m}]@{at}' for m in range(members)]
  stacked = jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *params)
  return Pool(algorithm, stacked, tuple(names))
