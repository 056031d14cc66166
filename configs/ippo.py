"""IPPO configs: MAPPO's (configs/mappo.py) with per-agent critics.

``--config=configs/ippo.py:<preset or env>``; the critic reads the agent's own
observation (``network.observation_key``) instead of ``GLOBAL``.
"""

from configs import mappo

PRESETS = mappo.PRESETS


def get_config(arg: str = 'overcooked'):
  c = mappo.get_config(arg)
  c.algo = 'ippo'
  return c
