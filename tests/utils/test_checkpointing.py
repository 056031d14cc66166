"""Tests for marl_jax.utils.checkpointing."""

import json
import os
import pickle
import types
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marl_jax.utils import checkpointing
from marl_jax.utils.checkpointing import CheckpointError
from marl_jax.utils.checkpointing import Checkpointer


class Params(NamedTuple):
  w: Any
  b: Any


class LearnerState(NamedTuple):
  params: Params
  opt_state: Any
  key: Any
  step: Any
  env_blob: Any


def _state(population: int = 2, seed: int = 0) -> LearnerState:
  rng = np.random.default_rng(seed)
  params = Params(
      w=jnp.asarray(rng.standard_normal((population, 6, 4)), jnp.float32),
      b=np.asarray(rng.standard_normal((population, 4)), np.float32),
  )
  opt_state = (
      {'count': np.array(17, np.int32),
       'mu': [jnp.full((population, 4), 0.5, jnp.float32)]},
      (),  # An empty node, like optax.EmptyState.
  )
  env_state = {'grid': [[1, 2], [3, 4]], 'rng': ('x', 7), 't': 12}
  return LearnerState(
      params=params,
      opt_state=opt_state,
      key=jax.random.split(jax.random.PRNGKey(seed), population),  # uint32
      step=np.array([3, 4], np.uint32),
      env_blob=pickle.dumps(env_state),
  )


def _assert_same(restored, expected):
  """Same treedef, same leaf types, exactly equal values."""
  assert jax.tree.structure(restored) == jax.tree.structure(expected)
  for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(expected)):
    assert type(got) is type(want), (type(got), type(want))
    if isinstance(want, bytes):
      assert got == want
    else:
      assert got.dtype == want.dtype and got.shape == want.shape
      np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_round_trip_is_exact(tmp_path):
  state = _state()
  with Checkpointer(tmp_path / 'ckpt') as ckpt:
    assert ckpt.latest_step() is None
    ckpt.save(100, state, metadata={'env_steps': 52000, 'config': {'lr': 3e-4}})
    restored, meta = ckpt.restore(target=state)
  _assert_same(restored, state)
  assert isinstance(restored, LearnerState)
  assert isinstance(restored.params, Params)
  assert restored.key.dtype == jnp.uint32
  assert pickle.loads(restored.env_blob)['grid'] == [[1, 2], [3, 4]]
  assert meta == {'env_steps': 52000, 'config': {'lr': 3e-4}}


def test_restore_in_a_fresh_checkpointer_with_abstract_target(tmp_path):
  state = _state()
  Checkpointer(tmp_path).save(5, state)
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype)
      if isinstance(x, jax.Array) else x, state)
  restored, meta = Checkpointer(tmp_path).restore(target=abstract)
  assert meta == {}
  assert isinstance(restored.params.w, jax.Array)
  np.testing.assert_array_equal(restored.params.w, state.params.w)
  np.testing.assert_array_equal(restored.key, state.key)
  assert restored.env_blob == state.env_blob
  # A bytes placeholder of another length is fine: bytes are variable length.
  restored, _ = Checkpointer(tmp_path).restore(
      target=state._replace(env_blob=b''))
  assert restored.env_blob == state.env_blob


def test_typed_keys_python_scalars_and_empty_values(tmp_path):
  state = {
      'keys': jax.random.split(jax.random.key(3), 4),
      'rbg': jax.random.key(1, impl='rbg'),
      'episodes': 12, 'lr': 0.25, 'done': True,
      'empty_bytes': b'', 'empty_array': np.zeros((0, 3), np.float32),
      'f16': np.arange(3, dtype=np.float16),
  }
  ckpt = Checkpointer(tmp_path)
  ckpt.save(0, state)
  restored, _ = ckpt.restore(target=state)
  assert jax.tree.structure(restored) == jax.tree.structure(state)
  for name in ('keys', 'rbg'):
    assert restored[name].dtype == state[name].dtype
    np.testing.assert_array_equal(jax.random.key_data(restored[name]),
                                  jax.random.key_data(state[name]))
  assert restored['episodes'] == 12 and type(restored['episodes']) is int
  assert restored['lr'] == 0.25 and type(restored['lr']) is float
  assert restored['done'] is True
  assert restored['empty_bytes'] == b''
  assert restored['empty_array'].shape == (0, 3)
  assert restored['f16'].dtype == np.float16


