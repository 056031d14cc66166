"""Checkpoints of arbitrary pytrees, built on orbax-checkpoint.

A `Checkpointer` owns one directory of numbered steps::

  <directory>/
    1000/            one committed checkpoint (orbax step directory)
      state/         the arrays (orbax PyTree item, OCDBT + zarr)
      meta/          JSON: the caller's metadata and our per-leaf manifest
      commit_success.txt
    2000/
    3000.orbax-checkpoint-tmp-<ts>/   a save that never finished (ignored)

What it adds on top of `orbax.checkpoint.CheckpointManager`:

* **Exact round trips.** Every leaf is stored with its path, shape, dtype and a
  CRC32 of its bytes in a JSON manifest. `restore(target=...)` rebuilds the
  target's own pytree structure (NamedTuples, optax states, ...) and checks
  every value against its checksum, so a bit flip on disk is an error rather
  than silently different parameters (orbax 0.12.8 alone restores such a flip
  without complaint).
* **Bytes leaves.** Any `bytes` leaf in the state (say a pickled environment
  state needed for an exact resume) is stored as a uint8 array (see
  `bytes_to_array`) and comes back as `bytes`, whatever its length. In a
  target, any `bytes` value (e.g. `b''`) marks the leaf as bytes.
* **Typed PRNG keys** (`jax.random.key`) are stored as their key data and
  rewrapped with the same implementation; raw uint32 keys are plain arrays.
* **Clear errors.** Every failure a user can cause (no checkpoint, a corrupt
  one, a target with another population size or network) raises
  `CheckpointError` naming the directory and what differs, never a tensorstore
  traceback. (A failed tensorstore read can also make Python print a stray
  "Event loop is closed" error later; exactly that message is filtered out of
  `sys.unraisablehook`.)
* **Atomicity.** Saves are synchronous. Orbax writes each step into a
  temporary directory and renames it when complete; only directories that
  carry orbax's `commit_success.txt` count as steps, so nothing half-written is
  ever the latest checkpoint. Leftover temporary directories are deleted when
  a writing `Checkpointer` is created.

Leaves may be jax arrays (including typed keys), numpy arrays or scalars,
python `bool`/`int`/`float`, and `bytes`. Values are saved from host memory
and restored to host, then placed like the target leaf (`jax.Array` targets
keep their sharding). This is a single-host checkpointer.

Example::

  ckpt = Checkpointer('/tmp/run/checkpoints', max_to_keep=3)
  ckpt.save(step, learner_state, metadata={'env_steps': n})
  state, meta = ckpt.restore(target=learner_state)  # latest step
"""

import json
import logging
import os
import re
import shutil
import sys
import zlib
from typing import Any, Mapping, NamedTuple

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = [
    'CheckpointError',
    'Checkpointer',
    'array_to_bytes',
    'bytes_to_array',
    'silence_orbax_info_logs',
]

_FORMAT_VERSION = 1
_STATE_ITEM = 'state'
_META_ITEM = 'meta'
_COMMIT_FILE = 'commit_success.txt'
_TMP_MARKER = '.orbax-checkpoint-tmp'
_BYTES_HEADER = 8  # little-endian uint64 length prefix
_MAX_LISTED_DIFFERENCES = 12
_PY_KINDS = {'bool': 'b', 'int': 'iu', 'float': 'f'}  # -> numpy dtype kinds


class CheckpointError(Exception):
  """A checkpoint is missing, corrupt, or does not match what was asked for."""


# ----------------------------------------------------------------------------
# Bytes <-> array.


def bytes_to_array(b: bytes) -> np.ndarray:
  """Encodes bytes as a 1-D uint8 array, with an 8-byte length header.

  The header makes the array non-empty (orbax cannot store zero-size arrays)
  and lets `array_to_bytes` detect truncation.

  Args:
    b: the bytes (or bytearray / memoryview) to encode.

  Returns:
    A uint8 array of shape `[8 + len(b)]`.
  """
  payload = bytes(b)
  header = np.frombuffer(
      len(payload).to_bytes(_BYTES_HEADER, 'little'), np.uint8)
  return np.concatenate([header, np.frombuffer(payload, np.uint8)])


