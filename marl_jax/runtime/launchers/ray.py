"""The ``ray`` launcher: every node of a program as a Ray actor.

``launch(program, address='auto')`` joins an existing Ray cluster (``ray start
--head`` on one machine, ``ray start --address=...`` on the others); with no
address it starts a local Ray instance for the run and stops it afterwards.
Each node becomes a threaded Ray actor (so a blocking call, such as the
learner's ``run()`` or a sample waiting for data, never holds up the others);
handles become ``RayClient``s that call the node's methods and wait for the
result. The node classes are the same as under ``local``.

Faults: nodes of the restartable groups (``actor``, ``evaluator``) are Ray
actors with ``max_restarts``: when one's process dies, Ray builds it again and
re-runs its ``run()``, as the ``local`` launcher does.

Placement: actors and the learner ask Ray for ``num_cpus`` (1 each by default,
``cpus_per_node`` overrides per group), the replay, counter and evaluator for
none, so that on a cluster the env loops spread over the machines' cores.

An address that leads nowhere (no Ray cluster there, a host that does not
resolve) is a ``ProgramError`` naming it within ``CONNECT_TIMEOUT_S``, rather
than Ray's endless retries. Node processes are named after their node: Ray
titles a worker ``ray::<actor class>``, and each node's actor class is
``marl_jax_<label>``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

from marl_jax.runtime.node_process import RESTART_ENV, RESTARTABLE_GROUPS
from marl_jax.runtime.program import CourierNode, Program, ProgramError
from marl_jax.runtime.program import StopSignals
from marl_jax.utils import extras

_DEFAULT_CPUS = {'actor': 1, 'learner': 1}
# How long joining a cluster may take: a TCP connect to its address, then
# ray.init itself (which, left alone, retries an address without end).
CONNECT_TIMEOUT_S = 5.
INIT_TIMEOUT_S = 15.
_DEFAULT_GCS_PORT = 6379


class RayClient:
  """Calls a node's methods on its Ray actor; picklable."""

  def __init__(self, actor, label: str):
    self._actor = actor
    self._label = label

  def call(self, method: str, *args, **kwargs) -> Any:
    import ray  # pylint: disable=g-import-not-at-top
    try:
      return ray.get(self._actor.call.remote(method, args, kwargs))
    except ray.exceptions.RayTaskError as e:
      cause = e.as_instanceof_cause()
      raise cause from None

  def __getattr__(self, name: str):
    if name.startswith('_'):
      raise AttributeError(name)
    return lambda *args, **kwargs: self.call(name, *args, **kwargs)

  def __repr__(self) -> str:
    return f'RayClient({self._label!r})'


class _NodeActor:
  """The Ray actor hosting one node's object."""

  def __init__(self, node: CourierNode, resolved_args, resolved_kwargs,
               env: Dict[str, str]):
    import ray  # pylint: disable=g-import-not-at-top
    os.environ.update(env)
    if ray.get_runtime_context().was_current_actor_reconstructed:
      # Ray does not say how many times: the new pid keeps seeds apart.
      os.environ[RESTART_ENV] = str(os.getpid())
    self._obj = node.constructor(*resolved_args, **resolved_kwargs)

  def pid(self) -> int:
    return os.getpid()

  def call(self, method: str, args, kwargs):
    if method.startswith('_'):
      raise AttributeError(f'{method!r} is not a public method.')
    return getattr(self._obj, method)(*args, **kwargs)

  def run(self):
    return self._obj.run()


def _host_and_port(address: str) -> Optional[Tuple[str, int]]:
  """``(host, port)`` of a cluster address (``host:port``, ``ray://host:port``,
  ``[v6]:port``; no port: Ray's default); None for ``auto``/``local``."""
  rest = address.split('://', 1)[1] if '://' in address else address
  rest = rest.split('/', 1)[0]
  if rest in ('auto', 'local', ''):
    return None
  if rest.startswith('['):  # [IPv6]:port
    host, _, tail = rest[1:].partition(']')
    port = tail[1:] if tail.startswith(':') else ''
  elif rest.count(':') == 1:
    host, port = rest.split(':')
  else:
    host, port = rest, ''
  try:
    return host, int(port) if port else _DEFAULT_GCS_PORT
  except ValueError:
    raise ProgramError(f'--ray_address={address}: {port!r} is not a port '
                       '(expected host:port, e.g. 10.0.0.1:6379, or auto).'
                       ) from None


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
  """Raises ``ProgramError`` naming ``address`` unless a TCP connection to it
  opens within ``timeout`` (a quick check before ``ray.init``, which would
  retry an unreachable address for ever)."""
  where = _host_and_port(address)
  if where is None:
    return
  host, port = where
  try:
    with socket.create_connection((host, port), timeout=timeout):
      pass
  except socket.gaierror as e:
    raise ProgramError(f'--ray_address={address}: cannot resolve host '
                       f'{host!r} ({e.strerror or e}).') from None
  except OSError as e:
    reason = ('timed out after %.0f s' % timeout
              if isinstance(e, socket.timeout) else e.strerror or str(e))
    raise ProgramError(f'--ray_address={address}: no Ray cluster reachable '
                       f'there ({reason}); start one with `ray start --head` '
                       'or pass the address it printed.') from None


