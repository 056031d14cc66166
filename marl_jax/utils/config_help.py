"""Every config key of a run, with its default, type and meaning.

``train.py --config_help`` prints this for the config the other flags select
(``--algo``, ``--env``, ``--runtime`` or ``--config``). The meanings are read
from the config files' own comments, so the help cannot drift from them:

  c.batch_size = 32  # sequences per member per update     <- a trailing comment
  # Fictitious self-play: a snapshot of a member ...        <- or the comment
  c.fsp_pool_size = 8                                          block just above

A comment block above several assignments describes each of them (a one-line
title of five words or fewer, such as ``# Run.``, names a section). Comments in
a preset's overrides (``apply_preset``) say why the preset differs, not what a
key means, and are not read. Keys are the dotted paths of the built config
(``network.lstm_size``); aliases such as ``net = c.network`` are followed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import textwrap
import tokenize
from typing import Dict, Iterable, List, NamedTuple, Optional

# Functions whose comments describe presets rather than keys.
_PRESET_FUNCTIONS = ('apply_preset',)


class KeyHelp(NamedTuple):
  key: str  # dotted path, e.g. 'network.lstm_size'
  default: object
  type: str
  meaning: str  # '' when no config file comments the key


def _comments(source: str) -> Dict[int, str]:
  """Line number -> the text of the comment on that line."""
  out = {}
  for tok in tokenize.generate_tokens(io.StringIO(source).readline):
    if tok.type == tokenize.COMMENT:
      out[tok.start[0]] = tok.string.lstrip('#').strip()
  return out


def _dotted(node: ast.AST, aliases: Dict[str, str]) -> Optional[str]:
  """``c.network.lstm_size`` -> 'network.lstm_size' (``c`` is the config;
  ``net`` an alias of 'network'); None for anything else."""
  parts = []
  while isinstance(node, ast.Attribute):
    parts.append(node.attr)
    node = node.value
  if isinstance(node, ast.Subscript):  # c['key'] is rare; not followed
    return None
  if not isinstance(node, ast.Name):
    return None
  if node.id not in aliases:
    return None
  parts.append(aliases[node.id])
  return '.'.join(p for p in reversed(parts) if p)


def _block_above(lines: List[str], comments: Dict[int, str],
                 lineno: int) -> str:
  """The comment lines directly above ``lineno`` (through other assignments
  of the same block, up to a blank line or code of another kind)."""
  block: List[str] = []
  i = lineno - 1
  while i >= 1:
    text = lines[i - 1].strip()
    if text.startswith('#'):
      block.append(comments.get(i, ''))
    elif not text:
      break
    elif block:  # code above the comment: the block has ended
      break
    elif not _is_simple_assignment(text):
      break
    i -= 1
  text = ' '.join(reversed(block)).strip()
  if len(block) == 1 and len(text.split()) <= 5:
    return ''  # a section title ('# Run.', '# Mixer (qmix only).')
  return text


def _is_simple_assignment(text: str) -> bool:
  head = text.split('=', 1)[0].strip()
  return ('=' in text and head.replace('.', '').replace('_', '').isalnum()
          and not text.startswith(('if ', 'elif ', 'for ', 'def ', 'return')))


def comments_of(sources: Iterable[str]) -> Dict[str, str]:
  """Dotted config key -> its meaning, from config file sources (the first
  file and the first assignment that comments a key win)."""
  meanings: Dict[str, str] = {}
  for source in sources:
    tree = ast.parse(source)
    comments = _comments(source)
    lines = source.splitlines()
    for fn in ast.walk(tree):
      if not isinstance(fn, ast.FunctionDef) or fn.name in _PRESET_FUNCTIONS:
        continue
      # ``c`` is the config (a parameter, or built in ``base_config``);
      # other names become aliases of its sub-configs (``net = c.network``).
      aliases = {'c': ''}
      for node in ast.walk(fn):
        if isinstance(node, ast.FunctionDef) and node is not fn:
          continue
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
          continue
        target = node.targets[0]
        if isinstance(target, ast.Name):
          value = _dotted(node.value, aliases)
          if value is not None and isinstance(node.value, ast.Attribute):
            aliases[target.id] = value
          continue
        key = _dotted(target, aliases)
        if not key or key in meanings:
          continue
        meaning = comments.get(node.lineno, '')
        if not meaning or lines[node.lineno - 1].lstrip().startswith('#'):
          meaning = meaning or _block_above(lines, comments, node.lineno)
        if meaning:
          meanings[key] = meaning
  return meanings


def _flatten(config, prefix: str = '') -> List[tuple]:
  out = []
  for key, value in config.items():
    path = f'{prefix}{key}'
    if hasattr(value, 'items') and not isinstance(value, dict) and (
        type(value).__name__ in ('ConfigDict', 'FrozenConfigDict')):
      if key == 'env_kwargs':  # the env family's kwargs: one entry
        out.append((path, value.to_dict()))
      else:
        out.extend(_flatten(value, path + '.'))
    else:
      out.append((path, value))
  return out


def config_sources(algo: str) -> List[str]:
  """The sources that define ``configs/<algo>.py``'s keys: the algorithm's
  file and the modules it builds on (``configs/common.py``, and e.g.
  ``configs/impala.py`` for OPRE), the algorithm's own first."""
  module = importlib.import_module(f'configs.{algo}')
  seen, order = set(), []

  def visit(mod):
    if mod.__name__ in seen:
      return
    seen.add(mod.__name__)
    order.append(inspect.getsource(mod))
    for value in vars(mod).values():
      if (inspect.ismodule(value) and value.__name__.startswith('configs.')):
        visit(value)

  visit(module)
  return order


def describe(config) -> List[KeyHelp]:
  """Every key of ``config`` (a built ``ml_collections.ConfigDict``)."""
  meanings = comments_of(config_sources(config.algo))
  out = []
  for key, value in _flatten(config):
    meaning = meanings.get(key, '')
    if key == 'env_kwargs':
      meaning = meaning or "the env family's kwargs (configs/common.py)"
    out.append(KeyHelp(key, value, type(value).__name__, meaning))
  return out


def format_help(config, width: int = 100) -> str:
  """The help text: per key, ``key = default  (type)`` and its meaning, on
  the same line where it fits, else wrapped under it."""
  rows = describe(config)
  head = (f'Config keys of --algo={config.algo} --env={config.env}'
          + (f' (preset {config.preset})' if config.get('preset') else '')
          + '; override any with --config.<key>=value.')
  lines = [head, '']
  for r in rows:
    key = f'{r.key} = {r.default!r}  ({r.type})'
    meaning = r.meaning or '(no comment)'
    if len(key) + 3 + len(meaning) <= width:
      lines.append(f'{key}  {meaning}')
      continue
    lines.append(key)
    lines.extend(textwrap.wrap(meaning, width=width, initial_indent='    ',
                               subsequent_indent='    ',
                               break_on_hyphens=False))
  return '\n'.join(lines)
