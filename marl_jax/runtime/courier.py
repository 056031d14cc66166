"""Method calls between processes: a node's object served on a Unix socket.

Launchpad's courier, for one machine: ``Server(obj, address)`` serves every
public method of ``obj``; ``Client(address)`` calls them, ``client.insert(x)``
runs ``obj.insert(x)`` in the server's process and returns its result (or
raises its exception, with the remote traceback attached). Each connection is
served by its own thread, so a call that blocks (a sample waiting for data)
never holds up the others. Messages are pickled (protocol 5), which copies numpy
arrays once on each side: cheap next to what the nodes do with them.

A ``Client`` is picklable (it pickles to its address), so handles can be passed
to nodes in other processes; each thread of a process gets its own connection.
"""

from __future__ import annotations

import os
import pickle
import socket
import threading
import time
import traceback
from multiprocessing import connection
from typing import Any, Optional


class NodeUnavailableError(ConnectionError):
  """The node behind a handle cannot be reached (not started, or gone)."""


class RemoteError(RuntimeError):
  """An exception raised by a remote method that could not be sent as itself."""


_OK, _ERR = 0, 1


class Server:
  """Serves the public methods of ``obj`` on the Unix socket ``address``."""

  def __init__(self, obj: Any, address: str):
    self._obj = obj
    self.address = address
    if os.path.exists(address):
      os.unlink(address)
    self._listener = connection.Listener(address, family='AF_UNIX', backlog=128)
    self._closed = False
    self._connections = []
    self._thread = threading.Thread(target=self._accept, daemon=True,
                                    name=f'courier-accept:{address}')
    self._thread.start()

  def _accept(self) -> None:
    while not self._closed:
      try:
        conn = self._listener.accept()
      except OSError:
        return  # Closed.
      self._connections.append(conn)
      threading.Thread(target=self._serve, args=(conn,), daemon=True,
                       name='courier-serve').start()

  def _serve(self, conn) -> None:
    while not self._closed:
      try:
        method, args, kwargs = pickle.loads(conn.recv_bytes())
      except (EOFError, OSError):
        return  # The client went away.
      try:
        if method.startswith('_'):
          raise AttributeError(f'{method!r} is not a public method.')
        result = getattr(self._obj, method)(*args, **kwargs)
        reply = (_OK, result)
      except BaseException as e:  # pylint: disable=broad-except
        reply = (_ERR, (e, traceback.format_exc()))
      try:
        try:
          payload = pickle.dumps(reply, protocol=5)
        except Exception:  # pylint: disable=broad-except
          status, value = reply
          if status == _OK:
            raise
          payload = pickle.dumps(
              (_ERR, (RemoteError(repr(value[0])), value[1])), protocol=5)
        conn.send_bytes(payload)
      except (OSError, EOFError):
        return

  def close(self) -> None:
    self._closed = True
    try:
      self._listener.close()
    except OSError:
      pass
    for conn in self._connections:
      try:
        conn.close()
      except OSError:
        pass
    if os.path.exists(self.address):
      try:
        os.unlink(self.address)
      except OSError:
        pass


class Client:
  """Calls the methods of the object served at ``address``.

  Args:
    address: the server's Unix socket path.
    name: the node's label, for error messages.
    connect_timeout: how long to wait for the server to come up.
  """

  def __init__(self, address: str, name: Optional[str] = None,
               connect_timeout: float = 120.0):
    self._address = address
    self._name = name or address
    self._connect_timeout = connect_timeout
    self._local = threading.local()

  def __reduce__(self):
    return (Client, (self._address, self._name, self._connect_timeout))

  def __repr__(self) -> str:
    return f'Client({self._name!r})'

  def _connection(self):
    conn = getattr(self._local, 'conn', None)
    if conn is not None:
      return conn
    deadline = time.monotonic() + self._connect_timeout
    while True:
      try:
        conn = connection.Client(self._address, family='AF_UNIX')
        break
      except (FileNotFoundError, ConnectionRefusedError, socket.error) as e:
        if time.monotonic() > deadline:
          raise NodeUnavailableError(
              f'Node {self._name!r} did not come up at {self._address} within '
              f'{self._connect_timeout:.0f} s ({e}).') from e
        time.sleep(0.05)
    self._local.conn = conn
    return conn

  def call(self, method: str, *args, **kwargs) -> Any:
    conn = self._connection()
    try:
      conn.send_bytes(pickle.dumps((method, args, kwargs), protocol=5))
      status, value = pickle.loads(conn.recv_bytes())
    except (EOFError, OSError) as e:
      self._local.conn = None
      raise NodeUnavailableError(
          f'Node {self._name!r} went away during {method}() ({e!r}).') from e
    if status == _OK:
      return value
    error, remote_traceback = value
    error.add_note(f'Raised in node {self._name!r}:\n{remote_traceback}')
    raise error

  def __getattr__(self, name: str):
    if name.startswith('_'):
      raise AttributeError(name)
    return lambda *args, **kwargs: self.call(name, *args, **kwargs)

  def close(self) -> None:
    conn = getattr(self._local, 'conn', None)
    if conn is not None:
      conn.close()
      self._local.conn = None
