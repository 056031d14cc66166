"""The ``local`` launcher: every node of a program in its own process.

Nothing to start by hand: each node is a ``spawn``ed process that builds its
object, serves its methods on a Unix socket (``courier.Server``) and, if it has
one, calls ``run()``. Handles become ``courier.Client``s of those sockets.

Lifetime:
  * The program ends when the learner's ``run()`` returns (it has written its
    final checkpoint and raised the counter's stop flag); the launcher then
    waits for the other ``run()``s and stops every process.
  * Ctrl-C (or SIGTERM) in the launcher raises the stop flag: the learner
    writes a final checkpoint, then everything ends as above. Children ignore
    Ctrl-C themselves, so a checkpoint is never cut short; a second Ctrl-C
    stops them at once.
  * A node that raises stops the program; ``ProgramError`` names the node and
    carries its traceback.
  * A node of a restartable group (``actor``, ``evaluator``) whose process
    dies without reporting (killed by a signal, out of memory) is started
    again, up to ``max_restarts`` times per node: the counter, replay and
    learner keep their state, and the new env loop picks up the newest
    params. Its unfinished sequences are lost, as in any actor crash. Any
    other node dying stops the program.
  * Children exit when the launcher's process goes away: no orphans.
  * Each child is named after its node (``ps``: ``marl_jax actor_0``;
    ``top``: ``actor_0``).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
import threading
import time
import traceback
from typing import Any, Callable, Dict, Optional

from marl_jax.runtime import courier
from marl_jax.runtime import node_process
from marl_jax.runtime.node_process import RESTART_ENV, RESTARTABLE_GROUPS
from marl_jax.runtime.program import CourierNode, Program, ProgramError
from marl_jax.runtime.program import StopSignals


def _watch_parent(parent_pid: int) -> None:
  while True:
    if os.getppid() != parent_pid:
      os._exit(3)  # The launcher is gone: do not linger as an orphan.
    time.sleep(1.0)


def _node_main(node: CourierNode, addresses: Dict[str, str], parent_pid: int,
               results, env: Dict[str, str]) -> None:
  """Entry point of a node's process."""
  node_process.set_title(node.label)  # `ps`: marl_jax actor_0
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  os.environ.update(env)
  threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
  label = node.label
  server = None
  try:
    resolve = lambda h: courier.Client(addresses[h.node.label], h.node.label)
    args, kwargs = node.resolved_arguments(resolve)
    obj = node.constructor(*args, **kwargs)
    server = courier.Server(obj, addresses[label])
    if hasattr(obj, 'run'):
      result = obj.run()
      results.put((label, 'done', result))
    # Keep serving (the learner is the actors' variable source) until stopped.
    signal.pause()
  except BaseException as e:  # pylint: disable=broad-except
    results.put((label, 'error', f'{type(e).__name__}: {e}\n'
                 f'{traceback.format_exc()}'))
    results.close()
    results.join_thread()  # The report must leave before the process does.
    os._exit(1)
  finally:
    if server is not None:
      server.close()


def _terminate(processes: Dict[str, mp.Process], timeout: float = 10.) -> None:
  for p in processes.values():
    if p.is_alive():
      p.terminate()
  deadline = time.monotonic() + timeout
  for p in processes.values():
    p.join(max(0., deadline - time.monotonic()))
    if p.is_alive():
      p.kill()
      p.join(1.)


