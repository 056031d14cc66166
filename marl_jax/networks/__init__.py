"""Haiku networks: torsos, recurrent cores and heads."""

from marl_jax.networks.actor_critic import (AgentInput, ActorCriticNetwork,
                                            make_actor_critic)
from marl_jax.networks.torsos import (ConvTorso, MLPTorso, input_kind,
                                     make_torso)

__all__ = ['AgentInput', 'ActorCriticNetwork', 'make_actor_critic', 'ConvTorso',
           'MLPTorso', 'input_kind', 'make_torso']
