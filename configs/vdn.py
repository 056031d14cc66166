"""VDN configs: QMIX's (configs/qmix.py) with the sum mixer.

``--config=configs/vdn.py:<preset or env>``.
"""

from configs import qmix

PRESETS = qmix.PRESETS


def get_config(arg: str = 'smax_3m'):
  c = qmix.get_config(arg)
  c.algo = 'vdn'
  return c
