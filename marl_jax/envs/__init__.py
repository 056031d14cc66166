"""Environments: the contract, the registry and the families."""

from marl_jax.envs.base import Environment
from marl_jax.envs.registry import UnknownEnvironmentError, list_envs, make, register

__all__ = ['Environment', 'UnknownEnvironmentError', 'list_envs', 'make',
           'register']
