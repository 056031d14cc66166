"""Torsos: observation -> embedding, chosen from the observation's spec.

``input_kind`` classifies one observation entry, ``make_torso`` builds its
torso:
  * ``'pixels'`` (rank-3 uint8 images: 3 channels, or a name with ``RGB``):
    a conv net on the pixels scaled by 1/255;
  * ``'grid'`` (any other entry of rank >= 2, e.g. JaxMARL Overcooked's 0/1
    ``GRID`` with many uint8 channels): a conv net on the values as they are
    for rank 3, an MLP on the flattened values otherwise;
  * ``'vector'`` (rank 0 or 1): an MLP.
"""

from __future__ import annotations

from typing import Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

KINDS = ('pixels', 'grid', 'vector')


def input_kind(name: str, shape, dtype) -> str:
  """``'pixels'``, ``'grid'`` or ``'vector'`` for one agent's observation entry.

  Args:
    name: the observation's key (e.g. ``RGB``, ``WORLD.RGB``, ``GRID``).
    shape: its shape for one agent (no batch or agent axis).
    dtype: its dtype.

  Returns:
    ``'pixels'`` for a rank-3 uint8 entry with 3 channels or ``RGB`` in its
    name; ``'grid'`` for any other entry of rank >= 2; ``'vector'`` otherwise.
  """
  shape = tuple(shape)
  if (len(shape) == 3 and np.dtype(dtype) == np.uint8 and
      (shape[-1] == 3 or 'RGB' in str(name))):
    return 'pixels'
  if len(shape) >= 2:
    return 'grid'
  return 'vector'


class MLPTorso(hk.Module):
  """Flattens the input and applies an MLP with ReLU (also after the last layer)."""

  def __init__(self, hidden_sizes: Sequence[int], name: str = 'mlp_torso'):
    super().__init__(name=name)
    self._hidden_sizes = tuple(hidden_sizes)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = jnp.reshape(x, x.shape[:1] + (-1,)).astype(jnp.float32)
    return hk.nets.MLP(self._hidden_sizes, activate_final=True)(x)


class ConvTorso(hk.Module):
  """Conv layers (ReLU) over a ``[B, H, W, C]`` grid, then an MLP.

  The input is cast to float32 and multiplied by ``input_scale``: 1/255 for
  pixels, 1 (the default) for feature grids, whatever their dtype.
  """

  def __init__(self, channels: Sequence[int], kernel_sizes: Sequence[int],
               strides: Sequence[int], hidden_sizes: Sequence[int],
               input_scale: float = 1.0, name: str = 'conv_torso'):
    super().__init__(name=name)
    if not len(channels) == len(kernel_sizes) == len(strides):
      raise ValueError(
          'conv channels, kernel_sizes and strides must have the same length, '
          f'got {len(channels)}, {len(kernel_sizes)}, {len(strides)}.')
    self._layers = tuple(zip(channels, kernel_sizes, strides))
    self._hidden_sizes = tuple(hidden_sizes)
    self._input_scale = float(input_scale)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.astype(jnp.float32)
    if self._input_scale != 1.0:
      x = x * self._input_scale
    for c, k, s in self._layers:
      x = jax.nn.relu(hk.Conv2D(c, k, stride=s, padding='SAME')(x))
    x = jnp.reshape(x, x.shape[:1] + (-1,))
    return hk.nets.MLP(self._hidden_sizes, activate_final=True)(x)


def make_torso(name: str, shape, dtype, config) -> hk.Module:
  """The torso for one agent's observation entry (see ``input_kind``).

  Pixels -> ``ConvTorso`` scaled by 1/255; rank-3 grids -> ``ConvTorso``
  unscaled; other grids and vectors -> ``MLPTorso`` (flattened, unscaled).
  Reads ``config.mlp_sizes`` and the conv fields ``conv_channels``,
  ``conv_kernels``, ``conv_strides``.
  """
  kind = input_kind(name, shape, dtype)
  if kind == 'pixels' or (kind == 'grid' and len(tuple(shape)) == 3):
    return ConvTorso(config.conv_channels, config.conv_kernels,
                     config.conv_strides, config.mlp_sizes,
                     input_scale=1. / 255. if kind == 'pixels' else 1.)
  return MLPTorso(config.mlp_sizes)
