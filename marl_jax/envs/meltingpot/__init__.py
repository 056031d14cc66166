"""Melting Pot substrates and scenarios as marl_jax environments.

``env.py``: the ``meltingpot/<substrate>`` and ``meltingpot_scenario/<scenario>``
families (``MeltingPot``), names, assets; ``backgrounds.py``: the background
populations a scenario accepts (``'bots'``, ``'random'``, ``'noop'``, a
meltingpot ``Policy`` or a factory of one, which is how a trained run of ours
is injected by ``marl_jax.evaluation.backgrounds``).
"""

from marl_jax.envs.meltingpot.backgrounds import (BACKGROUNDS,
                                                  BackgroundPolicy,
                                                  NoopPolicy, RandomPolicy)
from marl_jax.envs.meltingpot.env import (ASSETS_ARCHIVE, ASSETS_URL,
                                          ASSETS_VERSION, GLOBAL,
                                          GLOBAL_STATES, INFO_KEYS_SCENARIO,
                                          OBSERVATION_KEYS, SCENARIOS,
                                          STANDIN_MARKER, SUBSTRATES,
                                          SUBSTRATES_2_4_1, MeltingPot,
                                          MissingBotsError, assets_dir,
                                          bots_installed, make_scenario,
                                          make_substrate,
                                          missing_bots_message, modules,
                                          package_dir, substrate_of)

__all__ = [
    'ASSETS_ARCHIVE', 'ASSETS_URL', 'ASSETS_VERSION', 'BACKGROUNDS',
    'BackgroundPolicy', 'GLOBAL', 'GLOBAL_STATES', 'INFO_KEYS_SCENARIO',
    'MeltingPot', 'MissingBotsError', 'NoopPolicy', 'OBSERVATION_KEYS',
    'RandomPolicy', 'SCENARIOS', 'STANDIN_MARKER', 'SUBSTRATES',
    'SUBSTRATES_2_4_1', 'assets_dir', 'bots_installed', 'make_scenario',
    'make_substrate', 'missing_bots_message', 'modules', 'package_dir',
    'substrate_of',
]
