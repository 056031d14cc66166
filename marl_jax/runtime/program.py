"""The distributed program: named groups of nodes, in Launchpad's vocabulary.

A ``Program`` holds ``CourierNode``s, each a constructor plus arguments, grouped
under labels (``replay``, ``counter``, ``learner``, ``actor`` x K,
``evaluator``). Arguments may be ``Handle``s of other nodes; a launcher
(``runtime/launchers/``) builds every node in its own process (``local``) or
Ray actor (``ray``), turns each handle into something that calls the node's
methods there (a courier client or a Ray actor handle), and calls ``run()`` on
the nodes that have one; or builds them all in one process and steps them in
turn (``single``). The node classes are the same under every launcher, each
beside the code it wraps: ``counter.Counter``, ``replay.server.ReplayNode``,
``learner.LearnerNode``, ``actor.ActorNode``, ``evaluator.EvaluatorNode``.

``make_program(config, exp_dir)`` builds the IMPALA-shaped program of
DESIGN.md for any algorithm of the contract. The launchers import this
module, never the reverse; ``launchers.run`` picks one by ``config.launcher``.
Also here, for every launcher and for anakin: ``RunResult``, ``StopSignals``
(the one Ctrl-C handler) and ``ProgramError``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
from typing import Any, Callable, Dict, List, Optional

from marl_jax.utils import config as config_lib


class ProgramError(RuntimeError):
  """The program could not run: a node failed (named, with its traceback), or
  a launcher could not start it (e.g. an unreachable Ray cluster). train.py
  prints it as one line and exits 1."""


@dataclasses.dataclass
class RunResult:
  """What a finished (or interrupted) run reports, in every runtime."""
  env_steps: int
  learner_steps: int
  interrupted: bool
  member_returns: Optional[Any]  # mean episode return per member, last window


class StopSignals:
  """The one Ctrl-C/SIGTERM handler of every launcher and of anakin.

  The first signal asks for a graceful stop (``stop`` becomes True; the run
  ends at its next safe point with a final checkpoint), the second raises
  ``KeyboardInterrupt``. ``install()``/``restore()`` or ``with StopSignals()
  as signals:``; the previous handlers come back either way. Outside the main
  thread signals are left alone.
  """

  def __init__(self):
    self.count = 0
    self._previous = {}

  @property
  def stop(self) -> bool:
    return self.count > 0

  def _handle(self, signum, frame):
    del frame
    self.count += 1
    if self.count == 1:
      logging.warning('Received signal %d: stopping after a final checkpoint '
                      '(Ctrl-C again to stop at once).', signum)
    else:
      raise KeyboardInterrupt

  def install(self) -> 'StopSignals':
    for sig in (signal.SIGINT, signal.SIGTERM):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:
        pass  # Not the main thread: leave signals alone.
    return self

  def restore(self) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def __enter__(self) -> 'StopSignals':
    return self.install()

  def __exit__(self, *exc) -> None:
    self.restore()


class Handle:
  """A reference to a node, resolved to a live client by the launcher."""

  def __init__(self, node: 'CourierNode'):
    self.node = node

  def __repr__(self) -> str:
    return f'Handle({self.node.label!r})'


class CourierNode:
  """A node built by ``constructor(*args, **kwargs)``, its methods served.

  Attributes:
    label: unique name within the program (``actor_0``, ``learner``, ...).
    group: the group it was added under.
    threads: how many concurrent method calls it serves (Ray actors).
  """

  def __init__(self, constructor: Callable[..., Any], *args, **kwargs):
    self.constructor = constructor
    self.args = args
    self.kwargs = kwargs
    self.label: Optional[str] = None
    self.group: Optional[str] = None

  def create_handle(self) -> Handle:
    return Handle(self)

  def resolved_arguments(self, resolve: Callable[[Handle], Any]):
    """``args, kwargs`` with every ``Handle`` replaced by ``resolve(handle)``."""
    def fix(x):
      if isinstance(x, Handle):
        return resolve(x)
      if isinstance(x, (list, tuple)):
        return type(x)(fix(y) for y in x)
      if isinstance(x, dict):
        return {k: fix(v) for k, v in x.items()}
      return x
    return fix(self.args), fix(self.kwargs)


class Program:
  """Named groups of nodes."""

  def __init__(self, name: str):
    self.name = name
    self.groups: Dict[str, List[CourierNode]] = {}
    self._current_group: Optional[str] = None

  @contextlib.contextmanager
  def group(self, label: str):
    previous, self._current_group = self._current_group, label
    try:
      yield
    finally:
      self._current_group = previous

  def add_node(self, node: CourierNode, label: Optional[str] = None) -> Handle:
    group = label or self._current_group
    if not group:
      raise ValueError('add_node needs a label or an enclosing group().')
    members = self.groups.setdefault(group, [])
    node.group = group
    node.label = group if label and not self._current_group else (
        f'{group}_{len(members)}')
    members.append(node)
    return node.create_handle()

  @property
  def nodes(self) -> List[CourierNode]:
    return [n for group in self.groups.values() for n in group]

  def __repr__(self) -> str:
    groups = ', '.join(f'{g}: {len(n)}' for g, n in self.groups.items())
    return f'Program({self.name!r}; {groups})'


def make_program(config, exp_dir: str, resume: bool = False) -> Program:
  """The program of DESIGN.md for ``config``: replay, counter, learner,
  ``num_actors`` env-loop actors and (if ``eval_every_updates``) an evaluator.
  """
  # Imported here so that building a program description stays cheap, and
  # so that a node's process (which unpickles its CourierNode, and so imports
  # this module) imports only its own node's module.
  # pylint: disable=g-import-not-at-top
  from marl_jax.replay.server import ReplayNode
  from marl_jax.runtime.actor import ActorNode
  from marl_jax.runtime.counter import Counter
  from marl_jax.runtime.evaluator import EvaluatorNode
  from marl_jax.runtime.learner import LearnerNode, replay_table
  # pylint: enable=g-import-not-at-top

  config_lib.validate(config)
  config_dict = config.to_dict()
  program = Program(f'marl_jax:{config.algo}:{config.env}')
  counter = program.add_node(
      CourierNode(Counter, config_dict, exp_dir), label='counter')
  # The replay node builds its TableSpec (the algorithm's) in its process.
  replay = program.add_node(
      CourierNode(ReplayNode, config_dict, replay_table), label='replay')
  learner = program.add_node(
      CourierNode(LearnerNode, config_dict, exp_dir, replay, counter,
                  resume), label='learner')
  with program.group('actor'):
    for actor_id in range(config.num_actors):
      program.add_node(CourierNode(ActorNode, config_dict, actor_id,
                                   replay, learner, counter))
  if config.get('eval_every_updates', 0):
    program.add_node(CourierNode(EvaluatorNode, config_dict, exp_dir,
                                 learner, counter), label='evaluator')
  return program


def check_resumable(config, exp_dir: str) -> int:
  """Raises ``CheckpointError`` (naming the step and file) unless the latest
  checkpoint of ``exp_dir`` restores into this config's learner state.

  Done before any node starts, so that a bad checkpoint is one clear error
  rather than a failed learner node. Returns the checkpoint's env steps.
  """
  import os  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from marl_jax.runtime.learner import init_population, spec_and_algorithm  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
  _, algorithm = spec_and_algorithm(config)
  target = dict(learner=init_population(algorithm, jax.random.PRNGKey(0),
                                        config.population_size), runtime=b'')
  checkpointer = checkpointing.Checkpointer(
      os.path.join(exp_dir, 'checkpoints'), max_to_keep=None, read_only=True)
  try:
    _, meta = checkpointer.restore(target=target)
  finally:
    checkpointer.close()
  return int(meta.get('env_steps', 0))


def actor_thread_env() -> dict:
  """Environment of actor processes: one intra-op thread each.

  Actors run small batched forward passes; XLA's thread pool only adds
  contention with the other processes on the same cores.
  """
  import os  # pylint: disable=g-import-not-at-top
  flags = os.environ.get('XLA_FLAGS', '')
  extra = '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'
  return {'XLA_FLAGS': f'{flags} {extra}'.strip()}
