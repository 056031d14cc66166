"""The human clones of Overcooked's 2019 trials, made on first use.

``ensure(proxy, split, prog)`` returns the run directory of the behaviour
clone of ``split`` (``test``: the human proxy; ``train``: ``BC``) for a
``human_proxy.Proxy`` (family, layout, observation), training it with
``configs/bc.py`` through the offline runtime when it is not there yet.
``evaluate.py --heldout=human_proxy`` and ``train.py``'s
``--config.partners=human_proxy:train`` both go through here, so a clone is
made once and shared.
"""

from __future__ import annotations

import os
import sys


def ensure(proxy, split: str, prog: str) -> str:
  """The clone's run directory (``human_proxy.proxy_dir``), cloned first
  if it holds no checkpoint yet."""
  # pylint: disable=g-import-not-at-top
  from configs import bc
  from marl_jax import run_dir
  from marl_jax.evaluation import human_proxy
  # pylint: enable=g-import-not-at-top
  d = human_proxy.proxy_dir(proxy.layout, split, proxy.observation,
                            family=proxy.family)
  if os.path.isdir(run_dir.checkpoint_dir(d)) and os.listdir(
      run_dir.checkpoint_dir(d)):
    return d
  # pylint: disable=g-import-not-at-top
  from marl_jax.runtime import build, offline
  from marl_jax.utils import config as config_lib
  # pylint: enable=g-import-not-at-top
  config = bc.get_config(proxy.env)  # The run's family.
  config.dataset = f'human:{split}'
  if proxy.family == 'overcooked':
    config.env_kwargs.observation = proxy.observation
  config = build.prepare(config).config
  config.exp_dir = d
  print(f'{prog}: cloning the human proxy of {proxy.env} ({split} split, '
        f'{proxy.observation}) into {d}, once (about a minute)',
        file=sys.stderr, flush=True)
  os.makedirs(d, exist_ok=True)
  with open(run_dir.config_path(d), 'w') as f:
    f.write(config_lib.to_json(config))
  offline.run(config, d)
  return d