def test_restore_without_target_gives_nested_dicts(tmp_path):
  state = _state()
  ckpt = Checkpointer(tmp_path)
  ckpt.save(1, state)
  raw, _ = ckpt.restore()
  np.testing.assert_array_equal(raw['params']['w'], state.params.w)
  np.testing.assert_array_equal(raw['opt_state'][0]['mu'][0],
                                state.opt_state[0]['mu'][0])
  assert raw['env_blob'] == state.env_blob


def test_sharded_target_keeps_its_sharding(tmp_path):
  devices = np.array(jax.devices())
  if devices.size < 2:
    pytest.skip('needs several devices (see tests/conftest.py)')
  mesh = jax.sharding.Mesh(devices, ('pop',))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('pop'))
  x = jax.device_put(jnp.arange(devices.size * 3, dtype=jnp.float32)
                     .reshape(devices.size, 3), sharding)
  ckpt = Checkpointer(tmp_path)
  ckpt.save(1, {'x': x})
  target = {'x': jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)}
  restored, _ = ckpt.restore(target=target)
  assert restored['x'].sharding == sharding
  np.testing.assert_array_equal(restored['x'], x)


def test_keeps_the_last_k_and_restores_a_chosen_step(tmp_path):
  ckpt = Checkpointer(tmp_path, max_to_keep=3)
  for step in range(0, 60, 10):
    ckpt.save(step, {'v': np.array(step, np.int64)}, metadata={'s': step})
  assert ckpt.all_steps() == [30, 40, 50]
  assert ckpt.latest_step() == 50
  assert sorted(os.listdir(tmp_path)) == ['30', '40', '50']
  state, meta = ckpt.restore(40, target={'v': np.array(0, np.int64)})
  assert int(state['v']) == 40 and meta == {'s': 40}
  assert ckpt.read_metadata() == {'s': 50}
  with pytest.raises(CheckpointError, match=r'no checkpoint for step 10 .*'
                     r'available steps: \[30, 40, 50\]'):
    ckpt.restore(10)


def test_saving_an_existing_step_needs_force(tmp_path):
  ckpt = Checkpointer(tmp_path)
  ckpt.save(7, {'v': np.array(1)})
  with pytest.raises(CheckpointError, match='step 7 already exists'):
    ckpt.save(7, {'v': np.array(2)})
  ckpt.save(7, {'v': np.array(2)}, force=True)
  state, _ = ckpt.restore(target={'v': np.array(0)})
  assert int(state['v']) == 2


def test_no_checkpoint_error_names_the_directory(tmp_path):
  directory = tmp_path / 'empty'
  with pytest.raises(CheckpointError) as info:
    Checkpointer(directory).restore()
  assert str(info.value) == (
      f'no checkpoint found in {directory}; run without --resume to start a '
      'new run')
  # A read-only checkpointer of a missing directory does not create it.
  missing = tmp_path / 'missing'
  reader = Checkpointer(missing, read_only=True)
  assert reader.latest_step() is None
  assert not missing.exists()
  with pytest.raises(CheckpointError, match='no checkpoint found'):
    reader.restore()
  with pytest.raises(CheckpointError, match='read-only'):
    reader.save(1, {'v': np.ones(2)})


def test_read_only_reader_sees_new_steps(tmp_path):
  writer = Checkpointer(tmp_path)
  reader = Checkpointer(tmp_path, read_only=True)
  assert reader.latest_step() is None
  writer.save(3, {'v': np.ones(2)})
  assert reader.latest_step() == 3
  state, _ = reader.restore(target={'v': np.zeros(2)})
  np.testing.assert_array_equal(state['v'], np.ones(2))


def _data_files(step_dir):
  files = []
  for root, _, names in os.walk(os.path.join(step_dir, 'state')):
    for name in names:
      if os.path.basename(root) == 'd':  # OCDBT data files.
        files.append(os.path.join(root, name))
  return sorted(files, key=os.path.getsize)


def _big_state(seed):
  rng = np.random.default_rng(seed)
  return {'w': rng.standard_normal((256, 64)).astype(np.float32),
          'b': np.arange(10, dtype=np.int32)}


