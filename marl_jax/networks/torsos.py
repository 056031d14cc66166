"""Torsos: observation -> embedding. An MLP for vectors, a conv net for grids."""

from __future__ import annotations

from typing import Sequence

import haiku as hk
import jax
import jax.numpy as jnp


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

  uint8 inputs (RGB) are scaled to [0, 1]; float inputs are used as they are.
  """

  def __init__(self, channels: Sequence[int], kernel_sizes: Sequence[int],
               strides: Sequence[int], hidden_sizes: Sequence[int],
               name: str = 'conv_torso'):
    super().__init__(name=name)
    if not len(channels) == len(kernel_sizes) == len(strides):
      raise ValueError(
          'conv channels, kernel_sizes and strides must have the same length, '
          f'got {len(channels)}, {len(kernel_sizes)}, {len(strides)}.')
    self._layers = tuple(zip(channels, kernel_sizes, strides))
    self._hidden_sizes = tuple(hidden_sizes)

  def __call__(self, x: jax.Array) -> jax.Array:
    if x.dtype == jnp.uint8:
      x = x.astype(jnp.float32) / 255.
    x = x.astype(jnp.float32)
    for c, k, s in self._layers:
      x = jax.nn.relu(hk.Conv2D(c, k, stride=s, padding='SAME')(x))
    x = jnp.reshape(x, x.shape[:1] + (-1,))
    return hk.nets.MLP(self._hidden_sizes, activate_final=True)(x)


def make_torso(observation_ndim: int, config) -> hk.Module:
  """Picks the torso for one agent's observation of rank ``observation_ndim``.

  Rank 1 (vectors) -> ``MLPTorso``; rank 3 (``[H, W, C]`` grids and images) ->
  ``ConvTorso``.
  """
  if observation_ndim <= 1:
    return MLPTorso(config.mlp_sizes)
  if observation_ndim == 3:
    return ConvTorso(config.conv_channels, config.conv_kernels,
                     config.conv_strides, config.mlp_sizes)
  raise ValueError(
      f'No torso for observations of rank {observation_ndim}: expected a vector '
      '(rank 1) or an [H, W, C] grid (rank 3).')
