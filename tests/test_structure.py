"""The package's import graph has no cycle (DESIGN.md: arrows run one way).

Every module of ``marl_jax`` is parsed with ``ast`` (nothing is imported), and
every import of another ``marl_jax`` module is an edge: absolute and relative,
at module level or inside functions (a deferred import still ties the two
modules together). ``from pkg import name`` is an edge to ``pkg.name`` when
that is a module, else to ``pkg``. Importing a submodule is not counted as
importing its parent package's ``__init__`` (Python runs it, but only a package
``__init__`` that imports its own submodules back would make that a cycle, and
such an edge is counted where it is written). Any strongly connected component
of more than one module is a cycle, and the test names each one with the
import lines that close it.
"""

from __future__ import annotations

import ast
import os
from typing import Dict, List, Set, Tuple

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PACKAGE = 'marl_jax'


def _modules() -> Dict[str, Tuple[str, bool]]:
  """``{module name: (path, is a package __init__)}`` of every module."""
  out = {}
  for directory, dirs, files in os.walk(os.path.join(_ROOT, _PACKAGE)):
    dirs[:] = sorted(d for d in dirs if not d.startswith(('.', '__pycache__')))
    rel = os.path.relpath(directory, _ROOT).split(os.sep)
    for name in sorted(files):
      if not name.endswith('.py'):
        continue
      path = os.path.join(directory, name)
      if name == '__init__.py':
        out['.'.join(rel)] = (path, True)
      else:
        out['.'.join(rel + [name[:-3]])] = (path, False)
  return out


def _resolve(name: str, modules) -> str | None:
  """The longest prefix of ``name`` that is a module of the package."""
  parts = name.split('.')
  while parts:
    candidate = '.'.join(parts)
    if candidate in modules:
      return candidate
    parts.pop()
  return None


def import_graph() -> Dict[str, Dict[str, List[int]]]:
  """``{module: {imported module: [line numbers]}}`` within the package."""
  modules = _modules()
  graph: Dict[str, Dict[str, List[int]]] = {}
  for module, (path, is_package) in modules.items():
    with open(path, encoding='utf-8') as f:
      tree = ast.parse(f.read(), filename=path)
    edges: Dict[str, List[int]] = {}

    def add(target, line):
      if target is not None and target != module:
        lines = edges.setdefault(target, [])
        if line not in lines:
          lines.append(line)

    package = module if is_package else module.rpartition('.')[0]
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        for alias in node.names:
          if alias.name.split('.')[0] == _PACKAGE:
            add(_resolve(alias.name, modules), node.lineno)
      elif isinstance(node, ast.ImportFrom):
        if node.level:
          base_parts = package.split('.')
          if node.level > 1:
            base_parts = base_parts[:-(node.level - 1)]
          base = '.'.join(base_parts + ([node.module] if node.module else []))
        else:
          base = node.module or ''
        if base.split('.')[0] != _PACKAGE:
          continue
        for alias in node.names:
          sub = f'{base}.{alias.name}'
          add(sub if sub in modules else _resolve(base, modules), node.lineno)
    graph[module] = edges
  return graph


def strongly_connected_components(graph) -> List[List[str]]:
  """Tarjan's algorithm (iterative); components in discovery order."""
  index: Dict[str, int] = {}
  low: Dict[str, int] = {}
  on_stack: Set[str] = set()
  stack: List[str] = []
  components = []
  counter = 0
  for root in sorted(graph):
    if root in index:
      continue
    work = [(root, iter(sorted(graph[root])))]
    index[root] = low[root] = counter
    counter += 1
    stack.append(root)
    on_stack.add(root)
    while work:
      node, children = work[-1]
      advanced = False
      for child in children:
        if child not in graph:
          continue
        if child not in index:
          index[child] = low[child] = counter
          counter += 1
          stack.append(child)
          on_stack.add(child)
          work.append((child, iter(sorted(graph[child]))))
          advanced = True
          break
        if child in on_stack:
          low[node] = min(low[node], index[child])
      if advanced:
        continue
      work.pop()
      if work:
        parent = work[-1][0]
        low[parent] = min(low[parent], low[node])
      if low[node] == index[node]:
        component = []
        while True:
          member = stack.pop()
          on_stack.discard(member)
          component.append(member)
          if member == node:
            break
        components.append(sorted(component))
  return components


def _describe(component, graph) -> str:
  members = set(component)
  lines = [f'  cycle of {len(component)} modules: {", ".join(component)}']
  for module in component:
    for target, where in sorted(graph[module].items()):
      if target in members:
        lines.append(f'    {module} -> {target} (line '
                     f'{", ".join(map(str, where))})')
  return '\n'.join(lines)


def test_the_graph_sees_every_kind_of_import():
  graph = import_graph()
  assert 'marl_jax.runtime.program' in graph
  assert 'marl_jax.types' in graph
  # Function-level and module-level imports both count.
  assert 'marl_jax.utils.config' in graph['marl_jax.runtime.program']


def test_tarjan_finds_cycles_and_not_chains():
  graph = {'a': {'b': [1]}, 'b': {'c': [1]}, 'c': {'a': [1]},
           'd': {'a': [1]}, 'e': {}}
  components = strongly_connected_components(graph)
  assert sorted(c for c in components if len(c) > 1) == [['a', 'b', 'c']]
  assert sorted(map(tuple, components)) == [('a', 'b', 'c'), ('d',), ('e',)]


def test_the_replay_node_and_the_program_import_what_the_design_says():
  """The replay node (Reverb's server) imports the replay tables only, and
  the program imports no launcher: launchers import it, never the reverse."""
  graph = import_graph()
  assert set(graph['marl_jax.replay.server']) <= {'marl_jax.replay.table'}
  launchers = [m for m in graph if m.startswith('marl_jax.runtime.launchers')]
  assert launchers
  assert not set(graph['marl_jax.runtime.program']) & set(launchers)
  for module, imported in graph.items():
    # marl_jax.cli holds the scripts (train.py, evaluate.py), the floor above.
    if not module.startswith(('marl_jax.runtime', 'marl_jax.cli')):
      assert not [m for m in imported if m.startswith('marl_jax.runtime')], (
          f'{module} imports the runtime, the floor above it')
    if not module.startswith('marl_jax.cli'):
      assert not [m for m in imported if m.startswith('marl_jax.cli')], (
          f'{module} imports the scripts (marl_jax.cli), the top floor')


def test_no_import_cycles_in_marl_jax():
  graph = import_graph()
  cycles = [c for c in strongly_connected_components(graph) if len(c) > 1]
  assert not cycles, (
      f'{len(cycles)} import cycle(s) in marl_jax (DESIGN.md: scripts -> '
      'runtime -> evaluation -> population/replay/algorithms -> networks/envs '
      '-> types):\n' + '\n'.join(_describe(c, graph) for c in cycles))
