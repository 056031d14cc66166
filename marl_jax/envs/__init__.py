"""Environments: the contract, the registry and the families."""

from marl_jax.envs.base import Environment
from marl_jax.envs.base import JaxEnvironment
from marl_jax.envs.registry import (UnknownEnvironmentError, list_envs,
                                    list_jax_envs, make, make_jax, register,
                                    register_jax)

__all__ = ['Environment', 'JaxEnvironment', 'UnknownEnvironmentError',
           'list_envs', 'list_jax_envs', 'make', 'make_jax', 'register',
           'register_jax']
