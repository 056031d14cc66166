"""What a launcher tells a node's process, and what the node reads back.

The contract between the launchers (``runtime/launchers/``) and the node
classes they host, kept apart from both so that neither imports the other:

* ``RESTARTABLE_GROUPS``: the groups whose nodes a launcher starts again when
  their process dies (they hold no state the program needs; the counter,
  replay and learner do).
* ``RESTART_ENV``: set in a node's environment, how many times it has been
  restarted (0 at first); ``restarts()`` reads it. Nodes mix it into their
  seeds, so that a restarted env loop does not replay the episodes of its
  first life.
* ``set_title(label)``: names the process after its node, so that ``ps`` and
  ``top`` show ``marl_jax actor_0`` rather than a ``spawn_main`` command line.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

RESTARTABLE_GROUPS = ('actor', 'evaluator')
RESTART_ENV = 'MARL_JAX_NODE_RESTARTS'
TITLE_PREFIX = 'marl_jax'

_PR_SET_NAME = 15  # linux/prctl.h
_COMM_LENGTH = 15  # /proc/<pid>/comm holds 15 bytes (16 with the NUL)


def restarts() -> int:
  """How many times the launcher has restarted this node's process."""
  return int(os.environ.get(RESTART_ENV, '0') or 0)


def title(label: str) -> str:
  """The process title of node ``label``: ``marl_jax <label>``."""
  return f'{TITLE_PREFIX} {label}'


def _set_comm(name: str) -> bool:
  """prctl(PR_SET_NAME): the name ``top`` and ``/proc/<pid>/comm`` show."""
  try:
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6',
                       use_errno=True)
    return libc.prctl(_PR_SET_NAME, ctypes.c_char_p(
        name.encode()[:_COMM_LENGTH]), 0, 0, 0) == 0
  except (OSError, AttributeError):
    return False


def set_title(label: str) -> None:
  """Names this process after node ``label``.

  The command line (``ps``, ``/proc/<pid>/cmdline``) becomes ``marl_jax
  <label>`` (``setproctitle``, in requirements.txt) and the short name
  (``top``, ``/proc/<pid>/comm``, 15 characters at most) the label itself,
  so that ``actor_12`` is not cut to ``marl_jax actor_``. Without
  ``setproctitle`` only the short name is set. Never raises: a process title
  is not worth failing a node for.
  """
  try:
    import setproctitle  # pylint: disable=g-import-not-at-top
  except ImportError:
    setproctitle = None
  if setproctitle is not None:
    try:
      setproctitle.setproctitle(title(label))
    except Exception as e:  # pylint: disable=broad-except
      logging.debug('setproctitle failed: %s', e)
  _set_comm(label)
