"""Test setup: four host devices so that multi-device code is tested on CPU."""

import os

# Must happen before jax is imported anywhere in the test session.
_flag = '--xla_force_host_platform_device_count=4'
if _flag not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + _flag).strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