def array_to_bytes(a: Any) -> bytes:
  """Decodes an array made by `bytes_to_array` back into bytes.

  Args:
    a: a 1-D uint8 array (numpy or jax).

  Returns:
    The original bytes.

  Raises:
    ValueError: if `a` is not a 1-D uint8 array with a consistent header.
  """
  a = np.asarray(a)
  if a.dtype != np.uint8 or a.ndim != 1 or a.size < _BYTES_HEADER:
    raise ValueError(
        'expected a 1-D uint8 array made by bytes_to_array, got '
        f'dtype={a.dtype} shape={a.shape}')
  n = int.from_bytes(a[:_BYTES_HEADER].tobytes(), 'little')
  if n != a.size - _BYTES_HEADER:
    raise ValueError(
        f'bytes array header says {n} bytes but it holds '
        f'{a.size - _BYTES_HEADER}; the data is truncated or corrupt')
  return a[_BYTES_HEADER:].tobytes()


# ----------------------------------------------------------------------------
# Logging.


class _DropOrbaxInfo(logging.Filter):
  """Drops orbax's INFO/DEBUG records (dozens per save); keeps warnings.

  Also drops the one warning orbax gives for every read-only manager ("Given
  directory is read only"), which is what evaluators ask for.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    path = record.pathname.replace('\\', '/')
    if '/orbax/' not in path:
      return True
    if record.levelno >= logging.WARNING:
      return not str(record.msg).startswith('Given directory is read only')
    return False


_ORBAX_FILTER = _DropOrbaxInfo()


def silence_orbax_info_logs() -> None:
  """Hides orbax's INFO logs (it logs through absl); idempotent.

  Orbax logs several dozen INFO lines per save, which floods the console under
  `absl.app.run` (verbosity INFO). Warnings and errors still get through, and
  INFO logs of other libraries are untouched.
  """
  absl_logger = logging.getLogger('absl')
  if _ORBAX_FILTER not in absl_logger.filters:
    absl_logger.addFilter(_ORBAX_FILTER)


def _is_closed_loop_noise(unraisable: Any) -> bool:
  """True for the stray error a failed tensorstore read reports late.

  When orbax's read fails, tensorstore may still call back into the asyncio
  loop orbax has already closed; Python then prints "RuntimeError: Event loop
  is closed" through `sys.unraisablehook`, after our CheckpointError. It is
  harmless and only confuses the user.
  """
  if unraisable.exc_type is not RuntimeError:
    return False
  if str(unraisable.exc_value) != 'Event loop is closed':
    return False
  tb = unraisable.exc_traceback
  while tb is not None and tb.tb_next is not None:
    tb = tb.tb_next
  return tb is None or 'asyncio' in tb.tb_frame.f_code.co_filename


def _install_closed_loop_filter() -> None:
  """Wraps `sys.unraisablehook` (once) to drop only `_is_closed_loop_noise`."""
  if getattr(sys.unraisablehook, '_marl_jax_filter', False):
    return
  previous = sys.unraisablehook

  def hook(unraisable):
    if not _is_closed_loop_noise(unraisable):
      previous(unraisable)

  hook._marl_jax_filter = True  # pylint: disable=protected-access
  sys.unraisablehook = hook


# ----------------------------------------------------------------------------
# Leaf encoding.


class _Leaf(NamedTuple):
  """One flattened leaf: where it lives, what it is, and what gets stored."""
  path: tuple[Any, ...]     # normalised key path, e.g. ('params', 'w', 0)
  label: str                # human-readable path, e.g. "['params']['w'][0]"
  kind: str                 # array | key | bytes | bool | int | float
  array: np.ndarray | None  # host data (None while describing a target)
  shape: tuple[int, ...]    # stored shape (key data shape for keys)
  dtype: str                # stored dtype (uint32 for keys, uint8 for bytes)
  logical_dtype: str        # e.g. 'key<fry>' for keys, else == dtype
  key_impl: str | None      # PRNG implementation name for typed keys


def _path_part(entry: Any) -> Any:
  """Normalises one jax key-path entry to a plain str or int."""
  for attr in ('key', 'name', 'idx'):
    if hasattr(entry, attr):
      value = getattr(entry, attr)
      return value if isinstance(value, int) else str(value)
  return str(entry)


def _label(path: tuple[Any, ...]) -> str:
  return ''.join(f'[{p!r}]' for p in path) or '<root>'


def _is_prng_key(x: Any) -> bool:
  dtype = getattr(x, 'dtype', None)
  return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _encode_leaf(path: tuple[Any, ...], value: Any) -> _Leaf:
  """Converts one state leaf to host data plus its description."""
  label = _label(path)
  key_impl = None
  if isinstance(value, (bytes, bytearray, memoryview)):
    kind, array = 'bytes', bytes_to_array(value)
  elif isinstance(value, bool):
    kind, array = 'bool', np.asarray(value)
  elif isinstance(value, int):
    kind, array = 'int', np.asarray(value)
  elif isinstance(value, float):
    kind, array = 'float', np.asarray(value)
  elif _is_prng_key(value):
    kind = 'key'
    key_impl = str(jax.random.key_impl(value))
    array = np.asarray(jax.device_get(jax.random.key_data(value)))
  elif isinstance(value, (jax.Array, np.ndarray, np.generic)):
    kind, array = 'array', np.asarray(jax.device_get(value))
  else:
    raise CheckpointError(
        f'cannot checkpoint the leaf at {label} of type {type(value).__name__}:'
        ' leaves must be arrays, python bool/int/float or bytes (put other '
        'data in `metadata`, or pickle it into bytes)')
  if array.dtype == object:
    raise CheckpointError(f'cannot checkpoint the object array at {label}')
  logical = str(value.dtype) if kind == 'key' else str(array.dtype)
  return _Leaf(path, label, kind, array, tuple(array.shape), str(array.dtype),
               logical, key_impl)


def _describe_target_leaf(path: tuple[Any, ...], value: Any) -> _Leaf:
  """Describes what a target leaf expects, without touching its data."""
  label = _label(path)
  if isinstance(value, (bytes, bytearray, memoryview)):
    return _Leaf(path, label, 'bytes', None, (), 'uint8', 'uint8', None)
  for kind, typ in (('bool', bool), ('int', int), ('float', float)):
    if isinstance(value, typ):
      return _Leaf(path, label, kind, None, (), '', '', None)
  if _is_prng_key(value):
    data = jax.eval_shape(jax.random.key_data, value)
    return _Leaf(path, label, 'key', None, tuple(data.shape), str(data.dtype),
                 str(value.dtype), None)
  if isinstance(value, (jax.Array, np.ndarray, np.generic,
                        jax.ShapeDtypeStruct)):
    dtype = str(np.dtype(value.dtype))
    return _Leaf(path, label, 'array', None, tuple(value.shape), dtype, dtype,
                 None)
  raise CheckpointError(
      f'restore target has a leaf of unsupported type {type(value).__name__} '
      f'at {label}; use arrays, jax.ShapeDtypeStruct, python scalars or bytes')


def _flatten(tree: Any, fn) -> tuple[list[_Leaf], Any]:
  with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
  leaves = [fn(tuple(_path_part(e) for e in p), v) for p, v in with_path]
  return leaves, treedef


def _checksum(array: np.ndarray) -> int:
  flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
  return zlib.crc32(flat)


def _storage_names(leaves: list[_Leaf]) -> list[str | None]:
  """Unique orbax item names, readable like 'params.w.0'; None if not stored."""
  names, used = [], set()
  for leaf in leaves:
    if leaf.array is not None and leaf.array.size == 0:
      names.append(None)  # orbax cannot store empty arrays; shape suffices.
      continue
    parts = [re.sub(r'[^A-Za-z0-9_-]', '_', str(p)) or '_' for p in leaf.path]
    base = '.'.join(parts) or 'root'
    name, i = base, 1
    while name in used:
      name, i = f'{base}~{i}', i + 1
    used.add(name)
    names.append(name)
  return names


# ----------------------------------------------------------------------------
# The checkpointer.


class Checkpointer:
  """Saves and restores numbered pytree checkpoints in one directory.

  Only one writing `Checkpointer` may use a directory at a time (the learner).
  Readers in other processes (evaluators) pass `read_only=True`; every query
  re-reads the directory, so they see new steps as they are committed.
  """

  def __init__(self, directory: str | os.PathLike, max_to_keep: int | None = 3,
               *, read_only: bool = False):
    """Opens (and, unless read-only, creates) a checkpoint directory.

    Args:
      directory: where the step directories live.
      max_to_keep: number of most recent steps kept; older ones are deleted
        after each save. None keeps everything.
      read_only: never write or delete; for evaluators reading a live run.

    Raises:
      CheckpointError: if `max_to_keep` is not positive or the directory
        cannot be created.
    """
    if max_to_keep is not None and max_to_keep < 1:
      raise CheckpointError(
          f'max_to_keep must be a positive integer or None, got {max_to_keep}')
    silence_orbax_info_logs()
    _install_closed_loop_filter()
    self._directory = os.path.abspath(os.fspath(directory))
    self._read_only = read_only
    if not read_only:
      try:
        os.makedirs(self._directory, exist_ok=True)
      except OSError as e:
        raise CheckpointError(
            f'cannot create checkpoint directory {self._directory}: {e}') from e
    registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
    for name, save_args, restore_args, handler in (
        (_STATE_ITEM, ocp.args.PyTreeSave, ocp.args.PyTreeRestore,
         ocp.handlers.PyTreeCheckpointHandler),
        (_META_ITEM, ocp.args.JsonSave, ocp.args.JsonRestore,
         ocp.handlers.JsonCheckpointHandler)):
      registry.add(name, save_args, handler)
      registry.add(name, restore_args, handler)
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.LatestN(max_to_keep),
        enable_async_checkpointing=False,
        create=False,  # Done above, so that read-only never creates it.
        # Orbax would clean up on a background thread that can race
        # interpreter shutdown; we clean up synchronously below instead.
        cleanup_tmp_directories=False,
        read_only=read_only,
        save_interval_steps=0 if read_only else 1,  # Avoids an orbax warning.
    )
    self._registry, self._options = registry, options
    self._manager = None
    if not read_only:
      self._remove_unfinished_saves()
    self._get_manager()  # Opened lazily if a read-only directory is missing.

  def _remove_unfinished_saves(self) -> None:
    """Deletes temporary step directories left by saves that never finished."""
    if not os.path.isdir(self._directory):
      return
    for name in os.listdir(self._directory):
      if _TMP_MARKER in name:
        shutil.rmtree(os.path.join(self._directory, name), ignore_errors=True)

  def _get_manager(self):
    if self._manager is None and os.path.isdir(self._directory):
      self._open_manager()
    return self._manager

  def _open_manager(self) -> None:
    try:
      self._manager = ocp.CheckpointManager(
          self._directory, options=self._options,
          handler_registry=self._registry)
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(
          f'cannot open checkpoint directory {self._directory}: '
          f'{_short(e)}') from e

  @property
  def directory(self) -> str:
    """The absolute checkpoint directory."""
    return self._directory

  def step_dir(self, step: int) -> str:
    """The directory a committed `step` lives in."""
    return os.path.join(self._directory, str(step))

  # -- Queries. ---------------------------------------------------------------

  def all_steps(self) -> list[int]:
    """All committed steps, ascending (re-read from disk)."""
    manager = self._get_manager()
    if manager is None:
      return []
    manager.reload()
    steps = []
    for step in manager.all_steps():
      step_dir = self.step_dir(step)
      # Belt and braces: orbax writes commit_success.txt before the rename.
      if (os.path.isfile(os.path.join(step_dir, _COMMIT_FILE))
          and _TMP_MARKER not in os.path.basename(step_dir)):
        steps.append(int(step))
    return sorted(steps)

  def latest_step(self) -> int | None:
    """The newest committed step, or None if there is none."""
    steps = self.all_steps()
    return steps[-1] if steps else None

  # -- Save. ------------------------------------------------------------------

  def save(self, step: int, state: Any,
           metadata: Mapping[str, Any] | None = None,
           force: bool = False) -> str:
    """Saves `state` (and JSON `metadata`) as `step`; returns when durable.

    Args:
      step: a non-negative integer, typically the learner step.
      state: a pytree of arrays, python scalars and bytes.
      metadata: a JSON-serialisable dict returned by `restore` (e.g. the
        config, env-step counters).
      force: overwrite an existing checkpoint of the same step (it is deleted
        first). Without it, saving an existing step is an error.

    Returns:
      The committed step directory.

    Raises:
      CheckpointError: read-only checkpointer, bad step, existing step,
        unsupported leaf, non-JSON metadata, or a failed write.
    """
    if self._read_only:
      raise CheckpointError(
          f'checkpointer for {self._directory} is read-only; cannot save')
    if (isinstance(step, bool) or not isinstance(step, (int, np.integer))
        or step < 0):
      raise CheckpointError(
          f'step must be a non-negative integer, got {step!r}')
    step = int(step)
    leaves, treedef = _flatten(state, _encode_leaf)
    names = _storage_names(leaves)
    manifest = {
        'format': _FORMAT_VERSION,
        'step': step,
        'treedef': str(treedef),
        'leaves': [{
            'path': list(leaf.path),
            'kind': leaf.kind,
            'name': name,
            'shape': list(leaf.shape),
            'dtype': leaf.dtype,
            'logical_dtype': leaf.logical_dtype,
            'key_impl': leaf.key_impl,
            'crc32': _checksum(leaf.array),
        } for leaf, name in zip(leaves, names)],
        'user': dict(metadata) if metadata is not None else {},
    }
    try:
      json.dumps(manifest, allow_nan=True)
    except (TypeError, ValueError) as e:
      raise CheckpointError(
          f'checkpoint metadata for step {step} in {self._directory} is not '
          f'JSON-serialisable: {e}') from e

    if self._get_manager() is None:  # The directory vanished since __init__.
      os.makedirs(self._directory, exist_ok=True)
    manager = self._get_manager()
    existing = self.all_steps()
    if step in existing or os.path.isdir(self.step_dir(step)):
      if not force:
        raise CheckpointError(
            f'a checkpoint for step {step} already exists in '
            f'{self._directory}; pass force=True to overwrite it')
      try:
        if step in manager.all_steps():
          manager.delete(step)
        else:  # An uncommitted leftover under the final name.
          shutil.rmtree(self.step_dir(step))
      except Exception as e:  # pylint: disable=broad-except
        raise CheckpointError(
            f'cannot overwrite {self.step_dir(step)}: {_short(e)}') from e

    arrays = {name: leaf.array for leaf, name in zip(leaves, names) if name}
    try:
      manager.save(
          step,
          args=ocp.args.Composite(**{
              _STATE_ITEM: ocp.args.PyTreeSave(arrays),
              _META_ITEM: ocp.args.JsonSave(manifest),
          }),
          force=True)  # Our own policy: every call saves.
      manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(
          f'saving step {step} to {self._directory} failed: {_short(e)}') from e
    return self.step_dir(step)

  # -- Restore. ---------------------------------------------------------------

  def _resolve_step(self, step: int | None) -> int:
    steps = self.all_steps()
    if step is None:
      if not steps:
        raise CheckpointError(
            f'no checkpoint found in {self._directory}; run without --resume '
            'to start a new run')
      return steps[-1]
    if step not in steps:
      raise CheckpointError(
          f'no checkpoint for step {step} in {self._directory}; available '
          f'steps: {steps or "none"}')
    return int(step)

  def _corrupt(self, step: int, what: str, e: BaseException | None = None
               ) -> CheckpointError:
    older = [s for s in self.all_steps() if s < step]
    hint = (f'; delete {self.step_dir(step)} to resume from step {older[-1]}'
            if older else '')
    reason = f': {_short(e)}' if e is not None else ''
    return CheckpointError(
        f'checkpoint step {step} at {self.step_dir(step)} is corrupt or '
        f'unreadable ({what}){reason}{hint}')

  def _read_manifest(self, step: int) -> dict[str, Any]:
    try:
      restored = self._get_manager().restore(
          step, args=ocp.args.Composite(**{_META_ITEM: ocp.args.JsonRestore()}))
      manifest = restored[_META_ITEM]
    except Exception as e:  # pylint: disable=broad-except
      raise self._corrupt(
          step, f'cannot read {os.path.join(self.step_dir(step), _META_ITEM)}',
          e) from e
    if (not isinstance(manifest, dict) or 'leaves' not in manifest
        or manifest.get('format') != _FORMAT_VERSION):
      raise self._corrupt(
          step, 'the metadata in '
          f'{os.path.join(self.step_dir(step), _META_ITEM)} is not a '
          f'marl_jax checkpoint manifest (format {_FORMAT_VERSION})')
    return manifest

  def read_metadata(self, step: int | None = None) -> dict[str, Any]:
    """Returns the `metadata` saved with `step` (default: latest), cheaply."""
    step = self._resolve_step(step)
    return self._read_manifest(step)['user']

  def restore(self, step: int | None = None, target: Any = None
              ) -> tuple[Any, dict[str, Any]]:
    """Restores a checkpoint.

    Args:
      step: which step; None means the latest.
      target: a pytree with the structure of the saved state; its leaves may be
        concrete (numpy or jax arrays, python scalars, bytes) or abstract
        (`jax.ShapeDtypeStruct`). The result has exactly this structure, with
        leaves of the same kind (numpy stays numpy; jax arrays and
        ShapeDtypeStructs with a sharding are placed with that sharding).
        Without a target the state comes back as nested dicts keyed by
        field/key names (sequence indices as ints), with numpy arrays, typed
        PRNG keys, python scalars and bytes as leaves.

    Returns:
      `(state, metadata)`.

    Raises:
      CheckpointError: no such checkpoint; corrupt data (including checksum
        mismatches); or a target whose structure, shapes or dtypes differ from
        the saved state (each difference is listed).
    """
    step = self._resolve_step(step)
    manifest = self._read_manifest(step)
    saved = manifest['leaves']
    saved_by_path = {tuple(e['path']): e for e in saved}

    if target is not None:
      wanted, treedef = _flatten(target, _describe_target_leaf)
      self._check_compatible(step, saved_by_path, wanted)
      order = [saved_by_path[leaf.path] for leaf in wanted]
    else:
      treedef, order = None, saved

    names = [e['name'] for e in order if e['name'] is not None]
    arrays = {}
    if names:
      try:
        restore_args = {n: ocp.RestoreArgs(restore_type=np.ndarray)
                        for n in names}
        restored = self._get_manager().restore(
            step, args=ocp.args.Composite(**{
                _STATE_ITEM: ocp.args.PyTreeRestore(restore_args=restore_args),
            }))
        arrays = dict(restored[_STATE_ITEM])
      except Exception as e:  # pylint: disable=broad-except
        raise self._corrupt(step, 'cannot read the array data', e) from e

    target_leaves = (jax.tree_util.tree_leaves(target) if target is not None
                     else [None] * len(order))
    values = []
    for entry, target_leaf in zip(order, target_leaves):
      array = self._verified_array(step, entry, arrays)
      values.append(self._decode(step, entry, array, target_leaf))

    if target is not None:
      state = jax.tree_util.tree_unflatten(treedef, values)
    else:
      state = _nest([tuple(e['path']) for e in saved], values)
    return state, manifest['user']

  def _check_compatible(self, step: int, saved_by_path: dict[tuple, dict],
                        wanted: list[_Leaf]) -> None:
    """Raises a CheckpointError listing every difference from the target."""
    diffs = []
    wanted_paths = {leaf.path for leaf in wanted}
    for leaf in wanted:
      entry = saved_by_path.get(leaf.path)
      if entry is None:
        diffs.append(f'{leaf.label}: in the target but not in the checkpoint')
        continue
      kind = entry['kind']
      if leaf.kind in _PY_KINDS:
        # A python scalar target accepts the same python type, or a 0-d array
        # of the matching dtype family (e.g. an np.int32 step for an int).
        same = kind == leaf.kind or (
            kind == 'array' and not entry['shape']
            and np.dtype(entry['dtype']).kind in _PY_KINDS[leaf.kind])
        if not same:
          diffs.append(f'{leaf.label}: target is a python {leaf.kind}, '
                       f'checkpoint holds {_describe_entry(entry)}')
        continue
      if leaf.kind == 'bytes' or kind == 'bytes':
        if leaf.kind != kind:
          diffs.append(f'{leaf.label}: target is {_describe_target(leaf)}, '
                       f'checkpoint holds {_describe_entry(entry)}')
        continue
      if (tuple(entry['shape']) != leaf.shape
          or entry['logical_dtype'] != leaf.logical_dtype):
        diffs.append(f'{leaf.label}: checkpoint has {_describe_entry(entry)}, '
                     f'target has {_describe_target(leaf)}')
    for path, entry in saved_by_path.items():
      if path not in wanted_paths:
        diffs.append(f'{_label(path)}: in the checkpoint but not in the target '
                     f'({_describe_entry(entry)})')
    if diffs:
      shown = diffs[:_MAX_LISTED_DIFFERENCES]
      if len(diffs) > len(shown):
        shown.append(f'... and {len(diffs) - len(shown)} more')
      raise CheckpointError(
          f'checkpoint step {step} at {self.step_dir(step)} does not match the '
          f'restore target ({len(diffs)} difference(s); a different population '
          'size, network or algorithm config?):\n  ' + '\n  '.join(shown))

  def _verified_array(self, step: int, entry: dict, arrays: dict) -> np.ndarray:
    shape, dtype = tuple(entry['shape']), np.dtype(entry['dtype'])
    if entry['name'] is None:
      array = np.zeros(shape, dtype)
    else:
      array = arrays.get(entry['name'])
      if array is None:
        raise self._corrupt(step, f'no data for {_label(tuple(entry["path"]))}')
      array = np.asarray(array)
    if array.shape != shape or array.dtype != dtype:
      raise self._corrupt(
          step, f'{_label(tuple(entry["path"]))} has shape {array.shape} '
          f'{array.dtype} on disk, the manifest says {shape} {dtype}')
    if _checksum(array) != entry['crc32']:
      raise self._corrupt(
          step, f'checksum mismatch for {_label(tuple(entry["path"]))}')
    return array

  def _decode(self, step: int, entry: dict, array: np.ndarray,
              target_leaf: Any) -> Any:
    kind = entry['kind']
    if kind == 'bytes':
      try:
        return array_to_bytes(array)
      except ValueError as e:
        raise self._corrupt(step, _label(tuple(entry['path'])), e) from e
    if target_leaf is None:
      python_type = {'bool': bool, 'int': int, 'float': float}.get(kind)
    else:
      python_type = next((t for t in (bool, int, float)
                          if isinstance(target_leaf, t)), None)
    if python_type is not None:
      return python_type(array)
    if kind == 'key':
      value = jax.random.wrap_key_data(array, impl=entry['key_impl'])
    else:
      value = array
    if target_leaf is None:
      return value
    if isinstance(target_leaf, np.generic):
      return array[()]
    if isinstance(target_leaf, np.ndarray):
      return array
    sharding = getattr(target_leaf, 'sharding', None)
    if isinstance(target_leaf, (jax.Array, jax.ShapeDtypeStruct)):
      return jax.device_put(value, sharding) if sharding is not None else (
          jax.device_put(value))
    return value

  # -- Lifecycle. -------------------------------------------------------------

  def wait(self) -> None:
    """Blocks until all writes are durable (saves are already synchronous)."""
    if self._manager is not None:
      self._manager.wait_until_finished()

  def close(self) -> None:
    """Finishes outstanding work and releases orbax resources."""
    if self._manager is not None:
      self._manager.close()
      self._manager = None

  def __enter__(self) -> 'Checkpointer':
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __repr__(self) -> str:
    return f'Checkpointer({self._directory!r})'


# ----------------------------------------------------------------------------
# Small helpers.


def _short(e: BaseException, limit: int = 300) -> str:
  text = str(e).strip().splitlines()
  first = text[0] if text else ''
  if len(first) > limit:
    first = first[:limit] + '...'
  return f'{type(e).__name__}: {first}'


def _describe_entry(entry: dict) -> str:
  kind = entry['kind']
  if kind == 'bytes':
    return 'bytes'
  if kind in ('bool', 'int', 'float'):
    return f'a python {kind}'
  shape = tuple(entry['shape'])
  if kind == 'key':  # Report the key array's own shape, not its data's.
    shape = shape[:-1]
  return f'shape {shape} {entry["logical_dtype"]}'


def _describe_target(leaf: _Leaf) -> str:
  if leaf.kind == 'bytes':
    return 'bytes'
  if leaf.kind in ('bool', 'int', 'float'):
    return f'a python {leaf.kind}'
  shape = leaf.shape
  if leaf.kind == 'key':  # Report the key array's own shape.
    shape = leaf.shape[:-1]
  return f'shape {shape} {leaf.logical_dtype}'


def _nest(paths: list[tuple], values: list[Any]) -> Any:
  """Builds nested dicts from key paths (used when there is no target)."""
  if len(paths) == 1 and not paths[0]:
    return values[0]
  root: dict[Any, Any] = {}
  for path, value in zip(paths, values):
    node = root
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = value
  return root
