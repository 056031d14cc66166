"""Trains a population of agents: ``python train.py --help``.

The program is ``marl_jax/cli/train.py``, which pip also installs as the
``marl-jax-train`` console script; this file runs it from a clone.
"""

from marl_jax.cli import train

if __name__ == '__main__':
  train.main()
