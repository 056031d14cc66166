"""The command-line programs: ``train`` and ``evaluate``.

Installed as the console scripts ``marl-jax-train`` and ``marl-jax-evaluate``
(``pyproject.toml``); ``train.py`` and ``evaluate.py`` at the repository root
run the same ``main``. They are the top floor of DESIGN.md's arrows (scripts
-> runtime -> ...): nothing in the package imports them. Flags are defined
when ``main`` runs, not on import.
"""

import logging
import os
import sys


def program_name(default: str) -> str:
  """The program as the user called it, for its messages: ``train.py``,
  ``marl-jax-train``, ...; ``default`` when ``sys.argv`` has no name."""
  return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else default


def set_usage(doc: str) -> None:
  """absl's ``--help`` prints the ``__main__`` module's docstring: make it
  the program's usage, whether ``train.py`` or a console script started it."""
  main = sys.modules.get('__main__')
  if main is not None:
    main.__doc__ = doc


def exit_with_user_error(prog: str, error: BaseException) -> None:
  """Prints ``error`` as the program's one line and exits with status 2.

  The process ends here, so asyncio's logger is silenced first: when one read
  of a corrupt checkpoint fails, orbax's sibling read tasks fail too, and
  asyncio would log each at exit ("Task exception was never retrieved", with
  a traceback) after the line that already said what was wrong.
  """
  logging.getLogger('asyncio').setLevel(logging.CRITICAL + 1)
  print(f'{prog}: error: {error}', file=sys.stderr, flush=True)
  sys.exit(2)
