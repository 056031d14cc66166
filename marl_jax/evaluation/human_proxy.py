"""The human proxy of Carroll et al. (2019) as a held-out partner.

``evaluate.py --heldout=human_proxy`` plays the focal runs with a behaviour
clone of the *test* split of the 2019 human-human trials on the run's layout
(their ``H_proxy``); ``human_proxy:train`` gives the clone of the train
split (their ``BC``, what a method that uses human data may train with).
Focal runs on ``overcooked/<layout>`` (trained with ``old_dynamics=True``)
and on ``jaxmarl/overcooked_<layout>`` (JaxMARL's rules are the 2019 ones)
are covered, the five classic layouts of each; the clone is trained on the
focal run's own family. Clones live as ordinary run directories
(``train.py --algo=bc``) under ``proxy_root()``:
``<root>/<layout>_<split>_<observation>`` (``overcooked/``) or
``<root>/jaxmarl_<layout>_<split>`` (``jaxmarl/``). The first use clones one
(about a minute on a CPU; ``evaluate.py`` does it through the offline
runtime), later ones load it. A clone of the run's own observation type is
used (featurized or lossless on ``overcooked/``; JaxMARL's ``GRID``), so it
sees what the focal run sees. The clone is trained with its family's default
horizon (which the lossless and ``GRID`` encodings' urgency layer reads).

This module only names and checks; it imports no runtime.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Optional

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


class Proxy(NamedTuple):
  """Which clone partners a focal run: ``family`` ``'overcooked'`` or
  ``'jaxmarl'``, ``layout`` the family's layout name, ``observation`` what
  the clone sees (``'featurized'``/``'lossless'`` on ``overcooked/``,
  ``'GRID'`` on ``jaxmarl/``)."""
  family: str
  layout: str
  observation: str

  @property
  def env(self) -> str:
    """The environment name the clone is trained on."""
    if self.family == 'jaxmarl':
      return f'jaxmarl/overcooked_{self.layout}'
    return f'overcooked/{self.layout}'


def _covered() -> str:
  # pylint: disable=g-import-not-at-top
  from marl_jax.envs import overcooked_human
  from marl_jax.envs.jaxmarl import OVERCOOKED_AI_LAYOUTS
  # pylint: enable=g-import-not-at-top
  return ', '.join([f'overcooked/{x}' for x in overcooked_human.LAYOUTS] +
                   [f'jaxmarl/overcooked_{x}' for x in OVERCOOKED_AI_LAYOUTS])


def layout_of(config, where: str, use: str = '--heldout=human_proxy',
              trained: bool = True) -> Proxy:
  """The ``Proxy`` (family, layout, observation) of a run's config, or
  ``ValueError`` naming the run when the human data cannot partner it.

  ``use`` names what asked (the flag or key) and ``trained`` whether the run
  was trained already (a held-out evaluation) or is about to be (training
  partners), for the message."""
  was = 'was trained' if trained else 'is'
  on = 'was trained on' if trained else 'is on'
  # pylint: disable=g-import-not-at-top
  from marl_jax.envs import overcooked_human
  from marl_jax.envs.jaxmarl import OVERCOOKED_AI_LAYOUTS
  # pylint: enable=g-import-not-at-top
  family, _, layout = str(config.env).partition('/')
  kwargs = dict(config.env_kwargs.to_dict()) if config.env_kwargs else {}
  game, _, jaxmarl_layout = layout.partition('_')
  if (family == 'jaxmarl' and game == 'overcooked' and
      jaxmarl_layout in OVERCOOKED_AI_LAYOUTS):
    # JaxMARL's Overcooked plays the 2019 rules: nothing more to check.
    return Proxy('jaxmarl', jaxmarl_layout, 'GRID')
  if family != 'overcooked' or layout not in overcooked_human.LAYOUTS:
    raise ValueError(
        f'{use}: {where} {on} {config.env}, and the human data covers '
        f'{_covered()}.')
  if not kwargs.get('old_dynamics', False):
    raise ValueError(
        f'{use}: {where} {was} under the package\'s cooking rules, and the '
        'humans played the 2019 rules (a full pot cooks by itself): train '
        'with --config.env_kwargs.old_dynamics=True.')
  return Proxy('overcooked', layout, kwargs.get('observation', 'featurized'))


def proxy_dir(layout: str, split: str, observation: str,
              root: Optional[str] = None, family: str = 'overcooked') -> str:
  """``<root>/<layout>_<split>_<observation>`` for ``overcooked/``,
  ``<root>/jaxmarl_<layout>_<split>`` for ``jaxmarl/`` (one observation)."""
  if family == 'jaxmarl':
    name = f'jaxmarl_{layout}_{split}'
  else:
    name = f'{layout}_{split}_{observation}'
  return os.path.join(root or proxy_root(), name)
