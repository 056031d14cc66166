"""The distributed program: named groups of nodes, in Launchpad's vocabulary.

A ``Program`` holds ``CourierNode``s, each a constructor plus arguments, grouped
under labels (``replay``, ``counter``, ``learner``, ``actor`` x K,
``evaluator``). Arguments may be ``Handle``s of other nodes; a launcher builds
every node in its own process (``local``) or Ray actor (``ray``), turns each
handle into something that calls the node's methods there (a courier client or
a Ray actor handle), and calls ``run()`` on the nodes that have one; or builds
them all in one process and steps them in turn (``single``). The node classes
(``runtime/nodes.py``) are the same under every launcher.

``make_program(config, exp_dir)`` builds the IMPALA-shaped program of
DESIGN.md for any algorithm of the contract.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
from typing import Any, Callable, Dict, List, Optional

from marl_jax.utils import config as config_lib


# Groups whose nodes a launcher starts again when their process dies: they
# hold no state the program needs (the counter, replay and learner do).
RESTARTABLE_GROUPS = ('actor', 'evaluator')
# Set in a node's environment: how many times it has been restarted (0 at
# first). Nodes mix it into their seeds, so that a restarted env loop does not
# replay the episodes of its first life.
RESTART_ENV = 'MARL_JAX_NODE_RESTARTS'


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
  # Imported here so that building a program description stays cheap.
  from marl_jax.runtime import nodes  # pylint: disable=g-import-not-at-top

  config_lib.validate(config)
  config_dict = config.to_dict()
  program = Program(f'marl_jax:{config.algo}:{config.env}')
  counter = program.add_node(
      CourierNode(nodes.Counter, config_dict, exp_dir), label='counter')
  replay = program.add_node(
      CourierNode(nodes.ReplayNode, config_dict), label='replay')
  learner = program.add_node(
      CourierNode(nodes.LearnerNode, config_dict, exp_dir, replay, counter,
                  resume), label='learner')
  with program.group('actor'):
    for actor_id in range(config.num_actors):
      program.add_node(CourierNode(nodes.ActorNode, config_dict, actor_id,
                                   replay, learner, counter))
  if config.get('eval_every_updates', 0):
    program.add_node(CourierNode(nodes.EvaluatorNode, config_dict, exp_dir,
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
  from marl_jax import algorithms  # pylint: disable=g-import-not-at-top
  from marl_jax.runtime.learner import init_population  # pylint: disable=g-import-not-at-top
  from marl_jax.utils import checkpointing  # pylint: disable=g-import-not-at-top
  env = config_lib.make_env(config)
  spec = env.spec()
  env.close()
  algorithm = algorithms.make(config.algo, spec, config)
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


def run(config, exp_dir: str, resume: bool = False,
        ray_address: Optional[str] = None):
  """Builds the program of ``config`` and runs it with ``config.launcher``
  (``local``, ``ray``, or ``single``: the same nodes stepped in turn in this
  process, see ``runtime/single.py``).

  Returns a ``RunResult`` (env steps, learner steps, interrupted,
  mean recent return per member).
  """
  from marl_jax.runtime import single  # pylint: disable=g-import-not-at-top
  from marl_jax.utils.logging import ProgressLine  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  if config.launcher == 'single':
    if ray_address:
      raise config_lib.ConfigError('ray_address needs launcher ray.')
    return single.run(config, exp_dir, resume=resume)
  if config.matchmaking in ('fsp', 'psro') or config.get('pbt_every_updates',
                                                         0):
    raise config_lib.ConfigError(
        f'matchmaking={config.matchmaking} and pbt_every_updates run under '
        f'--launcher=single only for now (got launcher {config.launcher!r}).')
  initial_steps = check_resumable(config, exp_dir) if resume else 0
  program = make_program(config, exp_dir, resume=resume)
  progress = ProgressLine(total_steps=config.num_steps,
                          interval_s=config.progress_every_s,
                          initial_steps=initial_steps)
  last = {}

  def show(counts):
    last.update(counts)
    progress.update(counts['env_steps'], counts.get('member_returns'),
                    {'updates': counts['learner_steps']})

  if config.launcher == 'local':
    from marl_jax.runtime import local  # pylint: disable=g-import-not-at-top
    out = local.launch(program, progress=show,
                       progress_every_s=min(config.progress_every_s, 5.0),
                       node_env={'actor': actor_thread_env()})
  elif config.launcher == 'ray':
    from marl_jax.runtime import ray as ray_launcher  # pylint: disable=g-import-not-at-top
    out = ray_launcher.launch(program, address=ray_address, progress=show,
                              progress_every_s=min(config.progress_every_s,
                                                   5.0))
  else:
    raise config_lib.ConfigError(
        f'Unknown launcher {config.launcher!r}; valid: local, ray, single.')
  counts = out['counts'] or last
  returns = counts.get('member_returns')
  progress.final(counts.get('env_steps', 0),
                 None if returns is None else np.asarray(returns))
  return RunResult(env_steps=int(counts.get('env_steps', 0)),
                   learner_steps=int(counts.get('learner_steps', 0)),
                   interrupted=out['interrupted'],
                   member_returns=returns)
