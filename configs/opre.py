"""OPRE configs: ``--config=configs/opre.py:<preset>``.

IMPALA's config (configs/impala.py) plus the options: ``num_options`` (8 on
Overcooked, as marl-jax; 16 on Melting Pot), ``kl_cost`` for KL(q || p),
``option_entropy_cost`` for the entropy of the posterior's marginal
(options in use), and the privileged
observation the posterior reads (``GLOBAL``, added by the ``global_state``
wrapper where the environment has no global state of its own).
"""

from configs import impala


def get_config(preset: str = 'overcooked'):
  c = impala.get_config(preset)
  c.algo = 'opre'
  c.num_options = 8 if preset.startswith('overcooked') else 4
  c.kl_cost = 0.01
  c.option_entropy_cost = 0.01
  c.opre_global_key = 'GLOBAL'
  c.env_wrappers = ('global_state',)
  if preset == 'overcooked_lossless':
    raise ValueError('The opre presets are overcooked and toy (the '
                     'global_state wrapper joins vector observations).')
  return c
