"""OPRE configs: ``--config=configs/opre.py:<preset>``.

IMPALA's config (configs/impala.py) and presets plus the options:
``num_options`` (8 on Overcooked, as marl-jax; 16 on Melting Pot; 4
otherwise), ``kl_cost`` for KL(q || p), ``option_entropy_cost`` for the
entropy of the posterior's marginal (options in use), and the privileged
observation the posterior reads, ``opre_global_key`` (``GLOBAL``). Where the
environment has no global state of its own (``overcooked/``, ``toy/``) the
``global_state`` wrapper adds it; the ``jax/``, ``jaxmarl/``, ``pettingzoo/``
and ``meltingpot/`` families provide their own ``GLOBAL``, so their presets
(``jax``, ``jaxmarl``, ``mpe``, ``meltingpot``) use no wrapper. OPRE runs
under every runtime IMPALA runs under: the ``single``, ``local`` and ``ray``
launchers, and ``--runtime=anakin`` on JAX-native environments.
"""

from configs import impala

# Presets whose environment has no GLOBAL observation of its own.
_NEEDS_GLOBAL_STATE_WRAPPER = ('overcooked', 'toy')


def get_config(preset: str = 'overcooked'):
  if preset == 'overcooked_lossless':
    raise ValueError('The opre presets are overcooked, mpe, jax, jaxmarl, '
                     'meltingpot and toy (overcooked_lossless: the '
                     'global_state wrapper joins vector observations).')
  c = impala.get_config(preset)
  c.algo = 'opre'
  c.num_options = {'overcooked': 8, 'jaxmarl': 8, 'meltingpot': 16}.get(
      preset, 4)
  c.kl_cost = 0.01
  c.option_entropy_cost = 0.01
  c.opre_global_key = 'GLOBAL'
  c.env_wrappers = (('global_state',) if preset in _NEEDS_GLOBAL_STATE_WRAPPER
                    else ())
  return c


preset_for_env = impala.preset_for_env