@pytest.mark.parametrize('damage', ['garbage', 'truncate', 'bitflip'])
def test_corrupt_data_file_raises_checkpoint_error(tmp_path, damage):
  ckpt = Checkpointer(tmp_path)
  ckpt.save(1, _big_state(1))
  ckpt.save(2, _big_state(2))
  victim = _data_files(ckpt.step_dir(2))[-1]  # The one holding 'w'.
  size = os.path.getsize(victim)
  if damage == 'garbage':
    with open(victim, 'wb') as f:
      f.write(np.random.default_rng(0).bytes(size))
  elif damage == 'truncate':
    with open(victim, 'r+b') as f:
      f.truncate(size // 2)
  else:  # A single flipped bit deep inside the compressed data.
    with open(victim, 'r+b') as f:
      f.seek(size // 2)
      byte = f.read(1)
      f.seek(size // 2)
      f.write(bytes([byte[0] ^ 0x01]))
  target = _big_state(0)
  for reader in (ckpt, Checkpointer(tmp_path)):
    with pytest.raises(CheckpointError) as info:
      reader.restore(target=target)
    message = str(info.value)
    assert f'checkpoint step 2 at {tmp_path / "2"} is corrupt' in message
    assert 'resume from step 1' in message
  # The previous step is intact.
  state, _ = ckpt.restore(1, target=target)
  np.testing.assert_array_equal(state['w'], _big_state(1)['w'])


def test_corrupt_manifest_raises_checkpoint_error(tmp_path):
  ckpt = Checkpointer(tmp_path)
  ckpt.save(1, _big_state(1))
  manifest = os.path.join(ckpt.step_dir(1), 'meta', 'metadata')
  assert json.load(open(manifest))['format'] == 1
  with open(manifest, 'r+b') as f:
    f.truncate(os.path.getsize(manifest) // 2)
  with pytest.raises(CheckpointError, match=r'step 1 at .*/1 is corrupt'):
    ckpt.restore(target=_big_state(0))
  with pytest.raises(CheckpointError, match='is corrupt'):
    ckpt.read_metadata()


def test_structure_mismatch_lists_what_differs(tmp_path):
  ckpt = Checkpointer(tmp_path)
  ckpt.save(1, _state(population=2))
  with pytest.raises(CheckpointError) as info:
    ckpt.restore(target=_state(population=3))
  message = str(info.value)
  assert f'checkpoint step 1 at {tmp_path / "1"} does not match' in message
  assert "['params']['w']: checkpoint has shape (2, 6, 4) float32, target " \
         'has shape (3, 6, 4) float32' in message
  assert "['key']: checkpoint has shape (2, 2) uint32" in message

  other_net = _state()._replace(params={'w': np.zeros((2, 6, 4), np.float32),
                                        'extra': np.zeros(3, np.float32)})
  with pytest.raises(CheckpointError) as info:
    ckpt.restore(target=other_net)
  message = str(info.value)
  assert ("['params']['extra']: in the target but not in the checkpoint"
          in message)
  assert "['params']['b']: in the checkpoint but not in the target" in message

  ckpt.save(2, {'episodes': 12, 'count': np.array(3, np.int32)})
  with pytest.raises(CheckpointError) as info:
    ckpt.restore(2, target={'episodes': 12.0, 'count': 0})
  message = str(info.value)
  assert "['episodes']: target is a python float, checkpoint holds a " \
         'python int' in message
  assert "['count']" not in message  # An int32 0-d array fits a python int.
  state, _ = ckpt.restore(2, target={'episodes': 0, 'count': 0})
  assert state == {'episodes': 12, 'count': 3}
  assert type(state['count']) is int

  wrong_dtype = _state()._replace(step=np.array([3, 4], np.int64))
  with pytest.raises(CheckpointError, match=r"\['step'\]: checkpoint has "
                     r'shape \(2,\) uint32, target has shape \(2,\) int64'):
    ckpt.restore(1, target=wrong_dtype)


def test_crash_during_save_leaves_previous_checkpoint_latest(tmp_path,
                                                             monkeypatch):
  ckpt = Checkpointer(tmp_path)
  ckpt.save(1, _big_state(1))

  # Simulate a crash at the commit point: orbax has written everything into
  # '<step>.orbax-checkpoint-tmp*' and is about to rename it to '<step>'.
  # pylint: disable-next=g-import-not-at-top
  from orbax.checkpoint._src.path import async_path

  async def crash(*args, **kwargs):
    raise OSError('simulated crash before commit')

  monkeypatch.setattr(async_path, 'rename', crash)
  with pytest.raises(CheckpointError, match='saving step 2 to .* failed'):
    ckpt.save(2, _big_state(2))
  monkeypatch.undo()
  leftovers = [n for n in os.listdir(tmp_path) if n.startswith('2.')]
  assert leftovers and all('.orbax-checkpoint-tmp' in n for n in leftovers)

  # A hand-made half-written step (no commit marker) is ignored too.
  os.makedirs(tmp_path / '3' / 'state')
  (tmp_path / '3' / 'state' / 'partial').write_bytes(b'\0' * 10)

  for reader in (ckpt, Checkpointer(tmp_path, read_only=True)):
    assert reader.latest_step() == 1
    assert reader.all_steps() == [1]
    state, _ = reader.restore(target=_big_state(0))
    np.testing.assert_array_equal(state['w'], _big_state(1)['w'])

  # A new writer removes the temporary leftovers; saving goes on as normal.
  writer = Checkpointer(tmp_path)
  writer.save(2, _big_state(2))
  writer.wait()
  assert writer.latest_step() == 2
  assert not any('.orbax-checkpoint-tmp' in n for n in os.listdir(tmp_path))
  writer.save(3, _big_state(3), force=True)  # Replaces the half-written '3'.
  state, _ = writer.restore(target=_big_state(0))
  np.testing.assert_array_equal(state['w'], _big_state(3)['w'])


def test_bad_inputs_raise_clear_errors(tmp_path):
  ckpt = Checkpointer(tmp_path)
  with pytest.raises(CheckpointError, match='not JSON-serialisable'):
    ckpt.save(1, {'v': np.ones(2)}, metadata={'x': object()})
  with pytest.raises(CheckpointError, match=r"leaf at \['v'\] of type str"):
    ckpt.save(1, {'v': 'text'})
  with pytest.raises(CheckpointError, match='non-negative integer'):
    ckpt.save(-1, {'v': np.ones(2)})
  with pytest.raises(CheckpointError, match='max_to_keep'):
    Checkpointer(tmp_path, max_to_keep=0)
  assert ckpt.latest_step() is None


def test_bytes_helpers_round_trip_and_detect_truncation():
  for payload in (b'', b'\x00', pickle.dumps({'a': [1, 2]}), bytes(range(256))):
    array = checkpointing.bytes_to_array(payload)
    assert array.dtype == np.uint8 and array.ndim == 1 and array.size >= 8
    assert checkpointing.array_to_bytes(array) == payload
    assert checkpointing.array_to_bytes(jnp.asarray(array)) == payload
  with pytest.raises(ValueError, match='truncated'):
    checkpointing.array_to_bytes(checkpointing.bytes_to_array(b'abcdef')[:-1])
  with pytest.raises(ValueError, match='uint8'):
    checkpointing.array_to_bytes(np.zeros(10, np.int32))


def test_orbax_info_logs_are_silenced_but_warnings_kept():
  import logging  # pylint: disable=g-import-not-at-top
  checkpointing.silence_orbax_info_logs()
  checkpointing.silence_orbax_info_logs()  # Idempotent.
  absl_logger = logging.getLogger('absl')
  drop_filter = checkpointing._DropOrbaxInfo  # pylint: disable=protected-access
  assert sum(isinstance(f, drop_filter) for f in absl_logger.filters) == 1

  def record(level, path):
    return logging.LogRecord('absl', level, path, 1, 'msg', None, None)

  orbax_file = '/x/site-packages/orbax/checkpoint/checkpoint_manager.py'
  assert not absl_logger.filter(record(logging.INFO, orbax_file))
  assert absl_logger.filter(record(logging.WARNING, orbax_file))
  assert absl_logger.filter(record(logging.INFO, '/x/marl_jax/train.py'))
  read_only_note = record(logging.WARNING, orbax_file)
  read_only_note.msg = 'Given directory is read only=%s'
  assert not absl_logger.filter(read_only_note)


def test_only_the_closed_event_loop_noise_is_filtered():
  def unraisable(exc, filename):
    try:
      code = compile('raise exc', filename, 'exec')
      exec(code, {'exc': exc})  # pylint: disable=exec-used
    except Exception as e:  # pylint: disable=broad-except
      return types.SimpleNamespace(exc_type=type(e), exc_value=e,
                                   exc_traceback=e.__traceback__)

  noise = unraisable(RuntimeError('Event loop is closed'),
                     '/usr/lib/python3.11/asyncio/base_events.py')
  is_noise = checkpointing._is_closed_loop_noise  # pylint: disable=protected-access
  assert is_noise(noise)
  for other in (unraisable(RuntimeError('Event loop is closed'), '/x/mine.py'),
                unraisable(RuntimeError('something else'),
                           '/usr/lib/python3.11/asyncio/base_events.py'),
                unraisable(ValueError('Event loop is closed'),
                           '/usr/lib/python3.11/asyncio/base_events.py')):
    assert not is_noise(other)
