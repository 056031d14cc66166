"""VDN configs: QMIX's (configs/qmix.py) with the sum mixer.

``--config=configs/vdn.py:<preset>``.
"""

from configs import qmix


def get_config(preset: str = 'smax_3m'):
  c = qmix.get_config(preset)
  c.algo = 'vdn'
  return c


preset_for_env = qmix.preset_for_env