def _init_within(timeout: float, **kwargs) -> None:
  """``ray.init(**kwargs)`` in a thread; ``ProgramError`` if it has not
  returned within ``timeout`` (its error, if it raised, is re-raised)."""
  import ray  # pylint: disable=g-import-not-at-top
  out = {}

  def init():
    try:
      ray.init(**kwargs)
    except BaseException as e:  # pylint: disable=broad-except
      out['error'] = e
    out['done'] = True

  thread = threading.Thread(target=init, daemon=True, name='ray-init')
  thread.start()
  thread.join(timeout)
  address = kwargs.get('address')
  if 'done' not in out:
    raise ProgramError(f'--ray_address={address}: could not join a Ray '
                       f'cluster there within {timeout:.0f} s.')
  if 'error' in out:
    e = out['error']
    message = ' '.join(str(e).split())
    raise ProgramError(f'--ray_address={address}: {type(e).__name__}: '
                       f'{message}') from e


def _node_actor_class(label: str):
  """``_NodeActor`` under the node's name, so that Ray titles its process
  ``ray::marl_jax_<label>`` (``ps``, ``top``)."""
  return type(f'marl_jax_{label}', (_NodeActor,), {})


def launch(program: Program, address: Optional[str] = None, *,
           progress: Optional[Callable[[Dict[str, Any]], None]] = None,
           progress_every_s: float = 5.0,
           stop_when: Optional[Callable[[Dict[str, Any]], bool]] = None,
           cpus_per_node: Optional[Dict[str, float]] = None,
           node_env: Optional[Dict[str, Dict[str, str]]] = None,
           shutdown_timeout_s: float = 120.,
           max_restarts: int = 3,
           on_start: Optional[Callable[[str, int], None]] = None
           ) -> Dict[str, Any]:
  """Runs ``program`` on Ray; returns as ``local.launch`` does (without
  ``restarts``: Ray restarts nodes itself). ``on_start(label, pid)`` is called
  once per node, after every node is built."""
  extras.require('ray', '--launcher=ray')  # one line naming marl_jax[ray]
  import ray  # pylint: disable=g-import-not-at-top
  cpus = dict(_DEFAULT_CPUS, **(cpus_per_node or {}))
  started_here = not ray.is_initialized()
  if started_here:
    if address:
      check_reachable(address)
      _init_within(INIT_TIMEOUT_S, address=address, include_dashboard=False,
                   logging_level=logging.WARNING)
    else:
      needed = sum(cpus.get(n.group, 0) for n in program.nodes)
      ray.init(num_cpus=max(os.cpu_count() or 1, int(needed) + 1),
               include_dashboard=False, logging_level=logging.WARNING)
  clients: Dict[str, RayClient] = {}
  actors = {}
  interrupted = StopSignals().install()
  try:
    # Nodes only hold handles of nodes added before them (program order).
    for node in program.nodes:
      args, kwargs = node.resolved_arguments(
          lambda h: clients[h.node.label])
      retries = max_restarts if node.group in RESTARTABLE_GROUPS else 0
      remote_node = ray.remote(_node_actor_class(node.label))
      actor = remote_node.options(
          name=None, max_concurrency=32, max_restarts=retries,
          max_task_retries=retries,
          num_cpus=cpus.get(node.group, 0)).remote(
              node, args, kwargs, dict((node_env or {}).get(node.group, {})))
      actors[node.label] = actor
      clients[node.label] = RayClient(actor, node.label)
    if on_start:
      for label, actor in actors.items():
        on_start(label, ray.get(actor.pid.remote()))
    runs = {actors[n.label].run.remote(): n.label for n in program.nodes
            if hasattr(n.constructor, 'run')}
    counter = clients['counter']
    outcomes: Dict[str, Any] = {}
    pending = list(runs)
    last_progress = time.monotonic()
    stop_sent = False
    stop_deadline = None
    while pending:
      done, pending = ray.wait(pending, timeout=0.2)
      for ref in done:
        label = runs[ref]
        try:
          outcomes[label] = ray.get(ref)
        except ray.exceptions.RayError as e:
          raise ProgramError(f'Node {label!r} failed: {e}') from None
      if interrupted.count and not stop_sent:
        counter.request_stop()
        stop_sent = True
      if 'learner' in outcomes and stop_deadline is None:
        stop_deadline = time.monotonic() + shutdown_timeout_s
      if stop_deadline is not None and time.monotonic() > stop_deadline:
        logging.warning('Nodes %s did not finish within %.0f s of the stop.',
                        sorted(runs[r] for r in pending), shutdown_timeout_s)
        break
      if (progress or stop_when) and (
          time.monotonic() - last_progress >= progress_every_s):
        counts = counter.get()
        if progress:
          progress(counts)
        if stop_when and not stop_sent and stop_when(counts):
          counter.request_stop()
          stop_sent = True
        last_progress = time.monotonic()
    counts = counter.get()
    counter.call('close')
    if progress:
      progress(counts)
    return dict(results=outcomes, counts=counts,
                interrupted=bool(interrupted.count))
  finally:
    for actor in actors.values():
      try:
        ray.kill(actor)
      except Exception:  # pylint: disable=broad-except
        pass
    if started_here:
      ray.shutdown()
    interrupted.restore()
