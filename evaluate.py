"""Evaluates trained populations against held-out partners:
``python evaluate.py --help``.

The program is ``marl_jax/cli/evaluate.py``, which pip also installs as the
``marl-jax-evaluate`` console script; this file runs it from a clone.
"""

from marl_jax.cli import evaluate

if __name__ == '__main__':
  evaluate.main()
