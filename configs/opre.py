"""OPRE configs: ``--config=configs/opre.py:<preset or env>``.

IMPALA's keys and presets (configs/impala.py) plus the options:
``num_options`` (8 on Overcooked, as marl-jax; 16 on Melting Pot; 4
otherwise), ``kl_cost`` for KL(q || p), ``option_entropy_cost`` for the
entropy of the posterior's marginal (options in use), and the privileged
observation the posterior reads, ``opre_global_key`` (``GLOBAL``). Where the
environment has no global state of its own (``overcooked/``, ``toy/``) the
``global_state`` wrapper is added when the run is built. OPRE runs under
every runtime IMPALA runs under: the ``single``, ``local`` and ``ray``
launchers, and ``--runtime=anakin`` on JAX-native environments.
"""

import ml_collections

from configs import common
from configs import impala

PRESETS = impala.PRESETS


def get_config(arg: str = 'overcooked') -> ml_collections.ConfigDict:
  c = common.build('opre', arg, 'overcooked', PRESETS, algorithm_keys,
                   impala.apply_preset)
  family, _, name = c.env.partition('/')
  if family == 'overcooked' or name.startswith('overcooked'):
    c.num_options = 8  # marl-jax's Overcooked setting
  elif family.startswith('meltingpot'):
    c.num_options = 16
  return c


def algorithm_keys(c: ml_collections.ConfigDict, runtime: str = '') -> None:
  impala.algorithm_keys(c, runtime)
  c.num_options = 4  # 8 on Overcooked, 16 on Melting Pot (get_config)
  c.kl_cost = 0.01  # weight of KL(posterior || prior) over options
  c.option_entropy_cost = 0.01  # entropy bonus of the option prior
  c.opre_global_key = 'GLOBAL'  # the observation the posterior reads