def launch(program: Program, *,
           progress: Optional[Callable[[Dict[str, Any]], None]] = None,
           progress_every_s: float = 5.0,
           stop_when: Optional[Callable[[Dict[str, Any]], bool]] = None,
           node_env: Optional[Dict[str, Dict[str, str]]] = None,
           shutdown_timeout_s: float = 120.,
           max_restarts: int = 3,
           on_start: Optional[Callable[[str, int], None]] = None
           ) -> Dict[str, Any]:
  """Runs ``program`` to completion.

  Returns:
    ``dict(results={label: run() result}, counts=<the counter's last get()>,
    interrupted=bool, restarts={label: times restarted})``.

  Args:
    program: the program (its ``counter`` and ``learner`` nodes are required).
    progress: called with the counter's ``get()`` every ``progress_every_s``.
    node_env: extra environment variables per group (e.g. thread limits).
    stop_when: called with the counter's ``get()`` as often as ``progress``;
      True stops the program (a final checkpoint is written).
    shutdown_timeout_s: how long to wait for nodes to finish after the stop.
    max_restarts: how many times a node of ``RESTARTABLE_GROUPS`` whose
      process died is started again before the program fails.
    on_start: called with ``(label, pid)`` whenever a node's process starts.
  """
  labels = [n.label for n in program.nodes]
  if 'counter' not in labels or 'learner' not in labels:
    raise ValueError(f'The program needs counter and learner nodes, got {labels}.')
  sockets = tempfile.mkdtemp(prefix='marl_jax_')
  addresses = {n.label: os.path.join(sockets, f'{n.label}.sock')
               for n in program.nodes}
  ctx = mp.get_context('spawn')
  results = ctx.Queue()
  processes: Dict[str, mp.Process] = {}
  runnable = {n.label for n in program.nodes if hasattr(n.constructor, 'run')}
  outcomes: Dict[str, Any] = {}
  counter = courier.Client(addresses['counter'], 'counter')
  nodes = {n.label: n for n in program.nodes}
  restarts: Dict[str, int] = {}
  interrupted = StopSignals().install()
  stop_sent = False

  def start(node: CourierNode) -> None:
    env = dict((node_env or {}).get(node.group, {}))
    env[RESTART_ENV] = str(restarts.get(node.label, 0))
    p = ctx.Process(target=_node_main, name=f'marl_jax:{node.label}',
                    args=(node, addresses, os.getpid(), results, env))
    p.start()
    processes[node.label] = p
    if on_start:
      on_start(node.label, p.pid)

  def drain() -> None:
    while not results.empty():
      label, status, value = results.get()
      if status == 'error':
        raise ProgramError(f'Node {label!r} failed: {value}')
      outcomes[label] = value

  try:
    for node in program.nodes:
      start(node)
    last_progress = time.monotonic()
    stop_deadline = None
    while True:
      drain()
      if runnable <= set(outcomes):
        break
      for label, p in list(processes.items()):
        if not p.is_alive() and label not in outcomes:
          time.sleep(0.5)  # Its error report may still be in the queue.
          drain()
          if label in outcomes:
            continue
          how = (f'was killed by signal {-p.exitcode}' if p.exitcode < 0 else
                 f'exited with code {p.exitcode} without a result')
          node = nodes[label]
          if node.group in RESTARTABLE_GROUPS:
            if stop_sent or 'learner' in outcomes:  # Stopping anyway.
              logging.warning('Node %r %s while the program stopped.', label,
                              how)
              outcomes[label] = None
              continue
            if restarts.get(label, 0) < max_restarts:
              restarts[label] = restarts.get(label, 0) + 1
              logging.warning('Node %r %s; starting it again (restart %d of '
                              '%d).', label, how, restarts[label],
                              max_restarts)
              start(node)
              continue
          raise ProgramError(f'Node {label!r} {how}.')
      if interrupted.count and not stop_sent:
        counter.request_stop()
        stop_sent = True
      if 'learner' in outcomes and stop_deadline is None:
        stop_deadline = time.monotonic() + shutdown_timeout_s
      if stop_deadline is not None and time.monotonic() > stop_deadline:
        missing = sorted(runnable - set(outcomes))
        logging.warning('Nodes %s did not finish within %.0f s of the stop; '
                        'stopping them.', missing, shutdown_timeout_s)
        break
      if (progress or stop_when) and (
          time.monotonic() - last_progress >= progress_every_s):
        try:
          counts = counter.get()
          if progress:
            progress(counts)
          if stop_when and not stop_sent and stop_when(counts):
            counter.request_stop()
            stop_sent = True
        except courier.NodeUnavailableError:
          pass
        last_progress = time.monotonic()
      time.sleep(0.05)
    counts = None
    try:
      counts = counter.get()
    except courier.NodeUnavailableError:
      pass
    if progress and counts:
      progress(counts)
    return dict(results=outcomes, counts=counts,
                interrupted=bool(interrupted.count), restarts=restarts)
  finally:
    try:
      if 'counter' in processes and processes['counter'].is_alive():
        counter.request_stop()
        counter.call('close')  # Flushes actor.csv.
        counter.close()
    except Exception:  # pylint: disable=broad-except
      pass
    _terminate(processes)
    interrupted.restore()
    shutil.rmtree(sockets, ignore_errors=True)
