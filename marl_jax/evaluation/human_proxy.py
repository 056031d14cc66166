"""The human proxy of Carroll et al. (2019) as a held-out partner.

``evaluate.py --heldout=human_proxy`` plays the focal runs with a behaviour
clone of the *test* split of the 2019 human-human trials on the run's layout
(their ``H_proxy``); ``human_proxy:train`` gives the clone of the train
split (their ``BC``, what a method that uses human data may train with).
Clones live as ordinary run directories (``train.py --algo=bc``) under
``proxy_root()``: ``<root>/<layout>_<split>_<observation>``. The first use
clones one (about a minute on a CPU; ``evaluate.py`` does it through the
offline runtime), later ones load it. A clone of the run's own observation
type is used (featurized or lossless), so it sees what the focal run sees.

This module only names and checks; it imports no runtime.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

PREFIX = 'human_proxy'
SPLITS = {'': 'test', 'test': 'test', 'train': 'train'}
ROOT_ENV = 'MARL_JAX_HUMAN_PROXY_DIR'


def parse(spec: str) -> Optional[str]:
  """The split of ``human_proxy[:test|:train]``, or None for another spec.

  Raises ``ValueError`` for ``human_proxy:<something else>``.
  """
  head, sep, tail = str(spec).partition(':')
  if head != PREFIX:
    return None
  if tail not in SPLITS or (sep and not tail):
    raise ValueError(f'{spec!r}: use human_proxy (the test split\'s clone, '
                     'the proxy of Carroll et al.) or human_proxy:train.')
  return SPLITS[tail]


def proxy_root() -> str:
  """Where clones are kept: ``$MARL_JAX_HUMAN_PROXY_DIR``, else
  ``~/.cache/marl_jax/human_proxy``."""
  return os.environ.get(ROOT_ENV) or os.path.join(
      os.path.expanduser('~'), '.cache', 'marl_jax', 'human_proxy')


def layout_of(config, where: str) -> Tuple[str, str]:
  """``(layout, observation)`` of a focal run's config, or ``ValueError``
  naming the run when the human data cannot partner it."""
  from marl_jax.envs import overcooked_human  # pylint: disable=g-import-not-at-top
  family, _, layout = str(config.env).partition('/')
  kwargs = dict(config.env_kwargs.to_dict()) if config.env_kwargs else {}
  if family != 'overcooked' or layout not in overcooked_human.LAYOUTS:
    raise ValueError(
        f'--heldout=human_proxy: {where} was trained on {config.env}, and the '
        'human data covers ' + ', '.join(
            f'overcooked/{x}' for x in overcooked_human.LAYOUTS) + '.')
  if not kwargs.get('old_dynamics', False):
    raise ValueError(
        f'--heldout=human_proxy: {where} was trained under the package\'s '
        'cooking rules, and the humans played the 2019 rules (a full pot '
        'cooks by itself): train with --config.env_kwargs.old_dynamics=True.')
  return layout, kwargs.get('observation', 'featurized')


def proxy_dir(layout: str, split: str, observation: str,
              root: Optional[str] = None) -> str:
  return os.path.join(root or proxy_root(), f'{layout}_{split}_{observation}')
