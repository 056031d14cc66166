"""marl_jax: a JAX framework for multi-agent reinforcement learning populations."""

__version__ = '0.1.0'
