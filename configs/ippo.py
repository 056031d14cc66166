"""IPPO configs: MAPPO's (configs/mappo.py) with per-agent critics.

``--config=configs/ippo.py:<preset>``; the critic reads the agent's own
observation (``network.observation_key``) instead of ``GLOBAL``.
"""

from configs import mappo


def get_config(preset: str = 'overcooked'):
  c = mappo.get_config(preset)
  c.algo = 'ippo'
  return c


preset_for_env = mappo.preset_for_env
